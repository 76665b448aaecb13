"""animegan.jobs: argv building, the one-job lock, and a real background training job."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from animegan import jobs, paths
from animegan.cli import build_parser, config_from_args
from animegan.config import PRESETS, ConfigError, TrainConfig, preset_config, validate
from animegan.preflight import DataPlan, RunPlan
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


def wait_for(cond, timeout: float, what: str, every: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def unchecked(cfg: TrainConfig, *a, **k) -> RunPlan:
    return RunPlan(cfg, 1, cfg.batch_size, None)


def child_config(argv: list[str]) -> TrainConfig:
    """The settings the child of `argv` trains with, as `python -m animegan train` reads them."""
    from animegan.cli import _config_file
    a = build_parser().parse_args(argv[argv.index("train"):])
    return config_from_args(a, _config_file(a.config))


# -- argv --------------------------------------------------------------------------------------

def test_argv_is_a_list_naming_the_settings_file(tmp_path):
    argv = jobs.job_argv_for_training(tmp_path / "c.json", tmp_path / "run")
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv == [sys.executable, "-m", "animegan", "train", "--config", str(tmp_path / "c.json"),
                    "--out", str(tmp_path / "run"), "--no-progress"]


@pytest.mark.parametrize("cfg", [
    TrainConfig(epochs=3, lr_g=1e-4, diffaug="color,translation", milestones=[5, 9], tensorboard=True),
    # a preset field set back to the plain default, and a value that looks like a flag
    preset_config("anime64", ema_kimg=0.0, diffaug="", epochs=2, init_from="-odd-name.pt"),
])
def test_the_child_trains_exactly_the_settings_it_was_given(cfg, monkeypatch):
    given, real_argv = [], jobs.job_argv_for_training
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: given.append(a) or list(SLEEPER))
    monkeypatch.setattr(jobs, "preflight", unchecked)  # settings as given: no data or checkpoint behind them
    job = jobs.start_training(cfg, "exact", check_data=False)
    config_file = Path(job.extra["config"])
    assert config_file.parent == paths.runs_dir() and config_file.exists(), "beside the lock, not in the run"
    assert child_config(real_argv(*given[0])) == cfg
    assert not [p for p in job.run_dir.iterdir() if p.name != "console.log"], "the starter writes no run file"
    jobs.stop_job(job, timeout=10)
    assert not config_file.exists(), "the settings file goes with its job"


def test_an_old_runs_preset_name_reaches_the_child_as_the_current_one(monkeypatch):
    # A run directory written before the presets were renamed records "seed-wgangp".
    old = TrainConfig.from_dict({**TrainConfig().to_dict(), **PRESETS["classic-wgangp"], "preset": "seed-wgangp", "epochs": 3})
    given, real_argv = [], jobs.job_argv_for_training
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: given.append(a) or list(SLEEPER))
    monkeypatch.setattr(jobs, "preflight", unchecked)  # settings as given: no data or checkpoint behind them
    jobs.start_training(old, "old-name", check_data=False)
    assert child_config(real_argv(*given[0])) == old.replace(preset="classic-wgangp")


def test_argv_resume_and_torchrun():
    argv = jobs.job_argv_for_training("/j/c.json", "/r/x", resume=True)
    assert argv[4:] == ["--config", "/j/c.json", "--resume", "/r/x", "--no-progress"]
    argv = jobs.job_argv_for_training("/j/c.json", "/r/y", nproc=2)
    assert argv[:8] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "animegan", "train"]
    assert argv[8:] == ["--config", "/j/c.json", "--out", "/r/y", "--no-progress"]
    with pytest.raises(jobs.JobError):
        jobs.job_argv_for_training("/j/c.json", "x", nproc=0)


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
    assert Run(job.run_dir).status(job).state == "starting"  # visible as live at once, before torch loads
    assert not (job.run_dir / "status.json").exists(), "only the trainer writes the run directory"
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
        jobs.start_eval(paths.SHIPPED_CHECKPOINTS / "synthetic64.pt", "swd", "synthetic", 10)
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


# The main thread ends first (a zombie to /proc), another thread ends the process a second later.
LINGERING_THREAD = """
import ctypes, os, threading, time
threading.Thread(target=lambda: (time.sleep(1.0), os._exit(3))).start()
ctypes.CDLL(None).pthread_exit(None)
"""


def test_exit_code_of_a_job_whose_threads_outlive_its_main_thread(monkeypatch):
    # torch's threads make every trainer end this way for a moment: ended, not yet reapable.
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: [sys.executable, "-c", LINGERING_THREAD])
    job = jobs.start_training(TrainConfig(), "threads")
    wait_for(lambda: jobs.current_job() is None, 30, "the job to end", every=0.02)
    assert job.returncode == 3
    assert jobs.last_job()["returncode"] == 3


def test_failed_spawn_releases_the_lock(monkeypatch):
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: ["/nonexistent/python"])
    with pytest.raises(jobs.JobError, match="could not start"):
        jobs.start_training(TrainConfig(), "nope")
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert jobs.current_job() is None


def test_bad_settings_are_refused_before_spawning(tmp_path):
    """The job starter's preflight: a ConfigError naming the field, before anything is spawned."""
    for cfg, field, words in [
            (TrainConfig(data=str(tmp_path / "missing")), "data", "Data source not found"),
            (TrainConfig(model="dcgan", img_size=96), "img_size", "cannot draw 96px"),
            (TrainConfig(diffaug="rotate"), "diffaug", "DiffAugment"),
            (TrainConfig(data="  "), "data", "No data source given"),
            (TrainConfig(init_from=str(tmp_path / "none.pt")), "init_from", "does not exist")]:
        with pytest.raises(ConfigError, match=words) as e:
            jobs.start_training(cfg, "a")
        assert e.value.field == field
    (tmp_path / "notes.txt").write_text("not images")
    with pytest.raises(ConfigError, match="is a file, not a folder or a .zip"):
        jobs.start_training(TrainConfig(data=str(tmp_path / "notes.txt")), "d")
    with pytest.raises(jobs.JobError, match="Data source not found"):
        jobs.start_eval(__file__, "swd", str(tmp_path / "missing"), 10)
    with pytest.raises(ConfigError, match="--batch-size 6 must be divisible by the number of processes \\(4\\)"):
        jobs.start_training(TrainConfig(batch_size=6), "g", nproc=4)
    # Every setting config.validate refuses is refused here, with validate's own message and field.
    for bad in (TrainConfig(img_size=48), TrainConfig(eval_n=1), TrainConfig(collapse_action="panic")):
        with pytest.raises(ConfigError) as want:
            validate(bad)
        with pytest.raises(ConfigError) as got:
            jobs.start_training(bad, "f")
        assert (str(got.value), got.value.field) == (str(want.value), want.value.field)
    assert jobs.current_job() is None
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert [p.name for p in paths.runs_dir().iterdir() if not p.name.startswith(".")] == []  # no run folder made


