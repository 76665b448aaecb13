"""Seeds → faces, reproducibly.

Every image is addressed by `(seed, index)`. Its latent is drawn from its own
`torch.Generator` seeded with `mix(seed, index)`, so image 7 of a 64-image grid is the same
image as `generate(G, seed, 1, start=7)`, and a grid can be extended or paged without
changing the images already shown.

    mix(seed, index) = (seed * 1_000_003 + index) mod 2**63

(a fixed integer formula: no Python `hash()`, no process-dependent state). Latents are always
drawn on the CPU in float32 and then moved to the device, so the latents are identical on
every machine; the images are bitwise identical across calls for the same G, seed and device.
(Floating-point kernels may round differently for different batch compositions on some
devices; on the CPU the tests check image i of a grid against a batch of one.)

Truncation trick ("more typical faces"): a face is pulled toward the average face by
psi in (0, 1]; psi = 1 switches it off and is exactly G(z). For generators of known layout
(`models.split_generator`: the DCGAN and linear generators) the pull happens after the first
block (z → 4×4 features, BatchNorm, ReLU), toward the mean of those features over
N(0, I) latents: h' = mean + psi · (h(z) − mean), then the rest of G. This is the analogue of
StyleGAN's truncation toward the mean w. (Scaling z itself toward 0, the mean latent, pulls
every face toward G(0), which for these BatchNorm generators is not the average face but a flat
purple or mint field: z = 0 lies far inside the shell |z| ≈ √z_dim where every training latent
lay, so psi = 0.5 looked washed out. The mean first-block features draw the average face.) For
other generators z is scaled. Both keep image i's "direction", so a truncation slider morphs the
same faces.

Images leave this module as uint8 tensors (N, 3, S, S) on the CPU; images.py encodes them
(grids, PNGs, zips, GIFs).
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .data import to_uint8
from .images import png_bytes, to_grid, upscale
from .models import split_generator

MIX_MULTIPLIER = 1_000_003
MIX_MODULUS = 2**63
MAX_SEED = 2**31 - 1          # the largest seed a page offers (any int works here)
# What a page lets a person ask for in one grid: (smallest, largest) of each number.
LIMITS: dict[str, tuple[int, int]] = {"Seed": (0, MAX_SEED), "Number of faces": (1, 256), "Columns": (1, 32),
                                      "Seed B": (0, MAX_SEED), "Index B": (0, 10**6), "Steps": (2, 64)}
# The truncation preview: psi from off (1) to the average face (0), evenly spaced, so each step
# moves the face by about as much as the one before and the last tile is where the others head.
PSI_STRIP = (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.0)


def out_of_range(name: str, value: float) -> str | None:
    """A message naming the field, the value given and the range (None: within LIMITS[name])."""
    lo, hi = LIMITS[name]
    if lo <= value <= hi and float(value).is_integer():
        return None
    return f"{name}: {value:g} is out of range. Use a whole number from {lo:,} to {hi:,}."


def mix(seed: int, index: int) -> int:
    """The per-image generator seed: `(seed * 1_000_003 + index) mod 2**63`."""
    return (int(seed) * MIX_MULTIPLIER + int(index)) % MIX_MODULUS


def _check_truncation(truncation: float) -> float:
    psi = float(truncation)
    if not (0.0 < psi <= 1.0) or math.isnan(psi):
        raise ValueError(f"truncation psi must be in (0, 1] (1 = off), got {truncation}")
    return psi


def latents(seed: int, indices: Sequence[int] | range, z_dim: int) -> torch.Tensor:
    """Latents for images `indices` of `seed`: float32 (len(indices), z_dim) on the CPU.

    Row k is `randn(z_dim, generator=Generator().manual_seed(mix(seed, indices[k])))`.
    (Truncation is applied when drawing, in `render`, not here.)
    """
    idx = list(indices)
    out = torch.empty(len(idx), int(z_dim), dtype=torch.float32)
    g = torch.Generator(device="cpu")
    for row, i in enumerate(idx):
        g.manual_seed(mix(seed, i))
        out[row] = torch.randn(int(z_dim), generator=g, dtype=torch.float32)
    return out


# The average first-block features the truncation pulls toward: their mean over this many
# latents of a fixed stream (computed once per generator and weights version, ~0.1 s).
TRUNCATION_SAMPLES = 4096
TRUNCATION_SEED = 20_240_519
_CENTRES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_version(G: nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in (*G.parameters(), *G.buffers()))


def truncation_centre(G: nn.Module, device: str | torch.device = "cpu") -> torch.Tensor | None:
    """The mean first-block features (1, C, 4, 4) over N(0, I) latents, on `device`: what
    truncation pulls toward. None for a generator of unknown layout (truncation scales z)."""
    split = split_generator(G)
    if split is None:
        return None
    key = (str(device), _weights_version(G))
    hit = _CENTRES.get(G)
    if hit is not None and hit[0] == key:
        return hit[1]
    z = torch.randn(TRUNCATION_SAMPLES, int(G.z_dim), generator=torch.Generator().manual_seed(TRUNCATION_SEED))
    # not an inference tensor, so it can join later computations that record gradients
    with torch.inference_mode(False), torch.no_grad(), _eval_mode(G):
        centre = torch.cat([split.head(c.to(device)) for c in z.split(1024)]).double().mean(0, keepdim=True)
    centre = centre.float()
    _CENTRES[G] = (key, centre)
    return centre


@contextmanager
def _eval_mode(*modules: nn.Module | None):
    """Put modules in eval mode and restore their previous mode afterwards (so the trainer
    can draw previews from the model it is training)."""
    mods = [m for m in modules if m is not None]
    was = [m.training for m in mods]
    try:
        for m in mods:
            m.eval()
        yield
    finally:
        for m, w in zip(mods, was, strict=True):
            m.train(w)


def _run(G: nn.Module, z: torch.Tensor, device: str | torch.device, psi: float = 1.0) -> torch.Tensor:
    """G(z) as float on `device`, truncated by psi (caller holds eval mode). psi = 1 is exactly G(z)."""
    z = z.to(device)
    if psi == 1.0:
        return G(z)
    centre = truncation_centre(G, device)
    if centre is None:
        return G(z * psi)
    split = split_generator(G)
    h = split.head(z)
    return split.tail(centre + psi * (h - centre))


def average_face(G: nn.Module, device: str | torch.device = "cpu") -> torch.Tensor:
    """What truncation pulls every face toward (psi → 0): uint8 (3, S, S). The rest of G applied
    to the mean first-block features (G(0) for a generator of unknown layout)."""
    centre = truncation_centre(G, device)
    with _eval_mode(G), torch.inference_mode():
        x = G(torch.zeros(1, int(G.z_dim), device=device)) if centre is None else split_generator(G).tail(centre)
    return to_uint8(x).cpu()[0]


def truncation_strip(G: nn.Module, z: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """One latent (z_dim,) drawn at each psi of PSI_STRIP: uint8 (len(PSI_STRIP), 3, S, S); psi 0
    is `average_face`, the limit the other tiles approach."""
    return torch.stack([average_face(G, device) if q == 0 else render(G, z[None], truncation=q, device=device)[0]
                        for q in PSI_STRIP])


def render(G: nn.Module, z: torch.Tensor, *, truncation: float = 1.0, device: str | torch.device = "cpu",
           batch_size: int = 256) -> torch.Tensor:
    """Faces of given latents z (N, z_dim): uint8 (N, 3, S, S) on the CPU, truncated by psi.
    G must already be on `device`; it runs in eval mode and gets its mode back."""
    psi = _check_truncation(truncation)
    out: list[torch.Tensor] = []
    with _eval_mode(G), torch.inference_mode():
        for b in range(0, len(z), batch_size):
            out.append(to_uint8(_run(G, z[b : b + batch_size], device, psi)).cpu())
    S = int(getattr(G, "img_size", 0))
    return torch.cat(out) if out else torch.empty(0, 3, S, S, dtype=torch.uint8)


@dataclass
class GenerateResult:
    """Images (uint8 (n, 3, S, S), CPU) and the grid indices they came from, in index order."""

    images: torch.Tensor
    indices: list[int]
    seed: int
    truncation: float = 1.0
    scores: list[float] | None = field(default=None)  # discriminator scores when reranked

    def __len__(self) -> int:
        return len(self.indices)


def generate(
    G: nn.Module,
    seed: int,
    n: int,
    *,
    truncation: float = 1.0,
    start: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    D: nn.Module | None = None,
    rerank: int = 1,
    shift: torch.Tensor | None = None,
) -> GenerateResult:
    """Images `start .. start+n-1` of `seed`.

    With `D` and `rerank=k > 1`: draws images `start .. start+k*n-1`, scores them with D
    (on G's float output, which is what D saw in training), keeps the n highest scores (ties
    broken by lower index) and returns them in index order; `.indices` says which they are,
    `.scores` their scores, so each kept image can be redrawn alone from (seed, index).

    G (and D) must already be on `device`; both run in eval mode under inference_mode and
    get their previous train/eval mode back. Images come back as uint8 on the CPU.

    `shift` (z_dim,) is added to every latent before drawing: an edit along latent directions
    (`directions.shift`); None draws the faces as they are.
    """
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    if start < 0:
        raise ValueError("start must be >= 0")
    rerank = int(rerank)
    if rerank < 1:
        raise ValueError("rerank must be >= 1")
    psi = _check_truncation(truncation)
    do_rank = D is not None and rerank > 1
    total = n * rerank if do_rank else n
    all_idx = list(range(start, start + total))
    S = int(getattr(G, "img_size", 0))
    images: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    with _eval_mode(G, D if do_rank else None), torch.inference_mode():
        for b in range(0, total, batch_size):
            idx = all_idx[b : b + batch_size]
            z = latents(seed, idx, G.z_dim)
            x = _run(G, z if shift is None else z + shift.to(z), device, psi)
            if do_rank:
                scores.append(D(x).reshape(-1).float().cpu())
            images.append(to_uint8(x).cpu())
    if images:
        imgs = torch.cat(images)
    else:
        imgs = torch.empty(0, 3, S, S, dtype=torch.uint8)
    if not do_rank:
        return GenerateResult(images=imgs, indices=all_idx, seed=int(seed), truncation=psi)
    sc = torch.cat(scores)
    # stable descending sort: equal scores keep the lower index first
    order = torch.sort(-sc, stable=True).indices[:n]
    keep = torch.sort(order).values
    return GenerateResult(
        images=imgs[keep],
        indices=[all_idx[k] for k in keep.tolist()],
        seed=int(seed),
        truncation=psi,
        scores=sc[keep].tolist(),
    )


def image_batches(
    G: nn.Module,
    n: int,
    seed: int,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    truncation: float = 1.0,
) -> Iterator[torch.Tensor]:
    """Stream images 0..n-1 of `seed` as uint8 CPU batches (for metrics; writes nothing).

    The same (seed, index) addressing as `generate`, so the metric's images can be looked at.
    """
    psi = _check_truncation(truncation)
    for b in range(0, int(n), batch_size):
        idx = range(b, min(b + batch_size, int(n)))
        with _eval_mode(G), torch.inference_mode():
            x = _run(G, latents(seed, idx, G.z_dim), device, psi)
            out = to_uint8(x).cpu()
        yield out


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unnormalised vectors (White 2016), in float64."""
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64 / a64.norm(), b64 / b64.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    t = t.double()[:, None]
    if so.abs() < 1e-8:  # (anti)parallel: fall back to the straight line
        return (1 - t) * a64 + t * b64
    return (torch.sin((1 - t) * omega) / so) * a64 + (torch.sin(t * omega) / so) * b64


