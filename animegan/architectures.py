"""The networks' facts that need no torch: which models there are, which image sizes each draws, and
how many blocks its discriminator has (what `freeze_d` counts).

`models.py` builds the networks from these facts, and `config.validate` checks settings with them,
so that checking settings (every Start on the Train page, every job start) never imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The two ways a network is laid out: "conv", DCGAN's strided 4×4 convolutions between a 4×4 map and
# the image (sizes 4·2^k: 16, 32, 64, 128...); "resnet", a residual block per resolution between a
# 4×4 or 6×6 map and the image (sizes 4·2^k or 6·2^k: 16, 24, 32, 48, 64, 96, 128...).
CONV, RESNET = "conv", "resnet"
# When a conv network uses its 96 px variant (one 5×5 stride-3 layer between 32 and 96 px, as the
# classic write-ups' dcgan96 did): at 96 px only, never (96 px is then not drawn), or always (the
# model draws 96 px alone).
AT_96, NEVER, ONLY = "at 96 px", "never", "only"


@dataclass(frozen=True)
class Architecture:
    description: str
    layout: str = CONV
    variant96: str = AT_96           # conv layout only


ARCHITECTURES: dict[str, Architecture] = {
    "gan-linear": Architecture("plain GAN (classic thesis): linear + 5×5 transposed convs; conv D with a linear score",
                               variant96=NEVER),
    "dcgan": Architecture("DCGAN (Radford et al.) at 64×64", variant96=NEVER),
    "dcgan96": Architecture("DCGAN, 96×96 variant (last layer kernel 5 stride 3)", variant96=ONLY),
    "wgan-gp": Architecture("DCGAN generator + WGAN-GP critic (InstanceNorm, no BatchNorm, no sigmoid)"),
    "anime64": Architecture("the project's recipe: DCGAN generator, BatchNorm D with a minibatch-stddev feature"),
    "anime64-sn": Architecture("DCGAN generator, spectral-norm D (SNGAN) with a minibatch-stddev feature"),
    "anime64-sle": Architecture("anime64 with skip-layer excitation in G (FastGAN): low-resolution maps gate "
                                "high-resolution channels"),
    "resnet": Architecture("residual G and D without normalisation layers (R3GAN): bilinear up, average-pool down, "
                           "minibatch-stddev", layout=RESNET),
}


def doublings(img_size: int) -> int:
    """k in img_size = 4·2^k (the conv layout's sizes); ValueError for any other size."""
    n = int(round(math.log2(img_size / 4)))
    if 4 * 2 ** n != img_size or n < 2:
        raise ValueError(f"image size {img_size} is not 4·2^k (16, 32, 64, 128...)")
    return n


def pyramid(img_size: int) -> tuple[int, int]:
    """(start, n): img_size = start·2^n with a 4×4 or 6×6 start (32 = 4·2³, 96 = 6·2⁴, 128 = 4·2⁵)."""
    start, n = img_size, 0
    while start > 6 and start % 2 == 0:
        start, n = start // 2, n + 1
    if start not in (4, 6) or n < 2:
        raise ValueError(f"image size {img_size} is not 4·2^k or 6·2^k (16, 24, 32, 48, 64, 96, 128...)")
    return start, n


def uses_variant96(model: str, img_size: int) -> bool:
    """Whether `model` (a conv layout) draws `img_size` with its 96 px variant."""
    rule = ARCHITECTURES[model].variant96
    return rule == ONLY or (rule == AT_96 and img_size == 96)


def discriminator_block_count(model: str, img_size: int) -> int:
    """The blocks of `model`'s discriminator at `img_size` (models.discriminator_blocks: a block per
    convolution that changes resolution or width); ValueError saying why when the model cannot draw
    that size."""
    if ARCHITECTURES[model].layout == RESNET:
        return pyramid(img_size)[1] + 1          # the conv from RGB, then one per halving
    if uses_variant96(model, img_size):
        if img_size != 96:
            raise ValueError(f"{model} draws 96×96 images: use --img-size 96")
        return 4                                 # 96 -> 32 -> 16 -> 8 -> 4
    return doublings(img_size)                   # img_size -> ... -> 4, halving each time
