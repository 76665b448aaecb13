"""One background job at a time: a training run or an evaluation, as a child process.

The dashboard starts `python -m animegan train ...` (or `fid`/`swd`) in its own process group,
so the job survives a Streamlit rerun, a closed tab and even a restart of the app. The job is
known through a lock file, `<runs_dir>/.job.lock`, holding the job as JSON:

- it is created atomically (``O_CREAT | O_EXCL``) *before* the process is spawned (a
  reservation), then rewritten with the pid; two starts racing each other -> exactly one wins;
- a lock whose process is gone (or whose pid now belongs to another process: the process
  start time from ``/proc/<pid>/stat`` is stored and compared) is stale and removed by the next
  `current_job()`; so a job that ends, crashes or is killed frees the slot by itself;
- checking for a stale lock and creating a new one happen under an ``flock`` on a guard file, so
  a stale lock is never removed twice (which could remove a fresh one); a new run's name is
  checked free again there, so two starts of one name never both train it, even one after the other;
- the job outlives the process that started it (the dashboard restarted): any process finds it
  through the lock and can stop it; stopping reaches the job's whole process tree, also what runs
  in sessions of its own (torchrun's workers), so nothing is left behind.

A training job's settings travel as a file beside the lock (`.job-*.config.json`, removed when the
job has ended), which the child reads with `train --config`: the job starter never writes into the
run directory, which is the trainer's alone. The run directory stays the source of truth for what a
training run did (`rundir.Run.status`, to which the current job is passed so that a run being
started reads "starting"); this module only knows whether a process is there. `resume` is the
dashboard's one way to continue a run. It never imports streamlit.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from . import paths
from .config import METRICS, PRESET_ALIASES, SPLITS, AnimeganError, TrainConfig
from .preflight import preflight
from .processes import descendants, kill_processes, pid_alive, proc_start_time
from .rundir import (
    ResumeError,
    Run,
    RunNameError,
    read_json,
    run_of_checkpoint,
    safe_run_name,
    tail_lines,
    write_json_atomic,
)

LOCK_NAME = ".job.lock"
GUARD_NAME = ".job.guard"
LAST_NAME = ".job.last"          # the most recently ended job, with its exit code when known
RESERVATION_TTL = 300.0          # seconds a reservation (lock without pid) may wait for its spawn

# Popen objects of the jobs this process started, by pid: polled to reap them (no zombies) and
# to learn their exit code. Module-level, so it lives as long as the Streamlit server process.
_POPENS: dict[int, subprocess.Popen] = {}
_POPENS_LOCK = threading.Lock()
_EXIT_CODES: dict[int, int] = {}   # pid -> exit code of our jobs that ended (kept after reaping)


class JobError(AnimeganError):
    """A job cannot be started or stopped; the message says why and what to do."""


# -- processes -----------------------------------------------------------------------------------

def _reap(pid: int, wait: float = 0.0) -> int | None:
    """Collect an exited child of ours (no zombie left behind); its exit code, or None.
    `wait`: seconds to wait for one of ours that is exiting."""
    with _POPENS_LOCK:
        proc = _POPENS.get(pid)
        if proc is not None:
            try:
                rc = proc.wait(timeout=wait) if wait > 0 else proc.poll()
            except subprocess.TimeoutExpired:
                rc = None
            if rc is not None:
                _EXIT_CODES[pid] = rc
                del _POPENS[pid]
            return rc
        if pid in _EXIT_CODES:
            return _EXIT_CODES[pid]
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return None
    if done == pid:
        return os.waitstatus_to_exitcode(status)
    return None


def _returncode(pid: int) -> int | None:
    return _reap(pid) if pid in _POPENS or pid in _EXIT_CODES else None


def _same_process(pid: int, start_time: int | None) -> bool:
    """The pid is alive and is still the process we started (not a reused pid)."""
    if not pid:
        return False
    _reap(pid)
    if not pid_alive(pid):
        # A multithreaded process (torch) shows as a zombie once its main thread exits, before
        # its other threads are gone and it can be reaped: collect our child's exit code now.
        _reap(pid, wait=5.0)
        return False
    if start_time is None:
        return True
    now = proc_start_time(pid)
    return now is None or now == start_time


# -- the job -------------------------------------------------------------------------------------

@dataclass
class Job:
    kind: str                    # "train" | "eval"
    pid: int                     # 0 while the lock is a reservation (the spawn is under way)
    argv: list[str]
    log: Path                    # the child's stdout and stderr
    run_dir: Path | None
    started: float
    label: str                   # "training run foo", "SWD of anime64.pt"
    proc_start: int | None = None   # /proc start time of pid, tells a reused pid from ours
    token: str = ""              # identity of this lock
    owner: int = 0               # pid of the process that wrote the lock (the app)
    owner_start: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. checkpoint/metric of an eval

    def alive(self) -> bool:
        if not self.pid:  # reserved, not spawned yet: alive while its owner is and it is fresh
            return (time.time() - self.started < RESERVATION_TTL) and _same_process(self.owner, self.owner_start)
        return _same_process(self.pid, self.proc_start)

    @property
    def returncode(self) -> int | None:
        """Exit code once ended, when this process started it (otherwise None)."""
        return _returncode(self.pid) if self.pid else None

    def log_tail(self, n: int = 40) -> str:
        try:
            return tail_lines(self.log, n)
        except OSError:
            return ""

    def describe(self) -> str:
        if not self.pid:
            return f"{self.label} (starting)"
        mins = max(0.0, time.time() - self.started) / 60
        return f"{self.label} (pid {self.pid}, started {mins:.0f} min ago)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["log"] = str(self.log)
        d["run_dir"] = str(self.run_dir) if self.run_dir else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["log"] = Path(d.get("log") or os.devnull)
        d["run_dir"] = Path(d["run_dir"]) if d.get("run_dir") else None
        d["argv"] = [str(a) for a in d.get("argv") or []]
        d["pid"] = int(d.get("pid") or 0)
        d.setdefault("kind", "?")
        d.setdefault("started", 0.0)
        d.setdefault("label", "a job")
        return cls(**d)


# -- the lock ------------------------------------------------------------------------------------

def _root(root: str | Path | None) -> Path:
    return paths.ensure(Path(root) if root else paths.runs_dir())


@contextmanager
def _guard(root: Path) -> Iterator[None]:
    """Serialises lock inspection and creation between threads and processes (flock)."""
    fd = os.open(root / GUARD_NAME, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _current_locked(root: Path) -> Job | None:
    """current_job's body; the caller holds the guard."""
    lock = root / LOCK_NAME
    d = _read_lock(lock)
    if d is None:
        return None
    job: Job | None = None
    if d:
        try:
            job = Job.from_dict(d)
        except (TypeError, ValueError):
            job = None
    if job is not None and job.alive():
        return job
    if job is None:  # unreadable: only stale once it has had time to be written
        try:
            if time.time() - lock.stat().st_mtime < 60:
                return None
        except FileNotFoundError:
            return None
    # Stale: keep a note of what ended, then free the slot (and the settings file of a training job).
    if job is not None and job.extra.get("config"):
        Path(job.extra["config"]).unlink(missing_ok=True)
    if job is not None and job.pid:
        note = job.to_dict()
        note.update(ended=time.time(), returncode=job.returncode)
        try:
            write_json_atomic(root / LAST_NAME, note)
        except OSError:
            pass
    lock.unlink(missing_ok=True)
    return None


