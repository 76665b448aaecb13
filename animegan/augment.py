"""Augmentation on whole batches, on the training device.

Two kinds, for two purposes:
- `ClassicAugment`: the classic write-ups' data augmentation of real images (random horizontal flip,
  brightness jitter), each with a probability and a strength. It changes what G learns to draw,
  so it stays mild; samples and FID's real images are never augmented.
- `diff_augment`: DiffAugment (Zhao et al., 2020), differentiable, applied to BOTH real and fake
  images right before D, so D cannot overfit to the training set and G is not taught the
  augmentation.
All randomness comes from an explicit torch.Generator, so a (seed, step) reproduces it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import DIFFAUG_OPS, parse_policy  # noqa: F401  (re-exported: the pages list the ops from here)


@dataclass(frozen=True)
class ClassicAugment:
    flip: float = 0.0                 # probability of a horizontal flip
    brightness: float = 0.0           # probability of a brightness change
    brightness_strength: float = 0.2  # factor drawn uniformly from [1-s, 1+s]

    @property
    def active(self) -> bool:
        return self.flip > 0 or (self.brightness > 0 and self.brightness_strength > 0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x: float images in [-1, 1], (N, 3, H, W), on any device."""
        if not self.active:
            return x
        n, dev = x.shape[0], x.device
        flip = torch.rand(n, device=dev, generator=generator) < self.flip
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        use = torch.rand(n, device=dev, generator=generator) < self.brightness
        f = 1 + (torch.rand(n, device=dev, generator=generator) * 2 - 1) * self.brightness_strength
        f = torch.where(use, f, torch.ones_like(f)).view(n, 1, 1, 1).to(x.dtype)
        # Brightness scales intensity in [0, 1] space, as torchvision's ColorJitter does.
        return (((x + 1) * 0.5 * f).clamp(0, 1) * 2 - 1)


def preview(images: np.ndarray | torch.Tensor, aug: ClassicAugment, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Originals and their augmented versions (both uint8, N×3×H×W) for the dashboard."""
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    g = torch.Generator().manual_seed(seed)
    y = aug(x.float() / 127.5 - 1, g)
    return x.to(torch.uint8), ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# -- DiffAugment ------------------------------------------------------------------------------

def _color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    x = x + (torch.rand(n, 1, 1, 1, device=dev, generator=g, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=dev, generator=g, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=dev, generator=g, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio·size pixels, zero-padded, via one gather."""
    n, _, h, w = x.shape
    dev = x.device
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), device=dev, generator=g)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), device=dev, generator=g)
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    gy = (gy.unsqueeze(0) + tx + 1).clamp(0, h + 1)
    gx = (gx.unsqueeze(0) + ty + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def _cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    dev = x.device
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=dev, generator=g)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=dev, generator=g)
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    keep = ((gy.unsqueeze(0) - oy + ch // 2).abs() >= (ch + 1) // 2) | ((gx.unsqueeze(0) - ox + cw // 2).abs() >= (cw + 1) // 2)
    return x * keep.unsqueeze(1).to(x.dtype)


# The ops by name; their names, and the parsing of a policy, are config's (DIFFAUG_OPS, parse_policy).
_OP_FUNCTIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator, p: torch.Tensor | float | None = None) -> torch.Tensor:
    """The policy's ops in order, on every image; with `p` (adaptive augmentation, a 0-dim tensor
    or a float in [0, 1]) each op is kept for an image with probability p, drawn per image and op
    from `generator` (p = None draws exactly what DiffAugment always did)."""
    for op in parse_policy(policy):
        y = _OP_FUNCTIONS[op](x, generator)
        if p is None:
            x = y
        else:
            keep = torch.rand(x.shape[0], device=x.device, generator=generator) < p
            x = torch.where(keep.view(-1, 1, 1, 1), y, x)
    return x


def ada_adjust(p: torch.Tensor, real_sign: torch.Tensor, target: float, images: int, kimg: float) -> torch.Tensor:
    """ADA's update of the augmentation probability, in place on the device (no wait for it):
    p += sign(r_t − target) · images / (kimg·1000), kept in [0, 1], where r_t = E[sign D(x_real)]
    over this step's reals. r_t near 1: D calls every real image real (it has learnt them by heart)."""
    return p.add_(torch.sign(real_sign - target) * (images / (kimg * 1000))).clamp_(0.0, 1.0)
