"""The training loop: one process, or one per GPU under torchrun.

`train()` reads from top to bottom as a run goes: settings, run directory, data, build,
restore, then per step: step, log, sample, evaluation, the stop decision, checkpoints, status;
then the end. The settings are checked by `preflight` (as every entry point does), and the steps
of the run come from `preflight.step_plan` once the data is prepared. The step itself is
`step.train_step`; devices and the torchrun collectives are `devices`; a request to stop is
`signals.StopRequested`; every file of the run is written through `rundir.RunWriter` (nobody else
writes there); evaluations are `evaluation.evaluate_on_split`.

Randomness is derived from (seed, epoch) for the data order and (seed, step, rank) for noise and
augmentation (`step.stream_seed`), so a resumed run draws exactly what an uninterrupted one
would: restoring the step number restores the random state.

Several processes (torchrun): each rank reads its own shard of every global batch, gradients are
averaged across ranks after every backward pass, BatchNorm is synchronised on CUDA, and only
rank 0 writes files (the other ranks' RunWriter is disabled). Every reason to stop (a signal, a
collapse, an early stop, the time budget) is agreed by all ranks in one collective per step, so
every rank leaves the loop at the same step; a rank that is lost fails the others (`RankLost`).
"""
from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from . import checkpoint as ckpt
from .augment import ClassicAugment
from .config import END_STATES, STOP_REASONS, ConfigError, TrainConfig
from .devices import (
    Dist,
    RankLost,
    any_rank,
    barrier,
    broadcast_module,
    close_distributed,
    init_distributed,
    launched_processes,
    max_param_diff,
    pick_device,
)
from .models import count_params
from .preflight import preflight, step_plan
from .rundir import Run, RunDirError, RunWriter
from .signals import StopRequested
from .step import (
    Nets,
    StepOptions,
    TrainImages,
    build_nets,
    ema_decay,
    ema_update,
    real_batch,
    step_generator,
    step_options,
    train_step,
)

if TYPE_CHECKING:
    from .data import PreparedData


log = logging.getLogger("animegan.train")
MAX_ROLLBACKS = 3    # then the run stops as collapsed
COLLAPSE_ROWS = 3    # metrics rows in a row where D wins completely and G's loss explodes = collapse
COLLAPSE_MIN_STEP = 20  # sample spread is not judged before this step


class TrainingError(ConfigError):
    """Found while training, not in the settings alone (a training split smaller than a batch,
    losses that became non-finite, a lost rank); the message says what to change."""


@dataclass
class RunSetup:
    """What the run is, fixed once the data is known."""
    cfg: TrainConfig
    dist: Dist
    device: torch.device
    data: PreparedData
    train_idx: np.ndarray
    train_images: TrainImages  # the split as batches are read from it (on the GPU on CUDA)
    steps_per_epoch: int
    total_steps: int
    local_batch: int          # this rank's share of a batch
    options: StepOptions
    classic_aug: ClassicAugment
    z_fixed: torch.Tensor     # the noise of every sample grid
    real_spread: float        # `spread` of real images: the yardstick of collapse

    def epoch(self, step: int) -> int:
        """Epochs completed after `step` steps."""
        return step // self.steps_per_epoch


@dataclass
class LoopState:
    """What the loop changes as it goes."""
    step: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"value": None, "epoch": None, "bad_evals": 0})
    seconds_before: float = 0.0                        # training time of the processes before this one
    t_begin: float = field(default_factory=time.time)  # this process's share of it starts (or restarts) here
    t_budget: float = field(default_factory=time.time)  # --minutes counts from here
    t_status: float = 0.0
    t_ckpt: float = 0.0
    speed_t: float = 0.0
    speed_n: int = 0
    img_s: float = 0.0        # images/s over the last metrics row's window
    img_s_smooth: float = 0.0  # its moving average: what status.json (speed, ETA) shows
    compiling: bool = False   # torch.compile has not finished its first step yet
    acc: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # the step scalars since the last row, on the device
    collapsed_rows: int = 0
    rollbacks: int = 0


# -- the loop ------------------------------------------------------------------------------------

