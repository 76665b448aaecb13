"""Image-quality metrics: FID (pytorch-fid's network and formula) and multi-scale SWD.

FID
    The network is pytorch-fid's own `InceptionV3` (the TF-FID variant, 2048-d pool3
    features) and the distance is pytorch-fid's `calculate_frechet_distance`; neither is
    reimplemented here. pytorch-fid fetches its weights from the internet on first use;
    this module never does unless asked (`allow_download=True`): it loads a local state dict
    (see `find_inception_weights`) and raises `InceptionWeightsMissing`, with one message
    saying what to download and where to put it, when there is none.
    Images go in as pytorch-fid expects (float in [0, 1], (N, 3, H, W)); the network
    resizes to 299×299 and rescales to [-1, 1] itself. Feature statistics are accumulated
    batch by batch (float64 running sums), so no image set is ever held whole in memory or
    written to disk. Note: with fewer than 2048 images the covariance is singular and the
    number is biased upwards; compare FIDs only at equal n.

SWD
    Multi-scale sliced Wasserstein distance (Karras et al. 2018, "Progressive growing of
    GANs", appendix D and their `sliced_wasserstein.py`), computed without any pretrained
    network, so it always works offline. See `swd` for the recipe and the two deliberate
    differences from the original code.

Results are `MetricResult`s, plain dataclasses with `to_dict()`/`from_dict()`.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .paths import ensure, stats_dir

# ----------------------------------------------------------------------------- results


@dataclass
class MetricResult:
    """One measurement. `value` is FID, or SWD ×1e3 averaged over pyramid levels; `levels`
    are SWD's per-level values ×1e3 from the finest (full resolution) to the coarsest."""

    metric: str
    value: float
    n: int
    reference: str
    seed: int
    levels: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MetricResult":
        return cls(**{k: d[k] for k in ("metric", "value", "n", "reference", "seed") if k in d},
                   levels=d.get("levels"))


FIDResult = MetricResult  # the same shape serves both metrics


def reference_label(source: str, fingerprint: str, size: int, split: str = "val") -> str:
    """`"val split of <source> (<fingerprint[:8]>) @64px"` — what a metric was measured against."""
    return f"{split} split of {source} ({fingerprint[:8]}) @{int(size)}px"


# ----------------------------------------------------------------------------- FID: weights

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
ENV_INCEPTION = "ANIMEGAN_INCEPTION_WEIGHTS"
FID_DIMS = 2048


class InceptionWeightsMissing(RuntimeError):
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


_PATCH_LOCK = threading.Lock()
_MODEL_CACHE: dict[tuple, nn.Module] = {}


def _build_inception(state_dict: dict[str, torch.Tensor] | None) -> nn.Module:
    """pytorch-fid's `InceptionV3([pool3], resize_input=True, normalize_input=True,
    use_fid_inception=True)`. pytorch-fid builds the FID network in `fid_inception_v3()`
    and fills it with `load_state_dict_from_url(FID_WEIGHTS_URL)`; with a local state dict we
    hand that one over instead of the download, so the structure, the strict key check and
    the forward pass are all pytorch-fid's. `None` lets pytorch-fid download (torch.hub cache).
    """
    import pytorch_fid.inception as pfi

    def build() -> nn.Module:
        return pfi.InceptionV3(
            [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]],
            resize_input=True,
            normalize_input=True,
            requires_grad=False,
            use_fid_inception=True,
        )

    if state_dict is None:
        return build()
    with _PATCH_LOCK, mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state_dict):
        return build()


def load_inception(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", allow_download: bool = False
) -> nn.Module:
    """The FID Inception network in eval mode on `device` (cached per file and device).

    Raises `InceptionWeightsMissing` (one message: file name, URL, where to put it) when the
    file is not found and `allow_download` is False or the download fails, and
    `InceptionWeightsInvalid` when the file is not a matching state dict.
    """
    found = find_inception_weights(path)
    if found is None:
        if not allow_download:
            raise InceptionWeightsMissing(missing_weights_message(path))
        try:
            model = _build_inception(None)  # pytorch-fid downloads into the torch hub cache
        except Exception as e:  # network errors come in many types
            raise InceptionWeightsMissing(missing_weights_message(path, f"{type(e).__name__}: {e}")) from None
        return model.to(device).eval()
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
        model = _build_inception(state)
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


