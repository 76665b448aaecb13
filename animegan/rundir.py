"""The run directory: written by the trainer (`RunWriter`), read by everyone else (`Run`).

    runs/<name>/
      config.json         everything needed to rebuild the models and rerun
      status.json         state, progress, speed, pid; rewritten atomically every few seconds
      metrics.jsonl       every K steps: step, epoch, loss_D, loss_G, D(x), D(G(z)), gp, lr, img/s
      evals.jsonl         per evaluation: epoch, step, metric, value, n, reference, levels
      events.jsonl        collapse warnings, rollbacks, early stops
      samples/epoch_NNNN.png, samples/latest.png   grids of the SAME fixed noise every time
      checkpoints/epoch_NNNN.pt, last.pt, best.pt
      train.log

A trainer can die and the app can restart: this module is how both agree on what happened.
`Run.status()` is the one answer to "is this run alive, and in what state?" (`RunStatus`, typed,
its state made effective by what is alive: a run whose process is gone reads "dead", one a live
job is starting reads "starting"); `Run.resume_config()` the one decision to resume. Nobody but
the trainer writes here: the job starter gives the trainer its settings in a file of its own.
Readers ignore a truncated last line of a .jsonl file. A run directory the trainer cannot write
(its disk is full, or it was deleted while the run trained) stops the run with `RunDirError`,
whose message says what happened and what to do; a deleted one is never made again.
Whether a run's process is alive is `processes.pid_alive`.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from . import paths
from .config import LIVE_STATES, STATES, UNKNOWN_STATE, AnimeganError, TrainConfig  # noqa: F401  (STATES: re-exported for readers of run directories)
from .processes import pid_alive

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # what a write says when its disk (or the user's quota) is full


class RunNameError(AnimeganError, ValueError):
    """A run name that cannot name a folder; the message says what to use."""


def safe_run_name(name: str) -> str:
    """A run name is one path component: letters, digits, '.', '_' and '-' only, no '..'."""
    cleaned = _NAME_OK.sub("-", name.strip()).strip(".-")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:80]
    if not cleaned:
        raise RunNameError(f"run name {name!r} has no usable characters; use letters, digits, '-', '_'")
    return cleaned


def write_json_atomic(path: Path, obj: Any, make_folder: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers never see half a file.
    make_folder=False: a missing folder is FileNotFoundError, not made."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def overwrite_json(path: Path, obj: Any) -> None:
    """Rewrite an existing JSON file in place, padded with spaces to its old length: on a full disk,
    where no new file can be written, its own space is reused. Not atomic: only a fallback."""
    data = json.dumps(obj, indent=1, default=str).encode()
    with open(path, "r+b") as f:
        old = f.seek(0, os.SEEK_END)
        f.seek(0)
        f.write(data + b" " * (old - len(data)))
        f.flush()
        os.fsync(f.fileno())


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=float) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete rows; a damaged or half-written line (a killed writer) is skipped."""
    rows: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def drop_rows_after(path: Path, step: int) -> int:
    """On resume: forget rows logged after the checkpoint we continue from (they will be
    logged again), so charts never go back in steps. Returns how many rows were dropped."""
    rows = read_jsonl(path)
    keep = [r for r in rows if r.get("step", 0) <= step]
    if len(keep) != len(rows):
        tmp = Path(path).with_name(f".{Path(path).name}.tmp")
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in keep))
        os.replace(tmp, path)
    return len(rows) - len(keep)


def read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text())
        return obj if isinstance(obj, dict) else {}
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


class ResumeError(AnimeganError, ValueError):
    """A run that cannot be resumed; the message says why and what to do."""


class RunDirError(AnimeganError, ValueError):
    """The trainer cannot write its run directory: its disk is full, or it was deleted while the run
    trained. The message says what happened and what to do; the run stops."""