def current_job(root: str | Path | None = None) -> Job | None:
    """The job holding the lock, or None. A stale lock (its process is gone) is removed."""
    r = _root(root)
    with _guard(r):
        return _current_locked(r)


def last_job(root: str | Path | None = None) -> dict[str, Any] | None:
    """The most recently ended job (as a dict, with `ended` and `returncode` when known)."""
    d = read_json(_root(root) / LAST_NAME)
    return d or None


def _busy_message(other: Job, job: Job) -> str:
    """Why `job` cannot start while `other` holds the slot: said of the run when both are that run."""
    if other.kind == job.kind == "train" and other.run_dir == job.run_dir:
        name, doing = job.extra.get("run"), f"trained (pid {other.pid})" if other.pid else "started"
        if job.extra.get("resume"):
            return f"run {name} is already being {doing}; wait for it to end, or stop it first"
        return f"a run named {name} is already being {doing}; pick another name, or wait for it to end"
    return f"a job is already running: {other.describe()}. Wait for it to end or stop it first."


def _reserve(root: Path, job: Job, check: Callable[[], None] | None = None) -> None:
    """Take the slot for `job`; `check` (raising JobError) runs first under the same guard, so what
    it found true still holds when the slot is taken (a new run's name is still free)."""
    with _guard(root):
        other = _current_locked(root)
        if other is not None:
            raise JobError(_busy_message(other, job))
        if check is not None:
            check()
        try:
            fd = os.open(root / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise JobError("a job is already running (another start won the race); wait for it or stop it first") from None
        with os.fdopen(fd, "w") as f:
            json.dump(job.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())


def _release(root: Path, token: str) -> None:
    with _guard(root):
        d = _read_lock(root / LOCK_NAME)
        if d and d.get("token") == token:
            (root / LOCK_NAME).unlink(missing_ok=True)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env[paths.ENV_HOME] = str(paths.home().expanduser().resolve())
    # `python -m animegan` must import this very package, installed or not.
    pp = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(paths.REPO_ROOT) + (os.pathsep + pp if pp else "")
    return env


def _spawn(job: Job, root: Path, log_mode: str = "a", check: Callable[[], None] | None = None) -> Job:
    """Reserve the slot (`check` passed under the guard), start the process, record its pid.
    JobError if the slot is taken or `check` refuses."""
    me = os.getpid()
    job.token, job.owner, job.owner_start, job.pid = uuid.uuid4().hex, me, proc_start_time(me), 0
    _reserve(root, job, check)
    try:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, log_mode) as logf:
            logf.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {job.label}: {' '.join(job.argv)}\n")
            logf.flush()
            proc = subprocess.Popen(job.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                    env=_child_env(), cwd=str(paths.REPO_ROOT), start_new_session=True,
                                    close_fds=True)
    except BaseException as e:
        _release(root, job.token)
        if isinstance(e, OSError):
            raise JobError(f"could not start {job.label}: {e}") from None
        raise
    with _POPENS_LOCK:
        _POPENS[proc.pid] = proc
        _EXIT_CODES.pop(proc.pid, None)
    job.pid, job.proc_start, job.started = proc.pid, proc_start_time(proc.pid), time.time()
    with _guard(root):
        write_json_atomic(root / LOCK_NAME, job.to_dict())
    return job


