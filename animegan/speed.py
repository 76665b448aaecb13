"""Before a run starts: can the data feed these settings, and how long will an epoch take here?

    plan = data_plan(cfg)                 # images, splits, steps per epoch; DataFitError when impossible
    speed = recorded_speed(cfg)           # images/s earlier runs with the same settings reached here
    speed = speed or time_steps(cfg)      # else a few timed steps on a synthetic batch (seconds)
    seconds = plan.epoch_images / speed.images_per_s

`data_plan` reads no pixels beyond a few image headers: the number of images comes from the
source's cache when it was prepared at this size (exact), else from its listing (image files,
an upper bound: some may be skipped or duplicates). `recorded_speed` reads the run directories
(config.json and status.json: the trainer's smoothed `images_per_s`); `time_steps` builds the
networks (`step.build_nets`) and times `step.train_step` on random images, eager, on the device
the settings pick. This module never imports streamlit; torch only inside `time_steps`.
"""
from __future__ import annotations

import io
import socket
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .config import IMAGE_SIZES, TrainConfig

# The settings that change how fast a step runs: runs that agree on all of them (on the same
# machine and kind of device) give each other's speed.
SPEED_FIELDS = ("model", "img_size", "z_dim", "ngf", "ndf", "batch_size", "loss", "n_critic", "diffaug",
                "r1_gamma", "r2_gamma", "r1_every", "compile", "channels_last", "amp", "threads")
SIDE_SAMPLES = 16          # image headers read to learn how large a source's images are
RECORDED_RUNS = 5          # the newest matching runs whose speeds are combined (median)


class DataFitError(ValueError):
    """Settings this data cannot train with (a batch larger than the training split, an image
    size larger than the images); the message says what to change."""


