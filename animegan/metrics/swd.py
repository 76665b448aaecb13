"""Multi-scale sliced Wasserstein distance (Karras et al. 2018, "Progressive growing of GANs",
appendix D and their `sliced_wasserstein.py`): `swd` checks its inputs, runs the algorithm
(`swd_levels`) and wraps the numbers in a `MetricResult`. No pretrained network: it always works
offline.

Recipe: a Laplacian pyramid of every image (5×5 binomial filter, levels while the side is ≥ 16:
64 px → 64, 32, 16; 96 px → 96, 48, 24; the last level is the low-pass residual); from each
level `patches_per_image` random 7×7 patches (147-d descriptors); descriptors standardised per
colour channel; then per level the sliced Wasserstein distance over `n_repeats` × `n_proj`
random unit directions (sort both sets' projections, average the absolute differences).
Reported ×1e3 per level (finest first). All randomness comes from one `torch.Generator` seeded
with `seed`; float32 on the CPU.

Deliberate differences from the original code (numbers are not comparable with the paper's,
only with each other):
  * `normalize="pooled"` (default) standardises each level with mean/std over real and fake
    descriptors together; the original standardises each set by its own statistics
    (`normalize="separate"`), which makes SWD blind to global per-channel colour shifts and
    contrast changes of the coarsest level.
  * patch positions are drawn once per (seed, image index) and shared by both sets (common
    random numbers): swd(x, x) is exactly 0 and run-to-run noise when comparing checkpoints is
    lower. The images of the two sets are unrelated, so this does not bias the estimate.
Defaults match the original's budget (128 patches per image, 4 × 128 directions). Cost is
dominated by sorting N·patches values per direction, linear in each parameter.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..images import uint8_batch
from .result import MetricResult

NORMALIZE = ("pooled", "separate")

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


def swd_levels(
    fake: torch.Tensor, real: torch.Tensor, *, seed: int = 0, patches_per_image: int = 128, n_proj: int = 128,
    n_repeats: int = 4, normalize: str = "pooled", threads: int | None = None,
) -> list[float]:
    """SWD ×1e3 per pyramid level (finest first) between two uint8 sets of one shape
    (N, 3, S, S), S ≥ 16 (`swd` checks the inputs)."""
    n, _, h, w = fake.shape
    sizes = swd_level_sizes(min(h, w))
    gen = torch.Generator().manual_seed(int(seed))
    threads = threads or min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    levels: list[float] = []
    try:
        pyr_real = _pyramids(real, len(sizes))
        pyr_fake = _pyramids(fake, len(sizes))
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
    return levels


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
    """Multi-scale sliced Wasserstein distance between two equal-size uint8 sets (N, 3, S, S):
    `levels` ×1e3 per pyramid level (finest first), `value` their mean. The recipe, and its
    two deliberate differences from Karras et al.'s code: this module's docstring."""
    fake_t, real_t = uint8_batch(fake), uint8_batch(real)
    if fake_t.shape[1:] != real_t.shape[1:]:
        raise ValueError(f"SWD needs images of the same shape: fake {tuple(fake_t.shape[1:])}, real {tuple(real_t.shape[1:])}")
    if len(fake_t) != len(real_t):
        raise ValueError(f"SWD compares equal-size sets: {len(fake_t)} fake vs {len(real_t)} real")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of: {', '.join(NORMALIZE)}")
    n, _, h, w = fake_t.shape
    if n < 1:
        raise ValueError("SWD needs at least one image per set")
    if not swd_level_sizes(min(h, w)):
        raise ValueError(f"SWD needs images of at least {SWD_MIN_SIDE}px, got {h}×{w}")
    levels = swd_levels(fake_t, real_t, seed=seed, patches_per_image=patches_per_image, n_proj=n_proj,
                        n_repeats=n_repeats, normalize=normalize, threads=threads)
    return MetricResult(
        metric="swd", value=float(np.mean(levels)), n=int(n), reference=reference, seed=int(seed), levels=levels
    )
