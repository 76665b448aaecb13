"""animegan.jobs: argv building, the one-job lock, and a real background training job."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from animegan import jobs, paths
from animegan.cli import build_parser, config_from_args
from animegan.config import TrainConfig, preset_config
from animegan.rundir import Run

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture(autouse=True)
def no_job_left(animegan_home):
    """Whatever a test started is stopped before its home folder goes away."""
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


@pytest.fixture
def sleeper(monkeypatch):
    """Training jobs that only sleep: the lock logic without the cost of a trainer."""
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: list(SLEEPER))
    monkeypatch.setattr(jobs, "_check_config", lambda cfg: None)


def wait_for(cond, timeout: float, what: str, every: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def parse_train_argv(argv: list[str]) -> TrainConfig:
    i = argv.index("train")
    a = build_parser().parse_args(argv[i:])
    return config_from_args(a)


# -- argv --------------------------------------------------------------------------------------

def test_argv_is_a_list_with_only_the_differing_flags(tmp_path):
    cfg = TrainConfig(epochs=3, lr_g=1e-4, diffaug="color,translation", milestones=[5, 9], tensorboard=True)
    argv = jobs.job_argv_for_training(cfg, tmp_path / "run")
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[:4] == [sys.executable, "-m", "animegan", "train"]
    assert argv[4:7] == ["--out", str(tmp_path / "run"), "--no-progress"]
    flags = [a.split("=")[0] for a in argv[7:] if a.startswith("--")]
    assert sorted(flags) == sorted(["--epochs", "--lr-g", "--diffaug", "--milestones", "--tensorboard"])
    assert argv[argv.index("--milestones") + 1:argv.index("--milestones") + 3] == ["5", "9"]
    assert parse_train_argv(argv) == cfg  # the child rebuilds exactly this config
    assert jobs.job_argv_for_training(TrainConfig(), "x")[4:] == ["--out", "x", "--no-progress"]


def test_argv_keeps_the_preset_and_round_trips():
    # Setting a preset field back to the plain default must still reach the child.
    cfg = preset_config("anime64", ema_kimg=0.0, diffaug="", epochs=2, init_from="-odd-name.pt")
    argv = jobs.job_argv_for_training(cfg, "out")
    assert argv[argv.index("--preset") + 1] == "anime64"
    assert "--ema-kimg=0.0" in argv and "--diffaug=" in argv and "--epochs=2" in argv
    assert parse_train_argv(argv) == cfg


def test_argv_booleans_resume_and_torchrun():
    run_cfg = TrainConfig(compile="on", epochs=5)
    argv = jobs.job_argv_for_training(TrainConfig(compile="off", epochs=8), "/r/x", resume=True, base=run_cfg)
    assert argv[4:] == ["--resume", "/r/x", "--no-progress", "--epochs=8", "--compile=off"]
    argv = jobs.job_argv_for_training(TrainConfig(batch_size=64), "/r/y", nproc=2)
    assert argv[:8] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "animegan", "train"]
    assert argv[8:] == ["--out", "/r/y", "--no-progress", "--batch-size=64"]
    with pytest.raises(jobs.JobError):
        jobs.job_argv_for_training(TrainConfig(), "x", nproc=0)


def test_eval_argv():
    argv = jobs.job_argv_for_eval("/c/a.pt", "swd", "synthetic", 500, "test", 3)
    assert argv == [sys.executable, "-m", "animegan", "swd", "--checkpoint", "/c/a.pt", "--data", "synthetic",
                    "--n", "500", "--split", "test", "--seed", "3", "--json", "--record"]


# -- the lock ------------------------------------------------------------------------------------

def test_names_are_sanitized_and_existing_runs_refused(sleeper):
    job = jobs.start_training(TrainConfig(), "  my run/../x?  ")
    assert job.run_dir == paths.runs_dir() / "my-run-.-x"
    assert job.run_dir.is_dir() and job.log == job.run_dir / "console.log"
    assert job.kind == "train" and job.alive() and job.pid > 0
    assert Run(job.run_dir).state == "starting"  # visible as live at once, before torch loads
    assert jobs.stop_job(job, timeout=10)
    jobs.start_training(TrainConfig(), "my run/../x?")  # no config.json yet: the name is still free
    jobs.stop_job(timeout=10)
    (job.run_dir / "config.json").write_text(json.dumps(TrainConfig().to_dict()))  # as the trainer does
    with pytest.raises(jobs.JobError, match="already exists"):
        jobs.start_training(TrainConfig(), "my run/../x?")
    with pytest.raises(jobs.JobError, match="no usable characters"):
        jobs.start_training(TrainConfig(), "???")
    with pytest.raises(jobs.JobError, match="no checkpoints/last.pt"):
        jobs.start_training(TrainConfig(), "my-run-.-x", resume=True)
    assert jobs.current_job() is None


def test_two_concurrent_starts_give_one_job(sleeper):
    barrier = threading.Barrier(4)
    results: list = []

    def start(i: int) -> None:
        barrier.wait()
        try:
            results.append(jobs.start_training(TrainConfig(), f"race-{i}"))
        except jobs.JobError as e:
            results.append(e)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    started = [r for r in results if isinstance(r, jobs.Job)]
    refused = [r for r in results if isinstance(r, jobs.JobError)]
    assert len(started) == 1 and len(refused) == 3
    assert all("already running" in str(e) for e in refused)
    cur = jobs.current_job()
    assert cur is not None and cur.pid == started[0].pid and cur.token == started[0].token
    lock = json.loads((paths.runs_dir() / jobs.LOCK_NAME).read_text())
    assert lock["pid"] == started[0].pid and lock["proc_start"] == jobs.proc_start_time(started[0].pid)
    with pytest.raises(jobs.JobError, match="already running"):
        jobs.start_eval(__file__, "swd", "synthetic", 10)
    assert jobs.stop_job(timeout=10) is True
    assert not started[0].alive()
    assert jobs.current_job() is None
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert jobs.last_job()["pid"] == started[0].pid


def _write_lock(**kw) -> Path:
    lock = paths.ensure(paths.runs_dir()) / jobs.LOCK_NAME
    d = dict(kind="train", pid=0, argv=["x"], log="/dev/null", run_dir=None, started=time.time(), label="old job")
    d.update(kw)
    lock.write_text(json.dumps(d))
    return lock


def test_stale_lock_of_a_dead_process_is_recovered(sleeper):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    lock = _write_lock(pid=p.pid)
    assert jobs.current_job() is None
    assert not lock.exists()
    job = jobs.start_training(TrainConfig(), "after-stale")  # the slot is free again
    assert jobs.current_job().pid == job.pid


def test_lock_of_a_reused_pid_is_stale():
    # A live pid that is not the process the lock recorded (another start time): not our job,
    # never reported as running (and so never signalled).
    lock = _write_lock(pid=os.getpid(), proc_start=(jobs.proc_start_time(os.getpid()) or 0) + 12345)
    assert jobs.current_job() is None and not lock.exists()


def test_reservations_and_damaged_locks():
    # A reservation (no pid yet) of a live owner holds the slot; of a dead owner it is stale.
    me = os.getpid()
    lock = _write_lock(pid=0, owner=me, owner_start=jobs.proc_start_time(me), token="t")
    job = jobs.current_job()
    assert job is not None and job.pid == 0 and job.alive()
    assert jobs.stop_job(job, timeout=0.3) is False  # nothing spawned: nothing is signalled
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    _write_lock(pid=0, owner=p.pid, token="t")
    assert jobs.current_job() is None and not lock.exists()
    # Half-written JSON: left alone while fresh, removed once old.
    lock.write_text("{")
    assert jobs.current_job() is None and lock.exists()
    os.utime(lock, (time.time() - 120, time.time() - 120))
    assert jobs.current_job() is None and not lock.exists()


def test_failed_spawn_releases_the_lock(monkeypatch):
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: ["/nonexistent/python"])
    monkeypatch.setattr(jobs, "_check_config", lambda cfg: None)
    with pytest.raises(jobs.JobError, match="could not start"):
        jobs.start_training(TrainConfig(), "nope")
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert jobs.current_job() is None


def test_bad_settings_are_refused_before_spawning(tmp_path):
    with pytest.raises(jobs.JobError, match="data source not found"):
        jobs.start_training(TrainConfig(data=str(tmp_path / "missing")), "a")
    with pytest.raises(jobs.JobError, match="cannot draw 96px"):
        jobs.start_training(TrainConfig(model="dcgan", img_size=96), "b")
    with pytest.raises(jobs.JobError, match="DiffAugment"):
        jobs.start_training(TrainConfig(diffaug="rotate"), "c")
    assert jobs.current_job() is None
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()


def test_eval_job_starts_and_ends(tmp_path):
    ck = tmp_path / "fake.pt"
    ck.write_bytes(b"not a checkpoint")
    job = jobs.start_eval(ck, "swd", "synthetic", 8, split="val", seed=1)
    assert job.kind == "eval" and job.pid > 0 and job.run_dir is None
    assert job.argv == jobs.job_argv_for_eval(ck.resolve(), "swd", "synthetic", 8, "val", 1)
    assert "SWD of fake.pt" in job.label
    assert jobs.current_job().pid == job.pid
    wait_for(lambda: jobs.current_job() is None, 120, "the eval job to end")
    assert job.returncode not in (None, 0)  # a fake checkpoint: the CLI refuses it
    assert jobs.last_job()["returncode"] == job.returncode
    assert job.log.exists() and "===" in job.log.read_text()
    assert jobs.eval_result(job) is None
    with pytest.raises(jobs.JobError, match="unknown metric"):
        jobs.start_eval(ck, "lpips", "synthetic", 8)
    with pytest.raises(jobs.JobError, match="checkpoint not found"):
        jobs.start_eval(tmp_path / "nothing.pt", "swd", "synthetic", 8)


# -- a real training job ---------------------------------------------------------------------------

def test_real_training_job_runs_and_stops_gracefully(tmp_path):
    from animegan.checkpoint import load_generator
    from animegan.synth import write_synthetic
    faces = write_synthetic(tmp_path / "faces", n=48)
    cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=10_000, compile="off", val_size=4,
                        test_size=4, log_every=1, latest_every=2)
    job = jobs.start_training(cfg, "tiny")
    run = Run(job.run_dir)
    assert run.state in ("starting", "running")  # before the trainer writes anything
    try:
        wait_for(lambda: run.status().get("state") == "running" and run.status().get("step", 0) >= 1
                 or run.status().get("state") in ("failed", "dead"), 300, "the trainer to run")
        assert run.state == "running", (run.status(), job.log_tail())
        assert jobs.current_job().pid == job.pid
        assert jobs.stop_job(job, timeout=120) is True, job.log_tail()
    finally:
        if job.alive():
            jobs.stop_job(job, timeout=5)
    st = run.status()
    assert st["state"] == "stopped", (st, job.log_tail())
    assert (run.path / "checkpoints" / "last.pt").exists()
    lg = load_generator(run.path / "checkpoints" / "last.pt")
    assert lg.config.ngf == 8 and lg.step >= 1
    assert any(e.get("event") == "stopped" for e in run.events())
    assert jobs.current_job() is None
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert (run.path / "console.log").exists()
    assert TrainConfig.from_dict(run.config()) == cfg.replace(data=str(Path(faces).resolve()))
