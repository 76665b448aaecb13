"""Reliability: hostile and broken checkpoints, kills at any moment, a full disk, damaged caches and
logs, disk use, a corpus of broken images, and the dashboard's network binding.

Tiny everything (ngf=ndf=8, batch 8, 48 synthetic faces, one thread) so the whole module runs
in about a minute on a busy CPU; nothing here asserts a wall-clock time.
"""
import errno
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import checkpoint as ckpt
from animegan import rundir
from animegan import train as train_module
from animegan.checkpoint import CheckpointError, load_checkpoint, load_generator
from animegan.config import TrainConfig, preset_config
from animegan.data import prepare
from animegan.rundir import Run
from animegan.synth import write_synthetic
from animegan.train import TrainingError, train
from animegan.uploads import save_upload

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(ngf=8, ndf=8, batch_size=8, val_size=4, test_size=4, threads=1, n_samples=16, log_every=5,
            latest_every=1000, collapse_action="warn")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


@pytest.fixture(scope="module")
def trained(faces, tmp_path_factory):
    """3 epochs (5 steps each), an evaluation every epoch, keep_last=2."""
    threads = torch.get_num_threads()
    run = tmp_path_factory.mktemp("trained") / "run"
    cfg = preset_config("classic-dcgan", data=str(faces), epochs=3, keep_last=2, checkpoint_every=1, eval_every=1,
                        eval_n=4, **TINY)
    try:
        assert train(cfg, run, progress=False) == "finished"
    finally:
        torch.set_num_threads(threads)
    return run


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def env_for(home: Path) -> dict:
    return {**os.environ, "ANIMEGAN_HOME": str(home), "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- disk: keep_last


def test_keep_last_keeps_the_last_k_epoch_checkpoints_plus_best_and_last(trained):
    ck = trained / "checkpoints"
    names = sorted(p.name for p in ck.iterdir())
    assert names == ["best.pt", "epoch_0002.pt", "epoch_0003.pt", "last.pt"], names
    run = Run(trained)
    assert [p.name for p in run.checkpoints()] == ["epoch_0002.pt", "epoch_0003.pt", "last.pt", "best.pt"]
    steps = {p.name: load_checkpoint(p)["step"] for p in run.checkpoints()}
    assert steps["epoch_0002.pt"] == 10 and steps["epoch_0003.pt"] == 15 and steps["last.pt"] == 15
    best = load_checkpoint(ck / "best.pt")
    evals = run.evals()
    assert [e["step"] for e in evals] == [5, 10, 15] and all(e["metric"] == "swd" for e in evals)
    lowest = min(evals, key=lambda e: e["value"])
    assert best["step"] == lowest["step"] and best["best"]["epoch"] == lowest["epoch"] == best["step"] // 5
    assert best["eval"]["value"] == best["best"]["value"] == lowest["value"]


# --------------------------------------------------------------------------- hostile checkpoints


class _OpenPayload:
    """Unpickling this calls open(marker, "w"): the marker file appears if the payload runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path, payload) -> Path:
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "kind": "generator", "config": {},
                "G": payload(marker)}, path)
    return path


@pytest.mark.parametrize("payload", [_OpenPayload, _SystemPayload], ids=["open", "os.system"])
def test_a_checkpoint_carrying_code_is_refused_and_never_runs(payload, tmp_path, animegan_home):
    # Control: the crafted file really is live: an unsafe load runs the payload.
    control = tmp_path / "control-marker"
    obj = torch.load(_evil(tmp_path / "control.pt", control, payload), weights_only=False)
    if hasattr(obj["G"], "close"):
        obj["G"].close()
    assert control.exists(), "the crafted payload should run under an unsafe load"

    marker = tmp_path / "PWNED"
    evil = _evil(tmp_path / "evil.pt", marker, payload)
    for load in (load_checkpoint, load_generator):
        with pytest.raises(CheckpointError) as e:
            load(evil)
        msg = str(e.value)
        assert "evil.pt was refused" in msg and "Nothing in it was executed" in msg, msg
        assert "weights_only" not in msg and "torch" not in msg.lower(), f"library advice leaked: {msg}"
        assert not marker.exists(), f"{load.__name__} ran the payload"

    if payload is not _SystemPayload:
        return  # one CLI run is enough (same loader); a subprocess costs seconds here
    r = subprocess.run([sys.executable, "-m", "animegan", "generate", "--checkpoint", str(evil), "--n", "4",
                        "--out", str(tmp_path / "out.png")], cwd=tmp_path, env=env_for(animegan_home),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: evil.pt was refused"), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not marker.exists(), "the CLI ran the payload"
    assert not (tmp_path / "out.png").exists()


def _broken(kind: str, good: Path, d: Path) -> Path:
    p = d / f"{kind}.pt"
    if kind == "wrong-architecture":  # config says ngf 16, the weights are ngf 8
        ck = load_checkpoint(good)
        ck["config"]["ngf"] = 16
        ckpt.save_checkpoint({k: v for k, v in ck.items() if k not in ("format", "version")}, p)
    elif kind == "truncated":
        b = good.read_bytes()
        p.write_bytes(b[:len(b) // 2])
    elif kind == "first-100-bytes":
        p.write_bytes(good.read_bytes()[:100])
    elif kind == "zero-bytes":
        p.write_bytes(b"")
    elif kind == "text-file":
        p.write_text("this is not a checkpoint, just a text file someone named .pt\n")
    elif kind == "another-text-file":
        p.write_text("hello\n")
    elif kind == "png-file":
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    elif kind == "not-animegan":
        torch.save({"a": 1}, p)
    elif kind == "a-list":
        torch.save([1, 2, 3], p)
    elif kind == "newer-version":
        torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION + 1, "G": {}}, p)
    elif kind == "a-folder":
        p.mkdir()
    elif kind == "missing":
        pass
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p




BROKEN = [
    pytest.param("wrong-architecture", r"weights do not fit the architecture", id="wrong-architecture"),
    pytest.param("truncated", r"not a readable checkpoint: it is damaged, cut short", id="truncated"),
    pytest.param("first-100-bytes", r"not a readable checkpoint", id="first-100-bytes"),
    pytest.param("zero-bytes", r"is empty \(0 bytes\)", id="zero-bytes"),
    pytest.param("text-file", r"not a (readable checkpoint|checkpoint written by animegan)", id="text-file"),
    pytest.param("another-text-file", r"not a (readable checkpoint|checkpoint written by animegan)", id="another-text-file"),
    pytest.param("png-file", r"not a (readable checkpoint|checkpoint written by animegan)", id="png-file"),
    pytest.param("not-animegan", r"is a PyTorch file but not an animegan checkpoint", id="not-animegan"),
    pytest.param("a-list", r"not an animegan checkpoint", id="a-list"),
    pytest.param("newer-version", r"newer than this animegan understands.*upgrade animegan", id="newer-version"),
    pytest.param("a-folder", r"is a folder", id="a-folder"),
    pytest.param("missing", r"not found", id="missing"),
]


@pytest.mark.parametrize("kind,message", BROKEN)
def test_broken_checkpoints_are_checkpoint_errors_with_a_clear_message(kind, message, trained, tmp_path):
    p = _broken(kind, trained / "checkpoints" / "last.pt", tmp_path)
    loaders = [load_generator] if kind == "wrong-architecture" else [load_checkpoint, load_generator]
    for load in loaders:
        try:
            load(p)
        except CheckpointError as e:
            msg = str(e)
        else:
            pytest.fail(f"{load.__name__}({kind}) loaded")
        assert re.search(message, msg), f"{load.__name__}({kind}): {msg}"
        assert p.name in msg, msg
        if kind in ("text-file", "png-file"):
            assert "could run code" not in msg, f"misleading: {msg}"
        assert "b'" not in msg and 'b"' not in msg, f"a Python bytes literal: {msg}"
        assert "\n" not in msg and len(msg) < 600




@pytest.mark.parametrize("body", [
    {"G": 5},                                         # weights that are not a state dict
    {"config": "dcgan", "G": {}},                     # a config that is not a dict
    {"config": {"ngf": "eight"}, "G": {}},            # a config field of the wrong type
], ids=["G-int", "config-str", "ngf-str"])
def test_malformed_animegan_checkpoints_are_checkpoint_errors(body, tmp_path):
    p = tmp_path / "odd.pt"
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, **body}, p)
    with pytest.raises(CheckpointError, match="odd.pt"):
        load_generator(p)




def test_resume_with_another_architecture_is_refused_and_leaves_the_run_intact(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    before = (run / "config.json").read_text()
    cfg = TrainConfig.from_dict(json.loads(before))
    with pytest.raises(CheckpointError, match="ngf"):
        train(cfg.replace(ngf=16), run, resume=True, progress=False)
    assert (run / "config.json").read_text() == before, "a refused resume must not rewrite config.json"
    assert train(cfg.replace(epochs=4, max_steps=17), run, resume=True, progress=False) == "finished"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 17


# --------------------------------------------------------------------------- killed, stopped, crashed




def test_resume_removes_temp_files_left_by_a_kill_mid_save(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    ck = run / "checkpoints"
    half = (ck / "last.pt").read_bytes()
    (ck / ".last.pt.k1ll3d.tmp").write_bytes(half[: len(half) // 2])
    (ck / ".epoch_0004.pt.x9y8z7.tmp").write_bytes(half[:1000])
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    threads = torch.get_num_threads()
    try:
        assert train(cfg.replace(epochs=4, max_steps=16), run, resume=True, progress=False) == "finished"
    finally:
        torch.set_num_threads(threads)
    assert load_checkpoint(ck / "last.pt")["step"] == 16  # the stray files never got in the way...
    assert not list(ck.glob(".*.tmp")), "...but they should not stay on disk forever"


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "animegan", "train", "--no-progress", "--threads", "1", *args]


def _wait(cond, proc, log: Path, what: str, timeout: float = 240.0, poll: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"trainer exited ({proc.returncode}) while waiting for {what}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")


def _running(run: Path, proc) -> bool:
    st = Run(run).status()
    return st.state == "running" and st.pid == proc.pid


def _temp_files(ckdir: Path) -> set[str]:
    try:
        return {n for n in os.listdir(ckdir) if n.startswith(".") and n.endswith(".tmp")}
    except FileNotFoundError:
        return set()


def test_sigkill_at_any_moment_loses_nothing_before_last_pt(faces, tmp_path, animegan_home):
    """A real trainer, killed (SIGKILL) at seeded random moments and inside a checkpoint save,
    resumed each time; then stopped with SIGTERM; then finished."""
    rng = random.Random(20240611)
    run, log = tmp_path / "run", tmp_path / "trainer.log"
    ckdir = run / "checkpoints"
    env = env_for(animegan_home)
    logf = open(log, "ab")

    def start(*args: str) -> subprocess.Popen:
        logf.write(f"\n=== {' '.join(args)}\n".encode())
        logf.flush()
        return subprocess.Popen(_train_cmd(*args), cwd=tmp_path, env=env, stdout=logf, stderr=subprocess.STDOUT)

    proc = start("--preset", "classic-dcgan", "--data", str(faces), "--out", str(run), "--ngf", "8", "--ndf", "8",
                 "--batch-size", "8", "--val-size", "4", "--test-size", "4", "--epochs", "1000", "--compile", "off",
                 "--checkpoint-every", "1", "--checkpoint-minutes", "0.001", "--keep-last", "2",
                 "--log-every", "5", "--latest-every", "1000", "--n-samples", "16", "--collapse-action", "warn")
    counts = {"kills survived": 0, "random-time kills": 0, "kills inside a save": 0,
              "kills inside a save, temp file confirmed": 0, "stray temp files left by kills": 0,
              "planted half-written temp files ignored": 0, "checkpoints loaded after kills": 0}
    history = []
    try:
        _wait(lambda: _running(run, proc) and (ckdir / "last.pt").exists(), proc, log, "the first last.pt")
        for k, mode in enumerate(["random", "save", "random"]):
            if mode == "random":
                time.sleep(rng.uniform(0.05, 1.5))
            else:  # spin until a new checkpoint temp file appears (a save is under way), then kill
                old = _temp_files(ckdir)
                saving = _wait(lambda o=old: _temp_files(ckdir) - o, proc, log, "a checkpoint save", poll=0)
            proc.kill()
            proc.wait(timeout=60)
            assert proc.returncode == -signal.SIGKILL, counts
            if mode == "random":
                counts["random-time kills"] += 1
            else:
                counts["kills inside a save"] += 1
                # almost always still there: the kill landed between mkstemp and the rename
                counts["kills inside a save, temp file confirmed"] += bool(saving & _temp_files(ckdir))

            # after the kill: the run is dead (not 'running' forever), every checkpoint loads
            st = Run(run).status()
            assert st.state == "dead", (counts, st)
            assert "gone" in st.last_error
            for p in sorted(ckdir.glob("*.pt")):
                load_checkpoint(p)
                counts["checkpoints loaded after kills"] += 1
            strays = [p for p in ckdir.iterdir() if p.name.endswith(".tmp")]
            counts["stray temp files left by kills"] += len(strays)
            assert all(p.name.startswith(".") for p in strays)
            assert not set(Run(run).checkpoints()) & set(strays), "readers must never list a temp file"
            if k == 1:  # a kill mid-save, simulated for certain: half of last.pt under a temp name
                b = (ckdir / "last.pt").read_bytes()
                (ckdir / ".last.pt.k1ll3d.tmp").write_bytes(b[:len(b) // 2])
                counts["planted half-written temp files ignored"] += 1
            before = load_checkpoint(ckdir / "last.pt")["step"]
            epochs_before = {p.name: load_checkpoint(p)["step"] for p in ckdir.glob("epoch_*.pt")}
            assert before >= 1

            proc = start("--resume", str(run))
            _wait(lambda p=proc: _running(run, p), proc, log, "the resumed trainer")
            resumed = re.findall(r"resumed from (\S+) at step (\d+)", (run / "train.log").read_text())
            assert resumed and Path(resumed[-1][0]) == ckdir / "last.pt" and int(resumed[-1][1]) == before, (counts, resumed)
            # it continues from there: progress past the step of last.pt, nothing earlier lost
            _wait(lambda b=before: (ckdir / "last.pt").exists() and load_checkpoint(ckdir / "last.pt")["step"] > b,
                  proc, log, "a checkpoint after the resume", poll=0.2)
            assert Run(run).status().step >= before
            for name, step in epochs_before.items():  # older epoch checkpoints are intact (or pruned by keep_last)
                if (ckdir / name).exists():
                    assert load_checkpoint(ckdir / name)["step"] == step
            history.append((mode, before))
            counts["kills survived"] += 1

        # SIGTERM: finish the step, save last.pt, state "stopped", exit 0
        time.sleep(rng.uniform(0.1, 0.5))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        st = Run(run).status()
        assert st.state == "stopped", st
        last = load_checkpoint(ckdir / "last.pt")
        assert last["step"] == st.step
        assert any(e.get("event") == "stopped" for e in Run(run).events())

        # and finally the run finishes (resumed in this process: the resumes above are the CLI's)
        goal = last["step"] + 3
        assert train(Run(run).resume_config().replace(max_steps=goal), run, resume=True, progress=False) == "finished"
        st = Run(run).status()
        assert st.state == "finished" and st.step == goal, st
        assert load_checkpoint(ckdir / "last.pt")["step"] == goal
        load_generator(ckdir / "last.pt")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()
    assert counts["kills survived"] == 3 and counts["kills inside a save"] == 1, counts
    # the numbers, for the record (visible with -rA or on failure)
    print(f"kill test: {counts}; steps of last.pt at each kill: {history}")


# --------------------------------------------------------------------------- a full disk


class FullDisk:
    """A disk under `folder` that fills up, simulated in-process: a new file (a temp file about to be
    renamed) or an append accepts `room` more bytes, then every write fails as a full disk's does
    (OSError ENOSPC, after writing part of the file). Rewriting an existing file in place (its own
    blocks) still works, as on a real full disk. `only`: the temp files of that name alone fill up."""

    def __init__(self, monkeypatch, folder: Path, room: int, only: str = ""):
        self.folder, self.room, self.only = folder.resolve(), room, only
        self.full = True      # False: writes go through untouched (until it is set again)
        self.written = 0      # bytes written into files that then hit the full disk
        self.refused = []     # names of the files whose write failed
        self._temps: dict[int, Path] = {}
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

        def mkstemp(*a, **kw):
            fd, name = real_mkstemp(*a, **kw)
            self._temps[fd] = Path(name).resolve()
            return fd, name

        def fdopen(fd, mode="r", *a, **kw):
            f = real_fdopen(fd, mode, *a, **kw)
            path = self._temps.pop(fd, None)
            return self._wrap(f, path) if path is not None and "w" in mode and self._applies(path) else f

        def rundir_open(path, mode="r", *a, **kw):
            f = open(path, mode, *a, **kw)
            return self._wrap(f, Path(path)) if "a" in mode and self._applies(Path(path)) else f

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(rundir, "open", rundir_open, raising=False)  # append_jsonl's open

    def _applies(self, path: Path) -> bool:
        path = path.resolve()
        return self.full and self.folder in path.parents and (not self.only or path.name.startswith(f".{self.only}."))

    def _wrap(self, f, path: Path):
        disk = self

        class File:
            def write(self, b):
                n = min(len(b), disk.room)
                if n:
                    f.write(bytes(b[:n]))
                    disk.room -= n
                    disk.written += n
                if n < len(b):
                    disk.refused.append(path.name)
                    raise OSError(errno.ENOSPC, "No space left on device")
                return n

            def __getattr__(self, name):
                return getattr(f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()
        return File()


def _no_library_internals(msg: str) -> None:
    assert not re.search(r"Errno|OSError|RuntimeError|Traceback|inline_container|enforce fail", msg), msg
    assert "\n" not in msg, msg


def test_a_full_disk_while_saving_last_pt_keeps_the_old_one_and_fails_in_words(trained, tmp_path, monkeypatch):
    """The disk fills up while last.pt is written: the one there before stays intact and loadable,
    no temp file is left, and the run ends failed with a message that says what happened and what
    to do; once space is freed the run resumes from that last.pt."""
    run = copy_run(trained, tmp_path / "run")
    ck = run / "checkpoints"
    before = (ck / "last.pt").read_bytes()
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())).replace(epochs=5, eval_every=0)
    disk = FullDisk(monkeypatch, run, room=100_000, only="last.pt")
    threads = torch.get_num_threads()
    try:
        with pytest.raises(TrainingError) as e:
            train(cfg, run, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    msg = str(e.value)
    assert len(disk.refused) == 1 and disk.refused[0].startswith(".last.pt."), disk.refused
    assert disk.written == 100_000, "the save wrote part of the file before the disk was full"
    assert msg.startswith(f"the disk is full at {run}: checkpoints/last.pt could not be written"), msg
    assert "Free space on that disk, then resume the run" in msg and f"--resume {run}" in msg, msg
    _no_library_internals(msg)
    st = Run(run).status()
    assert st.state == "failed" and st.last_error == msg, st
    assert (ck / "last.pt").read_bytes() == before, "the last.pt from before must survive intact"
    assert load_checkpoint(ck / "last.pt")["step"] == 15
    assert load_checkpoint(ck / "epoch_0004.pt")["step"] == 20, "saved while there was room"
    assert not [p.name for p in ck.iterdir() if p.name.startswith(".")], "no partial temp file left"
    log = (run / "train.log").read_text()
    assert f"training failed: {msg}" in log and "Traceback" not in log, log[-2000:]

    disk.full = False  # space freed: the run resumes from the last.pt that survived
    try:
        assert train(cfg.replace(max_steps=22), run, resume=True, progress=False) == "finished"
    finally:
        torch.set_num_threads(threads)
    assert re.findall(r"resumed from \S+ at step (\d+)", (run / "train.log").read_text())[-1] == "15"
    assert load_checkpoint(ck / "last.pt")["step"] == 22


def test_a_full_disk_for_metrics_and_status_fails_the_run_in_words(trained, tmp_path, monkeypatch):
    """The disk fills up mid-run, so no new file and no appended line can be written: the run stops at
    the next metrics row and says so in status.json (rewritten in place: no new space needed), not a
    run left "running" with a library error, and nothing half-written stays."""
    run = copy_run(trained, tmp_path / "run")
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())).replace(epochs=5)
    disk = FullDisk(monkeypatch, run, room=0)
    disk.full = False
    real_step = train_module.train_step

    def step_then_fill(nets, cfg, real, z, g, step, dist):
        disk.full = step >= 16  # after steps 15 and 16: the next metrics row (step 20) hits it
        return real_step(nets, cfg, real, z, g, step, dist)
    monkeypatch.setattr(train_module, "train_step", step_then_fill)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(TrainingError) as e:
            train(cfg, run, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    msg = str(e.value)
    assert msg.startswith(f"the disk is full at {run}: metrics.jsonl could not be written, so the run stopped"), msg
    assert "Free space on that disk, then resume the run" in msg, msg
    _no_library_internals(msg)
    json.loads((run / "status.json").read_text())  # whole and readable
    st = Run(run).status()
    assert st.state == "failed" and st.last_error == msg, st
    assert Run(run).metrics()["step"][-1] == 15
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 15
    assert not [str(p) for p in run.rglob(".*")], "no partial temp file left"


# --------------------------------------------------------------------------- damaged caches and logs


def test_a_damaged_data_cache_is_rebuilt(faces):
    d = prepare(faces, 64, val=4, test=4)
    ref, npy = np.array(d.images), d.cache_path
    del d
    damages = {
        "truncated": lambda: npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2]),
        "garbage of the same size": lambda: npy.write_bytes(os.urandom(npy.stat().st_size)),
        "one flipped byte": lambda: npy.write_bytes(npy.read_bytes()[:-1] + bytes([npy.read_bytes()[-1] ^ 0xFF])),
        "deleted": lambda: npy.unlink(),
        "meta deleted": lambda: npy.with_suffix(".json").unlink(),
    }
    for what, damage in damages.items():
        damage()
        d = prepare(faces, 64, val=4, test=4)
        assert not d.from_cache and d.rebuilt_because, what
        assert np.array_equal(np.array(d.images), ref), what
        del d
    assert prepare(faces, 64, val=4, test=4).from_cache


def test_truncated_and_damaged_run_logs_are_skipped(trained, tmp_path):
    run = Run(copy_run(trained, tmp_path / "run"))
    steps = run.metrics()["step"]
    assert steps and steps[-1] == 15
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "epoch": 19.8, "loss_D": 0.7')  # a writer killed mid-line
    assert run.metrics()["step"] == steps
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b"\n\x00\xff\xfe garbage\n[1, 2]\n")
    assert run.metrics()["step"] == steps
    n_evals = len(run.evals())
    with open(run.path / "evals.jsonl", "a") as f:
        f.write('{"metric": "swd", "val')
    assert len(run.evals()) == n_evals
    (run.path / "status.json").write_text('{"state": "runn')
    assert run.status().state == "unknown"


# --------------------------------------------------------------------------- broken images


def _enc(img: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def _noise(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(a, "RGB").convert(mode)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header(w: int, h: int) -> bytes:
    """A well-formed PNG whose header claims w x h (and holds almost no pixels)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 16)) + _chunk(b"IEND", b""))


