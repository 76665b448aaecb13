"""One training step and everything it touches: the networks, optimisers and schedules (`Nets`),
the generator's moving average (EMA), this step's real batch and its random stream.

Randomness is a function of names, never of history: the data order of an epoch comes from
(seed, epoch) and a step's noise and augmentation from (seed, step, rank), both through
`stream_seed`. So a resumed run draws exactly what an uninterrupted one would: restoring the
step number restores the random state. scripts/bench.py times these same functions.
"""
from __future__ import annotations

import copy
import functools
import json
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .augment import ClassicAugment, ada_adjust, diff_augment
from .config import ConfigError, TrainConfig
from .devices import Dist, average_gradients
from .losses import d_loss, g_loss, g_loss_needs_real, gradient_penalty, r1_penalty, r2_penalty
from .models import build_models, discriminator_blocks, recalibrate_bn

# compile="auto" (`compile_decision`): what compiling costs and gives. The two measured figures
# live in COMPILE_COST_FILE (written by `scripts/bench.py --compile-cost`, the device named in it),
# read here only; everything else (speed.py, the Train page) takes them from these names.
COMPILE_COST_FILE = Path(__file__).with_name("compile_cost.json")
COMPILE_COST: dict[str, Any] = json.loads(COMPILE_COST_FILE.read_text())
COMPILE_SECONDS = float(COMPILE_COST["compile_seconds"])  # compiling G and D on a CPU, before the first step
COMPILE_SPEEDUP = float(COMPILE_COST["compile_speedup"])  # compiled CPU steps against eager ones
COMPILE_MIN_STEPS = 500  # compile="auto" compiles CPU runs at least this long
COMPILE_BUDGET_SHARE = 0.1  # with a time budget, "auto" compiles only when COMPILE_SECONDS is at most this share of it


# -- random streams ------------------------------------------------------------------------------

def stream_seed(*names: int) -> int:
    """The seed of the random stream named by these integers, e.g. (seed, epoch) or
    (seed, step, rank): a fixed hash, so the same names always give the same stream."""
    h = 0x9E3779B1
    for x in names:
        h = (h * 1_000_003 + int(x) + 1) % (2 ** 63 - 1)
    return h


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The random stream of one step on one rank: augmentation, noise, DiffAugment, penalties."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, step, rank))


@functools.lru_cache(maxsize=2)
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The data order of an epoch: a function of (seed, epoch) alone, so resume needs no RNG state."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(stream_seed(seed, epoch))).numpy()


class TrainImages:
    """The training split as the step reads it, uint8 N×3×S×S.

    On CUDA the whole split is copied to the device once as one tensor (26k faces at 64 px are
    0.32 GB) and every batch is indexed there, so no step waits for the host. Elsewhere the
    memory map stays where it is and each batch is read from it (sorted reads), which keeps a
    CPU run's memory small. Both give the same batches: positions index the split in order."""

    def __init__(self, images: np.ndarray, train_idx: np.ndarray, device: torch.device, on_device: bool | None = None):
        self.images, self.train_idx, self.device = images, train_idx, device
        self.on_device = device.type == "cuda" if on_device is None else on_device
        self.tensor = torch.from_numpy(np.asarray(images[train_idx])).to(device) if self.on_device else None
        self._perm: tuple[int, torch.Tensor] | None = None  # (epoch, its permutation on the device)

    def __len__(self) -> int:
        return len(self.train_idx)

    def batch(self, epoch: int, perm: np.ndarray, start: int, stop: int, rank: int, world: int) -> torch.Tensor:
        """This rank's share of positions perm[start:stop] of the split, in ascending order, uint8 on the device."""
        if self.tensor is None:
            mine = np.sort(perm[start:stop][rank::world])  # sorted reads are kinder to the memory map
            return torch.from_numpy(np.asarray(self.images[self.train_idx[mine]])).to(self.device, non_blocking=True)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.from_numpy(perm).to(self.device))
        mine, _ = torch.sort(self._perm[1][start:stop][rank::world])
        return self.tensor.index_select(0, mine)