def _as_tensor(images: Any) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        a = np.ascontiguousarray(images)
        images = torch.from_numpy(a if a.flags.writeable else a.copy())  # read-only memory maps: torch wants writable
    t = images
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {t.dtype}")
    if t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got {tuple(t.shape)}")
    return t


def inception_features(model: nn.Module, images: Any, device: str | torch.device = "cpu") -> np.ndarray:
    """pool3 features (N, 2048) float64 of one batch of uint8 images (N, 3, H, W)."""
    x = _as_tensor(images).to(device).float().div_(255.0)  # pytorch-fid's input: [0, 1]
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


_KNOWN_WARNINGS = (
    # pytorch-fid 0.3.0 passes `disp=False`, deprecated since SciPy 1.16 and removed in 1.18
    # (hence the pin scipy<1.18). Known and harmless until then.
    (DeprecationWarning, r"The `disp` argument is deprecated"),
    # expected whenever n < 2048: the covariance product is singular
    (Warning, r"Matrix is singular"),
)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's `calculate_frechet_distance`, with its two known, expected warnings
    silenced (see `_KNOWN_WARNINGS`; any other warning passes through). If its sqrtm leaves
    an imaginary part too large for pytorch-fid (it raises ValueError; happens with small,
    singular covariances), retry once with 1e-6·I added to both covariances — the same offset
    pytorch-fid itself applies when sqrtm returns non-finite values."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        for cat, msg in _KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=msg, category=cat)
        try:
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        except ValueError as e:
            if "Imaginary component" not in str(e):
                raise
            off = np.eye(np.atleast_2d(sigma1).shape[0]) * 1e-6
            return float(calculate_frechet_distance(mu1, sigma1 + off, mu2, sigma2 + off))


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


# ----------------------------------------------------------------------------- SWD

SWD_MIN_SIDE = 16
PATCH = 7
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # ⊗ itself = the 5×5 /256 kernel


def swd_level_sizes(size: int) -> list[int]:
    """Pyramid level sides used by SWD: halve (rounding up, as pyrDown) while side ≥ 16.
    64 → [64, 32, 16]; 96 → [96, 48, 24]; 128 → [128, 64, 32, 16]."""
    sizes = []
    s = int(size)
    while s >= SWD_MIN_SIDE:
        sizes.append(s)
        s = (s + 1) // 2
    return sizes


def _reflect(i: int, n: int) -> int:
    """Border reflect-101 (cv2's default, scipy.ndimage 'mirror'): … 2 1 | 0 1 2 … n-1 | n-2 …"""
    while i < 0 or i > n - 1:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


@lru_cache(maxsize=64)
def _down_matrix(n: int) -> torch.Tensor:
    """(ceil(n/2), n): 5-tap binomial filter along one axis, then keep even samples (pyrDown)."""
    w = _BINOMIAL.double().tolist()
    m = (n + 1) // 2
    a = torch.zeros(m, n, dtype=torch.float64)
    for i in range(m):
        for k in range(5):
            a[i, _reflect(2 * i + k - 2, n)] += w[k]
    return a.float()