def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool | None = None) -> str:
    """Train into run directory `out`; returns the final state (finished, stopped or collapsed).

    Raises ConfigError for settings, ResumeError or CheckpointError for a resume that is refused
    (before anything is written), TrainingError for what only training finds out."""
    # -- settings, processes, the run directory
    preflight(cfg, launched_processes(), data=False, require_fid=False)  # the data is planned once prepared
    dist = init_distributed(cfg.device)
    device = pick_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    run = RunWriter(out, enabled=dist.main)
    resume_from = _resume_point(cfg, run.path, dist, device) if resume else None
    run.open(cfg.to_dict(), _first_status(cfg, device, dist, resume_from), resume)
    if dist.main:
        _setup_logging(run.path)
    with _outcome_recorded(run, dist), StopRequested() as stop:
        # -- data: rank 0 builds the cache, the others then read it
        data = _prepare_data(cfg, dist, progress)
        if any_rank([stop.flag], dist, patient=True)[0]:  # asked to stop meanwhile: nothing trained or saved
            return _record_end(run, dist, "stopped", "signal", int(resume_from["step"]) if resume_from else 0)
        setup = _setup(cfg, dist, device, data)

        # -- build: networks, optimisers, schedules, EMA
        nets = build_nets(cfg, device, dist, setup.options)
        loop = LoopState()

        # -- restore: the resumed run's last.pt (loaded once, above) or the checkpoint to fine-tune
        _restore_or_init(run, nets, loop, resume_from, cfg, device)
        resume_from = None  # its tensors are in the networks now
        broadcast_module(nets.G, dist)
        broadcast_module(nets.D, dist)
        bar = _start(run, setup, nets, loop, progress)

        reason = None
        while loop.step < setup.total_steps:
            # -- step: this step's random stream, real batch and noise; D (and G) updated; EMA; the
            # schedules at the end of an epoch
            g = step_generator(cfg.seed, loop.step, dist.rank, device)
            real = real_batch(setup.train_images, cfg, loop.step, setup.steps_per_epoch, dist, setup.classic_aug, g,
                              setup.options.memory_format)
            z = torch.randn(setup.local_batch, cfg.z_dim, device=device, generator=g)
            row = train_step(nets, cfg, real, z, g, loop.step, dist)
            if nets.G_ema is not None and "loss_G" in row:
                ema_update(nets.G_ema, nets.G, ema_decay(cfg, loop.step))
            loop.step += 1
            loop.speed_n += setup.local_batch * dist.world
            _accumulate(run, loop, row)
            epoch_end = loop.step % setup.steps_per_epoch == 0
            if epoch_end:
                nets.step_schedules()
            now = time.time()

            # -- log: every log_every steps the scalars come over in one transfer (every rank checks
            # them: a non-finite loss ends the run); a metrics row; D winning outright there = collapse
            if loop.step % cfg.log_every == 0 or loop.step == setup.total_steps:
                means = _gather(loop, device)
                if dist.main:
                    _log_metrics(run, setup, nets, loop, means, now, bar)
            if bar is not None:
                bar.update(1)
            collapse = "losses" if loop.collapsed_rows >= COLLAPSE_ROWS else None

            # -- sample: the fixed noise's grid; samples all alike = collapse
            out_of_time = bool(cfg.minutes) and now - loop.t_budget >= cfg.minutes * 60
            if dist.main and (loop.step % cfg.latest_every == 0 or epoch_end or loop.step == setup.total_steps or out_of_time):
                alike = _sample(run, setup, nets, loop, epoch_end, out_of_time)
                collapse = collapse or alike

            # -- evaluation (rank 0) every eval_kimg thousand images and every eval_every epochs;
            # `early`: patience ran out. Not when this step stops anyway (a signal, a collapse).
            eval_due = _eval_due(setup, loop.step, epoch_end)
            early = eval_due and dist.main and not stop.flag and collapse is None and _evaluate(run, setup, nets, loop)

            # -- stop: one decision for every reason, agreed by all ranks in this one collective (the
            # others wait here for rank 0's evaluation), so that every rank leaves at this same step
            agreed = any_rank([stop.flag, collapse is not None, early, out_of_time], dist, patient=eval_due)
            if agreed[1] and not agreed[0]:  # a collapse: stop, or roll back to last.pt, or warn
                action = _on_collapse(run, setup, nets, loop, collapse, now)
                if action == "rolled back":
                    continue
                agreed[1] = action == "collapsed"
            reason = next((r for r, yes in zip(STOP_REASONS, agreed, strict=True) if yes), None)
            if reason == "time_budget" and cfg.eval_kimg and dist.main and not eval_due:
                _evaluate(run, setup, nets, loop)  # the budget's end is evaluated, as an epoch's end is

            # -- checkpoints: epoch_NNNN.pt at an epoch's end; last.pt then, every checkpoint_minutes
            # and once as the run ends (a collapse keeps the last good one)
            if reason != "collapse":
                _checkpoints(run, setup, nets, loop, epoch_end, reason is not None or loop.step == setup.total_steps, now)

            # -- status every 2 seconds
            if now - loop.t_status > 2 or loop.step == setup.total_steps:
                loop.t_status = now
                left = setup.total_steps - loop.step
                run.update_status(step=loop.step, epoch=setup.epoch(loop.step), images_per_s=loop.img_s_smooth,
                                  eta_s=left * cfg.batch_size / loop.img_s_smooth if loop.img_s_smooth > 0 else None)
            if reason is not None:
                break

        # -- the end: the reason recorded, the ranks checked in sync, status
        state = _finish(run, setup, nets, loop, reason, bar)
        return _record_end(run, dist, state, reason, loop.step)