def _dir_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder: a folder deleted and made again under the same name is another."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def tail_lines(path: str | Path, n: int = 40) -> str:
    """The last n lines of a text file (a log), read from its end; "" when it does not exist."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 400 * n))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


class TrainingJob(Protocol):
    """What `Run.status` needs of a background job (`jobs.Job`): whether it trains this run now."""
    kind: str
    run_dir: Path | None
    started: float               # when the job was started (time.time())

    def alive(self) -> bool: ...


@dataclass(frozen=True)
class RunStatus:
    """What a run is doing, typed: status.json as the trainer wrote it, with the state made effective.

    `state` is one of config.STATES or "unknown" (no status.json yet), decided once here:
    - a run whose status.json says starting/running but whose process is gone is "dead" (with
      `last_error` saying so), never a run that trains on;
    - a run a live background job is starting (`training`), which its trainer has not marked live
      yet (a new run, or a resume still importing torch), is "starting";
    - but a run whose trainer wrote an end state after the job started (`job_started`) has ended:
      its process is only exiting (flushing logs, freeing memory), so it reads its end state, not
      "starting" again for those seconds.
    `recorded_state` is the state the file holds; `phase` is what a page shows (state, or
    "compiling" while torch.compile prepares the first step)."""
    state: str = UNKNOWN_STATE
    recorded_state: str = UNKNOWN_STATE
    step: int = 0
    total_steps: int = 0            # 0 until the trainer knows the data
    steps_per_epoch: int = 0
    epoch: int = 0
    epochs: int = 0                 # the run's epochs (status.json's, else config.json's)
    stop_reason: str | None = None  # one of config.STOP_REASONS once the run ended before its last step
    last_error: str | None = None
    compiling: bool = False
    step_options: dict[str, Any] = field(default_factory=dict)
    images_per_s: float = 0.0       # the trainer's smoothed speed
    eta_s: float | None = None
    pid: int | None = None          # the trainer (rank 0 under torchrun)
    host: str = ""
    device: str = ""
    world_size: int = 1
    started: float | None = None        # this process's start
    first_started: float | None = None  # the run's first start (before any resume)
    updated: float | None = None
    params_g: int | None = None
    params_d: int | None = None
    ranks_max_param_diff: float | None = None

    @classmethod
    def read(cls, path: str | Path, training: bool = False, job_started: float | None = None) -> "RunStatus":
        """The status of the run directory `path`; `training`: a live job is training it, started
        at `job_started` (None: unknown)."""
        raw = read_json(Path(path) / "status.json")
        epochs_default = read_json(Path(path) / "config.json").get("epochs") if not raw.get("epochs") else 0
        recorded = str(raw.get("state") or UNKNOWN_STATE)
        state, error = recorded, raw.get("last_error")
        updated = _float(raw.get("updated"))
        ended_by_this_job = (recorded not in LIVE_STATES and recorded != UNKNOWN_STATE and job_started is not None
                             and updated is not None and updated >= job_started)
        if recorded in LIVE_STATES and not pid_alive(raw.get("pid")):
            state, error = ("starting", None) if training else ("dead", error or DEAD_MESSAGE)
        elif training and recorded not in LIVE_STATES and not ended_by_this_job:
            state, error = "starting", None
        return cls(
            state=state, recorded_state=recorded, step=_int(raw.get("step")), total_steps=_int(raw.get("total_steps")),
            steps_per_epoch=_int(raw.get("steps_per_epoch")), epoch=_int(raw.get("epoch")),
            epochs=_int(raw.get("epochs") or epochs_default), stop_reason=raw.get("stop_reason"),
            last_error=error, compiling=bool(raw.get("compiling")),
            step_options=dict(raw.get("step_options") or {}), images_per_s=_float(raw.get("images_per_s")) or 0.0,
            eta_s=_float(raw.get("eta_s")), pid=_int(raw.get("pid")) or None, host=str(raw.get("host") or ""),
            device=str(raw.get("device") or ""), world_size=_int(raw.get("world_size")) or 1,
            started=_float(raw.get("started")), first_started=_float(raw.get("first_started") or raw.get("started")),
            updated=_float(raw.get("updated")), params_g=_int(raw.get("params_g")) or None,
            params_d=_int(raw.get("params_d")) or None, ranks_max_param_diff=_float(raw.get("ranks_max_param_diff")))

    @property
    def live(self) -> bool:
        """A process is (or is about to be) training the run."""
        return self.state in LIVE_STATES

    @property
    def phase(self) -> str:
        """What a page shows for the run: its state, or COMPILING_PHASE while a running trainer
        compiles its networks (torch.compile) before the first step."""
        return COMPILING_PHASE if self.state == "running" and self.compiling else self.state

    @property
    def fraction(self) -> float:
        """Steps done of the run's total, 0..1 (0 while the total is unknown)."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


