"""Before a run starts: how long will an epoch take here?

    plan = preflight(cfg).data            # images, splits, steps per epoch (animegan.preflight)
    speed = recorded_speed(cfg)           # images/s earlier runs with the same settings reached here
    speed = speed or time_steps(cfg)      # else a few timed steps on a synthetic batch (seconds)
    seconds = speed.epoch_seconds(plan)

`recorded_speed` reads the run directories (config.json and the status's `images_per_s`: the
trainer's smoothed number); `time_steps` builds the networks (`step.build_nets`) and times
`step.train_step` on random images, eager, on the device the settings pick. This module never
imports streamlit; torch only inside `time_steps`.
"""
from __future__ import annotations

import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .preflight import DataPlan, total_steps

# The settings that change how fast a step runs: runs that agree on all of them (on the same
# machine and kind of device) give each other's speed.
SPEED_FIELDS = ("model", "img_size", "z_dim", "ngf", "ndf", "batch_size", "loss", "n_critic", "diffaug",
                "r1_gamma", "r2_gamma", "r1_every", "compile", "channels_last", "amp", "threads")
RECORDED_RUNS = 5          # the newest matching runs whose speeds are combined (median)


@dataclass
class Speed:
    """Images per second of training steps, and where the number comes from."""
    images_per_s: float
    source: str                # "recorded" (earlier runs) or "measured" (timed steps)
    detail: str
    timed_at: float | None = None  # when the steps were timed (measured)

    def epoch_seconds(self, plan: DataPlan) -> float | None:
        return plan.epoch_images / self.images_per_s if self.images_per_s > 0 else None

    def run_seconds(self, cfg: TrainConfig, plan: DataPlan) -> float | None:
        """The whole run's steps (`preflight.total_steps`: epochs, capped by max_steps) at this speed."""
        steps = total_steps(cfg, plan.steps_per_epoch)
        return steps * plan.batch_size / self.images_per_s if self.images_per_s > 0 else None


# -- speed ---------------------------------------------------------------------------------------

def device_type(pref: str = "auto") -> str:
    """The kind of device ("cpu", "cuda", "mps") the setting `pref` trains on here."""
    from .devices import pick_device
    return pick_device(pref).type


def speed_key(cfg: TrainConfig, device: str) -> tuple:
    """What a speed depends on: the SPEED_FIELDS and the kind of device."""
    return (device, *(str(getattr(cfg, f)) for f in SPEED_FIELDS))


def recorded_speed(cfg: TrainConfig, device: str | None = None, root: str | Path | None = None) -> Speed | None:
    """The speed earlier runs with the same SPEED_FIELDS reached on this machine and kind of
    device (one process): the median of the newest RECORDED_RUNS trainer values (status.json
    `images_per_s`, the trainer's own smoothed number); None when no run matches."""
    from .rundir import list_runs
    device = device or device_type(cfg.device)
    want = speed_key(cfg, device)
    host = socket.gethostname()
    found: list[tuple[str, float]] = []
    for run in list_runs(root):
        status = run.status()
        try:
            other = TrainConfig.from_dict(run.config())
        except (TypeError, ValueError):
            continue
        ips, ran_on = status.images_per_s, status.device.split(":")[0]
        if (ips <= 0 or status.world_size != 1 or (status.host or host) != host
                or speed_key(other, ran_on) != want):
            continue
        found.append((run.name, ips))
        if len(found) == RECORDED_RUNS:
            break
    if not found:
        return None
    names = ", ".join(n for n, _ in found)
    many = f"the median of {len(found)} earlier runs" if len(found) > 1 else "an earlier run"
    return Speed(statistics.median(v for _, v in found), "recorded",
                 f"{many} with these settings on this {device.upper() if device != 'cpu' else 'CPU'} ({names})")


def time_steps(cfg: TrainConfig, steps: int = 2, warmup: int = 1) -> Speed:
    """Time a few training steps of `cfg` on a random batch (eager: torch.compile is left off,
    it would first spend step.COMPILE_SECONDS compiling; `as_the_run_will_train` scales for it),
    with the run's CPU threads (`threads`). At least n_critic steps are timed, so G's update
    counts as often as in training. Seconds on a CPU; raises ConfigError for a device not here."""
    import torch

    from .devices import pick_device
    from .step import build_nets, step_generator, step_options, train_step
    dev = pick_device(cfg.device)
    opts = step_options(cfg, dev, 0)
    opts = type(opts)(compile=False, channels_last=opts.channels_last, amp=opts.amp)
    nets = build_nets(cfg, dev, options=opts)
    b, s = int(cfg.batch_size), int(cfg.img_size)
    g = torch.Generator(device=dev).manual_seed(0)
    real = (torch.rand(b, 3, s, s, device=dev, generator=g) * 2 - 1).contiguous(memory_format=opts.memory_format)
    z = torch.randn(b, cfg.z_dim, device=dev, generator=g)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    n = max(int(steps), int(cfg.n_critic))
    times: list[float] = []
    threads_before = torch.get_num_threads()
    if cfg.threads > 0:  # as the trainer sets them
        torch.set_num_threads(int(cfg.threads))
    try:
        for i in range(int(warmup) + n):
            sync()
            t0 = time.perf_counter()
            train_step(nets, cfg, real, z, step_generator(cfg.seed, i, 0, dev), i)  # its return value is not used
            sync()
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads_before)
    per_step = sum(times[int(warmup):]) / n
    where = dev.type.upper() if dev.type != "cpu" else "CPU"
    return Speed(b / per_step, "measured", f"{n} steps of batch {b} timed on this {where}, eager, "
                                           f"{per_step:.2f} s a step", timed_at=time.time())


def compile_plan(cfg: TrainConfig, plan: DataPlan, device: str) -> tuple[bool, str]:
    """Whether the trainer would torch.compile this run here, and why (`step.compile_decision`)."""
    from .step import compile_decision
    return compile_decision(cfg, device, total_steps(cfg, plan.steps_per_epoch))


def will_compile(cfg: TrainConfig, plan: DataPlan, device: str) -> bool:
    """Whether the trainer would torch.compile this run here (`step.compile_decision`)."""
    return compile_plan(cfg, plan, device)[0]


def as_the_run_will_train(found: Speed, compiles: bool) -> Speed:
    """A speed timed eagerly (`time_steps`) as a compiled run will go: COMPILE_SPEEDUP faster.
    A recorded speed is already what such a run reached."""
    if found.source != "measured" or not compiles:
        return found
    from .step import COMPILE_SPEEDUP
    return Speed(found.images_per_s * COMPILE_SPEEDUP, found.source,
                 found.detail + f", ×{COMPILE_SPEEDUP:.2f} for torch.compile")


def estimate_seconds(cfg: TrainConfig, plan: DataPlan, found: Speed, compiles: bool) -> float | None:
    """The whole run's wall-clock seconds: its steps at this speed, compiling on top, a time
    budget capping the training part (the budget counts training time, not compiling)."""
    from .step import COMPILE_SECONDS
    train_s = found.run_seconds(cfg, plan)
    if train_s is None:
        return None
    if cfg.minutes:
        train_s = min(train_s, cfg.minutes * 60)
    return train_s + (COMPILE_SECONDS if compiles else 0.0)