# -- settings, processes, the run directory ------------------------------------------------------

def _resume_point(cfg: TrainConfig, path: Path, dist: Dist, device: torch.device) -> dict[str, Any]:
    """The run's checkpoints/last.pt, loaded (once) to continue from. Refused with ResumeError or
    CheckpointError before anything is written, so a refused resume leaves the run as it was."""
    if dist.main:
        Run(path).check_resumable()
    last = path / "checkpoints" / "last.pt"
    ck = ckpt.load_checkpoint(last, map_location=device)
    ckpt.check_compatible(ck, cfg, last)
    return ck


def _first_status(cfg: TrainConfig, device: torch.device, dist: Dist, resume_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """status.json as a run starts; a resumed run keeps showing its checkpoint's step and epoch."""
    step, epoch = (int(resume_from.get("step", 0)), int(resume_from.get("epoch", 0))) if resume_from else (0, 0)
    return {"state": "starting", "pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "updated": time.time(), "epoch": epoch, "epochs": cfg.epochs, "step": step, "total_steps": 0, "images_per_s": 0.0,
            "eta_s": None, "last_error": None, "stop_reason": None, "device": str(device), "world_size": dist.world}


def _setup_logging(run: Path) -> None:
    """The trainer's log lines go to the run's train.log and to stderr."""
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for h in (logging.FileHandler(run / "train.log"), logging.StreamHandler(sys.stderr)):
        h.setFormatter(fmt)
        log.addHandler(h)
    log.propagate = False


@contextmanager
def _outcome_recorded(run: RunWriter, dist: Dist) -> Iterator[None]:
    """A run that raises is marked failed (with the error) in status.json, a lost rank or an unwritable
    run directory in words alone (raised as a TrainingError); the process group is closed either way."""
    try:
        yield
    except BaseException as e:
        lost = isinstance(e, (RankLost, RunDirError))  # errors that are already in words
        msg = str(e) if lost else f"{type(e).__name__}: {e}"
        run.update_status(state="failed", last_error=msg)
        if dist.main:
            log.error("training failed: %s", msg, exc_info=not lost)
        if lost:
            raise TrainingError(msg) from e
        raise
    finally:
        close_distributed(dist)


def _record_end(run: RunWriter, dist: Dist, state: str, reason: str | None, step: int) -> str:
    """The final state and why (status.json) and a line saying so, from every rank under torchrun."""
    run.update_status(state=state, stop_reason=reason)
    line = f"run {run.path.name}: {state}{f' ({reason})' if reason else ''} at step {step}"
    if dist.world > 1:
        line += f" [rank {dist.rank} of {dist.world}]"
    if dist.main:
        log.info(line)
    else:
        print(line, file=sys.stderr, flush=True)
    return state


# -- data, build, restore ------------------------------------------------------------------------

def _prepare_data(cfg: TrainConfig, dist: Dist, progress: bool | None) -> PreparedData:
    """Rank 0 prepares the data (builds the cache: the others wait), then the others read it."""
    from .data import prepare
    kw = dict(val=cfg.val_size, test=cfg.test_size, split_seed=cfg.split_seed)
    data = prepare(cfg.data, cfg.img_size, **kw, progress=bool(progress)) if dist.main else None
    barrier(dist)
    return data if data is not None else prepare(cfg.data, cfg.img_size, **kw)


def _setup(cfg: TrainConfig, dist: Dist, device: torch.device, data: PreparedData) -> RunSetup:
    from .data import to_float
    train_idx = data.splits["train"]
    steps = step_plan(cfg, len(train_idx), dist.world)  # DataFitError: fewer images than one batch
    return RunSetup(cfg, dist, device, data, train_idx, TrainImages(data.images, train_idx, device),
                    steps.steps_per_epoch, steps.total_steps, steps.batch_per_process,
                    step_options(cfg, device, steps.total_steps),
                ClassicAugment(cfg.aug_flip, cfg.aug_brightness, cfg.aug_brightness_strength),
                fixed_noise(cfg).to(device),
                spread(to_float(torch.from_numpy(np.asarray(data.images[train_idx[:256]])))))


def fixed_noise(cfg: TrainConfig) -> torch.Tensor:
    """The noise of every sample grid of a run: image i is latent i of `sample_seed`."""
    from .generate import latents
    return latents(cfg.sample_seed, range(cfg.n_samples), cfg.z_dim)


def spread(images: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across a batch: near 0 when all images are alike."""
    return float(images.float().std(dim=0).mean())


def _restore(nets: Nets, loop: LoopState, ck: dict[str, Any]) -> None:
    """Networks, optimisers, schedules, step and best evaluation as a training checkpoint holds them."""
    nets.load_state(ck)
    loop.step = int(ck["step"])
    loop.best.update(ck.get("best") or {})
    loop.seconds_before, loop.t_begin = float((ck.get("info") or {}).get("train_seconds", 0.0)), time.time()


def _restore_or_init(run: RunWriter, nets: Nets, loop: LoopState, resume_from: dict[str, Any] | None, cfg: TrainConfig,
                     device: torch.device) -> None:
    """The resumed run's last.pt (rows logged after it dropped), or the checkpoint to fine-tune from."""
    if resume_from is not None:
        _restore(nets, loop, resume_from)
        run.drop_rows_after(loop.step)
        log.info("resumed from %s at step %d", run.checkpoints / "last.pt", loop.step)
    elif cfg.init_from:
        _init_from(nets, cfg, device)


def _init_from(nets: Nets, cfg: TrainConfig, device: torch.device) -> None:
    """Fine-tuning: G (and D where the checkpoint has it) from cfg.init_from; optimisers start fresh."""
    ck = ckpt.load_checkpoint(cfg.init_from, map_location=device)
    ckpt.check_compatible(ck, cfg, Path(cfg.init_from))
    g_state = ck.get("G") or ck.get("G_ema")
    nets.G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in g_state.items()})
    if ck.get("D") is not None:
        nets.D.load_state_dict(ck["D"])
    if nets.G_ema is not None:
        nets.G_ema.load_state_dict(nets.G.state_dict())
    log.info("initialised from %s (%s)", cfg.init_from, "G and D" if ck.get("D") is not None else "G only")


