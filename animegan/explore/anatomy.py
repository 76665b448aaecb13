"""Where the exploration tools cut the networks open.

- `first_linear(G)`: the first layer after z as a matrix A (out, z_dim), so that the layer
  computes A·z (+ bias). For the DCGAN generator that is the first ConvTranspose2d (z → 4×4):
  its weight (z_dim, C, 4, 4) reshaped to (z_dim, C·16) and transposed; for the linear
  generator the Linear's weight. SeFa reads its directions from AᵀA.
- `models.split_generator(G)` (in models.py, as generate.py's truncation needs it too): G as
  `tail(head(z))`, where `head` is the first block: the early activations GANSpace takes its PCA of.
- `discriminator_features(D, x)`: what D sees of an image before it scores it, one vector per
  image: the last feature map of its convolutional trunk, before the minibatch-stddev feature
  (which mixes images of a batch) and before the head, flattened and L2-normalised. Inversion
  compares these and the memorisation check searches in them.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import MinibatchStd


def first_linear(G: nn.Module) -> torch.Tensor:
    """A (out, z_dim), float64, CPU: the first layer that reads z, as a matrix."""
    z_dim = int(G.z_dim)
    for m in G.modules():
        if isinstance(m, nn.ConvTranspose2d) and m.in_channels == z_dim:
            return m.weight.detach().double().cpu().reshape(z_dim, -1).T
        if isinstance(m, nn.Linear) and m.in_features == z_dim:
            return m.weight.detach().double().cpu()
    raise ValueError(f"{type(G).__name__} has no first layer that reads z (a Linear or ConvTranspose2d "
                     f"with {z_dim} inputs)")


def discriminator_trunk(D: nn.Module) -> nn.Module:
    """D's convolutional trunk up to (not including) a minibatch-stddev layer."""
    feats = getattr(D, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError(f"{type(D).__name__} has no `features` trunk to read")
    layers = []
    for m in feats:
        if isinstance(m, MinibatchStd):
            break
        layers.append(m)
    return nn.Sequential(*layers)


def discriminator_features(D: nn.Module, x: torch.Tensor, trunk: nn.Module | None = None, pool: int = 1) -> torch.Tensor:
    """(N, F) unit vectors: D's last feature map for images x (float in [-1, 1]), average-pooled
    by `pool` (1: as is), flattened. D must be in eval mode (BatchNorm running statistics), so
    each image's vector is its own."""
    f = (trunk if trunk is not None else discriminator_trunk(D))(x)
    if pool > 1:
        f = torch.nn.functional.avg_pool2d(f, pool)
    f = f.flatten(1)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)