def real_batch(train: TrainImages, cfg: TrainConfig, step: int, steps_per_epoch: int, dist: Dist,
               classic_aug: ClassicAugment, g: torch.Generator,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """This rank's share of global batch `step`: a permutation per (seed, epoch), [-1, 1] floats
    and the classic augmentation, on the device."""
    from .data import to_float
    epoch, i = divmod(step, steps_per_epoch)
    perm = epoch_permutation(len(train), cfg.seed, epoch)
    real = train.batch(epoch, perm, i * cfg.batch_size, (i + 1) * cfg.batch_size, dist.rank, dist.world)
    return classic_aug(to_float(real), g).contiguous(memory_format=memory_format)


# -- step options --------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepOptions:
    """How the step runs on its device: torch.compile, channels_last memory, bf16 autocast."""
    compile: bool = False
    channels_last: bool = False
    amp: bool = False

    def describe(self) -> dict[str, str]:
        """What ran, as status.json records it: {"compile": "on"|"off", "channels_last": ..., "amp": "bf16"|"off"}."""
        return {"compile": "on" if self.compile else "off", "channels_last": "on" if self.channels_last else "off",
                "amp": "bf16" if self.amp else "off"}

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> Callable[[], Any]:
        """A context factory: bf16 autocast on `device` when amp is on, else nothing."""
        return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if self.amp else nullcontext


def compile_decision(cfg: TrainConfig, device: torch.device | str, total_steps: int) -> tuple[bool, str]:
    """Whether the trainer torch.compiles this run, and why, in words a page can show. "auto"
    compiles CPU runs of COMPILE_MIN_STEPS steps or more, unless a time budget is so short that
    compiling (COMPILE_SECONDS) would be more than COMPILE_BUDGET_SHARE of it. The budget itself
    counts training time: compiling comes on top of it (train.py starts the budget's clock after
    the first compiled step)."""
    kind = torch.device(device).type
    cost = f"about {COMPILE_SECONDS:.0f} s of compiling first, then about {COMPILE_SPEEDUP:.2f}× faster steps"
    if cfg.compile in ("on", True):
        return True, f"torch.compile is on (asked for): {cost}; the time budget starts after it"
    if cfg.compile != "auto":
        return False, "torch.compile is off (asked for)"
    if kind != "cpu":
        return False, f"torch.compile stays off: auto compiles CPU runs only (on {kind.upper()}, ask for it with on)"
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        return False, "torch.compile stays off: there is no C compiler here (cc, gcc or clang)"
    if total_steps < COMPILE_MIN_STEPS:
        return False, (f"torch.compile stays off: {total_steps:,} steps are too few to win back {COMPILE_SECONDS:.0f} s "
                       f"of compiling (auto compiles runs of {COMPILE_MIN_STEPS:,}+ steps)")
    if cfg.minutes and COMPILE_SECONDS > COMPILE_BUDGET_SHARE * cfg.minutes * 60:
        return False, (f"torch.compile stays off: compiling (about {COMPILE_SECONDS:.0f} s) would cost more than "
                       f"{COMPILE_BUDGET_SHARE:.0%} of the {cfg.minutes:g} min budget")
    return True, f"torch.compile is on (auto: {total_steps:,} steps on a CPU): {cost}" + (
        "; the time budget starts after it" if cfg.minutes else "")


def compile_enabled(cfg: TrainConfig, device: torch.device, total_steps: int) -> bool:
    """`compile_decision` without its reason."""
    return compile_decision(cfg, device, total_steps)[0]


def step_options(cfg: TrainConfig, device: torch.device, total_steps: int) -> StepOptions:
    """The settings' "auto"s decided for this device and run length: channels_last and bf16
    autocast on CUDA. Not on the CPU, even one with native bf16 that trains 1.3-1.6x the images
    per second in it: there bf16 trained to worse faces per image than fp32 and about the same per
    CPU-minute (docs/recipes.md, "bf16 autocast on the CPU"); `--amp bf16` still asks for it."""
    cuda = device.type == "cuda"
    return StepOptions(compile=compile_enabled(cfg, device, total_steps),
                       channels_last=cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda),
                       amp=cfg.amp == "bf16" or (cfg.amp == "auto" and cuda))