@lru_cache(maxsize=64)
def _up_matrix(n: int, m: int) -> torch.Tensor:
    """(n, m): insert zeros between samples (length 2m), 5-tap filter ×2, crop to n (pyrUp)."""
    w = _BINOMIAL.double().tolist()
    a = torch.zeros(n, m, dtype=torch.float64)
    for j in range(n):
        for k in range(5):
            t = _reflect(j + k - 2, 2 * m)
            if t % 2 == 0:
                a[j, t // 2] += 2 * w[k]
    return a.float()


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown: 5×5 binomial blur (separable, as two small matrix products), keep
    every second row and column."""
    h, w = x.shape[-2:]
    return _down_matrix(h) @ (x @ _down_matrix(w).T)


def _pyr_up(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """cv2.pyrUp to `shape` (the finer level's size)."""
    h, w = x.shape[-2:]
    return _up_matrix(shape[0], h) @ (x @ _up_matrix(shape[1], w).T)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual as the last level."""
    pyr = [images.float()]
    for _ in range(1, levels):
        pyr.append(_pyr_down(pyr[-1]))
        pyr[-2] = pyr[-2] - _pyr_up(pyr[-1], pyr[-2].shape[2:])
    return pyr


def _patch_offsets(h: int, w: int) -> torch.Tensor:
    """Flat offsets (3·7·7,) of a 7×7×3 patch relative to its top-left corner in channel 0."""
    c = torch.arange(3).view(3, 1, 1) * (h * w)
    dy = torch.arange(PATCH).view(1, PATCH, 1) * w
    dx = torch.arange(PATCH).view(1, 1, PATCH)
    return (c + dy + dx).reshape(-1)


def _pyramids(images: torch.Tensor, n_levels: int, chunk: int = 250) -> list[torch.Tensor]:
    """Laplacian pyramids of a whole set (float32, level by level), built chunk by chunk."""
    out: list[torch.Tensor] = []
    for b in range(0, len(images), chunk):
        pyr = laplacian_pyramid(images[b : b + chunk], n_levels)
        if not out:
            out = [torch.empty((len(images), *lev.shape[1:]), dtype=torch.float32) for lev in pyr]
        for dst, lev in zip(out, pyr, strict=True):
            dst[b : b + len(lev)] = lev
    return out


def _descriptors(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """(N·P, 147) descriptors of one pyramid level (N, 3, h, w): P patches per image with
    top-left corners ys, xs (N, P)."""
    n, p = ys.shape
    _, _, h, w = level.shape
    flat = level.reshape(-1)
    offsets = _patch_offsets(h, w).view(1, -1)
    out = torch.empty(n * p, 3 * PATCH * PATCH, dtype=torch.float32)
    for b in range(0, n, chunk):
        e = min(b + chunk, n)
        base = (torch.arange(b, e).view(-1, 1) * (3 * h * w) + ys[b:e] * w + xs[b:e]).reshape(-1, 1)
        out[b * p : e * p] = flat[base + offsets]
    return out


def _sort_rows(a: np.ndarray, pool: ThreadPoolExecutor | None, threads: int) -> None:
    """In-place row sort (NumPy's SIMD sort is ~2-3× faster than torch.sort on CPU; it
    releases the GIL, so row blocks sort in parallel threads)."""
    if pool is None or len(a) < 2:
        a.sort(axis=1)
        return
    bounds = np.linspace(0, len(a), min(threads, len(a)) + 1).astype(int)
    list(pool.map(lambda lo_hi: a[lo_hi[0] : lo_hi[1]].sort(axis=1), zip(bounds[:-1], bounds[1:], strict=True)))


def _sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, gen: torch.Generator, n_proj: int, n_repeats: int,
    pool: ThreadPoolExecutor | None, threads: int = 1, dir_chunk: int = 64,
) -> float:
    """Mean over n_repeats·n_proj random unit directions of the mean |sorted(a·d) − sorted(b·d)|."""
    dim = a.shape[1]
    total = 0.0
    for _ in range(n_repeats):
        dirs = torch.randn(dim, n_proj, generator=gen)
        dirs /= dirs.norm(dim=0, keepdim=True)
        for c in range(0, n_proj, dir_chunk):
            d = dirs[:, c : c + dir_chunk]
            pa = (a @ d).T.contiguous().numpy()
            pb = (b @ d).T.contiguous().numpy()
            _sort_rows(pa, pool, threads)
            _sort_rows(pb, pool, threads)
            np.subtract(pa, pb, out=pa)
            np.abs(pa, out=pa)
            total += float(pa.sum(dtype=np.float64))
    return total / (n_repeats * n_proj * a.shape[0])


def swd(
    fake: Any,
    real: Any,
    *,
    seed: int = 0,
    patches_per_image: int = 128,
    n_proj: int = 128,
    n_repeats: int = 4,
    normalize: str = "pooled",
    reference: str = "",
    threads: int | None = None,
) -> MetricResult:
    """Multi-scale sliced Wasserstein distance between two equal-size uint8 sets (N, 3, S, S).

    Recipe (Karras et al. 2018): a Laplacian pyramid of every image (5×5 binomial filter,
    levels while the side is ≥ 16: 64 px → 64, 32, 16; 96 px → 96, 48, 24; the last level is
    the low-pass residual); from each level `patches_per_image` random 7×7 patches
    (147-d descriptors); descriptors standardised per colour channel; then per level the
    sliced Wasserstein distance over `n_repeats` × `n_proj` random unit directions
    (sort both sets' projections, average the absolute differences). Reported ×1e3 per
    level (finest first), `value` = their mean. All randomness comes from one
    `torch.Generator` seeded with `seed`; float32 on the CPU.

    Deliberate differences from the original code (numbers are not comparable with the
    paper's, only with each other):
      * `normalize="pooled"` (default) standardises each level with mean/std over real and
        fake descriptors together; the original standardises each set by its own statistics
        (`normalize="separate"`), which makes SWD blind to global per-channel colour shifts
        and contrast changes of the coarsest level.
      * patch positions are drawn once per (seed, image index) and shared by both sets
        (common random numbers): swd(x, x) is exactly 0 and run-to-run noise when comparing
        checkpoints is lower. The images of the two sets are unrelated, so this does not
        bias the estimate.
    Defaults match the original's budget (128 patches per image, 4 × 128 directions).
    Cost is dominated by sorting N·patches values per direction, linear in each parameter.
    """
    fake_t, real_t = _as_tensor(fake), _as_tensor(real)
    if fake_t.shape[1:] != real_t.shape[1:]:
        raise ValueError(f"SWD needs images of the same shape: fake {tuple(fake_t.shape[1:])}, real {tuple(real_t.shape[1:])}")
    if len(fake_t) != len(real_t):
        raise ValueError(f"SWD compares equal-size sets: {len(fake_t)} fake vs {len(real_t)} real")
    if normalize not in ("pooled", "separate"):
        raise ValueError("normalize must be 'pooled' or 'separate'")
    n, _, h, w = fake_t.shape
    if n < 1:
        raise ValueError("SWD needs at least one image per set")
    sizes = swd_level_sizes(min(h, w))
    if not sizes:
        raise ValueError(f"SWD needs images of at least {SWD_MIN_SIDE}px, got {h}×{w}")
    gen = torch.Generator().manual_seed(int(seed))
    threads = threads or min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    levels: list[float] = []
    try:
        pyr_real = _pyramids(real_t, len(sizes))
        pyr_fake = _pyramids(fake_t, len(sizes))
        for lv in range(len(sizes)):
            lh, lw = pyr_real[lv].shape[2:]
            ys = torch.randint(0, lh - PATCH + 1, (n, patches_per_image), generator=gen)
            xs = torch.randint(0, lw - PATCH + 1, (n, patches_per_image), generator=gen)
            a = _descriptors(pyr_real[lv], ys, xs)
            b = _descriptors(pyr_fake[lv], ys, xs)
            _standardise(a, b, normalize)
            levels.append(1e3 * _sliced_wasserstein(a, b, gen, n_proj, n_repeats, pool, threads))
            del a, b
    finally:
        if pool is not None:
            pool.shutdown()
    return MetricResult(
        metric="swd", value=float(np.mean(levels)), n=int(n), reference=reference, seed=int(seed), levels=levels
    )


def _standardise(a: torch.Tensor, b: torch.Tensor, normalize: str) -> None:
    """In place, per colour channel over patches and pixels (std as np.std, ddof=0)."""
    def stats(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # per-channel sums in float64 (exact enough for ~10^8 values), one pass
        s1 = sum(x.view(x.shape[0], 3, -1).sum(dim=(0, 2), dtype=torch.float64) for x in xs)
        s2 = sum((x.view(x.shape[0], 3, -1).double() ** 2).sum(dim=(0, 2)) for x in xs)
        cnt = sum(x.shape[0] * (x.shape[1] // 3) for x in xs)
        mean = s1 / cnt
        std = (s2 / cnt - mean**2).clamp_min(0).sqrt()
        return mean.float().view(1, 3, 1), std.clamp_min(1e-8).float().view(1, 3, 1)

    if normalize == "pooled":
        m, s = stats(a, b)
        for x in (a, b):
            x.view(x.shape[0], 3, -1).sub_(m).div_(s)
    else:
        for x in (a, b):
            m, s = stats(x)
            x.view(x.shape[0], 3, -1).sub_(m).div_(s)


# ----------------------------------------------------------------------------- evaluate

METRICS = ("swd", "fid")


def evaluate(
    G: nn.Module,
    real_images: np.ndarray,
    *,
    metric: str,
    n: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    reference: str,
    stats_key: str | None = None,
    inception_weights: str | os.PathLike | None = None,
    truncation: float = 1.0,
    batch_size: int = 100,
) -> MetricResult:
    """Measure G against `real_images` (uint8 N×3×S×S, e.g. `data.split_images("val")`).

    Generated images are images 0..n-1 of `seed` (`generate.image_batches`), so they can be
    looked at. The real side is the first n real images (n is capped at the real set's size).
    "fid": raises `InceptionWeightsMissing` (and only that) when the weights are absent;
    `stats_key` caches the real statistics (`real_statistics`).
    "swd": needs G.img_size == the real images' size.
    """
    from .generate import image_batches

    metric = metric.lower()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n = min(int(n), len(real_images))
    if n < 2:
        raise ValueError(f"need at least 2 images to evaluate, got n={n}")
    if metric == "fid":
        model = load_inception(inception_weights, device)  # raise before generating anything
        if stats_key:
            mu, sigma = real_statistics(real_images, key=stats_key, n=n, model=model, device=device, batch_size=batch_size)
        else:
            mu, sigma, _ = feature_statistics(
                (np.asarray(real_images[b : min(b + batch_size, n)]) for b in range(0, n, batch_size)), model, device
            )
        fakes = image_batches(G, n, seed, batch_size=batch_size, device=device, truncation=truncation)
        value = fid(fakes, mu, sigma, model, device)
        return MetricResult(metric="fid", value=float(value), n=n, reference=reference, seed=int(seed))
    size = int(real_images.shape[-1])
    g_size = int(getattr(G, "img_size", size))
    if g_size != size:
        raise ValueError(f"SWD compares images of one size: generator draws {g_size}px, real images are {size}px")
    fake = torch.cat(list(image_batches(G, n, seed, batch_size=max(batch_size, 250), device=device, truncation=truncation)))
    real = torch.from_numpy(np.ascontiguousarray(real_images[:n]))
    return swd(fake, real, seed=seed, reference=reference)


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys and shapes of pt_inception-2015-12-05-6726825d.pth and
    random values, built the way pytorch_fid.inception.fid_inception_v3 builds the network.
    For tests and benchmarks where the real weights cannot be had: same network, same compute,
    meaningless FID values."""
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
    sd = net.state_dict()
    g = torch.Generator().manual_seed(seed)
    for k, v in sd.items():  # He-scaled convs, BN near identity: activations stay O(1)
        if not v.dtype.is_floating_point:
            continue
        if k.endswith("conv.weight"):
            v.copy_(torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5)
        elif k.endswith(("bn.weight", "running_var")):
            v.copy_(1 + 0.1 * torch.rand(v.shape, generator=g))
        else:
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
    return sd