def _start(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, progress: bool | None) -> Any:
    """TensorBoard, the run's first log lines, status "running", the clocks; returns the progress
    bar (None when there is none)."""
    cfg, dist, opts = setup.cfg, setup.dist, setup.options
    if cfg.tensorboard and not run.open_tensorboard():
        log.warning("--tensorboard needs the tensorboard package: pip install tensorboard (continuing without)")
    if dist.main:
        log.info("run %s: %s on %s, %d training images (%d steps/epoch, batch %d), G %s params, D %s params, device %s%s",
                 run.path.name, cfg.model, setup.data.source, len(setup.train_idx), setup.steps_per_epoch, cfg.batch_size,
                 f"{count_params(nets.G):,}", f"{count_params(nets.D):,}", setup.device,
                 f" × {dist.world} processes" if dist.world > 1 else "")
        d = opts.describe()
        log.info("step options: torch.compile %s, channels_last %s, autocast %s", d["compile"], d["channels_last"], d["amp"])
    loop.compiling = opts.compile
    run.update_status(state="running", compiling=opts.compile, step_options=opts.describe(), total_steps=setup.total_steps, steps_per_epoch=setup.steps_per_epoch,
                      epoch=setup.epoch(loop.step), step=loop.step, params_g=count_params(nets.G), params_d=count_params(nets.D))
    bar = None
    if dist.main and (progress if progress is not None else sys.stderr.isatty()):
        from tqdm import tqdm
        bar = tqdm(total=setup.total_steps, initial=loop.step, unit="step", dynamic_ncols=True)
    loop.t_status = loop.t_ckpt = loop.speed_t = time.time()
    nets.G.train()
    nets.D.train()
    return bar