def test_eval_job_starts_and_ends(tmp_path, monkeypatch):
    ck = paths.SHIPPED_CHECKPOINTS / "synthetic64.pt"
    monkeypatch.setattr(jobs, "job_argv_for_eval", lambda *a, **k: [sys.executable, "-c", "print('done')"])
    job = jobs.start_eval(ck, "swd", "synthetic", 8, split="val", seed=1)
    assert job.kind == "eval" and job.pid > 0 and job.run_dir is None
    assert "SWD of synthetic64.pt" in job.label
    assert job.extra == {"checkpoint": str(ck.resolve()), "metric": "swd", "data": "synthetic", "n": 8, "split": "val",
                         "seed": 1}
    wait_for(lambda: jobs.current_job() is None, 120, "the eval job to end")
    assert job.returncode == 0 and jobs.last_job()["returncode"] == 0
    assert job.log.read_text().startswith("=== ")
    assert jobs.eval_result(job) is None  # it printed no result
    with pytest.raises(jobs.JobError, match="unknown metric"):
        jobs.start_eval(ck, "lpips", "synthetic", 8)
    with pytest.raises(jobs.JobError, match="checkpoint not found"):
        jobs.start_eval(tmp_path / "nothing.pt", "swd", "synthetic", 8)


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", re.escape('fake.pt is not a checkpoint written by animegan (it starts with the text "not "')),
    (b"", re.escape("fake.pt is empty (0 bytes)")),
    (b"PK\x03\x04" + b"\0" * 200, "fake.pt is not a readable checkpoint"),
])
def test_an_eval_of_a_garbage_checkpoint_is_refused_on_submit(tmp_path, content, message):
    """Compute on Compare with a file that is no checkpoint: refused at once with the checkpoint's
    own message (no library internals), no job started, no log written."""
    ck = tmp_path / "fake.pt"
    ck.write_bytes(content)
    with pytest.raises(jobs.JobError, match=message) as e:
        jobs.start_eval(ck, "swd", "synthetic", 8)
    assert "Traceback" not in str(e.value) and "torch" not in str(e.value)
    assert jobs.current_job() is None and jobs.last_job() is None
    assert not any(paths.logs_dir().glob("*.log"))