COMPILING_PHASE = "compiling"  # a running run before its first (compiled) step: RunStatus.phase
DEAD_MESSAGE = "the training process is gone (killed or crashed)"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Run:
    """Read side of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    def config(self) -> dict[str, Any]:
        return read_json(self.path / "config.json")

    def status(self, job: TrainingJob | None = None) -> RunStatus:
        """The run's status (`RunStatus`), its state made effective by what is alive now.

        `job`: the background job holding the slot (`jobs.current_job()`), when the caller has it: a
        live training job of this run makes a run the trainer has not marked live yet "starting"."""
        training = self.trained_by(job)
        return RunStatus.read(self.path, training=training, job_started=job.started if training else None)

    def trained_by(self, job: TrainingJob | None) -> bool:
        """`job` is a live training job of this run (the job that a Stop button stops)."""
        if job is None or job.kind != "train" or job.run_dir is None:
            return False
        return Path(job.run_dir).resolve() == self.path.resolve() and job.alive()

    @property
    def state(self) -> str:
        """The effective state (`RunStatus.state`), without a job to consult."""
        return self.status().state

    def metrics(self) -> dict[str, list]:
        """metrics.jsonl as columns: {"step": [...], "loss_D": [...], ...}."""
        return rows_to_columns(read_jsonl(self.path / "metrics.jsonl"))

    def evals(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "evals.jsonl")

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "events.jsonl")

    def grids(self) -> list[tuple[int, Path]]:
        out = []
        for p in sorted((self.path / "samples").glob("epoch_*.png")):
            try:
                out.append((int(p.stem.split("_")[1]), p))
            except (IndexError, ValueError):
                continue
        return out

    def latest_grid(self) -> Path | None:
        p = self.path / "samples" / "latest.png"
        if p.exists():
            return p
        g = self.grids()
        return g[-1][1] if g else None

    def checkpoints(self) -> list[Path]:
        """Epoch checkpoints in order, then last.pt and best.pt where present."""
        d = self.path / "checkpoints"
        out = sorted(d.glob("epoch_*.pt"))
        out += [d / n for n in ("last.pt", "best.pt") if (d / n).exists()]
        return out

    def last_checkpoint(self) -> Path | None:
        p = self.path / "checkpoints" / "last.pt"
        return p if p.exists() else None

    def best_eval(self) -> dict[str, Any] | None:
        """The lowest evaluation of the run's metric among those comparable with its latest one
        (the same n and reference: a value at n=20 never beats one at n=2,000); None without any."""
        ev = [e for e in self.evals() if isinstance(e.get("value"), (int, float))]
        if not ev:
            return None
        metric = self.config().get("eval_metric", "swd")
        same = [e for e in ev if e.get("metric") == metric] or ev
        like = (same[-1].get("metric"), same[-1].get("n"), same[-1].get("reference"))
        same = [e for e in same if (e.get("metric"), e.get("n"), e.get("reference")) == like]
        return min(same, key=lambda e: e["value"])

    def log_tail(self, n: int = 40) -> str:
        return tail_lines(self.path / "train.log", n)

    def check_resumable(self) -> None:
        """The one decision whether this run may be resumed; ResumeError says why not."""
        if not self.exists:
            raise ResumeError(f"there is no run to resume at {self.path} (no config.json there)")
        status = self.status()
        if status.live:
            raise ResumeError(f"run {self.name} is still training (pid {status.pid}); stop it before resuming")
        if self.last_checkpoint() is None:
            raise ResumeError(f"run {self.name} has no checkpoints/last.pt to resume from (it stopped before its "
                              f"first save); start a new run instead")

    def resume_config(self, epochs: int | None = None) -> TrainConfig:
        """The settings a resume of this run trains with: its own config.json, until `epochs` when
        given; a finished run given more epochs continues without the step cap (`max_steps`) it
        may have reached. ResumeError (`check_resumable`) when it cannot be resumed. The CLI's
        `train --resume` and the dashboard's `jobs.resume` both come here."""
        self.check_resumable()
        cfg = TrainConfig.from_dict(self.config())
        if epochs is None:
            return cfg
        return cfg.replace(epochs=int(epochs), max_steps=0 if self.status().state == "finished" else cfg.max_steps)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def delete(self) -> None:
        if self.status().live:
            raise RuntimeError(f"run {self.name} is still training; stop it before deleting")
        shutil.rmtree(self.path)


