"""metrics.py: FID through pytorch-fid's own network (random weights, nothing downloaded),
the Fréchet distance against a closed form, the missing-weights message, statistics caching,
and SWD."""
from __future__ import annotations

import ast
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_fid.inception as pfi
import scipy
import torch
from fid_fakes import pytorch_fid_inception, random_inception_state_dict
from pytorch_fid.fid_score import calculate_frechet_distance
from torch import nn

from animegan.metrics import fid as M
from animegan.metrics.evaluation import evaluate, reference_label
from animegan.metrics.fid import (
    ENV_INCEPTION,
    INCEPTION_FILENAME,
    InceptionWeightsInvalid,
    InceptionWeightsMissing,
    feature_statistics,
    find_inception_weights,
    frechet_distance,
    inception_features,
    load_inception,
    real_statistics,
)
from animegan.metrics.result import MetricResult
from animegan.metrics.swd import swd, swd_level_sizes
from animegan.paths import stats_dir

SLOW = bool(os.environ.get("ANIMEGAN_SLOW_TESTS"))


# ----------------------------------------------------------------------------- fakes


class TinyG(nn.Module):
    def __init__(self, img_size: int = 16, z_dim: int = 8):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(z_dim, 3 * 4 * 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        x = self.fc(z).view(-1, 3, 4, 4)
        return torch.tanh(nn.functional.interpolate(x, size=self.img_size, mode="bilinear"))


class Counting(nn.Module):
    """Counts forward calls and keeps the pool3 outputs."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.calls, self.outputs = inner, 0, []

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        self.outputs.append(out[0].reshape(len(x), -1).double().numpy())
        return out


def smooth_images(n: int, size: int, seed: int, shift=(0, 0, 0)) -> np.ndarray:
    """Blurry random colour fields (more image-like than white noise), uint8 (n, 3, S, S)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g)
    x = nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False)
    x = x * 200 + 28 + 20 * torch.rand(n, 3, size, size, generator=g)
    x = x + torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("inception") / "random_fid_inception.pth"
    torch.save(random_inception_state_dict(), p)
    return p


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty torch hub cache and no env override."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(ENV_INCEPTION, raising=False)
    return tmp_path


# ----------------------------------------------------------------------------- Fréchet distance

def _gaussians(d=6, seed=0):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.2, 3, d), rng.uniform(0.2, 3, d)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # common eigenbasis: still the same closed form
    return mu1, mu2, v1, v2, q, expected


def test_frechet_distance_closed_form_no_warnings():
    mu1, mu2, v1, v2, q, expected = _gaussians()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our wrapper lets no unexpected warning through
        d_diag = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
        d_rot = frechet_distance(mu1, q @ np.diag(v1) @ q.T, mu2, q @ np.diag(v2) @ q.T)
        d_same = frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1))
    assert d_diag == pytest.approx(expected, rel=1e-9)
    assert d_rot == pytest.approx(expected, rel=1e-6)
    assert abs(d_same) < 1e-9


def _previous_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """metrics.frechet_distance as it was before it owned the formula (pytorch-fid's own
    function, its two known warnings silenced, one retry with 1e-6·I), kept here only to show
    the values did not change. pytorch-fid 0.3.0 passes sqrtm(..., disp=False), gone in SciPy 1.18."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `disp` argument is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"Matrix is singular")
        try:
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        except ValueError as e:
            if "Imaginary component" not in str(e):
                raise
            off = np.eye(np.atleast_2d(sigma1).shape[0]) * 1e-6
            return float(calculate_frechet_distance(mu1, sigma1 + off, mu2, sigma2 + off))


_SCIPY = tuple(int(p) for p in re.findall(r"\d+", scipy.__version__)[:2])
# (dims, fake set, real set) -> FID by the previous code on this machine (SciPy 1.17, pytorch-fid 0.3.0)
_RECORDED_FID = {(16, "b", "a"): 0.14703908593591825, (64, "b", "a"): 0.5062411589773795,
                 (64, "a", "a4"): 0.04981871179168226}


def test_frechet_distance_values_unchanged(weights_file):
    """FID on pool3 features of the random-weight network (n=6 < dims, so singular
    covariances, as in every quick evaluation): the formula this package owns gives exactly
    what pytorch-fid's gave, and the values recorded from it."""
    model = load_inception(weights_file)
    a = inception_features(model, smooth_images(6, 32, seed=4))
    b = inception_features(model, smooth_images(6, 32, seed=5, shift=(60, -40, 0)))
    sets = {"a": a, "b": b, "a4": a[::-1][:4]}
    for (d, fake, real), recorded in _RECORDED_FID.items():
        x, y = sets[fake][:, :d], sets[real][:, :d]
        args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the singular product's warning is expected and silenced
            value = frechet_distance(*args)
        assert value == pytest.approx(recorded, rel=1e-5), (d, fake, real)
        if _SCIPY < (1, 18):
            assert value == _previous_frechet_distance(*args), (d, fake, real)