CORRUPT, EMPTY, NOT_IMAGE = "corrupt or truncated", "empty file", "not an image"
TOO_SMALL, TOO_LARGE = "too small", "too large (decompression bomb)"


def broken_corpus():
    """-> (good {name: bytes}, duplicates {name: bytes}, bad {name: (bytes, expected reason)})."""
    rng = random.Random(7)
    P = _enc(_noise(64, 64, 1), "PNG")
    J = _enc(_noise(64, 64, 2), "JPEG", quality=90)
    W = _enc(_noise(64, 64, 3), "WEBP")
    good = {f"good/face_{i}.png": _enc(_noise(64, 64, 10 + i), "PNG") for i in range(5)}
    good.update({
        "good/photo.jpg": J, "good/pic.webp": W, "good/pic.bmp": _enc(_noise(48, 48, 4), "BMP"),
        "good/wide.png": _enc(_noise(80, 40, 5), "PNG"), "good/edge_32px.png": _enc(_noise(32, 32, 6), "PNG"),
        "good/gray.png": _enc(_noise(64, 64, 7, "L"), "PNG"), "good/rgba.png": _enc(_noise(64, 64, 8, "RGBA"), "PNG"),
        "good/cmyk.jpg": _enc(_noise(64, 64, 9, "CMYK"), "JPEG"), "good/deep/er/nested.png": _enc(_noise(40, 40, 11), "PNG"),
        # valid images under a wrong extension: fine and usable
        "wrong_ext/png_named.jpg": P, "wrong_ext/jpeg_named.png": _enc(_noise(64, 64, 14), "JPEG"),
        "wrong_ext/bmp_named.webp": _enc(_noise(50, 50, 12), "BMP"),
        "wrong_ext/gif_named.png": _enc(_noise(64, 64, 13).convert("P"), "GIF"),
    })
    dups = {"good/face_0_copy.png": good["good/face_0.png"], "zz_dup_of_photo.jpg": J}
    bad: dict[str, tuple[bytes, str]] = {}
    for ext in ("jpg", "jpeg", "png", "webp", "bmp"):
        bad[f"empty/zero.{ext}"] = (b"", EMPTY)
    for off in (8, 16, 33, 60, len(P) // 4, len(P) // 2, 3 * len(P) // 4):
        bad[f"trunc/png_at_{off}.png"] = (P[:off], CORRUPT)
    for off in (2, 20, 200, len(J) // 3, len(J) // 2, len(J) - 40):
        bad[f"trunc/jpg_at_{off}.jpg"] = (J[:off], CORRUPT)
    for off in (12, 30, len(W) // 2):
        bad[f"trunc/webp_at_{off}.webp"] = (W[:off], CORRUPT)
    for ext in ("jpg", "png", "webp", "bmp"):
        for n in (1, 100, 5000):
            bad[f"random/r{n}.{ext}"] = (bytes(rng.getrandbits(8) for _ in range(n)), NOT_IMAGE)
    crc = bytearray(P)
    crc[29] ^= 0xFF  # the IHDR chunk's CRC
    bad["crc/bad_ihdr_crc.png"] = (bytes(crc), CORRUPT)
    bad["small/1x1.png"] = (_enc(_noise(1, 1, 20), "PNG"), TOO_SMALL)
    bad["small/31x31.png"] = (_enc(_noise(31, 31, 21), "PNG"), TOO_SMALL)
    bad["small/200x31.jpg"] = (_enc(_noise(200, 31, 22), "JPEG"), TOO_SMALL)
    bad["small/1x1_gif_named.png"] = (_enc(_noise(1, 1, 23).convert("P"), "GIF"), TOO_SMALL)
    bad["bomb/200x200_over_patched_limit.png"] = (_enc(_noise(200, 200, 24), "PNG"), TOO_LARGE)
    bad["bomb/header_100000x100000.png"] = (_png_header(100_000, 100_000), TOO_LARGE)
    bmp = bytearray(_enc(_noise(40, 40, 25), "BMP"))
    struct.pack_into("<ii", bmp, 18, 50_000, 50_000)
    bad["bomb/bmp_header_50000x50000.bmp"] = (bytes(bmp[:200]), TOO_LARGE)
    bad["notimg/page.jpg"] = (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", NOT_IMAGE)
    bad["notimg/readme.png"] = (b"just some text\n" * 20, NOT_IMAGE)
    bad["notimg/gif_header_only.bmp"] = (b"GIF89a", CORRUPT)
    bad["notimg/png_signature_only.png"] = (b"\x89PNG\r\n\x1a\n", CORRUPT)
    bad["notimg/zero_width.png"] = (_png_header(0, 64), CORRUPT)
    return good, dups, bad


def test_a_corpus_of_broken_images_never_crashes_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # 200x200 is a "bomb", 64x64 and 80x40 are not
    good, dups, bad = broken_corpus()
    files = {**good, **dups, **{n: b for n, (b, _) in bad.items()}}
    assert len(bad) >= 40
    folder = tmp_path / "corpus"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not an image")   # ignored, counted
    (folder / ".hidden.png").write_bytes(b"")            # hidden: not looked at
    zpath = tmp_path / "corpus.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())

    sources = {"folder": folder, "zip": zpath, "uploaded zip": save_upload(zpath, tmp_path / "uploaded")}
    reports = {}
    for what, src in sources.items():
        d = prepare(src, 64, val=0, test=0)  # never raises for these
        r = d.report
        got = {n: reason for reason, names in r.skipped.items() for n in names}
        wrong = {n: (got.get(n), why) for n, (_, why) in bad.items() if got.get(n) != why}
        assert not wrong, f"{what}: bad files not reported as expected (got, expected): {wrong}"
        assert set(got) == set(bad), f"{what}: good files reported as bad: {set(got) - set(bad)}"
        assert sorted(d.names) == sorted(good), what
        assert sorted(b for _, b in r.duplicates) == sorted(dups), what
        assert r.total == len(files), what
        assert r.ignored_other == 1, what
        assert r.usable + len(r.duplicates) + r.n_skipped == r.total, (what, r.to_dict())
        assert d.images.shape == (len(good), 3, 64, 64)
        text = r.summary()
        for reason in (CORRUPT, EMPTY, NOT_IMAGE, TOO_SMALL, TOO_LARGE):
            assert f"skipped, {reason}" in text, (what, text)
        reports[what] = {**r.to_dict(), "ignored_other": None}
    assert reports["folder"] == reports["zip"] == reports["uploaded zip"]
    # the numbers, for the record
    print(f"broken-image corpus: {len(bad)} bad files reported, {len(good)} usable, {len(dups)} duplicates, "
          f"x{len(sources)} sources")


# --------------------------------------------------------------------------- the dashboard's server


def test_streamlit_listens_on_localhost_and_caps_uploads():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = cfg["server"]
    assert server["address"] == "127.0.0.1"
    assert isinstance(server["maxUploadSize"], int) and 0 < server["maxUploadSize"] <= 4096
    from animegan.data.zipread import MAX_TOTAL_BYTES
    assert server["maxUploadSize"] * 1024**2 <= MAX_TOTAL_BYTES  # an accepted upload is within the zip reader's limit
    assert cfg.get("browser", {}).get("gatherUsageStats") is False


def test_a_damaged_checkpoint_is_named_without_library_internals(tmp_path):
    good = (Path(__file__).resolve().parent.parent / "checkpoints" / "synthetic64.pt").read_bytes()
    for name, data in {"cut.pt": good[: len(good) // 2], "flipped.pt": good[:4000] + bytes(4000) + good[8000:]}.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            load_generator(p)
        msg = str(e.value)
        assert msg.startswith(f"{name} is not a readable checkpoint") and "Use another checkpoint" in msg, msg
        assert "miniz" not in msg and "PytorchStreamReader" not in msg and "Error" not in msg, msg
