"""GAN losses on raw discriminator scores: BCE (non-saturating, one-sided label smoothing),
WGAN-GP, hinge and the relativistic pairing loss (RpGAN); gradient penalty, R1 and R2."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .config import LOSSES


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """Discriminator loss (without the gradient penalty, see `gradient_penalty`)."""
    if kind == "bce":
        # One-sided smoothing: only the real target moves (0.9 / 0.8), as in the classic write-ups.
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "rpgan":  # each real paired with a fake: softplus(-(D(x_i) - D(G(z_i))))
        return F.softplus(fake - real).mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of: {', '.join(LOSSES)}")


def g_loss_needs_real(kind: str) -> bool:
    """Does the generator's loss also read D's scores of real images (the relativistic one does)?"""
    return kind == "rpgan"


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """Generator loss; `real` (D's scores of real images, paired with `fake`) only where
    `g_loss_needs_real(kind)`: G's gradient flows through `fake`."""
    if kind == "rpgan":  # softplus(-(D(G(z_i)) - D(x_i)))
        if real is None:
            raise ValueError("the rpgan generator loss needs D's scores of real images too")
        return F.softplus(real - fake).mean()
    if kind == "bce":  # non-saturating: maximise log D(G(z))
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind in ("wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of: {', '.join(LOSSES)}")


def gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al.: E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂ of real and fake.

    Only input gradients are taken here, so it also works when D's parameter gradients are
    all-reduced across processes afterwards (the trainer's data-parallel mode).
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    score = D(x)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. (2018): E[‖∇ₓD(x)‖²] on real images (zero-centred, no interpolates)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def r2_penalty(D: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
    """R2 (Huang et al., 2024, R3GAN): the same zero-centred E[‖∇ₓD(x)‖²] on fake images, detached from G."""
    return r1_penalty(D, fake)