class RunWriter:
    """Write side of one run directory: the trainer's only way of writing into it.

    Only one process of a run writes: under torchrun, ranks other than 0 hold a writer with
    `enabled=False`, whose every method does nothing (and reads nothing).

    Every write goes through `_writing`: once `open` has made the folder, a write never makes it
    (or its subfolders) again, and a full disk or a deleted folder is a `RunDirError` in words.
    After that error, status.json is still written where it can be (the run's failure, in place on a
    full disk), never into a folder that was deleted.
    """

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.status: dict[str, Any] = {}
        self._tb: Any = None
        self._id: tuple[int, int] | None = None  # the folder `open` made (see _dir_id)
        self.error: str | None = None            # the RunDirError raised, once one was
        self.gone = False                        # the folder was deleted: nothing is written any more

    def __repr__(self) -> str:
        return f"RunWriter({str(self.path)!r})"

    def open(self, config: dict[str, Any], status: dict[str, Any], resume: bool = False) -> None:
        """Folders made, partial files of a writer killed mid-save removed, config.json written and
        status.json started with `status` (keeping `first_started` when resuming)."""
        if not self.enabled:
            return
        prev = read_json(self.path / "status.json") if resume else {}
        with self._writing("the run directory"):
            for d in (self.path, self.checkpoints, self.samples):
                d.mkdir(parents=True, exist_ok=True)
            # Left by `save_checkpoint` / `write_json_atomic` killed mid-write: never read by anyone, as
            # large as a checkpoint; one trainer per run directory, so none of them is being written.
            for d in (self.path, self.checkpoints, self.samples):
                for p in d.glob(".*.tmp*"):
                    p.unlink(missing_ok=True)
            self.status = dict(status)
            if prev.get("started"):
                self.status["first_started"] = prev.get("first_started", prev["started"])
            write_json_atomic(self.path / "config.json", config)
        self._id = _dir_id(self.path)
        self.update_status()

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Around every write of `what` into the run directory: RunDirError (in words) when the folder
        `open` made is gone, or when the write fails because the disk is full or a folder is missing."""
        if self.gone or (self._id is not None and _dir_id(self.path) != self._id):
            self.gone = True
            raise self._fail(self._gone_message())
        try:
            yield
        except OSError as e:
            if e.errno in DISK_FULL:
                raise self._fail(self._disk_full_message(what)) from e
            if isinstance(e, FileNotFoundError) and self._id is not None:
                self.gone = self.gone or self._folder_gone()
                raise self._fail(self._gone_message()) from e
            raise

    def _folder_gone(self, wait: float = 1.0) -> bool:
        """The folder `open` made is gone, or going: a deletion under way (rm -rf) removes what is inside
        it first, so a write can fail there a moment before the folder itself goes; waited for up to
        `wait` seconds (the run stops either way), else only one of its folders was deleted."""
        end = time.monotonic() + wait
        while _dir_id(self.path) == self._id:
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)
        return True

    def _fail(self, message: str) -> RunDirError:
        self.error = self.error or message
        return RunDirError(message)

    def _gone_message(self) -> str:
        if self.gone:
            return (f"the run directory {self.path} was deleted while the run was training, so the run stopped; "
                    f"nothing was written back there. To train again, start a new run")
        return (f"a folder of the run directory {self.path} was deleted while the run was training, so the run "
                f"stopped. Resume it once the folder is back, or start a new run")

    def _disk_full_message(self, what: str) -> str:
        then = ("then resume the run from its checkpoints/last.pt, which is intact: python -m animegan train "
                f"--resume {self.path}") if (self.checkpoints / "last.pt").exists() else (
                "then start the run again (it has no checkpoint to resume from yet)")
        return (f"the disk is full at {self.path}: {what} could not be written, so the run stopped. Free space "
                f"on that disk, {then}")

    def update_status(self, **kw: Any) -> None:
        """status.json with these fields changed (and `updated` now). On a full disk it is rewritten in
        place; after a RunDirError it is written where it still can be, without raising again."""
        if not self.enabled or self.gone:
            return
        self.status.update(kw, updated=time.time())
        failing = self.error is not None
        try:
            with self._writing("status.json"):
                try:
                    write_json_atomic(self.path / "status.json", self.status, make_folder=self._id is None)
                except OSError as e:
                    if e.errno not in DISK_FULL:
                        raise
                    overwrite_json(self.path / "status.json", self.status)
        except RunDirError:
            if not failing:
                raise

    def drop_rows_after(self, step: int) -> None:
        """On resume: metrics, evaluations and events logged after `step` are forgotten."""
        if self.enabled:
            for name in ("metrics.jsonl", "evals.jsonl", "events.jsonl"):
                with self._writing(name):
                    drop_rows_after(self.path / name, step)

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with self._writing(name):
            append_jsonl(self.path / name, row)

    def metrics(self, row: dict[str, Any], tensorboard: bool = True) -> None:
        """A metrics.jsonl row, and its numbers as TensorBoard scalars when that is open."""
        if not self.enabled:
            return
        self._append("metrics.jsonl", row)
        if tensorboard and self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "time", "collapse"):
                    self._tb.add_scalar(k, v, row["step"])

    def eval(self, row: dict[str, Any]) -> None:
        if self.enabled:
            self._append("evals.jsonl", row)

    def event(self, kind: str, step: int, epoch: int, **kw: Any) -> None:
        if self.enabled:
            self._append("events.jsonl", {"time": time.time(), "step": step, "epoch": epoch, "event": kind, **kw})

    def save_checkpoint(self, obj: dict[str, Any], name: str) -> None:
        """checkpoints/<name>, written atomically (`checkpoint.save_checkpoint`): on a full disk the file
        there before stays as it was, and no temp file is left."""
        if not self.enabled:
            return
        from . import checkpoint
        with self._writing(f"checkpoints/{name}"):
            checkpoint.save_checkpoint(obj, self.checkpoints / name, make_folder=False)

    def best_eval(self, metric: str) -> dict[str, Any]:
        """The lowest evaluation of `metric` so far ({} when there is none)."""
        ev = [e for e in read_jsonl(self.path / "evals.jsonl") if e.get("metric") == metric] if self.enabled else []
        return min(ev, key=lambda e: e["value"]) if ev else {}

    def curve(self, metric: str) -> list[dict[str, Any]]:
        """The run's evaluations of `metric` as a curve a checkpoint carries (`ck["curve"]`, read by
        the Compare page and model cards): {kimg, value, n, split} per evaluation, in order."""
        rows = [e for e in read_jsonl(self.path / "evals.jsonl") if e.get("metric") == metric] if self.enabled else []
        return [{"kimg": float(e.get("kimg", 0.0)), "value": float(e["value"]), "n": int(e.get("n", 0)),
                 "split": str(e.get("reference", "")).split(" split", 1)[0] or "val"} for e in rows]

    def grid(self, images: Any, name: str, tensorboard_step: int | None = None) -> None:
        """samples/<name>: images in [-1, 1] as one grid, written atomically; also a TensorBoard
        image of the first 16 at `tensorboard_step` when given and TensorBoard is open."""
        if not self.enabled:
            return
        from torchvision.utils import save_image
        path = self.samples / name
        tmp = path.with_name(f".{path.name}.tmp.png")
        with self._writing(f"samples/{name}"):
            try:
                save_image(images.float() * 0.5 + 0.5, tmp, nrow=int(math.ceil(math.sqrt(images.shape[0]))), padding=2)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        if tensorboard_step is not None and self._tb is not None:
            self._tb.add_images("samples", images[:16] * 0.5 + 0.5, tensorboard_step)

    def prune_epoch_checkpoints(self, keep: int) -> None:
        """Only the last `keep` checkpoints/epoch_NNNN.pt stay (all of them when keep <= 0)."""
        if self.enabled and keep > 0:
            for p in sorted(self.checkpoints.glob("epoch_*.pt"))[:-keep]:
                p.unlink(missing_ok=True)

    def open_tensorboard(self) -> bool:
        """TensorBoard event files under tensorboard/; False when the package is missing."""
        if not self.enabled:
            return True
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return False
        self._tb = SummaryWriter(str(self.path / "tensorboard"))
        return True

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def rows_to_columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return {k: [r.get(k) for r in rows] for k in keys}


def list_runs(root: str | Path | None = None) -> list[Run]:
    """Runs under `root` (default: the home folder's runs/), most recently updated first."""
    root = Path(root) if root else paths.runs_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]

    def updated(r: Run) -> float:
        try:
            return (r.path / "status.json").stat().st_mtime
        except OSError:
            return 0.0
    return sorted(runs, key=updated, reverse=True)