@dataclass
class DataPlan:
    """What training `cfg` on its source would see, per epoch."""
    label: str                 # "folder /x", "zip /y.zip", "the built-in synthetic set"
    images: int                # usable images (exact) or image files listed (an upper bound)
    exact: bool
    train: int
    val: int
    test: int
    batch_size: int
    largest_side: int | None   # the largest square side among the sampled images (None: unknown)
    sampled: int = 0           # image headers read for largest_side

    @property
    def steps_per_epoch(self) -> int:
        return self.train // self.batch_size

    @property
    def epoch_images(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def describe(self) -> str:
        """"1,234 training images (of 1,400 usable; 83 validation, 83 test): 19 steps of 64"."""
        what = "usable" if self.exact else "image files, before validation"
        return (f"{self.train:,} training images (of {self.images:,} {what}; {self.val:,} validation, "
                f"{self.test:,} test): {self.steps_per_epoch:,} steps of {self.batch_size:,} per epoch")


@dataclass
class Speed:
    """Images per second of training steps, and where the number comes from."""
    images_per_s: float
    source: str                # "recorded" (earlier runs) or "measured" (timed steps)
    detail: str

    def epoch_seconds(self, plan: DataPlan) -> float | None:
        return plan.epoch_images / self.images_per_s if self.images_per_s > 0 else None


# -- the data ------------------------------------------------------------------------------------

def _largest_side(kind: str, path: Path, keys: list) -> tuple[int | None, int]:
    """The largest square side (the shorter side: images are centre-cropped) among up to
    SIDE_SAMPLES images spread over the listing, from their headers; (None, 0) when none opens."""
    from PIL import Image

    from .data.sources import MemberReader
    if not keys:
        return None, 0
    k = min(SIDE_SAMPLES, len(keys))
    picks = [keys[round(i * (len(keys) - 1) / max(k - 1, 1))] for i in range(k)]
    sides: list[int] = []
    try:
        with MemberReader(kind, path) as reader:
            for key in picks:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        with Image.open(io.BytesIO(reader.read(key))) as im:
                            sides.append(min(im.size))
                except Exception:  # noqa: BLE001  # a broken file: prepare skips and reports it
                    continue
    except Exception:  # noqa: BLE001  # an unreadable source: data.check_source reports it
        return None, 0
    return (max(sides) if sides else None), len(sides)


def data_plan(cfg: TrainConfig) -> DataPlan:
    """The images `cfg.data` gives at `cfg.img_size`, its splits and steps per epoch.

    Raises data.DataError for a source that cannot be used (missing, no images) and DataFitError
    when these settings cannot train on it; both say what to do."""
    from . import data, synth
    from .data.cache import cache_files, open_cache
    from .data.sources import fingerprint_entries, list_entries, resolve
    source = str(cfg.data).strip()
    if data.is_synthetic(source):
        # The trainer renders (or finds) the default-sized set: every face is usable, drawn at SYNTH_SIZE.
        label, n, exact, side, sampled = "the built-in synthetic set", synth.DEFAULT_N, True, synth.SYNTH_SIZE, 1
    else:
        src = resolve(source)
        entries, other = list_entries(src)
        if not entries:
            data.check_source(source)  # raises its "No images in ..." message
        label = f"{'zip' if src.kind == 'zip' else 'folder'} {src.path}"
        npy, meta_path = cache_files(src, cfg.img_size)  # data.find_cache without listing the source again
        meta, _, _ = open_cache(npy, meta_path, fingerprint_entries(src.kind, entries), cfg.img_size)
        n, exact = (len(meta.get("names") or []), True) if meta is not None else (len(entries), False)
        side, sampled = _largest_side(src.kind, src.path, [e.key for e in entries])
    val, test = data.split_sizes(n, cfg.val_size, cfg.test_size)
    plan = DataPlan(label, n, exact, n - val - test, val, test, int(cfg.batch_size), side, sampled)
    check_fit(cfg, plan)
    return plan


def check_fit(cfg: TrainConfig, plan: DataPlan) -> None:
    """DataFitError when the data cannot give what the settings ask for."""
    if plan.train < cfg.batch_size:
        held = f" minus {plan.val:,} validation and {plan.test:,} test images" if plan.val or plan.test else ""
        most = plan.train if plan.train >= 2 else None
        fix = (f"lower the batch size to {most:,} or less, or add images" if most
               else "add images (training needs at least 2 per batch)")
        kind = "usable image" if plan.exact else "image file"
        raise DataFitError(f"Batch size {cfg.batch_size:,} is larger than the training split of {plan.label}: "
                           f"{_n(plan.train, 'image')} ({_n(plan.images, kind)}{held}). To train on it, {fix}.")
    if plan.largest_side is not None and plan.largest_side < cfg.img_size:
        fits = [s for s in IMAGE_SIZES if s <= plan.largest_side]
        fix = f"choose image size {fits[-1]} or less, or use larger images" if fits else "use larger images"
        raise DataFitError(f"Image size {cfg.img_size} px is larger than the images of {plan.label}: the largest of "
                           f"{plan.sampled} looked at is {plan.largest_side} px (square side), so every face would be "
                           f"blown up and blurred. To train on it, {fix}.")


def _n(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


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
        st = run.status()
        try:
            ips = float(st.get("images_per_s") or 0)
            other = TrainConfig.from_dict(run.config())
        except (TypeError, ValueError):
            continue
        ran_on = str(st.get("device") or "").split(":")[0]
        if (ips <= 0 or int(st.get("world_size") or 1) != 1 or st.get("host", host) != host
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
    it would first spend ~40 s compiling). At least n_critic steps are timed, so G's update
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
    for i in range(int(warmup) + n):
        sync()
        t0 = time.perf_counter()
        train_step(nets, cfg, real, z, step_generator(cfg.seed, i, 0, dev), i)  # its return value is not used
        sync()
        times.append(time.perf_counter() - t0)
    per_step = sum(times[int(warmup):]) / n
    where = dev.type.upper() if dev.type != "cpu" else "CPU"
    return Speed(b / per_step, "measured", f"{n} steps of batch {b} timed on this {where} just now, eager, "
                                           f"{per_step:.2f} s a step")


def total_steps(cfg: TrainConfig, plan: DataPlan) -> int:
    """The steps the run would take (epochs × steps per epoch, capped by max_steps)."""
    total = plan.steps_per_epoch * int(cfg.epochs)
    return min(total, int(cfg.max_steps)) if cfg.max_steps else total


def will_compile(cfg: TrainConfig, plan: DataPlan, device: str) -> bool:
    """Whether the trainer would torch.compile this run here (`step.compile_enabled`)."""
    import torch

    from .step import compile_enabled
    return compile_enabled(cfg, torch.device(device), total_steps(cfg, plan))