# -- per step ------------------------------------------------------------------------------------

def _accumulate(run: RunWriter, loop: LoopState, row: dict[str, torch.Tensor]) -> None:
    """The step's scalars join the next metrics row, kept on the device (no step waits for the
    GPU); after the first step, a compiled run is no longer compiling, and its time budget
    (--minutes: training time) starts now: compiling is not spent from it."""
    for k, v in row.items():
        loop.acc.setdefault(k, []).append(v)
    if loop.compiling:
        loop.compiling = False
        loop.t_budget = time.time()
        run.update_status(compiling=False)


def _gather(loop: LoopState, device: torch.device) -> dict[str, float]:
    """The means of the step scalars since the last metrics row, brought over in one transfer; a
    non-finite one ends the run."""
    keys = list(loop.acc)
    wide = torch.float32 if device.type == "mps" else torch.float64
    values = torch.stack([torch.stack(loop.acc[k]).to(wide).mean() for k in keys]).tolist() if keys else []
    loop.acc = {}
    means = dict(zip(keys, values, strict=True))
    if not all(math.isfinite(v) for v in values):
        raise TrainingError(f"losses became non-finite by step {loop.step} ({means}); lower the learning rates "
                            f"(--lr-g/--lr-d) or resume from an earlier checkpoint")
    return means


def _flush_metrics(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, now: float, bar: Any) -> None:
    """A metrics row for the steps since the last one, when the run ends between rows."""
    if loop.acc:
        means = _gather(loop, setup.device)
        if setup.dist.main:
            _log_metrics(run, setup, nets, loop, means, now, bar)


def _log_metrics(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, m: dict[str, float], now: float, bar: Any) -> None:
    """A metrics.jsonl row of the means `m` since the last one; counts rows where D wins outright."""
    cfg, epoch = setup.cfg, setup.epoch(loop.step - 1)
    loop.img_s = loop.speed_n / max(now - loop.speed_t, 1e-9)
    loop.speed_t, loop.speed_n = now, 0
    # The speed status.json shows (and its ETA): a moving average, so a window that held an
    # evaluation or a checkpoint does not make it jump.
    loop.img_s_smooth = loop.img_s if loop.img_s_smooth == 0 else 0.7 * loop.img_s_smooth + 0.3 * loop.img_s
    row = {"step": loop.step, "epoch": loop.step / setup.steps_per_epoch, **m, "lr_G": nets.opt_g.param_groups[0]["lr"],
           "lr_D": nets.opt_d.param_groups[0]["lr"], "images_per_s": loop.img_s, "time": now}
    # Collapse from the losses: D wins completely while G's loss explodes.
    if m.get("loss_D", 1.0) < 1e-3 and m.get("loss_G", 0.0) > 10 and cfg.loss != "wgan-gp":
        loop.collapsed_rows += 1
    else:
        loop.collapsed_rows = 0
    if loop.collapsed_rows >= COLLAPSE_ROWS:
        row["collapse"] = "losses"
    run.metrics(row)
    if bar is not None:
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", D=f"{m.get('loss_D', 0):.3f}",
                        G=f"{m.get('loss_G', 0):.3f}", img_s=f"{loop.img_s:.0f}")
    elif loop.step % (cfg.log_every * 10) == 0 or loop.step == cfg.log_every:
        nan = float("nan")
        log.info("step %d/%d epoch %d loss_D %.4f loss_G %.4f D(x) %.3f D(G(z)) %.3f %.1f img/s", loop.step,
                 setup.total_steps, epoch + 1, m.get("loss_D", nan), m.get("loss_G", nan), m.get("D_x", nan),
                 m.get("D_G_z", nan), loop.img_s)


