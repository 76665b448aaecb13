"""The training loop: one process, or one per GPU under torchrun.

Everything a run produces goes into its run directory (see `rundir`). Randomness is derived
from (seed, epoch) for the data order and (seed, step, rank) for noise and augmentation, so a
resumed run draws exactly what an uninterrupted one would: restoring `step` restores the RNG.

Several processes (torchrun): each rank reads its own shard of every global batch, gradients
are averaged across ranks after every backward pass (all-reduce, as stylegan2-ada does instead
of wrapping in DDP; that keeps the gradient penalty's double backward simple), BatchNorm is
synchronised on CUDA (SyncBatchNorm; it has no CPU kernel, so on CPU each rank keeps its own
statistics), and only rank 0 writes files.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
import os
import signal
import socket
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torchdist
from torch import nn

from . import checkpoint as ckpt
from .augment import ClassicAugment, diff_augment, parse_policy
from .config import TrainConfig
from .losses import LOSSES, d_loss, g_loss, gradient_penalty, r1_penalty
from .models import build_models, count_params
from .rundir import append_jsonl, drop_rows_after, read_json, read_jsonl, write_json_atomic

log = logging.getLogger("animegan.train")
MAX_ROLLBACKS = 3  # then the run stops as collapsed


class TrainingError(Exception):
    """A setting or input that makes training impossible; the message says what to change."""


# -- devices and processes ---------------------------------------------------------------------

def available_devices() -> list[str]:
    """Devices that exist here: cpu, mps, cuda:0..N-1."""
    out = ["cpu"]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return out


def pick_device(pref: str = "auto", local_rank: int = 0) -> torch.device:
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(pref)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA GPU is visible here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def device_summary() -> dict[str, Any]:
    d = pick_device()
    name = torch.cuda.get_device_name(d) if d.type == "cuda" else ("Apple GPU (MPS)" if d.type == "mps" else "CPU")
    return {"device": str(d), "name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "available": available_devices()}


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not torchdist.is_initialized():
        torchdist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def average_gradients(module: nn.Module, dist: Dist) -> None:
    if dist.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torchdist.all_reduce(flat)
    flat /= dist.world
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def broadcast_module(module: nn.Module, dist: Dist) -> None:
    if dist.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            torchdist.broadcast(t.data, 0)


# -- optimisers, schedules, EMA ----------------------------------------------------------------

def make_optimizer(kind: str, params, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise TrainingError(f"unknown optimizer {kind!r}; choose adam, sgd or rmsprop")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per epoch."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    raise TrainingError(f"unknown schedule {cfg.schedule!r}; choose none, step or cosine")


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """Per-update decay for a half-life of ema_kimg thousand images, ramped up early."""
    seen = (step + 1) * cfg.batch_size
    half_life = min(cfg.ema_kimg * 1000, seen * cfg.ema_rampup) if cfg.ema_rampup > 0 else cfg.ema_kimg * 1000
    images_per_update = cfg.batch_size * cfg.n_critic
    return 0.5 ** (images_per_update / max(half_life, 1e-8))


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    for pe, pl in zip(ema.parameters(), live.parameters(), strict=True):
        pe.lerp_(pl.detach(), 1 - decay)
    for be, bl in zip(ema.buffers(), live.buffers(), strict=True):
        be.copy_(bl)


@torch.no_grad()
def recalibrate_bn(G: nn.Module, device: torch.device, batches: int = 2, batch_size: int = 128, seed: int = 99) -> None:
    """Recompute BatchNorm statistics for averaged weights.

    The live G's running statistics belong to the live weights; with EMA weights they are off
    and colours wash out. A few forward passes with fixed noise give the EMA weights their own.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum) for m in bns]
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


# -- helpers -------------------------------------------------------------------------------------

def _mix(*xs: int) -> int:
    h = 0x9E3779B1
    for x in xs:
        h = (h * 1_000_003 + int(x) + 1) % (2 ** 63 - 1)
    return h


