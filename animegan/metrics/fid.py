"""FID: pytorch-fid's network and its Fréchet formula.

The network is pytorch-fid's FID InceptionV3 (the TF-FID variant, 2048-d pool3 features):
torchvision's Inception with pytorch-fid's `FIDInceptionA/C/E` blocks, arranged and run
as pytorch-fid's `InceptionV3` does (`FIDInceptionV3`); the distance is pytorch-fid's
`calculate_frechet_distance`, step for step, kept here (`frechet_distance`) because
pytorch-fid 0.3.0's own calls SciPy in a way SciPy 1.18 removed. pytorch-fid fetches its
weights from the internet on first use; this module never does unless asked (`allow_download=True`): it loads a local state
dict (see `find_inception_weights`) and raises `InceptionWeightsMissing`, with one message
saying what to download and where to put it, when there is none.
Images go in as pytorch-fid expects (float in [0, 1], (N, 3, H, W)); the network
resizes to 299×299 and rescales to [-1, 1] itself. Feature statistics are accumulated
batch by batch (float64 running sums), so no image set is ever held whole in memory or
written to disk. Note: with fewer than 2048 images the covariance is singular and the
number is biased upwards; compare FIDs only at equal n.

`evaluation.evaluate` measures a generator against real images with FID or SWD.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AnimeganError
from ..images import uint8_batch
from ..paths import ensure, stats_dir

# ----------------------------------------------------------------------------- FID: weights

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
ENV_INCEPTION = "ANIMEGAN_INCEPTION_WEIGHTS"
FID_DIMS = 2048


class InceptionWeightsMissing(AnimeganError, RuntimeError):
    """The FID Inception weights are not on this machine (and were not downloaded).
    Callers that skip FID when weights are absent catch this one type."""


class InceptionWeightsInvalid(InceptionWeightsMissing):
    """A weights file exists but is not the FID Inception state dict (usable weights are
    missing all the same, so it is caught wherever InceptionWeightsMissing is)."""


def fid_weights_url() -> str:
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return FID_WEIGHTS_URL


def default_inception_path() -> Path:
    """Where torch.hub (and so pytorch-fid) keeps the file: `<hub dir>/checkpoints/<file>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def _candidate_path(path: str | os.PathLike | None) -> tuple[Path, str]:
    if path:
        return Path(path).expanduser(), "the given path"
    env = os.environ.get(ENV_INCEPTION)
    if env:
        return Path(env).expanduser(), f"${ENV_INCEPTION}"
    return default_inception_path(), "the torch hub cache"


def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weights file to use, or None when it is not there.

    Looked up in this order, the first one *given* wins (a given path that does not exist is
    not silently replaced by another): `path`, `$ANIMEGAN_INCEPTION_WEIGHTS`,
    `<torch.hub.get_dir()>/checkpoints/pt_inception-2015-12-05-6726825d.pth`.
    """
    p, _ = _candidate_path(path)
    return p if p.is_file() else None


def missing_weights_message(path: str | os.PathLike | None = None, reason: str = "") -> str:
    p, where = _candidate_path(path)
    msg = (
        f"FID needs the Inception weights file {INCEPTION_FILENAME}, which is not at {p} "
        f"({where}). Download it from {fid_weights_url()} and put it in "
        f"{default_inception_path().parent}/, or pass --inception-weights PATH, "
        f"or set {ENV_INCEPTION}=PATH. (SWD needs no download.)"
    )
    if reason:
        msg += f" Download attempt failed: {reason}"
    return msg


_MODEL_CACHE: dict[tuple, nn.Module] = {}


def _fid_inception_v3() -> nn.Module:
    """torchvision's InceptionV3 with pytorch-fid's FID blocks swapped in, exactly as
    `pytorch_fid.inception.fid_inception_v3` builds it, minus its weights download."""
    import pytorch_fid.inception as pfi
    import torchvision

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


class FIDInceptionV3(nn.Module):
    """pytorch-fid's `InceptionV3([3], resize_input=True, normalize_input=True,
    use_fid_inception=True)` filled from a state dict we already hold: the same four blocks of
    the same modules (so the same state-dict keys), the state dict checked strictly against
    the network as pytorch-fid does, and the same forward: bilinear resize to 299×299, [0, 1]
    -> [-1, 1], the blocks, `[pool3 (N, 2048, 1, 1)]`. tests/test_metrics.py checks it equals
    pytorch-fid's own module, weights and outputs."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        super().__init__()
        net = _fid_inception_v3()
        net.load_state_dict(state_dict)  # strict: the file must be exactly the FID network
        self.blocks = nn.ModuleList([
            nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                          net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e),
            nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))),
        ])
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for block in self.blocks:
            x = block(x)
        return [x]


def load_inception(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", allow_download: bool = False
) -> nn.Module:
    """The FID Inception network in eval mode on `device` (cached per file and device).

    Raises `InceptionWeightsMissing` (one message: file name, URL, where to put it) when the
    file is not found and `allow_download` is False or the download fails, and
    `InceptionWeightsInvalid` when the file is not a matching state dict. `allow_download`
    fetches the file into the torch hub cache (`default_inception_path()`), as pytorch-fid does.
    """
    found = find_inception_weights(path)
    if found is None:
        if not allow_download:
            raise InceptionWeightsMissing(missing_weights_message(path))
        try:
            torch.hub.load_state_dict_from_url(fid_weights_url(), progress=True, weights_only=True)
        except Exception as e:  # network errors come in many types
            raise InceptionWeightsMissing(missing_weights_message(path, f"{type(e).__name__}: {e}")) from None
        found = default_inception_path()
    st = found.stat()
    key = (str(found.resolve()), st.st_mtime_ns, st.st_size, str(torch.device(device)))
    model = _MODEL_CACHE.get(key)
    if model is not None:
        return model
    try:
        state = torch.load(found, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InceptionWeightsInvalid(
            f"{found} could not be read as a PyTorch state dict ({type(e).__name__}: {e}); "
            f"expected {INCEPTION_FILENAME} from {fid_weights_url()}"
        ) from None
    try:
        model = FIDInceptionV3(state)
    except Exception as e:
        raise InceptionWeightsInvalid(
            f"{found} is not the FID Inception state dict ({type(e).__name__}: {str(e)[:300]}); "
            f"expected {INCEPTION_FILENAME} from {fid_weights_url()}"
        ) from None
    model = model.to(device).eval()
    _MODEL_CACHE.clear()  # one network (~100 MB) at a time is plenty
    _MODEL_CACHE[key] = model
    return model


# ----------------------------------------------------------------------------- FID: features

def inception_features(model: nn.Module, images: Any, device: str | torch.device = "cpu") -> np.ndarray:
    """pool3 features (N, 2048) float64 of one batch of uint8 images (N, 3, H, W)."""
    x = uint8_batch(images).to(device).float().div_(255.0)  # pytorch-fid's input: [0, 1]
    with torch.inference_mode():
        out = model(x)[0]
    if out.shape[2:] != (1, 1):  # not pool3: pytorch-fid averages spatially too
        out = F.adaptive_avg_pool2d(out, (1, 1))
    return out.reshape(out.shape[0], -1).double().cpu().numpy()


class _Moments:
    """Running mean and covariance (ddof=1, as np.cov) in float64, shifted by the first
    batch's mean for accuracy."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, feats: np.ndarray) -> None:
        if len(feats) == 0:
            return
        if self.shift is None:
            self.shift = feats.mean(axis=0)
            d = feats.shape[1]
            self.s1, self.s2 = np.zeros(d), np.zeros((d, d))
        x = feats - self.shift
        self.n += len(x)
        self.s1 += x.sum(axis=0)
        self.s2 += x.T @ x

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"FID statistics need at least 2 images, got {self.n}")
        m = self.s1 / self.n
        sigma = (self.s2 - self.n * np.outer(m, m)) / (self.n - 1)
        return self.shift + m, sigma


def feature_statistics(
    batches: Iterable[Any], model: nn.Module, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, n) of the pool3 features of a stream of uint8 batches."""
    mom = _Moments()
    for b in batches:
        mom.add(inception_features(model, b, device))
    mu, sigma = mom.result()
    return mu, sigma, mom.n


def _stats_path(key: str, n: int) -> Path:
    return stats_dir() / f"fid_{key}_{int(n)}.npz"


def real_statistics(
    images: np.ndarray,
    *,
    key: str,
    n: int | None,
    model: nn.Module | None,
    device: str | torch.device = "cpu",
    batch_size: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """mu, sigma of the first `n` images (all when n is None or larger than the set),
    cached as `stats_dir()/fid_{key}_{n}.npz` (key = f"{fingerprint}_{size}_{split}",
    supplied by the caller). A cached file is loaded without touching the model."""
    total = len(images)
    n = total if n is None else min(int(n), total)
    path = _stats_path(key, n)
    if path.is_file():
        try:
            with np.load(path) as f:
                mu, sigma = f["mu"], f["sigma"]
            if mu.shape == (FID_DIMS,) and sigma.shape == (FID_DIMS, FID_DIMS):
                return mu, sigma
        except Exception:
            pass  # unreadable or foreign: recompute and overwrite
    if model is None:
        raise ValueError("real_statistics needs the Inception model (no cached statistics yet)")

    def batches():
        for b in range(0, n, batch_size):
            yield np.asarray(images[b : min(b + batch_size, n)])

    mu, sigma, _ = feature_statistics(batches(), model, device)
    ensure(path.parent)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma, n=np.int64(n), key=np.str_(key))
    os.replace(tmp, path)
    return mu, sigma


# expected whenever there are fewer images than features (n < 2048): the covariances are singular
_SINGULAR = r"Matrix is singular"


def _frechet(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid 0.3.0's `calculate_frechet_distance`, step for step (so the same values),
    without its `sqrtm(..., disp=False)` (gone in SciPy 1.18) and its print: when sqrtm gives
    non-finite values, 1e-6·I is added to both covariances; an imaginary part above 1e-3 on
    the diagonal raises ValueError."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID compares statistics of one size: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2),
    ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2·sqrtm(sigma1·sigma2)), computed as pytorch-fid
    computes it (`_frechet`). SciPy's warning that the product is singular (expected when
    n < 2048) is silenced; any other warning passes through. If sqrtm leaves an imaginary part
    too large (it happens with small, singular covariances), retry once with 1e-6·I added to
    both covariances, the offset pytorch-fid itself applies to non-finite results."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SINGULAR)
        try:
            return _frechet(mu1, sigma1, mu2, sigma2)
        except ValueError as e:
            if "Imaginary component" not in str(e):
                raise
            off = np.eye(np.atleast_2d(sigma1).shape[0]) * 1e-6
            return _frechet(mu1, sigma1 + off, mu2, sigma2 + off)


def fid(
    fake_batches: Iterable[Any],
    real_mu: np.ndarray,
    real_sigma: np.ndarray,
    model: nn.Module,
    device: str | torch.device = "cpu",
) -> float:
    """FID of a stream of uint8 fake batches against real statistics (features are reduced
    to running sums batch by batch)."""
    mu, sigma, _ = feature_statistics(fake_batches, model, device)
    return frechet_distance(mu, sigma, real_mu, real_sigma)