# -- optimisers, schedules, EMA ------------------------------------------------------------------

def make_optimizer(kind: str, params, lr: float, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """`fused`: Adam's fused kernel (one launch for all parameters), for CUDA."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), **({"fused": True} if fused else {}))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ConfigError(f"unknown optimizer {kind!r}; choose adam, sgd or rmsprop")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per epoch."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose none, step or cosine")


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """Per-update decay for a half-life of ema_kimg thousand images, ramped up early."""
    seen = (step + 1) * cfg.batch_size
    half_life = min(cfg.ema_kimg * 1000, seen * cfg.ema_rampup) if cfg.ema_rampup > 0 else cfg.ema_kimg * 1000
    images_per_update = cfg.batch_size * cfg.n_critic
    return 0.5 ** (images_per_update / max(half_life, 1e-8))


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """ema ← ema + (1 − decay)(live − ema) for every parameter, in a few multi-tensor (foreach)
    kernels on the device; buffers (BatchNorm statistics) are copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in live.parameters()], 1 - decay)
    for be, bl in zip(ema.buffers(), live.buffers(), strict=True):
        be.copy_(bl)


# -- the networks' bundle ------------------------------------------------------------------------

TRAIN_STATE = ("G", "D", "G_ema", "opt_g", "opt_d", "sched_g", "sched_d")  # what a training checkpoint holds of Nets
AUG_P = "aug_p"  # the adaptive augmentation probability: a checkpoint's key, a metrics row's column


def _stay_in_eval(module: nn.Module, args: Any) -> None:
    """A frozen BatchNorm's forward pre-hook: whatever `D.train()` set, it normalises with the
    checkpoint's running statistics and leaves them as they are."""
    module.training = False


def freeze_discriminator(D: nn.Module, n_blocks: int) -> int:
    """FreezeD: D's first `n_blocks` blocks (models.discriminator_blocks) stop learning: their
    parameters need no gradient (so the optimiser leaves them as they are), and their BatchNorm
    layers stay in eval mode (the checkpoint's running statistics, not each batch's, which would
    make the frozen blocks a different function of every batch). Returns the number of parameters
    frozen."""
    frozen = 0
    for block in discriminator_blocks(D)[:n_blocks]:
        for m in block:
            for prm in m.parameters():
                prm.requires_grad_(False)
                frozen += prm.numel()
            for bn in m.modules():
                if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                    bn.eval()
                    bn.register_forward_pre_hook(_stay_in_eval)
    return frozen


def checkpoint_has_discriminator(path: str) -> bool:
    """Does the checkpoint to fine-tune from hold a trained D (FreezeD has something to keep)?
    A file that cannot be read says no here; training itself then reports why it cannot start."""
    from .checkpoint import CheckpointError, load_checkpoint
    try:
        return load_checkpoint(path).get("D") is not None
    except CheckpointError:
        return False