def _sample(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, epoch_end: bool, out_of_time: bool) -> str | None:
    """samples/latest.png, and samples/epoch_NNNN.png every sample_every epochs, at the last step
    and when the time budget ends; returns why the samples count as collapsed, or None."""
    cfg = setup.cfg
    with torch.no_grad():
        imgs = nets.sampler(setup.device)(setup.z_fixed).float()
    run.grid(imgs, "latest.png")
    if (epoch_end and setup.epoch(loop.step) % cfg.sample_every == 0) or loop.step == setup.total_steps or out_of_time:
        run.grid(imgs, f"epoch_{math.ceil(loop.step / setup.steps_per_epoch):04d}.png", tensorboard_step=loop.step)
    ratio = spread(imgs) / max(setup.real_spread, 1e-6)
    if loop.step >= COLLAPSE_MIN_STEP and ratio < cfg.collapse_spread:
        return f"samples alike (spread {ratio:.3f} of real)"
    return None


def _eval_due(setup: RunSetup, step: int, epoch_end: bool) -> bool:
    """Is an evaluation due after `step`: its batch crossed a multiple of eval_kimg thousand images,
    or it ended an eval_every-th epoch? (Every rank knows: the others wait for rank 0's.)"""
    cfg, every = setup.cfg, int(setup.cfg.eval_kimg * 1000)
    kimg = bool(cfg.eval_kimg) and (step * cfg.batch_size) // every > ((step - 1) * cfg.batch_size) // every
    return kimg or (epoch_end and bool(cfg.eval_every) and setup.epoch(step) % cfg.eval_every == 0)


def _on_collapse(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, reason: str | None, now: float) -> str:
    """The collapse action; returns "collapsed" (the run ends), "rolled back" or "warned"."""
    cfg = setup.cfg
    _event(run, setup, loop, "collapse", reason=reason or "another rank", action=cfg.collapse_action)
    run.metrics({"step": loop.step, "epoch": loop.step / setup.steps_per_epoch, "collapse": reason, "time": now},
                tensorboard=False)
    if setup.dist.main:
        log.warning("collapse detected at step %d: %s -> %s", loop.step, reason, cfg.collapse_action)
    loop.collapsed_rows = 0
    if cfg.collapse_action == "stop":
        run.update_status(state="collapsed", step=loop.step, last_error=f"mode collapse at step {loop.step}: {reason}")
        return "collapsed"
    if cfg.collapse_action != "rollback":
        return "warned"
    loop.rollbacks += 1
    if loop.rollbacks > MAX_ROLLBACKS:
        run.update_status(state="collapsed", step=loop.step,
                          last_error=f"mode collapse at step {loop.step} after {MAX_ROLLBACKS} rollbacks: {reason}")
        return "collapsed"
    last = run.checkpoints / "last.pt"
    if last.exists():
        _restore(nets, loop, ckpt.load_checkpoint(last, map_location=setup.device))
    nets.scale_lr(0.5 ** loop.rollbacks)  # the checkpoint restored its lr: halve once per rollback so far
    _event(run, setup, loop, "rollback", to_step=loop.step, lr_G=nets.opt_g.param_groups[0]["lr"],
           lr_D=nets.opt_d.param_groups[0]["lr"])
    return "rolled back"


# -- evaluation, checkpoints, the end ------------------------------------------------------------