def resolve_run(name_or_path: str | Path) -> Run:
    """A run given by path, or by name under the home runs folder."""
    p = Path(name_or_path)
    if p.exists():
        return Run(p)
    return Run(paths.runs_dir() / safe_run_name(str(name_or_path)))


def now() -> float:
    return time.time()


# -- evaluation results of any checkpoint -------------------------------------------------------

def run_of_checkpoint(ckpt_path: str | Path) -> Run | None:
    """The run a checkpoint belongs to (runs/NAME/checkpoints/x.pt), if any."""
    p = Path(ckpt_path).resolve()
    run = Run(p.parent.parent)
    return run if p.parent.name == "checkpoints" and run.exists else None


def _eval_store(ckpt_path: str | Path) -> Path:
    run = run_of_checkpoint(ckpt_path)
    if run is not None:
        return run.path / "evals.jsonl"
    import hashlib
    p = Path(ckpt_path).resolve()
    return paths.home() / "evals" / f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}.jsonl"


def record_eval(ckpt_path: str | Path, result: dict[str, Any]) -> Path:
    """Keep a metric computed for a checkpoint (its run's evals.jsonl, or the home folder's evals/)."""
    store = _eval_store(ckpt_path)
    store.parent.mkdir(parents=True, exist_ok=True)
    append_jsonl(store, {"time": time.time(), "checkpoint": str(Path(ckpt_path).resolve()), **result})
    return store


def evals_for_checkpoint(ckpt_path: str | Path) -> list[dict[str, Any]]:
    """Recorded results for exactly this checkpoint file (newest last)."""
    me = str(Path(ckpt_path).resolve())
    return [e for e in read_jsonl(_eval_store(ckpt_path)) if e.get("checkpoint") == me]
