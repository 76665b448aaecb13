"""Are these settings valid for this data and these processes, and how many steps is that?

One answer, asked by every entry point before a run trains: the Train page (its estimate and its
Start), the job starter (`jobs.start_training`), and the trainer (`train.train`, which is what the
CLI's `train` runs):

    plan = preflight(cfg, processes=2)   # RunPlan: data, splits, steps, batch per process
    plan.total_steps, plan.data.describe()

A refusal is a `ConfigError` naming its field (`.field`): `str(e)` says it as the command-line
flag, `e.render(name)` in any interface's words (the Train page: the form's label).

Checks, in order: `config.validate` (the settings alone); the batch split over the processes; the
checkpoint to start from; the data source (`data.check_source`); FID's weights when evaluations use
FID (`require_fid`); then, with `data=True`, whether the data can feed the settings (`data_plan`: a
batch larger than the training split, an image size larger than the images). `data_plan` reads no
pixels beyond a few image headers: the number of images comes from the source's cache when it was
prepared at this size (exact), else from its listing (image files, an upper bound).

The steps of a run are computed here alone (`total_steps`): the trainer, once its data is
prepared, asks `step_plan` with the real training split.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from .config import IMAGE_SIZES, ConfigError, TrainConfig, validate

SIDE_SAMPLES = 16          # image headers read to learn how large a source's images are


class DataFitError(ConfigError):
    """Settings this data cannot train with (a batch larger than the training split, an image
    size larger than the images); the message says what to change."""


# -- steps ---------------------------------------------------------------------------------------

def epoch_steps(train_images: int, batch_size: int) -> int:
    """Full batches in one pass over the training split (a last, partial batch is left out)."""
    return int(train_images) // int(batch_size)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The steps a run takes: epochs × steps per epoch, capped by max_steps (0: no cap)."""
    total = int(steps_per_epoch) * int(cfg.epochs)
    return min(total, int(cfg.max_steps)) if cfg.max_steps else total


@dataclass(frozen=True)
class StepPlan:
    """How a training split is walked: batches per epoch, steps in all, each process's share."""
    processes: int
    batch_per_process: int
    steps_per_epoch: int
    total_steps: int


def check_processes(cfg: TrainConfig, processes: int) -> int:
    """Each process's share of a batch; ConfigError when the batch does not split evenly."""
    processes = int(processes)
    if processes < 1:
        raise ConfigError(f"the number of processes must be at least 1 (it is {processes})")
    if cfg.batch_size % processes:
        raise ConfigError(f"{{field}} {cfg.batch_size} must be divisible by the number of processes ({processes})",
                          field="batch_size")
    return cfg.batch_size // processes


def step_plan(cfg: TrainConfig, train_images: int, processes: int = 1) -> StepPlan:
    """The steps of `cfg` on a training split of `train_images` images; DataFitError when the split
    holds less than one batch."""
    share = check_processes(cfg, processes)
    per_epoch = epoch_steps(train_images, cfg.batch_size)
    if per_epoch == 0:
        raise DataFitError(f"{{field}} {cfg.batch_size:,} is larger than the training split: it has only "
                           f"{_n(int(train_images), 'image')}, fewer than one batch; lower it or add images",
                           field="batch_size")
    return StepPlan(int(processes), share, per_epoch, total_steps(cfg, per_epoch))


# -- the data ------------------------------------------------------------------------------------

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
        return epoch_steps(self.train, self.batch_size)

    @property
    def epoch_images(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def describe(self) -> str:
        """"1,234 training images (of 1,400 usable; 83 validation, 83 test): 19 steps of 64"."""
        what = "usable" if self.exact else "image files, before validation"
        return (f"{self.train:,} training images (of {self.images:,} {what}; {self.val:,} validation, "
                f"{self.test:,} test): {self.steps_per_epoch:,} steps of {self.batch_size:,} per epoch")


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
    _check_fit(cfg, plan)
    return plan


def _check_fit(cfg: TrainConfig, plan: DataPlan) -> None:
    """DataFitError when the data cannot give what the settings ask for."""
    if plan.train < cfg.batch_size:
        held = f" minus {plan.val:,} validation and {plan.test:,} test images" if plan.val or plan.test else ""
        most = plan.train if plan.train >= 2 else None
        fix = (f"lower the batch size to {most:,} or less, or add images" if most
               else "add images (training needs at least 2 per batch)")
        kind = "usable image" if plan.exact else "image file"
        raise DataFitError(f"{{field}} {cfg.batch_size:,} is larger than the training split of {plan.label}: "
                           f"{_n(plan.train, 'image')} ({_n(plan.images, kind)}{held}). To train on it, {fix}.",
                           field="batch_size")
    if plan.largest_side is not None and plan.largest_side < cfg.img_size:
        fits = [s for s in IMAGE_SIZES if s <= plan.largest_side]
        fix = f"choose image size {fits[-1]} or less, or use larger images" if fits else "use larger images"
        raise DataFitError(f"{{field}} {cfg.img_size} px is larger than the images of {plan.label}: the largest of "
                           f"{plan.sampled} looked at is {plan.largest_side} px (square side), so every face would be "
                           f"blown up and blurred. To train on it, {fix}.", field="img_size")


def _n(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


# -- the preflight -------------------------------------------------------------------------------

@dataclass
class RunPlan:
    """What a run of these settings will be, as far as it is known before it trains."""
    config: TrainConfig        # the settings, with the data source and init_from as absolute paths
    processes: int
    batch_per_process: int
    data: DataPlan | None      # None when the data was not looked at (`preflight(data=False)`)

    @property
    def steps_per_epoch(self) -> int | None:
        return self.data.steps_per_epoch if self.data is not None else None

    @property
    def total_steps(self) -> int | None:
        return total_steps(self.config, self.data.steps_per_epoch) if self.data is not None else None


def preflight(cfg: TrainConfig, processes: int = 1, *, data: bool = True, require_fid: bool = True) -> RunPlan:
    """Every check of `cfg` before it trains on `processes` processes; the plan, or a ConfigError
    naming the field (DataFitError when the data cannot feed the settings).

    `data=False`: the data source is checked (it exists, holds images) but not planned (the trainer,
    which prepares it next). `require_fid=False`: evaluations with FID and no Inception weights are
    left to the trainer, which skips them with a warning."""
    from .data import DataError, check_source
    validate(cfg)
    share = check_processes(cfg, processes)
    kw: dict[str, str] = {}
    try:
        kw["data"] = check_source(cfg.data)
    except DataError as e:
        raise ConfigError(str(e), field="data") from None
    if cfg.init_from:
        path = Path(cfg.init_from).expanduser()
        if not path.is_file():
            raise ConfigError(f"the checkpoint to start from ({{field}}) does not exist: {cfg.init_from}",
                              field="init_from")
        kw["init_from"] = str(path.resolve())
    if require_fid and cfg.eval_metric == "fid" and (cfg.eval_every or cfg.eval_kimg):
        from .metrics.fid import find_inception_weights, missing_weights_message
        if find_inception_weights() is None:
            raise ConfigError(f"FID cannot be computed for this run's evaluations ({{field}} FID; evaluation is on): "
                              f"{missing_weights_message()}", field="eval_metric")
    absolute = cfg.replace(**kw)
    if not data:
        return RunPlan(absolute, int(processes), share, None)
    try:
        planned = data_plan(absolute)
    except DataError as e:
        raise ConfigError(str(e), field="data") from None
    return RunPlan(absolute, int(processes), share, planned)