def test_fid_without_weights_is_refused_before_a_job_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMEGAN_INCEPTION_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(jobs.JobError, match="FID cannot be computed for synthetic64.pt: FID needs the Inception "
                                            "weights file") as e:
        jobs.start_eval(paths.SHIPPED_CHECKPOINTS / "synthetic64.pt", "fid", "synthetic", 8)
    assert "none.pth" in str(e.value)
    with pytest.raises(ConfigError, match="FID cannot be computed for this run's evaluations \\(--eval-metric FID") as e:
        jobs.start_training(TrainConfig(eval_metric="fid", eval_every=1), "fid-run")
    assert e.value.field == "eval_metric"
    with pytest.raises(ConfigError, match="FID cannot be computed"):
        jobs.start_training(TrainConfig(eval_metric="fid", eval_kimg=10.0), "fid-run")
    assert jobs.current_job() is None and not (paths.runs_dir() / "fid-run").exists()


def test_eval_job_measures_and_records(tmp_path):
    from animegan.metrics.evaluation import reference_label
    from animegan.rundir import evals_for_checkpoint
    from animegan.synth import write_synthetic
    faces = write_synthetic(tmp_path / "faces", n=60)  # a test split of 6 (a tenth)
    ck = paths.SHIPPED_CHECKPOINTS / "synthetic64.pt"
    job = jobs.start_eval(ck, "swd", str(faces), 50, split="test", seed=2)  # n capped at the split's 6
    wait_for(lambda: jobs.current_job() is None, 300, "the eval job to end")
    assert job.returncode == 0, job.log_tail()
    res = jobs.eval_result(job)
    assert res is not None, job.log_tail()
    assert res["metric"] == "swd" and res["n"] == 6 and res["seed"] == 2 and res["value"] > 0
    assert res["reference"].startswith(f"test split of {Path(faces).resolve()} (") and res["reference"].endswith(") @64px")
    fp = res["reference"].split("(")[-1].split(")")[0]
    assert res["reference"] == reference_label(str(Path(faces).resolve()), fp, 64, "test")
    recorded = evals_for_checkpoint(ck)
    assert [(r["metric"], r["value"]) for r in recorded] == [("swd", res["value"])]


# -- a real training job ---------------------------------------------------------------------------

