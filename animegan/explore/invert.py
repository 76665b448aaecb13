"""Projection ("bring your own face"): the latent whose face is closest to a given image.

    face = load_face(open("face.png", "rb").read(), size=64)   # cropped and resized like the data
    inv = invert(G, face, D=D)                                  # D optional
    inv.z, inv.image, inv.mae

The image goes through the data pipeline's own decoding (`data.decode.decode_row`: validated,
converted to RGB, centre-cropped to a square, resized with Lanczos), so a face is seen exactly as
a training image would be.

The search, on the CPU in seconds:
1. candidates: `candidates` latents of a fixed stream are drawn and scored; the `restarts` best
   start the optimisation (several starts: a GAN's latent space has many poor local optima);
2. each start is optimised with Adam (cosine-decayed learning rate), all starts in one batch,
   on a loss that is not only pixels:
   - L1 on pixels,
   - L1 on each band of a Laplacian pyramid (edges and shapes at every scale count, not only
     the colour blobs that dominate a pixel loss),
   - where the discriminator is present, 1 − cosine similarity of its features
     (`anatomy.discriminator_features`): what the critic of this very data set looks at,
   - a small prior term keeping |z|² near z_dim, the shell where every training latent lay
     (faces far off it are not faces this generator learned);
3. the start with the lowest pixel error wins. `mae` is its mean absolute error on the 0–255
   scale, against the target as loaded.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data import to_float
from ..generate import _eval_mode, render
from ..images import to_pil, upscale
from .anatomy import discriminator_features, discriminator_trunk

LEVELS = 4             # Laplacian pyramid bands (64 px: 64, 32, 16, 8) + the 4 px low-pass
W_PIXEL, W_PYRAMID, W_FEATURES, W_PRIOR = 1.0, 1.0, 0.5, 0.01


@dataclass
class Inversion:
    z: torch.Tensor              # (z_dim,) float32: the latent found
    image: torch.Tensor          # uint8 (3, S, S): G(z)
    target: torch.Tensor         # uint8 (3, S, S): the face as loaded
    mae: float                   # mean absolute pixel error, 0–255
    seconds: float
    restarts: int
    steps: int
    used_discriminator: bool


def load_face(data: bytes, size: int, name: str = "upload") -> torch.Tensor:
    """An image file's bytes as the data pipeline would train on it: uint8 (3, size, size).
    Raises data.ImageRejected (a DataError) for files that are not usable images."""
    import numpy as np

    from ..data.decode import decode_row

    row, _ = decode_row(data, name, int(size))
    return torch.from_numpy(np.frombuffer(row, dtype=np.uint8).copy()).reshape(3, size, size)


def laplacian_pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """Band-pass images, finest first, then the low-pass residual (levels + 1 tensors)."""
    bands = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 2:
            break
        down = F.avg_pool2d(cur, 2)
        bands.append(cur - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        cur = down
    return bands + [cur]


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with n intra-op threads, then restore. A batch of a few 64 px images gains nothing
    from more threads, and on a shared 2-core CPU two threads waiting for each other made each
    step 5-10x slower (measured: 15 ms vs 70-100 ms per step)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loss(x: torch.Tensor, t: torch.Tensor, t_bands: list[torch.Tensor], z: torch.Tensor,
          feats: Callable[[torch.Tensor], torch.Tensor] | None, t_feats: torch.Tensor | None) -> torch.Tensor:
    """Per-sample loss (N,) of images x against the target t (1, 3, S, S)."""
    loss = W_PIXEL * (x - t).abs().mean(dim=(1, 2, 3))
    for b, tb in zip(laplacian_pyramid(x, len(t_bands) - 1), t_bands, strict=True):
        loss = loss + W_PYRAMID * (b - tb).abs().mean(dim=(1, 2, 3))
    if feats is not None and t_feats is not None:
        loss = loss + W_FEATURES * (1 - (feats(x) * t_feats).sum(dim=1))
    d = z.shape[1]
    return loss + W_PRIOR * ((z * z).sum(dim=1) / d - 1) ** 2


def invert(G: nn.Module, target: torch.Tensor, *, D: nn.Module | None = None, restarts: int = 4, steps: int = 250,
           candidates: int = 256, seed: int = 0, lr: float = 0.08, device: str | torch.device = "cpu",
           threads: int | None = 1, progress: Callable[[int, int], None] | None = None) -> Inversion:
    """The latent whose face is closest to `target` (uint8 (3, S, S) at G's size).
    `threads`: intra-op threads while it runs (None: leave torch's setting)."""
    with _threads(threads if str(device) == "cpu" else None):
        return _invert(G, target, D, restarts, steps, candidates, seed, lr, device, progress)


def _invert(G: nn.Module, target: torch.Tensor, D: nn.Module | None, restarts: int, steps: int, candidates: int,
            seed: int, lr: float, device: str | torch.device, progress: Callable[[int, int], None] | None) -> Inversion:
    S = int(G.img_size)
    if tuple(target.shape) != (3, S, S) or target.dtype != torch.uint8:
        raise ValueError(f"the target must be a uint8 (3, {S}, {S}) image (load_face(data, {S})), "
                         f"got {target.dtype} {tuple(target.shape)}")
    restarts, steps = max(1, int(restarts)), max(0, int(steps))
    t0 = time.perf_counter()
    t = to_float(target[None]).to(device)
    t_bands = laplacian_pyramid(t)
    with _eval_mode(G, D):
        trunk = discriminator_trunk(D).to(device) if D is not None else None
        feats = (lambda x: discriminator_features(D, x, trunk)) if trunk is not None else None
        with torch.no_grad():
            t_feats = feats(t) if feats is not None else None
            # 1. candidates from a fixed stream, scored in batches; the best ones start
            pool = torch.randn(max(candidates, restarts), int(G.z_dim), generator=torch.Generator().manual_seed(seed))
            scores = torch.cat([_loss(G(c.to(device)), t, t_bands, c.to(device), feats, t_feats).cpu()
                                for c in pool.split(64)])
            z = pool[torch.argsort(scores, stable=True)[:restarts]].to(device)
        # 2. optimise every start at once
        frozen = [(p, p.requires_grad) for m in (G, D) if m is not None for p in m.parameters()]
        for p, _ in frozen:
            p.requires_grad_(False)  # gradients for z only
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        try:
            for i in range(steps):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * i / steps))
                opt.zero_grad(set_to_none=True)
                _loss(G(z), t, t_bands, z, feats, t_feats).sum().backward()
                opt.step()
                if progress is not None:
                    progress(i + 1, steps)
        finally:
            for p, was in frozen:
                p.requires_grad_(was)
        z = z.detach()
    # 3. the start with the lowest pixel error on the 0–255 scale
    images = render(G, z, device=device)
    errs = (images.float() - target.float()[None]).abs().mean(dim=(1, 2, 3))
    best = int(torch.argmin(errs))
    return Inversion(z=z[best].float().cpu(), image=images[best], target=target.clone(), mae=float(errs[best]),
                     seconds=time.perf_counter() - t0, restarts=restarts, steps=steps,
                     used_discriminator=feats is not None)


def side_by_side(target: torch.Tensor, image: torch.Tensor, scale: int = 4, gap: int = 4) -> Image.Image:
    """The face as loaded (left) and its projection (right), enlarged."""
    a, b = upscale(to_pil(target), scale), upscale(to_pil(image), scale)
    out = Image.new("RGB", (a.width + b.width + gap, a.height), (0, 0, 0))
    out.paste(a, (0, 0))
    out.paste(b, (a.width + gap, 0))
    return out