# -- training ------------------------------------------------------------------------------------

def job_argv_for_training(config_file: str | Path, out_dir: str | Path, resume: bool = False, nproc: int = 1) -> list[str]:
    """The argv (a list, never a shell string) that trains the settings of `config_file` (a JSON
    TrainConfig, written by `start_training` outside the run directory) into `out_dir`:
    ``train --config FILE --out DIR`` for a new run, ``--resume DIR`` instead of ``--out DIR`` to
    continue one. With nproc > 1 the same command runs under torch.distributed.run."""
    nproc = int(nproc)
    if nproc < 1:
        raise JobError(f"the number of processes must be at least 1 (got {nproc})")
    head = [sys.executable]
    if nproc > 1:
        head += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    where = ["--resume" if resume else "--out", str(out_dir)]
    return head + ["-m", "animegan", "train", "--config", str(config_file), *where, "--no-progress"]


def _data_source(data: str) -> str:
    """The data source as the child gets it (`data.check_source`: the built-in set's name, or the
    absolute path of a folder or .zip holding images; the child runs in the repository folder).
    JobError with its message otherwise."""
    from .data import DataError, check_source
    try:
        return check_source(data)
    except DataError as e:
        raise JobError(str(e)) from None


def _check_fid_weights(what: str) -> None:
    """JobError (where the weights go) when FID cannot be computed on this machine."""
    from .metrics.fid import find_inception_weights, missing_weights_message
    if find_inception_weights() is None:
        raise JobError(f"FID cannot be computed for {what}: {missing_weights_message()}")