@dataclass
class Nets:
    """What a training step touches: the networks (and the callables that run them, compiled or
    not), optimisers, and the EMA generator and schedules where the settings ask for them."""
    G: nn.Module
    D: nn.Module
    G_run: Any
    D_run: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    autocast: Any = nullcontext
    G_ema: nn.Module | None = None
    sched_g: torch.optim.lr_scheduler.LRScheduler | None = None
    sched_d: torch.optim.lr_scheduler.LRScheduler | None = None
    aug_p: torch.Tensor | None = None  # adaptive augmentation probability (0-dim, on the device) when on
    _G_copy: nn.Module | None = field(default=None, repr=False)

    def state(self) -> dict[str, Any]:
        """The state dicts of a training checkpoint (TRAIN_STATE; None for what is off), and the
        adaptive augmentation probability where it is on."""
        out: dict[str, Any] = {k: (m.state_dict() if m is not None else None) for k, m in self._parts()}
        if self.aug_p is not None:
            out[AUG_P] = self.aug_p.detach().cpu().clone()
        return out

    def load_state(self, ck: dict[str, Any]) -> None:
        """Back to a training checkpoint's state (an EMA, schedule or augmentation probability the
        checkpoint lacks stays as is)."""
        for k, m in self._parts():
            if m is not None and (k in ("G", "D", "opt_g", "opt_d") or ck.get(k)):
                m.load_state_dict(ck[k])
        if self.aug_p is not None and ck.get(AUG_P) is not None:
            self.aug_p.copy_(torch.as_tensor(ck[AUG_P]))

    def _parts(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in TRAIN_STATE]

    def step_schedules(self) -> None:
        for s in (self.sched_g, self.sched_d):
            if s is not None:
                s.step()

    def scale_lr(self, factor: float) -> None:
        for o in (self.opt_g, self.opt_d):
            for pg in o.param_groups:
                pg["lr"] *= factor

    def sampler(self, device: torch.device) -> nn.Module:
        """The generator samples and evaluations come from: the EMA (or a copy of the live G),
        with BatchNorm statistics of its own, exactly as `checkpoint.load_generator` rebuilds it."""
        if self.G_ema is not None:
            S = self.G_ema
        else:
            self._G_copy = self._G_copy or copy.deepcopy(self.G).requires_grad_(False)
            self._G_copy.load_state_dict(self.G.state_dict())
            S = self._G_copy
        recalibrate_bn(S, device)
        return S.eval()


def build_nets(cfg: TrainConfig, device: torch.device, dist: Dist = Dist(), options: StepOptions = StepOptions()) -> Nets:
    """G and D initialised from cfg.seed on `device`, their optimisers and schedules, the EMA copy
    when cfg.ema_kimg > 0; SyncBatchNorm across CUDA ranks (it has no CPU kernel, so on the CPU
    each rank keeps its own BatchNorm statistics)."""
    G, D = build_models(cfg.model, cfg.z_dim, cfg.ngf, cfg.ndf, cfg.img_size, seed=cfg.seed)
    if dist.world > 1 and device.type == "cuda":
        G, D = nn.SyncBatchNorm.convert_sync_batchnorm(G), nn.SyncBatchNorm.convert_sync_batchnorm(D)
    if cfg.freeze_d > 0 and cfg.init_from and checkpoint_has_discriminator(cfg.init_from):
        freeze_discriminator(D, cfg.freeze_d)  # the weights are the checkpoint's once train loads them
    mem = options.memory_format
    G, D = G.to(device, memory_format=mem), D.to(device, memory_format=mem)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_kimg > 0 else None
    fused = device.type == "cuda"
    opt_g = make_optimizer(cfg.opt_g, G.parameters(), cfg.lr_g, cfg, fused)
    opt_d = make_optimizer(cfg.opt_d, [p for p in D.parameters() if p.requires_grad], cfg.lr_d, cfg, fused)
    aug_p = torch.zeros((), device=device) if cfg.ada_target > 0 else None
    return Nets(G, D, torch.compile(G) if options.compile else G, torch.compile(D) if options.compile else D,
                opt_g, opt_d, options.autocast(device), G_ema, make_scheduler(opt_g, cfg), make_scheduler(opt_d, cfg),
                aug_p)


# -- one step ------------------------------------------------------------------------------------