# ----------------------------------------------------------------------------- weights lookup


def test_find_inception_weights_order(no_weights, monkeypatch):
    hub_file = M.default_inception_path()
    assert hub_file == no_weights / "torch" / "hub" / "checkpoints" / INCEPTION_FILENAME
    assert find_inception_weights() is None
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"x")
    assert find_inception_weights() == hub_file
    env_file = no_weights / "env.pth"
    monkeypatch.setenv(ENV_INCEPTION, str(env_file))
    assert find_inception_weights() is None  # a named file that is missing is not replaced
    env_file.write_bytes(b"x")
    assert find_inception_weights() == env_file
    explicit = no_weights / "explicit.pth"
    explicit.write_bytes(b"x")
    assert find_inception_weights(str(explicit)) == explicit


def test_missing_weights_one_clear_error(no_weights):
    with pytest.raises(InceptionWeightsMissing) as ei:
        load_inception()
    msg = str(ei.value)
    assert INCEPTION_FILENAME in msg and pfi.FID_WEIGHTS_URL in msg
    assert str(M.default_inception_path().parent) in msg
    assert "--inception-weights" in msg and ENV_INCEPTION in msg
    assert "\n" not in msg
    G = TinyG()
    real = smooth_images(4, 16, 0)
    with pytest.raises(InceptionWeightsMissing) as ei2:
        evaluate(G, real, metric="fid", n=4, reference="r", stats_key="k")
    assert ei2.value.__cause__ is None and ei2.value.__context__ is None
    assert G.calls == 0, "fails before generating anything"
    with pytest.raises(InceptionWeightsMissing, match="nope.pth"):
        load_inception(no_weights / "nope.pth")


def test_invalid_weights_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(InceptionWeightsInvalid, match=INCEPTION_FILENAME):
        load_inception(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InceptionWeightsInvalid):
        load_inception(junk)
    assert issubclass(InceptionWeightsInvalid, InceptionWeightsMissing)  # callers catch one type


# ----------------------------------------------------------------------------- FID end to end


def test_fid_features_statistics_and_cache(weights_file):
    model = load_inception(weights_file)
    assert isinstance(model, M.FIDInceptionV3) and not model.training
    assert load_inception(weights_file) is model  # cached per file and device
    a = smooth_images(3, 32, seed=1)

    counting = Counting(model)
    mu, sigma = real_statistics(a, key="fp_32_val", n=None, model=counting, batch_size=2)
    assert counting.calls == 2
    feats = np.concatenate(counting.outputs)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all() and feats.std() > 0
    assert (stats_dir() / "fid_fp_32_val_3.npz").is_file()
    mu2, sigma2 = real_statistics(a, key="fp_32_val", n=3, model=counting)
    assert counting.calls == 2, "second call loads the npz"
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    assert real_statistics(a, key="fp_32_val", n=9, model=None)[0].shape == (2048,)  # n capped at 3
    # the running moments equal NumPy's mean/cov of all features at once
    assert np.allclose(mu, feats.mean(0), rtol=1e-10, atol=1e-12)
    assert np.allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-8, atol=1e-12)