def test_real_training_job_runs_and_stops_gracefully(tmp_path):
    from animegan.checkpoint import load_generator
    from animegan.synth import write_synthetic
    faces = write_synthetic(tmp_path / "faces", n=48)
    cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=10_000, compile="off", val_size=4,
                        test_size=4, log_every=1, latest_every=2)
    job = jobs.start_training(cfg, "tiny")
    run = Run(job.run_dir)
    assert run.status(job).state in ("starting", "running")  # before the trainer writes anything
    try:
        wait_for(lambda: run.status().state == "running" and run.status().step >= 1
                 or run.status().state in ("failed", "dead"), 300, "the trainer to run")
        assert run.state == "running", (run.status(), job.log_tail())
        assert jobs.current_job().pid == job.pid
        assert jobs.stop_job(job, timeout=120) is True, job.log_tail()
    finally:
        if job.alive():
            jobs.stop_job(job, timeout=5)
    st = run.status()
    assert st.state == "stopped" and st.stop_reason == "signal", (st, job.log_tail())
    assert (run.path / "checkpoints" / "last.pt").exists()
    lg = load_generator(run.path / "checkpoints" / "last.pt")
    assert lg.config.ngf == 8 and lg.step >= 1
    assert any(e.get("event") == "stopped" for e in run.events())
    assert jobs.current_job() is None
    assert not (paths.runs_dir() / jobs.LOCK_NAME).exists()
    assert (run.path / "console.log").exists()
    assert TrainConfig.from_dict(run.config()) == cfg.replace(data=str(Path(faces).resolve()))


def test_a_run_resumed_from_the_dashboard_trains_on(tmp_path):
    """The dashboard's Resume (`jobs.resume`, with more epochs): the run reads "starting" while its
    trainer loads, then trains on from its last.pt to the new epoch count."""
    from animegan.checkpoint import load_generator
    from animegan.synth import write_synthetic
    from animegan.train import train
    faces = write_synthetic(tmp_path / "faces", n=24)
    cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=1, compile="off", val_size=4,
                        test_size=4, threads=1)
    # the run to resume, trained here (a job of its own would only add a process: starting a
    # training job is test_real_training_job_runs_and_stops_gracefully's)
    run = Run(paths.runs_dir() / "again")
    assert train(cfg, run.path, progress=False) == "finished"
    assert run.status().state == "finished", run.status()
    first = load_generator(run.path / "checkpoints" / "last.pt").step
    assert first >= 1 and run.status().step == first

    job2 = jobs.resume(run, epochs=2)
    assert job2.argv[job2.argv.index("--resume"):] == ["--resume", str(run.path), "--no-progress"]
    assert run.status(job2).state in ("starting", "running"), "a finished run being resumed reads live at once"
    wait_for(lambda: jobs.current_job() is None, 300, "the resumed training to end")
    st = run.status()
    assert job2.returncode == 0, job2.log_tail()
    assert st.state == "finished", (st, job2.log_tail())
    assert st.step > first and st.epochs == 2 and st.epoch == 2
    assert load_generator(run.path / "checkpoints" / "last.pt").step == st.step
    assert run.config()["epochs"] == 2


# -- before a run: the data-aware check and the epoch-time estimate (animegan.speed) ----------------

