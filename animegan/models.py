"""Generators and discriminators, chosen by name, where they are cut in blocks (`discriminator_blocks`,
`split_generator`), and `recalibrate_bn` for averaged weights. The models' names, descriptions, the
sizes each draws and its discriminator's block count are `architectures.py`'s (no torch there).

Every generator has `z_dim` and `img_size` attributes and maps z (N, z_dim) to images
(N, 3, S, S) in [-1, 1]. Every discriminator returns one raw score per image, shape (N,):
higher means "more real". The classic recipes' sigmoid is applied inside the BCE loss
(`binary_cross_entropy_with_logits`), which is the same function, computed stably.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .architectures import ARCHITECTURES, doublings, pyramid, uses_variant96


class DCGANGenerator(nn.Module):
    """Radford et al.: transposed conv 4×4 stride 2, BatchNorm, ReLU, Tanh.

    `last_kernel=5, last_stride=3` gives the 96×96 variant of the classic write-ups (32 → 96).
    """

    def __init__(self, z_dim: int = 100, ngf: int = 64, img_size: int = 64, variant96: bool = False):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        n_up = 3 if variant96 else doublings(img_size) - 1  # stride-2 layers after the 4×4 start
        if variant96 and img_size != 96:
            raise ValueError("dcgan96 draws 96×96 images: use --img-size 96")
        ch = ngf * 2 ** n_up
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        if variant96:
            layers += [nn.ConvTranspose2d(ch, 3, 5, 3, 1, bias=False), nn.Tanh()]
        else:
            layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class LinearGenerator(nn.Module):
    """The plain GAN of the classic thesis: Linear(z → 4×4×8f) + BN1d + ReLU, then transposed
    convs 5×5 stride 2 (BN, ReLU) and Tanh."""

    def __init__(self, z_dim: int = 100, ngf: int = 64, img_size: int = 64):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        n_up = doublings(img_size)
        ch = ngf * 2 ** (n_up - 1)
        self.ch0 = ch
        self.fc = nn.Sequential(nn.Linear(z_dim, 4 * 4 * ch, bias=False), nn.BatchNorm1d(4 * 4 * ch), nn.ReLU(True))
        layers: list[nn.Module] = []
        for i in range(n_up):
            out = 3 if i == n_up - 1 else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 5, 2, 2, output_padding=1, bias=i == n_up - 1))
            layers += [nn.Tanh()] if i == n_up - 1 else [nn.BatchNorm2d(out), nn.ReLU(True)]
            ch = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], self.ch0, 4, 4))


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(ch)
    if kind == "in":  # the WGAN-GP critic: no BatchNorm (GP is per-sample)
        return nn.InstanceNorm2d(ch, affine=True)
    return nn.Identity()


class MinibatchStd(nn.Module):
    """Appends the mean std over a group of samples as one feature map (ProGAN): lets D see
    a lack of variety, so a collapsing G is penalised."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(self.group, n)
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n/g,)
        y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class ConvDiscriminator(nn.Module):
    """Strided convs and LeakyReLU 0.2 (DCGAN), with a choice of normalisation:
    "bn" (DCGAN), "in" (WGAN-GP critic), "sn" (spectral norm, SNGAN) or "none".

    `first_kernel=5, first_stride=3` reads 96×96 images (96 → 32), as the classic dcgan96 did.
    `head="linear"` is the classic thesis's flatten + linear score.
    """

    def __init__(self, ndf: int = 64, img_size: int = 64, norm: str = "bn", variant96: bool = False,
                 mbstd: bool = False, head: str = "conv"):
        super().__init__()
        self.img_size = img_size
        sn = spectral_norm if norm == "sn" else (lambda m: m)
        layer_norm = "none" if norm == "sn" else norm
        layers: list[nn.Module] = []
        if variant96:
            layers += [sn(nn.Conv2d(3, ndf, 5, 3, 1)), nn.LeakyReLU(0.2, True)]
            n_down = 3  # 32 → 4
        else:
            layers += [sn(nn.Conv2d(3, ndf, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            n_down = doublings(img_size) - 1
        ch = ndf
        for _ in range(n_down):
            layers += [sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=layer_norm == "none")), _norm(layer_norm, ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        if mbstd:
            layers.append(MinibatchStd())
            ch += 1
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Conv2d(ch, 1, 4, 1, 0)) if head == "conv" else nn.Sequential(nn.Flatten(), sn(nn.Linear(ch * 16, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).reshape(x.shape[0])


class SLE(nn.Module):
    """Skip-layer excitation (FastGAN, Liu et al. 2021): a low-resolution map gates the channels of
    a high-resolution one: pool to 4×4, conv 4×4 (→ 1×1), LeakyReLU, conv 1×1, sigmoid."""

    def __init__(self, ch_low: int, ch_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(ch_low, ch_high, 4, 1, 0), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(ch_high, ch_high, 1), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class SLEGenerator(nn.Module):
    """The DCGAN generator (same `net`, same layers) with skip-layer excitation: every stage at
    16×16 or more is gated by the stage a quarter its size (4 → 16, 8 → 32, 16 → 64 at 128 px)."""

    def __init__(self, z_dim: int = 100, ngf: int = 64, img_size: int = 64, variant96: bool = False):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        self.net = DCGANGenerator(z_dim, ngf, img_size, variant96).net
        self.n_stages = (len(self.net) - 2) // 3  # (conv, BN, ReLU) per stage, at 4, 8, 16... px
        chans = [self.net[3 * i].out_channels for i in range(self.n_stages)]
        self.sle = nn.ModuleList(SLE(chans[i - 2], chans[i]) for i in range(2, self.n_stages))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x, feats = z.view(z.shape[0], self.z_dim, 1, 1), []
        for i in range(self.n_stages):
            x = self.net[3 * i: 3 * i + 3](x)
            if i >= 2:
                x = self.sle[i - 2](feats[i - 2], x)
            feats.append(x)
        return self.net[-2:](x)


# -- residual networks without normalisation layers (R3GAN, Huang et al. 2024) --------------------

def _res_widths(f: int, n: int) -> list[int]:
    """Channels per resolution, from the start (n halvings below full size) to full size: f/4 at full
    size, doubling with every halving up to 8f (at 64 px and f=32: 128, 64, 32, 16, 8). At f=32 a
    step costs about 2× anime64's at width 32 on one CPU thread in bf16 (about 1.3× with channels_last:
    the thin full-size convs run several times faster so)."""
    return [max(1, min(8 * f, f * 2 ** j // 4)) for j in range(n, -1, -1)]


def _init_res(module: nn.Module) -> None:
    """Variance-preserving weights (LeakyReLU gain inside blocks, linear elsewhere), zero biases, and
    each block's last conv zero, so every block starts as the identity (Fixup, as R3GAN does)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight[0].numel()))
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, ResBlock):
            nn.init.kaiming_normal_(m.conv1.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(m.conv2.weight)


class ResBlock(nn.Module):
    """x + conv3×3(LeakyReLU(conv3×3(x))), no normalisation."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class ResNetGenerator(nn.Module):
    """z → linear → start×start map, then per resolution a residual block and (but at full size) a
    1×1 conv to the next width and a bilinear 2× upsampling; a 1×1 conv to RGB and tanh."""

    def __init__(self, z_dim: int = 100, ngf: int = 32, img_size: int = 64):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        self.start, n = pyramid(img_size)
        w = _res_widths(ngf, n)
        self.stem = nn.Linear(z_dim, w[0] * self.start ** 2)
        layers: list[nn.Module] = [ResBlock(w[0])]
        for a, b in pairwise(w):
            layers += [nn.Conv2d(a, b, 1), nn.Upsample(scale_factor=2, mode="bilinear"), ResBlock(b)]
        self.body = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(w[-1], 3, 1)
        _init_res(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.stem(z).view(z.shape[0], -1, self.start, self.start)
        return torch.tanh(self.to_rgb(self.body(x)))


class ResNetDiscriminator(nn.Module):
    """The generator's mirror: a 1×1 conv from RGB, per resolution a residual block and (but at the
    start size) a 2×2 average pool and a 1×1 conv to the next width; then minibatch-stddev, a 3×3
    conv, LeakyReLU and a linear score."""

    def __init__(self, ndf: int = 32, img_size: int = 64):
        super().__init__()
        self.img_size = img_size
        start, n = pyramid(img_size)
        w = _res_widths(ndf, n)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(3, w[0], 1), ResBlock(w[0])]
        for a, b in pairwise(w):
            layers += [nn.AvgPool2d(2), nn.Conv2d(a, b, 1), ResBlock(b)]
        self.features = nn.Sequential(*layers, MinibatchStd())
        self.head = nn.Sequential(nn.Conv2d(w[-1] + 1, w[-1], 3, 1, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                  nn.Linear(w[-1] * start ** 2, 1))
        _init_res(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).reshape(x.shape[0])


@dataclass(frozen=True)
class ModelSpec:
    description: str
    make_g: Callable[[int, int, int, bool], nn.Module]    # (z_dim, ngf, img_size, variant96)
    make_d: Callable[[int, int, bool], nn.Module]         # (ndf, img_size, variant96)
    dcgan_init: bool = True


# How each model of `architectures.ARCHITECTURES` (its name, description and the sizes it draws) is
# built; `variant96` is `architectures.uses_variant96` for the model at the size.
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module], bool]] = {
    "gan-linear": (lambda z, f, s, v96: LinearGenerator(z, f, s),
                   lambda f, s, v96: ConvDiscriminator(f, s, "bn", head="linear"), True),
    "dcgan": (lambda z, f, s, v96: DCGANGenerator(z, f, s), lambda f, s, v96: ConvDiscriminator(f, s, "bn"), True),
    "dcgan96": (lambda z, f, s, v96: DCGANGenerator(z, f, s, variant96=v96),
                lambda f, s, v96: ConvDiscriminator(f, s, "bn", variant96=v96), True),
    "wgan-gp": (lambda z, f, s, v96: DCGANGenerator(z, f, s, variant96=v96),
                lambda f, s, v96: ConvDiscriminator(f, s, "in", variant96=v96), True),
    "anime64": (lambda z, f, s, v96: DCGANGenerator(z, f, s, variant96=v96),
                lambda f, s, v96: ConvDiscriminator(f, s, "bn", variant96=v96, mbstd=True), True),
    "anime64-sn": (lambda z, f, s, v96: DCGANGenerator(z, f, s, variant96=v96),
                   lambda f, s, v96: ConvDiscriminator(f, s, "sn", variant96=v96, mbstd=True), True),
    "anime64-sle": (lambda z, f, s, v96: SLEGenerator(z, f, s, variant96=v96),
                    lambda f, s, v96: ConvDiscriminator(f, s, "bn", variant96=v96, mbstd=True), True),
    "resnet": (lambda z, f, s, v96: ResNetGenerator(z, f, s), lambda f, s, v96: ResNetDiscriminator(f, s), False),
}
MODELS: dict[str, ModelSpec] = {name: ModelSpec(arch.description, *_BUILDERS[name]) for name, arch in ARCHITECTURES.items()}


def dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) weights; BatchNorm scale N(1, 0.02), bias 0 (Radford et al.)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        # Spectral norm keeps the raw weight as parametrizations.weight.original.
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(w, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_generator(model: str, z_dim: int, ngf: int, img_size: int) -> nn.Module:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[model].make_g(z_dim, ngf, img_size, uses_variant96(model, img_size))


def build_models(model: str, z_dim: int, ngf: int, ndf: int, img_size: int, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """Both networks, initialised deterministically from `seed`."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    spec = MODELS[model]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        v96 = uses_variant96(model, img_size)
        G, D = spec.make_g(z_dim, ngf, img_size, v96), spec.make_d(ndf, img_size, v96)
        if spec.dcgan_init:
            G.apply(dcgan_init)
            D.apply(dcgan_init)
    return G, D


def discriminator_blocks(D: nn.Module) -> list[list[nn.Module]]:
    """D's feature extractor as blocks, first (nearest the image) first: a block starts at each
    convolution that is a direct part of `D.features` (the DCGAN family: each strided conv with its
    norm and activation; ResNet: the conv from RGB or to the next width, with its residual block and
    the pooling that follows) and ends before the next. What `freeze_d` counts (FreezeD). The score
    head is never a block."""
    blocks: list[list[nn.Module]] = []
    for m in D.features:
        if isinstance(m, nn.Conv2d) or not blocks:
            blocks.append([])
        blocks[-1].append(m)
    return blocks


@dataclass(frozen=True)
class Split:
    """G(z) == tail(head(z)): head maps z (N, z_dim) to the first block's output (N, C, 4, 4)."""

    head: Callable[[torch.Tensor], torch.Tensor]
    tail: Callable[[torch.Tensor], torch.Tensor]


def split_generator(G: nn.Module) -> Split | None:
    """The generator cut after its first block (z → 4×4 layer, BatchNorm, ReLU; same operations,
    same order as G.forward): the space truncation pulls toward the mean in (`generate`) and
    GANSpace takes its PCA of (`explore.directions`). None where its layout is not known."""
    if isinstance(G, DCGANGenerator):
        net, z_dim = G.net, G.z_dim
        return Split(head=lambda z: net[:3](z.view(z.shape[0], z_dim, 1, 1)), tail=lambda h: net[3:](h))
    if isinstance(G, LinearGenerator):
        fc, net, ch0 = G.fc, G.net, G.ch0
        return Split(head=lambda z: fc(z).view(z.shape[0], ch0, 4, 4), tail=lambda h: net(h))
    return None


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def recalibrate_bn(G: nn.Module, device: torch.device, batches: int = 2, batch_size: int = 128, seed: int = 99) -> None:
    """Recompute BatchNorm statistics for averaged weights.

    The live G's running statistics belong to the live weights; with EMA weights they are off
    and colours wash out. A few forward passes with fixed noise give the EMA weights their own.
    Leaves G in eval mode.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes
    G.train()
    g = torch.Generator(device=device).manual_seed(seed)
    for _ in range(batches):
        G(torch.randn(batch_size, G.z_dim, device=device, generator=g))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    G.eval()