def start_training(cfg: TrainConfig, name: str, *, resume: bool = False, nproc: int = 1,
                   root: str | Path | None = None, check_data: bool = True) -> Job:
    """Start training run `name` (under runs_dir) in the background; returns at once.

    New run: JobError if a run of that name exists (pick another name, or resume it). Settings
    that cannot train are refused by `preflight` (ConfigError naming the field; the data is not
    planned for a resume or with check_data=False). resume=True continues `name` from its
    checkpoints/last.pt with `cfg` (`Run.resume_config`; the dashboard calls `resume`). Every
    refusal happens before anything is spawned or written."""
    try:
        name = safe_run_name(name)
    except RunNameError as e:
        raise JobError(str(e)) from None
    r = _root(root)
    run_dir = r / name
    run = Run(run_dir)

    def name_free() -> None:  # checked now, and again as the slot is taken (another start may have won)
        if resume:
            try:
                run.check_resumable()
            except ResumeError as e:
                raise JobError(str(e)) from None
        elif run.exists:
            raise JobError(f"a run named {name} already exists; pick another name, or resume that run")

    name_free()
    cfg = preflight(cfg, nproc, data=check_data and not resume).config  # the child runs elsewhere: absolute paths
    if not resume:  # a preset's old name (in an old run's config) is recorded as its current one
        cfg = cfg.replace(preset=PRESET_ALIASES.get(cfg.preset, cfg.preset))
    # The child's settings: a file of the jobs folder (never the run directory, which only the
    # trainer writes), removed once the job has ended (`_current_locked`).
    config_file = r / f".job-{uuid.uuid4().hex[:12]}.config.json"
    write_json_atomic(config_file, cfg.to_dict())
    try:
        argv = job_argv_for_training(config_file, run_dir, resume=resume, nproc=nproc)
        run_dir.mkdir(parents=True, exist_ok=True)  # for the child's console.log; the trainer writes the rest
        label = f"training run {name}" + (" (resumed)" if resume else "")
        job = Job(kind="train", pid=0, argv=argv, log=run_dir / "console.log", run_dir=run_dir, started=time.time(),
                  label=label, extra={"run": name, "resume": resume, "nproc": int(nproc), "config": str(config_file)})
        return _spawn(job, r, check=name_free)
    except BaseException:
        config_file.unlink(missing_ok=True)
        raise


def resume(run: Run | str, epochs: int | None = None, nproc: int = 1, root: str | Path | None = None) -> Job:
    """Continue run `run` (a Run, or a name under the runs folder) from its checkpoints/last.pt in the
    background, until `epochs` when given (`Run.resume_config`); JobError says why not. The one
    resume of the dashboard: the Train and Runs pages both call it."""
    run = run if isinstance(run, Run) else Run(_root(root) / safe_run_name(run))
    try:
        cfg = run.resume_config(epochs)
    except ResumeError as e:
        raise JobError(str(e)) from None
    return start_training(cfg, run.name, resume=True, nproc=nproc, root=root)


# -- evaluation ----------------------------------------------------------------------------------

def job_argv_for_eval(checkpoint: str | Path, metric: str, data: str, n: int, split: str = "val",
                      seed: int = 0) -> list[str]:
    return [sys.executable, "-m", "animegan", metric, "--checkpoint", str(checkpoint), "--data", str(data),
            "--n", str(int(n)), "--split", split, "--seed", str(int(seed)), "--json", "--record"]