def _evaluate(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState) -> bool:
    """Evaluate the sampling generator on the validation split (cfg.eval_metric, and SWD too);
    best.pt when it improved. Returns True when `patience` evaluations in a row did not improve."""
    cfg, data = setup.cfg, setup.data
    epoch: float = loop.step / setup.steps_per_epoch
    epoch = int(epoch) if epoch.is_integer() else epoch
    G = nets.sampler(setup.device)
    if min(cfg.eval_n, len(data.splits["val"])) < 2:
        log.warning("evaluation skipped: the validation split has %d images", len(data.splits["val"]))
        return False
    from .metrics.evaluation import evaluate_on_split
    from .metrics.fid import InceptionWeightsMissing
    main = None
    for metric in dict.fromkeys([cfg.eval_metric, "swd"]):
        try:
            r = evaluate_on_split(G, data, "val", metric=metric, n=cfg.eval_n, seed=0, device=str(setup.device))
        except InceptionWeightsMissing as e:
            log.warning("FID skipped: %s", e)
            continue
        row = {"epoch": epoch, "step": loop.step, "kimg": loop.step * cfg.batch_size / 1000, "time": time.time(), **r.to_dict()}
        run.eval(row)
        log.info("eval epoch %g (%.0f kimg): %s = %.3f (n=%d)", round(epoch, 2), row["kimg"], r.metric, r.value, r.n)
        main = r if r.metric == cfg.eval_metric else main
    if main is None:
        return False
    if loop.best["value"] is None or main.value < loop.best["value"]:
        loop.best.update(value=main.value, epoch=epoch, bad_evals=0)
        _save(run, setup, nets, loop, "best.pt")
        return False
    loop.best["bad_evals"] = int(loop.best.get("bad_evals", 0)) + 1
    return bool(cfg.patience) and loop.best["bad_evals"] >= cfg.patience


def _save(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, name: str) -> None:
    """checkpoints/<name>: everything to resume from this step (rank 0 only)."""
    if not run.enabled:
        return
    cfg, dist = setup.cfg, setup.dist
    run.save_checkpoint({
        "kind": "train", "config": cfg.to_dict(), "step": loop.step, "epoch": setup.epoch(loop.step), **nets.state(),
        "best": dict(loop.best), "eval": run.best_eval(cfg.eval_metric), "curve": run.curve(cfg.eval_metric),
        "info": {"device": str(setup.device), "world_size": dist.world, "data": setup.data.source,
                 "fingerprint": setup.data.fingerprint, "train_images": len(setup.train_idx),
                 "train_seconds": round(loop.seconds_before + time.time() - loop.t_begin, 1)},
    }, name)


def _event(run: RunWriter, setup: RunSetup, loop: LoopState, kind: str, **kw: Any) -> None:
    run.event(kind, loop.step, setup.epoch(loop.step), **kw)


def _checkpoints(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, epoch_end: bool, ending: bool, now: float) -> None:
    """epoch_NNNN.pt at the end of every checkpoint_every-th epoch (the last keep_last kept);
    last.pt at the end of an epoch, after checkpoint_minutes, and as the run ends."""
    cfg, ep = setup.cfg, setup.epoch(loop.step)
    if epoch_end and ep % cfg.checkpoint_every == 0:
        _save(run, setup, nets, loop, f"epoch_{ep:04d}.pt")
        run.prune_epoch_checkpoints(cfg.keep_last)
    if epoch_end or ending or now - loop.t_ckpt > cfg.checkpoint_minutes * 60:
        _save(run, setup, nets, loop, "last.pt")
        loop.t_ckpt = time.time()


def _finish(run: RunWriter, setup: RunSetup, nets: Nets, loop: LoopState, reason: str | None, bar: Any) -> str:
    """The end: the last metrics row, why the run stopped (event and log line), the ranks'
    weights checked identical; returns the final state."""
    cfg, dist = setup.cfg, setup.dist
    _flush_metrics(run, setup, nets, loop, time.time(), bar)
    if reason == "signal":
        _event(run, setup, loop, "stopped", reason="signal")
        log.info("stop requested: saved checkpoints/last.pt at step %d", loop.step)
    elif reason == "early_stop":
        _event(run, setup, loop, "early_stop", patience=cfg.patience, best_epoch=loop.best["epoch"])
        log.info("early stop: no improvement in %d evaluations (best epoch %s)", cfg.patience, loop.best["epoch"])
    elif reason == "time_budget":
        _event(run, setup, loop, "time_budget", minutes=cfg.minutes)
        log.info("time budget of %g min reached at step %d: saved checkpoints/last.pt", cfg.minutes, loop.step)
    if dist.world > 1:  # data parallelism must keep every rank's weights identical: checked, and said
        diff = max_param_diff([nets.G, nets.D], dist, setup.device)
        run.update_status(ranks_max_param_diff=diff)
        log.info("ranks in sync: max parameter difference across %d processes %.3g", dist.world, diff)
    if bar is not None:
        bar.close()
    run.close()
    state = END_STATES[reason]
    run.update_status(step=loop.step, epoch=setup.epoch(loop.step), eta_s=0 if state == "finished" else None)
    return state