def test_fid_network_is_pytorch_fids_own(weights_file):
    """The package builds the FID network without patching pytorch-fid; it must be the very
    network pytorch-fid builds (same modules in the same blocks, same forward)."""
    ours = load_inception(weights_file)
    theirs = pytorch_fid_inception(torch.load(weights_file, weights_only=True))
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(ref) and len(mine) > 500
    assert all(torch.equal(mine[k], ref[k]) for k in ref)
    assert [type(m).__name__ for m in ours.modules()][1:] == [type(m).__name__ for m in theirs.modules()][1:]
    x = torch.from_numpy(smooth_images(2, 32, seed=9)).float() / 255
    with torch.inference_mode():
        (a,), (b,) = ours(x), theirs(x)
    assert a.shape == (2, 2048, 1, 1) and a.std() > 0
    assert torch.equal(a, b)


def test_package_code_imports_no_test_tools():
    """Test doubles (unittest.mock, pytest) and fixtures stay in tests/."""
    root = Path(M.__file__).parents[1]
    offenders = []
    for path in sorted(root.glob("**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("unittest", "pytest")]
    assert offenders == []
    assert len(list(root.glob("**/*.py"))) > 10
    assert not hasattr(M, "random_inception_state_dict")


class PixelFeatures(nn.Module):
    """Stands in for the Inception net (same output format: [(N, 2048, 1, 1)]), cheaply."""

    def __init__(self):
        super().__init__()
        self.proj = torch.randn(3 * 16 * 16, 2048, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return [torch.relu(x.reshape(len(x), -1) @ self.proj).view(len(x), 2048, 1, 1)]


def test_streaming_statistics_match_numpy():
    """Fake and real sides stream batch by batch; any split gives NumPy's mean/cov, so
    FID(a, a) is ~0 by construction (the full-size check is the slow test)."""
    model = PixelFeatures()
    a = smooth_images(20, 16, seed=7)
    # the same batches as below (float32 kernels round differently per batch shape)
    feats = np.concatenate([inception_features(model, a[i : i + 7]) for i in range(0, 20, 7)])
    assert feats.shape == (20, 2048) and feats.dtype == np.float64
    mu, sigma, n = feature_statistics((torch.from_numpy(a[i : i + 7]) for i in range(0, 20, 7)), model)
    assert n == 20
    assert np.allclose(mu, feats.mean(0), rtol=1e-10, atol=1e-9)
    assert np.allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-8, atol=1e-6)
    rmu, rsigma = real_statistics(a, key="px", n=20, model=model, batch_size=6)
    assert np.allclose(rmu, mu, rtol=1e-5, atol=1e-4)
    assert np.linalg.norm(rsigma - sigma) < 1e-5 * np.linalg.norm(sigma)
    with pytest.raises(ValueError):
        feature_statistics([a[:1]], model)  # one image has no covariance


def test_evaluate_fid_end_to_end(weights_file, monkeypatch):
    """The whole path: G → image_batches → pytorch-fid's network → running statistics →
    Fréchet distance → MetricResult. pytorch-fid's distance on the full 2048×2048
    covariances needs one sqrtm costing ~1 CPU-minute here, so this quick test checks what
    reaches it and evaluates it on the first 64 features (a marginal of the same Gaussians,
    through the same pytorch-fid formula); the full-size run is the slow test below."""
    monkeypatch.setenv(ENV_INCEPTION, str(weights_file))
    seen = []

    def marginal_fd(mu1, s1, mu2, s2):
        seen.append((mu1, s1, mu2, s2))
        return frechet_distance(mu1[:64], s1[:64, :64], mu2[:64], s2[:64, :64])

    monkeypatch.setattr(M, "frechet_distance", marginal_fd)
    G = TinyG(img_size=16)
    real = smooth_images(6, 16, seed=2)
    ref = reference_label("synthetic", "abcdef0123456789", 16)
    assert ref == "val split of synthetic (abcdef01) @16px"
    r = evaluate(G, real, metric="fid", n=3, seed=3, reference=ref, stats_key="abc_16_val")
    assert r.metric == "fid" and r.n == 3 and r.seed == 3 and r.reference == ref and r.levels is None
    assert np.isfinite(r.value) and r.value > 0
    assert G.calls == 1
    (mu1, s1, mu2, s2), = seen
    assert mu1.shape == mu2.shape == (2048,) and s1.shape == s2.shape == (2048, 2048)
    assert not np.allclose(mu1, mu2)
    cached = np.load(stats_dir() / "fid_abc_16_val_3.npz")
    assert np.array_equal(cached["mu"], mu2) and np.array_equal(cached["sigma"], s2)
    assert MetricResult.from_dict(r.to_dict()) == r


@pytest.mark.skipif(not SLOW, reason="two full 2048×2048 sqrtm (~1 CPU-minute each here); set ANIMEGAN_SLOW_TESTS=1")
def test_fid_self_is_zero_and_other_is_positive(weights_file):
    model = load_inception(weights_file)
    a, b = smooth_images(8, 32, seed=4), smooth_images(8, 32, seed=5, shift=(60, -40, 0))
    mu, sigma = real_statistics(a, key="self", n=None, model=model)
    same = M.fid((a[i : i + 3] for i in range(0, 8, 3)), mu, sigma, model)
    other = M.fid((b[i : i + 3] for i in range(0, 8, 3)), mu, sigma, model)
    assert abs(same) < 1e-3 * max(1.0, other)
    assert other > 0


# ----------------------------------------------------------------------------- SWD


def test_swd_level_sizes():
    assert swd_level_sizes(64) == [64, 32, 16]
    assert swd_level_sizes(96) == [96, 48, 24]
    assert swd_level_sizes(128) == [128, 64, 32, 16]
    assert swd_level_sizes(16) == [16] and swd_level_sizes(15) == []


@pytest.mark.parametrize("size,levels", [(64, 3), (96, 3), (32, 2)])
def test_swd_levels_and_identity(size, levels):
    a = smooth_images(6, size, seed=size)
    r = swd(a, a, seed=1, patches_per_image=16, n_proj=32, n_repeats=2, reference="me")
    assert r.metric == "swd" and r.n == 6 and r.seed == 1 and r.reference == "me"
    assert len(r.levels) == levels
    assert r.value == 0.0 and r.levels == [0.0] * levels  # shared patch positions: exactly 0
    assert MetricResult.from_dict(r.to_dict()) == r


def test_swd_sees_colour_shift_and_is_seeded():
    kw = dict(patches_per_image=32, n_proj=64, n_repeats=2)
    real = smooth_images(24, 64, seed=10)
    same_dist = smooth_images(24, 64, seed=11)
    shifted = smooth_images(24, 64, seed=11, shift=(50, 0, -50))
    base = swd(same_dist, real, seed=0, **kw)
    moved = swd(shifted, real, seed=0, **kw)
    assert 0 < base.value < moved.value
    assert moved.levels[-1] > 2 * base.levels[-1]  # a colour shift lives in the low-pass level
    again = swd(shifted, real, seed=0, **kw)
    assert again.levels == moved.levels and again.value == moved.value
    other_seed = swd(shifted, real, seed=1, **kw)
    assert other_seed.levels != moved.levels
    # the original's per-set normalisation cannot see a pure per-channel offset of the residual
    sep = swd(shifted, real, seed=0, normalize="separate", **kw)
    assert sep.levels[-1] < moved.levels[-1]


def test_swd_input_checks():
    a = smooth_images(4, 32, seed=0)
    with pytest.raises(ValueError):
        swd(a, smooth_images(4, 64, seed=0))
    with pytest.raises(ValueError):
        swd(a, a[:3])
    with pytest.raises(ValueError):
        swd(smooth_images(4, 8, seed=0), smooth_images(4, 8, seed=0))
    with pytest.raises(TypeError):
        swd(a.astype(np.float32), a)


def test_evaluate_swd():
    G = TinyG(img_size=32)
    real = smooth_images(10, 32, seed=3)
    r = evaluate(G, real, metric="swd", n=8, seed=2, reference="val")
    assert r.metric == "swd" and r.n == 8 and r.seed == 2 and len(r.levels) == 2 and r.value > 0
    assert evaluate(G, real, metric="SWD", n=8, seed=2, reference="val") == r
    with pytest.raises(ValueError):
        evaluate(TinyG(img_size=16), real, metric="swd", n=8, reference="val")
    with pytest.raises(ValueError):
        evaluate(G, real, metric="is", n=8, reference="val")