def fixed_noise(cfg: TrainConfig) -> torch.Tensor:
    """The noise of every sample grid of a run: image i is latent i of `sample_seed`."""
    from .generate import latents
    return latents(cfg.sample_seed, range(cfg.n_samples), cfg.z_dim)


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    save_image(images.float() * 0.5 + 0.5, tmp, nrow=int(math.ceil(math.sqrt(images.shape[0]))), padding=2)
    os.replace(tmp, path)


def spread(images: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across a batch: near 0 when all images are alike."""
    return float(images.float().std(dim=0).mean())


def _setup_logging(run: Path | None) -> None:
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    if run is not None:
        fh = logging.FileHandler(run / "train.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    log.addHandler(sh)
    log.propagate = False


class StopRequested:
    """SIGTERM / Ctrl-C: finish the step, save, exit cleanly."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequested":
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


COMPILE_MIN_STEPS = 500


def compile_enabled(cfg: TrainConfig, device: torch.device, total_steps: int) -> bool:
    if cfg.compile in ("on", True):
        return True
    if cfg.compile != "auto":
        return False
    import shutil
    has_cc = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
    return device.type == "cpu" and total_steps >= COMPILE_MIN_STEPS and has_cc


def validate_config(cfg: TrainConfig) -> None:
    from .models import MODELS
    if cfg.model not in MODELS:
        raise TrainingError(f"unknown model {cfg.model!r}; choose one of: {', '.join(MODELS)}")
    if cfg.loss not in LOSSES:
        raise TrainingError(f"unknown loss {cfg.loss!r}; choose one of: {', '.join(LOSSES)}")
    if cfg.batch_size < 2:
        raise TrainingError("--batch-size must be at least 2 (BatchNorm needs a batch)")
    if cfg.n_critic < 1:
        raise TrainingError("--n-critic must be at least 1")
    if cfg.collapse_action not in ("stop", "rollback", "warn"):
        raise TrainingError("--collapse-action must be stop, rollback or warn")
    if cfg.compile not in ("auto", "on", "off", True, False):
        raise TrainingError("--compile must be auto, on or off")
    if cfg.r1_gamma < 0 or cfg.r1_every < 1:
        raise TrainingError("--r1-gamma must be 0 or more and --r1-every at least 1")
    if cfg.minutes < 0 or cfg.eval_kimg < 0:
        raise TrainingError("--minutes and --eval-kimg must be 0 (off) or more")
    if cfg.eval_metric not in ("swd", "fid"):
        raise TrainingError("--eval-metric must be swd or fid")
    parse_policy(cfg.diffaug)


# -- one step ------------------------------------------------------------------------------------

@dataclass
class Nets:
    """What a training step touches: the networks (and their compiled callables) and optimisers."""
    G: nn.Module
    D: nn.Module
    G_run: Any
    D_run: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    autocast: Any = nullcontext


@functools.lru_cache(maxsize=2)
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The data order of an epoch: a function of (seed, epoch) alone, so resume needs no RNG state."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch))).numpy()


def real_batch(images: np.ndarray, train_idx: np.ndarray, cfg: TrainConfig, step: int, steps_per_epoch: int,
               dist: Dist, device: torch.device, classic_aug: ClassicAugment, g: torch.Generator,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """This rank's share of global batch `step`: a permutation per (seed, epoch), sorted reads
    from the uint8 memory map, [-1, 1] floats and the classic augmentation on the device."""
    from .data import to_float
    epoch, i = divmod(step, steps_per_epoch)
    perm = epoch_permutation(len(train_idx), cfg.seed, epoch)
    global_batch = train_idx[perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
    mine = np.sort(global_batch[dist.rank::dist.world])  # sorted reads are kinder to the memory map
    real = torch.from_numpy(np.asarray(images[mine])).to(device, non_blocking=True)
    return classic_aug(to_float(real), g).contiguous(memory_format=memory_format)


def train_step(nets: Nets, cfg: TrainConfig, real: torch.Tensor, z: torch.Tensor, g: torch.Generator, step: int,
               dist: Dist = Dist()) -> dict[str, float]:
    """One D update and, every n_critic steps, one G update; returns the step's scalars
    (loss_G is NaN on steps without a G update)."""
    # D on real and (detached) fake, both through DiffAugment when on.
    with nets.autocast():
        fake = nets.G_run(z)
        real_in = diff_augment(real, cfg.diffaug, g) if cfg.diffaug else real
        fake_in = diff_augment(fake, cfg.diffaug, g) if cfg.diffaug else fake
        s_real = nets.D_run(real_in).float()
        s_fake = nets.D_run(fake_in.detach()).float()
        loss_d = d_loss(cfg.loss, s_real, s_fake, cfg.real_label)
    gp = torch.zeros((), device=real.device)
    if cfg.loss == "wgan-gp":  # eager D: double backward does not go through torch.compile
        gp = gradient_penalty(nets.D, real_in.float(), fake_in.float(), generator=g)
    # Lazy R1 on the reals D saw, every r1_every steps, scaled up to keep its average weight.
    r1 = None
    if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
        r1 = r1_penalty(nets.D, real_in.float())
    nets.opt_d.zero_grad(set_to_none=True)
    total_d = loss_d + cfg.gp_lambda * gp
    if r1 is not None:
        total_d = total_d + (cfg.r1_gamma / 2 * cfg.r1_every) * r1
    total_d.backward()
    average_gradients(nets.D, dist)
    nets.opt_d.step()

    # G every n_critic D steps, reusing this step's fake (G has not changed since).
    loss_gv = float("nan")
    if (step + 1) % cfg.n_critic == 0:
        with nets.autocast():
            loss_g = g_loss(cfg.loss, nets.D_run(fake_in).float())
        nets.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(nets.G, dist)
        nets.opt_g.step()
        loss_gv = loss_g.item()
    sig = (lambda s: torch.sigmoid(s).mean().item()) if cfg.loss == "bce" else (lambda s: s.mean().item())
    row = {"loss_D": loss_d.item(), "loss_G": loss_gv, "D_x": sig(s_real), "D_G_z": sig(s_fake), "gp": gp.item()}
    if cfg.r1_gamma > 0:
        row["r1"] = r1.item() if r1 is not None else float("nan")
    return row


# -- the loop ------------------------------------------------------------------------------------

def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool | None = None) -> str:
    """Train into run directory `out`; returns the final state (finished/stopped/collapsed/...)."""
    validate_config(cfg)
    dist = init_distributed(cfg.device)
    device = pick_device(cfg.device, dist.local_rank)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    run = Path(out)
    ckdir, samples = run / "checkpoints", run / "samples"
    if resume and dist.main and (ckdir / "last.pt").exists():
        # Refuse an architecture change before anything is written: config.json stays as it is.
        ckpt.check_compatible(ckpt.load_checkpoint(ckdir / "last.pt"), cfg, ckdir / "last.pt")
    if dist.main:
        for d in (run, ckdir, samples):
            d.mkdir(parents=True, exist_ok=True)
        # Partial files of a writer killed mid-save (save_checkpoint / write_json_atomic): never
        # read by anyone, as large as a checkpoint; one trainer per run directory, so none is live.
        for d in (run, ckdir):
            for p in d.glob(".*.tmp"):
                p.unlink(missing_ok=True)
        _setup_logging(run)
    status: dict[str, Any] = {
        "state": "starting", "pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
        "updated": time.time(), "epoch": 0, "epochs": cfg.epochs, "step": 0, "total_steps": 0,
        "images_per_s": 0.0, "eta_s": None, "last_error": None, "device": str(device), "world_size": dist.world,
    }
    prev = read_json(run / "status.json") if resume else {}
    if prev.get("started"):
        status["first_started"] = prev.get("first_started", prev["started"])

    def write_status(**kw: Any) -> None:
        status.update(kw, updated=time.time())
        if dist.main:
            write_json_atomic(run / "status.json", status)

    if dist.main:
        write_json_atomic(run / "config.json", cfg.to_dict())
        write_status()
    try:
        with StopRequested() as stop:
            state = _train(cfg, run, resume, dist, device, stop, write_status, progress)
        write_status(state=state)
        log.info("run %s: %s", run.name, state)
        return state
    except BaseException as e:
        msg = f"{type(e).__name__}: {e}"
        write_status(state="failed", last_error=msg)
        if dist.main:
            log.exception("training failed: %s", msg)
        raise
    finally:
        if dist.world > 1 and torchdist.is_initialized():
            torchdist.destroy_process_group()


def _train(cfg: TrainConfig, run: Path, resume: bool, dist: Dist, device: torch.device,
           stop: StopRequested, write_status, progress: bool | None) -> str:
    from .data import prepare, to_float
    ckdir, samples = run / "checkpoints", run / "samples"
    cuda = device.type == "cuda"
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and cuda)
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    mem = torch.channels_last if channels_last else torch.contiguous_format

    # Data: rank 0 builds the cache, the others then read it.
    if dist.main:
        data = prepare(cfg.data, cfg.img_size, val=cfg.val_size, test=cfg.test_size, split_seed=cfg.split_seed,
                       progress=bool(progress))
    if dist.world > 1:
        torchdist.barrier()
        if not dist.main:
            data = prepare(cfg.data, cfg.img_size, val=cfg.val_size, test=cfg.test_size, split_seed=cfg.split_seed)
    if stop.flag:  # asked to stop while the data was being prepared: nothing trained, nothing to save
        return "stopped"
    train_idx = data.splits["train"]
    if cfg.batch_size % dist.world:
        raise TrainingError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({dist.world})")
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"the training split has only {len(train_idx)} images, fewer than one batch "
                            f"({cfg.batch_size}); lower --batch-size or add images")
    local_bs = cfg.batch_size // dist.world
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    # Models, optimisers, EMA.
    G, D = build_models(cfg.model, cfg.z_dim, cfg.ngf, cfg.ndf, cfg.img_size, seed=cfg.seed)
    if dist.world > 1 and cuda:
        G, D = nn.SyncBatchNorm.convert_sync_batchnorm(G), nn.SyncBatchNorm.convert_sync_batchnorm(D)
    G, D = G.to(device, memory_format=mem), D.to(device, memory_format=mem)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_kimg > 0 else None
    opt_g = make_optimizer(cfg.opt_g, G.parameters(), cfg.lr_g, cfg)
    opt_d = make_optimizer(cfg.opt_d, D.parameters(), cfg.lr_d, cfg)
    sched_g, sched_d = make_scheduler(opt_g, cfg), make_scheduler(opt_d, cfg)
    step = 0
    best = {"value": None, "epoch": None, "bad_evals": 0}
    t_begin, seconds_before = time.time(), 0.0  # wall time spent training, summed over resumes
    t_budget = time.time()  # --minutes counts from here, in this process

    def load_train_state(path: Path) -> None:
        nonlocal step, seconds_before, t_begin
        ck = ckpt.load_checkpoint(path, map_location=device)
        G.load_state_dict(ck["G"])
        D.load_state_dict(ck["D"])
        if G_ema is not None and ck.get("G_ema") is not None:
            G_ema.load_state_dict(ck["G_ema"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        for s, k in ((sched_g, "sched_g"), (sched_d, "sched_d")):
            if s is not None and ck.get(k):
                s.load_state_dict(ck[k])
        step = int(ck["step"])
        best.update(ck.get("best") or {})
        seconds_before, t_begin = float((ck.get("info") or {}).get("train_seconds", 0.0)), time.time()

    if resume:
        last = run / "checkpoints" / "last.pt"
        if not last.exists():
            raise TrainingError(f"nothing to resume in {run}: no checkpoints/last.pt (the run stopped before its first save)")
        load_train_state(last)
        if dist.main:
            for name in ("metrics.jsonl", "evals.jsonl", "events.jsonl"):
                drop_rows_after(run / name, step)
        log.info("resumed from %s at step %d", last, step)
    elif cfg.init_from:
        ck = ckpt.load_checkpoint(cfg.init_from, map_location=device)
        ckpt.check_compatible(ck, cfg, Path(cfg.init_from))
        g_state = ck.get("G") or ck.get("G_ema")
        G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in g_state.items()})
        if ck.get("D") is not None:
            D.load_state_dict(ck["D"])
        if G_ema is not None:
            G_ema.load_state_dict(G.state_dict())
        log.info("initialised from %s (%s)", cfg.init_from, "G and D" if ck.get("D") is not None else "G only")
    broadcast_module(G, dist)
    broadcast_module(D, dist)

    use_compile = compile_enabled(cfg, device, total_steps)
    G_train = torch.compile(G) if use_compile else G
    D_train = torch.compile(D) if use_compile else D
    classic_aug = ClassicAugment(cfg.aug_flip, cfg.aug_brightness, cfg.aug_brightness_strength)
    z_fixed = fixed_noise(cfg).to(device)
    real_spread = spread(to_float(torch.from_numpy(np.asarray(data.images[train_idx[:256]]))))

    tb = None
    if cfg.tensorboard and dist.main:
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(run / "tensorboard"))
        except ImportError:
            log.warning("--tensorboard needs the tensorboard package: pip install tensorboard (continuing without)")

    if dist.main:
        log.info("run %s: %s on %s, %d training images (%d steps/epoch, batch %d), G %s params, D %s params, device %s%s",
                 run.name, cfg.model, data.source, len(train_idx), steps_per_epoch, cfg.batch_size,
                 f"{count_params(G):,}", f"{count_params(D):,}", device, f" × {dist.world} processes" if dist.world > 1 else "")
        log.info("step options: torch.compile %s, channels_last %s, bf16 autocast %s", "on" if use_compile else "off",
                 "on" if channels_last else "off", "on" if amp else "off")
    write_status(state="running", total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                 epoch=step // steps_per_epoch, step=step, params_g=count_params(G), params_d=count_params(D))

    G_copy: nn.Module | None = None

    def sampler() -> nn.Module:
        """The generator samples come from: the EMA (or a copy of the live G), with BatchNorm
        statistics of its own, exactly as `checkpoint.load_generator` rebuilds it."""
        nonlocal G_copy
        if G_ema is not None:
            S = G_ema
        else:
            G_copy = G_copy or copy.deepcopy(G).requires_grad_(False)
            G_copy.load_state_dict(G.state_dict())
            S = G_copy
        recalibrate_bn(S, device)
        return S

    @torch.no_grad()
    def draw_fixed() -> torch.Tensor:
        S = sampler()
        was = S.training
        S.eval()
        out = S(z_fixed).float()
        S.train(was)
        return out

    def save_train_checkpoint(path: Path) -> None:
        if not dist.main:
            return
        ckpt.save_checkpoint({
            "kind": "train", "config": cfg.to_dict(), "step": step, "epoch": step // steps_per_epoch,
            "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict() if G_ema is not None else None,
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "sched_g": sched_g.state_dict() if sched_g else None, "sched_d": sched_d.state_dict() if sched_d else None,
            "best": dict(best), "eval": best_summary(),
            "info": {"device": str(device), "world_size": dist.world, "data": data.source,
                     "fingerprint": data.fingerprint, "train_images": len(train_idx),
                     "train_seconds": round(seconds_before + time.time() - t_begin, 1)},
        }, path)

    def best_summary() -> dict[str, Any]:
        ev = [e for e in read_jsonl(run / "evals.jsonl") if e.get("metric") == cfg.eval_metric] if dist.main else []
        return min(ev, key=lambda e: e["value"]) if ev else {}

    def prune_epoch_checkpoints() -> None:
        if cfg.keep_last <= 0:
            return
        for p in sorted(ckdir.glob("epoch_*.pt"))[:-cfg.keep_last]:
            p.unlink(missing_ok=True)

    def event(kind: str, **kw: Any) -> None:
        if dist.main:
            append_jsonl(run / "events.jsonl", {"time": time.time(), "step": step, "epoch": step // steps_per_epoch, "event": kind, **kw})

    bar = None
    show_bar = progress if progress is not None else sys.stderr.isatty()
    if dist.main and show_bar:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True)

    t_status = t_ckpt = time.time()
    speed_t, speed_n, img_s = time.time(), 0, 0.0
    acc: dict[str, list[float]] = {}
    collapsed_rows = 0
    rollbacks = 0
    final_state = "finished"
    nets = Nets(G, D, G_train, D_train, opt_g, opt_d, autocast)

    G.train()
    D.train()
    while step < total_steps:
        epoch = step // steps_per_epoch
        g = torch.Generator(device=device).manual_seed(_mix(cfg.seed, step, dist.rank))
        real = real_batch(data.images, train_idx, cfg, step, steps_per_epoch, dist, device, classic_aug, g, mem)
        z = torch.randn(local_bs, cfg.z_dim, device=device, generator=g)
        row = train_step(nets, cfg, real, z, g, step, dist)
        if G_ema is not None and not math.isnan(row["loss_G"]):
            ema_update(G_ema, G, ema_decay(cfg, step))
        step += 1
        speed_n += local_bs * dist.world

        for k, v in row.items():
            if not math.isnan(v):
                acc.setdefault(k, []).append(v)
        if not all(math.isfinite(v) for v in row.values() if not math.isnan(v)):
            raise TrainingError(f"losses became non-finite at step {step} ({row}); lower the learning rates "
                                f"(--lr-g/--lr-d) or resume from an earlier checkpoint")

        now = time.time()
        if dist.main and (step % cfg.log_every == 0 or step == total_steps):
            dt = max(now - speed_t, 1e-9)
            img_s = speed_n / dt
            speed_t, speed_n = now, 0
            m = {k: float(np.mean(v)) for k, v in acc.items()}
            acc = {}
            out = {"step": step, "epoch": step / steps_per_epoch, **m, "lr_G": opt_g.param_groups[0]["lr"],
                   "lr_D": opt_d.param_groups[0]["lr"], "images_per_s": img_s, "time": now}
            # Collapse from the losses: D wins completely while G's loss explodes.
            if m.get("loss_D", 1.0) < 1e-3 and m.get("loss_G", 0.0) > 10 and cfg.loss != "wgan-gp":
                collapsed_rows += 1
            else:
                collapsed_rows = 0
            if collapsed_rows >= 3:
                out["collapse"] = "losses"
            append_jsonl(run / "metrics.jsonl", out)
            if tb is not None:
                for k, v in out.items():
                    if k not in ("step", "time", "collapse"):
                        tb.add_scalar(k, v, step)
            if bar is not None:
                bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", D=f"{m.get('loss_D', 0):.3f}",
                                G=f"{m.get('loss_G', 0):.3f}", img_s=f"{img_s:.0f}")
            elif step % (cfg.log_every * 10) == 0 or step == cfg.log_every:
                log.info("step %d/%d epoch %d loss_D %.4f loss_G %.4f D(x) %.3f D(G(z)) %.3f %.1f img/s", step, total_steps,
                         epoch + 1, m.get("loss_D", float("nan")), m.get("loss_G", float("nan")), m.get("D_x", float("nan")),
                         m.get("D_G_z", float("nan")), img_s)
        if bar is not None:
            bar.update(1)

        collapse_reason = "losses" if collapsed_rows >= 3 else None
        out_of_time = bool(cfg.minutes) and now - t_budget >= cfg.minutes * 60
        epoch_end = step % steps_per_epoch == 0
        if dist.main and (step % cfg.latest_every == 0 or epoch_end or step == total_steps or out_of_time):
            imgs = draw_fixed()
            _save_grid(imgs, samples / "latest.png")
            if (epoch_end and (step // steps_per_epoch) % cfg.sample_every == 0) or step == total_steps or out_of_time:
                _save_grid(imgs, samples / f"epoch_{int(math.ceil(step / steps_per_epoch)):04d}.png")
                if tb is not None:
                    tb.add_images("samples", imgs[:16] * 0.5 + 0.5, step)
            ratio = spread(imgs) / max(real_spread, 1e-6)
            if step >= 20 and ratio < cfg.collapse_spread:
                collapse_reason = collapse_reason or f"samples alike (spread {ratio:.3f} of real)"

        # Every rank must agree on stopping and collapse (they take part in the same collectives).
        flags = torch.tensor([float(stop.flag), float(collapse_reason is not None), float(out_of_time)])
        if dist.world > 1:
            torchdist.all_reduce(flags, op=torchdist.ReduceOp.MAX)
        if flags[2] > 0 and not flags[1] > 0:  # the wall-clock budget: end as at the last epoch
            if cfg.eval_kimg and dist.main:
                improved, _ = _evaluate(cfg, run, data, sampler(), device, step / steps_per_epoch, step, best, log)
                if improved:
                    save_train_checkpoint(ckdir / "best.pt")
            save_train_checkpoint(ckdir / "last.pt")
            event("time_budget", minutes=cfg.minutes)
            log.info("time budget of %g min reached at step %d: saved checkpoints/last.pt", cfg.minutes, step)
            final_state = "finished"
            break
        if flags[0] > 0:
            save_train_checkpoint(ckdir / "last.pt")
            final_state = "stopped"
            event("stopped", reason="signal")
            log.info("stop requested: saved checkpoints/last.pt at step %d", step)
            break

        if flags[1] > 0:
            event("collapse", reason=collapse_reason or "another rank", action=cfg.collapse_action)
            if dist.main:
                append_jsonl(run / "metrics.jsonl", {"step": step, "epoch": step / steps_per_epoch, "collapse": collapse_reason, "time": now})
                log.warning("collapse detected at step %d: %s -> %s", step, collapse_reason, cfg.collapse_action)
            collapsed_rows = 0
            if cfg.collapse_action == "stop":
                final_state = "collapsed"
                write_status(state="collapsed", step=step, last_error=f"mode collapse at step {step}: {collapse_reason}")
                break
            if cfg.collapse_action == "rollback":
                rollbacks += 1
                if rollbacks > MAX_ROLLBACKS:
                    final_state = "collapsed"
                    write_status(state="collapsed", step=step,
                                 last_error=f"mode collapse at step {step} after {MAX_ROLLBACKS} rollbacks: {collapse_reason}")
                    break
                last = ckdir / "last.pt"
                if last.exists():
                    load_train_state(last)
                for o in (opt_g, opt_d):  # the checkpoint restored its lr: halve once per rollback so far
                    for pg in o.param_groups:
                        pg["lr"] *= 0.5 ** rollbacks
                event("rollback", to_step=step, lr_G=opt_g.param_groups[0]["lr"], lr_D=opt_d.param_groups[0]["lr"])
                continue
        kimg_due = bool(cfg.eval_kimg) and dist.main and (
            (step * cfg.batch_size) // int(cfg.eval_kimg * 1000) > ((step - 1) * cfg.batch_size) // int(cfg.eval_kimg * 1000))
        if kimg_due:
            improved, patience_out = _evaluate(cfg, run, data, sampler(), device, step / steps_per_epoch, step, best, log)
            if improved:
                save_train_checkpoint(ckdir / "best.pt")
            if patience_out:
                event("early_stop", patience=cfg.patience, best_epoch=best["epoch"])
                stop.flag = True
        if epoch_end:
            ep = step // steps_per_epoch
            for s in (sched_g, sched_d):
                if s is not None:
                    s.step()
            if cfg.eval_every and ep % cfg.eval_every == 0 and dist.main:
                improved, patience_out = _evaluate(cfg, run, data, sampler(), device, ep, step, best, log)
                if improved:
                    save_train_checkpoint(ckdir / "best.pt")
                if patience_out:
                    event("early_stop", patience=cfg.patience, best_epoch=best["epoch"])
                    stop.flag = True
            if ep % cfg.checkpoint_every == 0:
                save_train_checkpoint(ckdir / f"epoch_{ep:04d}.pt")
                if dist.main:
                    prune_epoch_checkpoints()
            save_train_checkpoint(ckdir / "last.pt")
            t_ckpt = time.time()
            if stop.flag and cfg.patience:
                final_state = "finished"
                log.info("early stop: no improvement in %d evaluations (best epoch %s)", cfg.patience, best["epoch"])
                break
        elif now - t_ckpt > cfg.checkpoint_minutes * 60:
            save_train_checkpoint(ckdir / "last.pt")
            t_ckpt = time.time()

        if now - t_status > 2 or step == total_steps:
            t_status = now
            left = total_steps - step
            write_status(step=step, epoch=step // steps_per_epoch, images_per_s=img_s,
                         eta_s=left * cfg.batch_size / img_s if img_s > 0 else None)

    if final_state == "finished" and (step % steps_per_epoch != 0 or not (ckdir / "last.pt").exists()):
        save_train_checkpoint(ckdir / "last.pt")  # a --max-steps end mid-epoch
    if dist.world > 1:
        # Data parallelism must keep every rank's weights identical; check it and say so.
        diff = torch.zeros(())
        for p in list(G.parameters()) + list(D.parameters()):
            ref = p.detach().clone()
            torchdist.broadcast(ref, 0)
            diff = torch.maximum(diff, (p.detach() - ref).abs().max().cpu())
        diff = diff.to(device)
        torchdist.all_reduce(diff, op=torchdist.ReduceOp.MAX)
        write_status(ranks_max_param_diff=float(diff))
        log.info("ranks in sync: max parameter difference across %d processes %.3g", dist.world, float(diff))
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
    write_status(step=step, epoch=step // steps_per_epoch, eta_s=0 if final_state == "finished" else None)
    return final_state


def _evaluate(cfg: TrainConfig, run: Path, data, G: nn.Module, device: torch.device, epoch: int, step: int,
              best: dict[str, Any], log: logging.Logger) -> tuple[bool, bool]:
    """Evaluate on the validation split; returns (improved, patience exhausted)."""
    from . import metrics
    val = data.split_images("val")
    n = min(cfg.eval_n, len(val))
    if n < 2:
        log.warning("evaluation skipped: the validation split has %d images", len(val))
        return False, False
    reference = f"val split of {data.source} ({data.fingerprint[:8]}) @{data.size}px"
    results = []
    for metric in dict.fromkeys([cfg.eval_metric, "swd"]):
        try:
            r = metrics.evaluate(G, val[:n], metric=metric, n=n, seed=0, device=str(device), reference=reference,
                                 stats_key=f"{data.fingerprint}_{data.size}_val")
        except metrics.InceptionWeightsMissing as e:
            log.warning("FID skipped: %s", e)
            continue
        row = {"epoch": epoch, "step": step, "kimg": step * cfg.batch_size / 1000, "time": time.time(), **r.to_dict()}
        append_jsonl(run / "evals.jsonl", row)
        results.append(r)
        log.info("eval epoch %g (%.0f kimg): %s = %.3f (n=%d)", round(epoch, 2), row["kimg"], r.metric, r.value, r.n)
    main = next((r for r in results if r.metric == cfg.eval_metric), None)
    if main is None:
        return False, False
    if best["value"] is None or main.value < best["value"]:
        best.update(value=main.value, epoch=epoch, bad_evals=0)
        return True, False
    best["bad_evals"] = int(best.get("bad_evals", 0)) + 1
    return False, bool(cfg.patience) and best["bad_evals"] >= cfg.patience