def interpolation_latents(
    z_a: torch.Tensor, z_b: torch.Tensor, steps: int, mode: str = "slerp"
) -> torch.Tensor:
    """`steps` latents from z_a to z_b (both endpoints included, exactly)."""
    steps = int(steps)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if steps == 1:
        return z_a[None].clone()
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    if mode == "slerp":
        z = _slerp(z_a, z_b, t)
    elif mode == "lerp":
        z = (1 - t)[:, None] * z_a.double() + t[:, None] * z_b.double()
    else:
        raise ValueError(f"mode must be 'slerp' or 'lerp', got {mode!r}")
    z = z.float()
    z[0], z[-1] = z_a, z_b  # endpoints bit-exact, so they are the grid's images
    return z


def interpolate(
    G: nn.Module,
    seed_a: int,
    seed_b: int,
    steps: int,
    *,
    index_a: int = 0,
    index_b: int = 0,
    device: str | torch.device = "cpu",
    mode: str = "slerp",
    truncation: float = 1.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Frames (steps, 3, S, S) uint8 from image (seed_a, index_a) to image (seed_b, index_b).

    `mode`: "slerp" (default; stays on the shell where Gaussian latents live) or "lerp".
    Every frame is truncated by the same psi, so the end frames are the grid's faces at that psi.
    """
    z_a = latents(seed_a, [index_a], G.z_dim)[0]
    z_b = latents(seed_b, [index_b], G.z_dim)[0]
    return render(G, interpolation_latents(z_a, z_b, steps, mode), truncation=truncation, device=device,
                  batch_size=batch_size)


def grid_png(G: nn.Module, seed: int, n: int, cols: int = 8, *, scale: int = 1, padding: int = 2,
             truncation: float = 1.0, device: str | torch.device = "cpu") -> bytes:
    """Images 0..n-1 of `seed` as one PNG grid, `cols` per row, enlarged `scale` times."""
    res = generate(G, seed, n, truncation=truncation, device=device)
    return png_bytes(upscale(to_grid(res.images, cols=cols, padding=padding), scale))