def start_eval(checkpoint: str | Path, metric: str, data: str, n: int, split: str = "val", seed: int = 0,
               root: str | Path | None = None) -> Job:
    """Compute `metric` (swd|fid) of a checkpoint in the background; the CLI records the result
    with the checkpoint (`rundir.evals_for_checkpoint`) and prints it as the log's last line.
    Refused (JobError, nothing started) for a checkpoint that does not load, FID without its
    weights, or data that cannot be used."""
    metric = str(metric).lower()
    if metric not in METRICS:
        raise JobError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    ckpt_path = Path(checkpoint).expanduser()
    if not ckpt_path.is_file():
        raise JobError(f"checkpoint not found: {checkpoint}")
    ckpt_path = ckpt_path.resolve()
    if split not in SPLITS:
        raise JobError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if int(n) < 2:
        raise JobError("n must be at least 2 images")
    if metric == "fid":
        _check_fid_weights(f"{ckpt_path.name}")
    data = _data_source(data)
    _check_checkpoint(ckpt_path)
    argv = job_argv_for_eval(ckpt_path, metric, data, n, split, seed)
    run = run_of_checkpoint(ckpt_path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = paths.logs_dir() / f"{metric}-{safe_run_name(ckpt_path.stem)}-{stamp}.log"
    job = Job(kind="eval", pid=0, argv=argv, log=log, run_dir=run.path if run else None, started=time.time(),
              label=f"{metric.upper()} of {ckpt_path.name}" + (f" (run {run.name})" if run else ""),
              extra={"checkpoint": str(ckpt_path), "metric": metric, "data": data, "n": int(n), "split": split, "seed": int(seed)})
    return _spawn(job, _root(root), log_mode="w")


def _check_checkpoint(ckpt_path: Path) -> None:
    """The checkpoint loads (safely) and holds a generator that fits its own config: JobError
    with the checkpoint's own message otherwise, before a job is started that could only fail."""
    from .checkpoint import CheckpointError, load_generator
    try:
        load_generator(ckpt_path)
    except CheckpointError as e:
        raise JobError(str(e)) from None


def eval_result(job: Job | dict[str, Any]) -> dict[str, Any] | None:
    """The result an eval job printed (its log's last JSON line with a "metric"), or None."""
    log = Path(job.log if isinstance(job, Job) else job.get("log") or os.devnull)
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict) and "metric" in d:
                return d
    return None


# -- stopping ------------------------------------------------------------------------------------

def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_job(job: Job | None = None, timeout: float = 30.0, root: str | Path | None = None) -> bool:
    """Stop the running job (default: the current one) gracefully.

    SIGTERM to its process group (the trainer finishes its step, saves checkpoints/last.pt and
    marks the run "stopped"; torchrun passes it on to its workers), wait up to `timeout` seconds,
    then SIGKILL to the group and to every process below the job (torchrun's workers lead sessions
    of their own: the group misses them). Returns True when the job ended after SIGTERM within the
    timeout, False when there was nothing to stop or it had to be killed. The lock is released
    either way, and no process of the job is left."""
    r = _root(root)
    job = job or current_job(r)
    if job is None:
        return False
    if not job.pid:  # a reservation: the spawn is under way, wait for the pid
        deadline = time.time() + min(timeout, 10.0)
        while time.time() < deadline:
            time.sleep(0.1)
            cur = current_job(r)
            if cur is None or cur.token != job.token:
                return False
            if cur.pid:
                job = cur
                break
        else:
            return False
    if not job.alive():
        current_job(r)
        return False
    pgid = job.pid  # start_new_session: the job leads its own process group
    family = set(descendants(job.pid))  # and again before a SIGKILL: once the job is gone, they cannot be found
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        current_job(r)
        return False
    except PermissionError as e:
        raise JobError(f"not allowed to stop {job.describe()}: {e}") from None
    deadline = time.time() + max(0.0, timeout)
    while job.alive() and time.time() < deadline:
        time.sleep(0.2)
    graceful = not job.alive()
    if not graceful:
        family |= set(descendants(job.pid))
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_processes(sorted(family), signal.SIGKILL)
        end = time.time() + 10
        while job.alive() and time.time() < end:
            time.sleep(0.1)
    # Whatever is left of its group or below it (workers of a launcher) goes too.
    _reap(job.pid)
    end = time.time() + 5
    while (_group_alive(pgid) or any(pid_alive(p) and proc_start_time(p) == t for p, t in family)) and time.time() < end:
        time.sleep(0.1)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_processes(sorted(family), signal.SIGKILL)
    current_job(r)  # releases the (now stale) lock
    return graceful