def test_the_data_must_feed_the_settings_before_a_run_starts(tmp_path, sleeper):
    """A batch larger than the training split, an image size larger than the images: refused by
    the job starter with what to change, before anything is spawned or written."""
    from animegan.data import prepare
    from animegan.preflight import DataFitError, data_plan
    from animegan.synth import write_synthetic
    faces = write_synthetic(tmp_path / "faces", n=24)  # 96 px faces; 2 validation + 2 test held out
    cfg = preset_config("classic-dcgan", data=str(faces))
    with pytest.raises(ConfigError, match=re.escape(
            f"--batch-size 128 is larger than the training split of folder {faces.resolve()}: 20 images (24 image files "
            f"minus 2 validation and 2 test images). To train on it, lower the batch size to 20 or less, or add images.")):
        jobs.start_training(cfg, "big-batch")
    with pytest.raises(DataFitError) as e:
        jobs.start_training(cfg, "big-batch")
    assert e.value.field == "batch_size" and e.value.render(str.upper).startswith("BATCH_SIZE 128 is larger")
    with pytest.raises(ConfigError, match="--img-size 128 px is larger than the images of folder .*: the largest of "
                                            "16 looked at is 96 px .* choose image size 96 or less"):
        jobs.start_training(cfg.replace(batch_size=8, img_size=128), "too-large")
    one = write_synthetic(tmp_path / "one", n=1)
    with pytest.raises(ConfigError, match="1 image \\(1 image file\\)\\. To train on it, add images \\(training needs at least 2 per batch\\)"):
        jobs.start_training(cfg.replace(data=str(one), batch_size=2), "one-image")
    assert jobs.current_job() is None and not [p for p in paths.runs_dir().iterdir() if not p.name.startswith(".")]
    plan = data_plan(cfg.replace(batch_size=8))
    assert (plan.images, plan.exact, plan.train, plan.steps_per_epoch, plan.epoch_images) == (24, False, 20, 2, 16)
    prepare(str(faces), 64, val=2000, test=2000)  # prepared: the count is exact (usable images)
    assert data_plan(cfg.replace(batch_size=8)).exact
    assert data_plan(preset_config("anime64")).images == 10_000  # the built-in set the trainer renders
    jobs.start_training(cfg, "asked-not-to-check", check_data=False)  # the check can be skipped
    assert jobs.current_job() is not None


def _fake_run(name: str, ips: float, **cfg_kw) -> None:
    from animegan.rundir import write_json_atomic
    d = paths.ensure(paths.runs_dir()) / name
    host = cfg_kw.pop("host", socket.gethostname())
    device = cfg_kw.pop("device_ran", "cpu")
    write_json_atomic(d / "config.json", preset_config("anime64", **cfg_kw).to_dict())
    write_json_atomic(d / "status.json", {"state": "finished", "images_per_s": ips, "device": device, "world_size": 1,
                                          "host": host})


def test_recorded_speed_comes_from_runs_with_the_same_settings_here():
    from animegan import speed
    cfg = preset_config("anime64")
    assert speed.recorded_speed(cfg, "cpu") is None
    _fake_run("a", 10.0)
    _fake_run("b", 14.0, epochs=3, data="/somewhere/else", lr_g=1e-3)  # neither changes a step's speed
    _fake_run("c", 30.0)
    _fake_run("wider", 99.0, ngf=128)
    _fake_run("other-host", 99.0, host="elsewhere")
    _fake_run("on-gpu", 999.0, device_ran="cuda:0")
    _fake_run("not-yet", 0.0)
    got = speed.recorded_speed(cfg, "cpu")
    assert got is not None and got.source == "recorded" and got.images_per_s == 14.0  # the median of a, b, c
    assert sorted(got.detail.split("(")[-1].rstrip(")").split(", ")) == ["a", "b", "c"]
    assert speed.recorded_speed(cfg, "cuda").images_per_s == 999.0
    assert speed.recorded_speed(cfg.replace(batch_size=32), "cpu") is None


def test_time_steps_times_the_trainers_step_without_its_return_value(monkeypatch):
    from animegan import speed, step
    calls = []
    real = step.train_step

    def step_returning_nothing(*a, **k):
        calls.append(a[-1])
        real(*a, **k)
    monkeypatch.setattr(step, "train_step", step_returning_nothing)
    cfg = preset_config("classic-wgangp", ngf=8, ndf=8, batch_size=4, device="cpu")  # n_critic 5
    got = speed.time_steps(cfg)
    assert got.source == "measured" and got.images_per_s > 0
    assert calls == list(range(6))  # a warm-up step, then n_critic timed ones (G's update counted)
    plan = DataPlan("x", 100, True, 80, 10, 10, 4, None)
    assert got.epoch_seconds(plan) == pytest.approx(80 / got.images_per_s)