def train_step(nets: Nets, cfg: TrainConfig, real: torch.Tensor, z: torch.Tensor, g: torch.Generator, step: int,
               dist: Dist = Dist()) -> dict[str, torch.Tensor]:
    """One D update and, every n_critic steps, one G update. Returns the step's scalars as
    0-dim tensors on the device, so the step never waits for the GPU (the loop gathers them every
    log_every steps): loss_D, D_x, D_G_z, gp always; loss_G only on steps with a G update; r1
    and r2 only on steps that computed them; with adaptive augmentation `aug_p` (the probability
    this step used) and `real_sign` (r_t = E[sign D(x_real)], what moves it). The EMA is the caller's
    (`ema_update`)."""
    # D on real and (detached) fake, both through DiffAugment when on (each op with probability p
    # when adaptive: p as it is now, before this step's reals move it).
    p = nets.aug_p.clone() if nets.aug_p is not None else None
    with nets.autocast():
        fake = nets.G_run(z)
        real_in = diff_augment(real, cfg.diffaug, g, p) if cfg.diffaug else real
        fake_in = diff_augment(fake, cfg.diffaug, g, p) if cfg.diffaug else fake
        s_real = nets.D_run(real_in).float()
        s_fake = nets.D_run(fake_in.detach()).float()
        loss_d = d_loss(cfg.loss, s_real, s_fake, cfg.real_label)
    gp = torch.zeros((), device=real.device)
    if cfg.loss == "wgan-gp":  # eager D: double backward does not go through torch.compile
        gp = gradient_penalty(nets.D, real_in.float(), fake_in.float(), generator=g)
    # Lazy R1 on the reals D saw, every r1_every steps, scaled up to keep its average weight.
    # R2 likewise on the fakes D saw (detached from G), on R1's schedule.
    r1 = r2 = None
    if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
        r1 = r1_penalty(nets.D, real_in.float())
    if cfg.r2_gamma > 0 and step % cfg.r1_every == 0:
        r2 = r2_penalty(nets.D, fake_in.float())
    nets.opt_d.zero_grad(set_to_none=True)
    total_d = loss_d + cfg.gp_lambda * gp
    if r1 is not None:
        total_d = total_d + (cfg.r1_gamma / 2 * cfg.r1_every) * r1
    if r2 is not None:
        total_d = total_d + (cfg.r2_gamma / 2 * cfg.r1_every) * r2
    total_d.backward()
    average_gradients(nets.D, dist)
    nets.opt_d.step()

    # G every n_critic D steps, reusing this step's fake (G has not changed since). A relativistic
    # loss also reads the updated D's scores of the same reals (no gradient: G's flows through the fakes).
    out: dict[str, torch.Tensor] = {"loss_D": loss_d.detach()}
    if (step + 1) % cfg.n_critic == 0:
        with nets.autocast():
            s_fake_g, s_real_g = nets.D_run(fake_in).float(), None
            if g_loss_needs_real(cfg.loss):  # after the fakes: autocast's weight casts are cached with grad
                with torch.no_grad():
                    s_real_g = nets.D_run(real_in).float()
            loss_g = g_loss(cfg.loss, s_fake_g, s_real_g)
        nets.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(nets.G, dist)
        nets.opt_g.step()
        out["loss_G"] = loss_g.detach()
    # D's mean opinion of real and fake: a probability for BCE, the raw score otherwise.
    judge = torch.sigmoid if cfg.loss == "bce" else (lambda s: s)
    out.update(D_x=judge(s_real.detach()).mean(), D_G_z=judge(s_fake.detach()).mean(), gp=gp.detach())
    if nets.aug_p is not None and p is not None:
        real_sign = torch.sign(s_real.detach()).mean()
        if dist.world > 1:  # one p for every rank: the sign over the whole batch
            torch.distributed.all_reduce(real_sign)
            real_sign = real_sign / dist.world
        ada_adjust(nets.aug_p, real_sign, cfg.ada_target, real.shape[0] * dist.world, cfg.ada_kimg)
        out.update({AUG_P: p, "real_sign": real_sign})
    if r1 is not None:
        out["r1"] = r1.detach()
    if r2 is not None:
        out["r2"] = r2.detach()
    return out
