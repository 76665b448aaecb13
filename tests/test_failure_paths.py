"""Failure paths a careful reviewer tries next, each checked by what a user then sees (the state the
CLI and the Runs page read through the package, nothing lost, no process left behind):

- the run directory deleted under a live run (a user cleaning up);
- the dashboard restarted while its job runs;
- two browser tabs starting the same run at once;
- torchrun killed, or stopped by force, while its workers train.

(A full disk while saving is in test_reliability.py.) Tiny runs on the CPU; every timeout here is
a hang guard, never a speed assertion.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from animegan import jobs, paths
from animegan.checkpoint import load_checkpoint
from animegan.config import TrainConfig, preset_config
from animegan.processes import descendants, pid_alive
from animegan.rundir import Run
from animegan.synth import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD = 240  # seconds: a hang guard, not a speed assertion
TINY = dict(device="cpu", ngf=8, ndf=8, batch_size=8, val_size=4, test_size=4, compile="off", threads=1, n_samples=16,
            latest_every=1000, log_every=5, collapse_action="warn")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


@pytest.fixture(autouse=True)
def no_job_left(animegan_home, monkeypatch):
    """Whatever a test started is stopped before its home folder goes away."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


def env_for(home: Path) -> dict:
    return {**os.environ, "ANIMEGAN_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}


def wait_for(cond, what: str, timeout: float = HANG_GUARD, log: Path | None = None, every: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def gone(*pids: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout  # a process just killed: a moment to be reaped
    while any(pid_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    return not any(pid_alive(p) for p in pids)


def kill(*pids: int) -> None:
    """Clean-up of what a failed test left: only the processes this test started."""
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


# -- the run directory deleted under a live run ----------------------------------------------------


def test_a_run_directory_deleted_while_training_stops_the_run_and_is_not_made_again(faces, tmp_path, animegan_home):
    run, log = tmp_path / "run", tmp_path / "trainer.log"
    cmd = [sys.executable, "-m", "animegan", "train", "--no-progress", "--preset", "classic-dcgan", "--data", str(faces),
           "--out", str(run), "--epochs", "100000", "--checkpoint-minutes", "0.001",
           *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env_for(animegan_home), stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or Run(run).state == "running" and Run(run).last_checkpoint(),
                 "the trainer to run and save", log=log)
        assert proc.poll() is None, log.read_text()
        # rm -rf, as a user cleaning up does (again if the trainer wrote a file into it meanwhile)
        wait_for(lambda: shutil.rmtree(run, ignore_errors=True) or not run.exists(), "the folder to be deleted", 30)
        end = time.monotonic() + HANG_GUARD
        while proc.poll() is None and time.monotonic() < end:
            assert not run.exists(), f"the trainer made the run directory again: {sorted(map(str, run.rglob('*')))}"
            time.sleep(0.05)
        assert proc.poll() is not None, f"the trainer kept going without its run directory:\n{log.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text(errors="replace")
    assert proc.returncode == 2, out[-3000:]
    assert not run.exists(), "nothing may make a half run directory again"
    said = f"the run directory {run} was deleted while the run was training, so the run stopped"
    assert f"error: {said}" in out and f"training failed: {said}" in out, out[-3000:]
    assert "Traceback" not in out and "Errno" not in out, out[-3000:]


# -- the dashboard restarted while its job runs ----------------------------------------------------

DASHBOARD = """
import json, sys, time
from animegan import jobs
from animegan.config import TrainConfig
job = jobs.start_training(TrainConfig.from_dict(json.loads(sys.argv[1])), "survivor", check_data=False)
print(json.dumps(job.to_dict()), flush=True)
time.sleep(600)  # the dashboard serves on, until it is killed
"""

RESTARTED = """
import json
from animegan import jobs
from animegan.rundir import Run
job = jobs.current_job()
seen = Run(job.run_dir).status(job).state if job else None
stopped = jobs.stop_job(job, timeout=120) if job else None
print(json.dumps({"job": job.to_dict() if job else None, "state_seen": seen, "stopped": stopped}))
"""


def test_a_job_outlives_the_dashboard_and_a_restarted_one_finds_and_stops_it(faces, animegan_home):
    """The dashboard that started a job is killed (SIGKILL to its whole process group, as a closed
    terminal or a crash ends it); a new dashboard process finds the job, shows its run live, and
    stops it: the process ends and the run is "stopped" with its last.pt."""
    env = env_for(animegan_home)
    cfg = preset_config("classic-dcgan", data=str(faces), epochs=100000, **TINY)
    dashboard = subprocess.Popen([sys.executable, "-c", DASHBOARD, json.dumps(cfg.to_dict())], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = dashboard.stdout.readline()
    finally:
        os.killpg(dashboard.pid, signal.SIGKILL)
        dashboard.wait(timeout=60)
        dashboard.stdout.close()
    assert line, "the dashboard did not start the job"
    started = json.loads(line)
    pid, run = started["pid"], Run(started["run_dir"])
    try:
        wait_for(lambda: not pid_alive(pid) or run.status().state == "running" and run.status().step >= 1,
                 "the job to train on without the dashboard that started it", log=run.path / "console.log")
        assert pid_alive(pid) and run.status().pid == pid, (run.status(), run.log_tail())
        restarted = subprocess.run([sys.executable, "-c", RESTARTED], env=env, cwd=ROOT, capture_output=True, text=True,
                                   timeout=HANG_GUARD)
        assert restarted.returncode == 0, restarted.stderr
        seen = json.loads(restarted.stdout.strip().splitlines()[-1])
    finally:
        if pid_alive(pid):
            kill(pid)
    assert seen["job"] is not None, "the restarted dashboard must find the job"
    assert (seen["job"]["pid"], seen["job"]["token"]) == (pid, started["token"])
    assert seen["state_seen"] == "running", "its run shows live"
    assert seen["stopped"] is True, f"the job should stop on SIGTERM:\n{run.log_tail()}"
    assert gone(pid), "the stop really stops the process"
    st = run.status()
    assert st.state == "stopped", (st, (run.path / "console.log").read_text()[-3000:])
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["step"] == st.step
    assert jobs.current_job() is None and not (paths.runs_dir() / jobs.LOCK_NAME).exists()


# -- two browser tabs starting the same run ---------------------------------------------------------

TAB = """
import json, sys, time
from pathlib import Path
from animegan import jobs
from animegan.config import TrainConfig
jobs.job_argv_for_training = lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(120)"]
go, ready = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
try:
    print(json.dumps({"pid": jobs.start_training(TrainConfig(), sys.argv[3], check_data=False).pid}))
except jobs.JobError as e:
    print(json.dumps({"error": str(e)}))
"""


def test_two_tabs_starting_the_same_run_at_once_start_it_once(tmp_path, animegan_home):
    env = env_for(animegan_home)
    for attempt in range(4):
        name, go = f"tab-race-{attempt}", tmp_path / f"go-{attempt}"
        ready = [tmp_path / f"ready-{attempt}-{i}" for i in range(2)]
        tabs = [subprocess.Popen([sys.executable, "-c", TAB, str(go), str(r), name], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ready]
        wait_for(lambda r=ready: all(p.exists() for p in r), "both tabs to be ready", 120, every=0.01)
        go.touch()  # both start now
        said = [json.loads(t.communicate(timeout=120)[0].strip().splitlines()[-1]) for t in tabs]
        started = [s["pid"] for s in said if "pid" in s]
        refused = [s["error"] for s in said if "error" in s]
        assert len(started) == 1 and len(refused) == 1, said
        assert refused[0].startswith(f"a run named {name} is already being "), refused
        assert refused[0].endswith("; pick another name, or wait for it to end"), refused
        job = jobs.current_job()
        assert job is not None and job.pid == started[0] and job.run_dir == paths.runs_dir() / name
        assert Run(job.run_dir).status(job).state == "starting"
        assert not (job.run_dir / "status.json").exists(), "the job starter writes nothing into the run"
        assert jobs.stop_job(job, timeout=30) is True and gone(started[0])


def test_a_start_that_straddles_another_whole_start_of_the_same_name_is_refused(monkeypatch):
    """Tab B's checks (the data check takes a while) run while tab A's whole job starts, writes the
    run and ends: B must not then start a second job into A's run (nor mark it "starting")."""
    def trainer(cfg, out_dir, **kw):  # writes the run's config.json, as the trainer does, and ends
        return [sys.executable, "-c", f"open({str(Path(out_dir) / 'config.json')!r}, 'w').write('{{}}')"]
    monkeypatch.setattr(jobs, "job_argv_for_training", trainer)
    a_done, b_checking = threading.Event(), threading.Event()
    real_preflight = jobs.preflight

    def slow_data_check(cfg, *a, data=True, **k):  # B checks the data (slowly), A does not
        if data:
            b_checking.set()
            assert a_done.wait(120)
        return real_preflight(cfg, *a, data=data, **k)
    monkeypatch.setattr(jobs, "preflight", slow_data_check)
    got: list = []

    def tab_b() -> None:
        try:
            got.append(jobs.start_training(TrainConfig(), "same"))
        except jobs.JobError as e:
            got.append(e)
    b = threading.Thread(target=tab_b)
    b.start()
    assert b_checking.wait(60)
    a = jobs.start_training(TrainConfig(), "same", check_data=False)
    wait_for(lambda: jobs.current_job() is None, "tab A's job to end", 120)
    assert a.returncode == 0 and Run(a.run_dir).exists
    a_done.set()
    b.join(120)
    assert len(got) == 1 and isinstance(got[0], jobs.JobError), got
    assert str(got[0]) == "a run named same already exists; pick another name, or resume that run"
    assert jobs.current_job() is None
    assert not (a.run_dir / "status.json").exists(), "B must not have marked A's run as its own"
    assert Run(a.run_dir).status().state == "unknown"


# -- torchrun's workers ------------------------------------------------------------------------------


def workers(pid: int) -> dict[int, int]:
    """{rank: pid} of the processes below torchrun `pid` (its workers lead sessions of their own)."""
    out = {}
    for child, _ in descendants(pid):
        try:
            env = dict(kv.split("=", 1) for kv in Path(f"/proc/{child}/environ").read_text().split("\0") if "=" in kv)
        except OSError:
            continue
        if "RANK" in env and "LOCAL_RANK" in env:
            out[int(env["RANK"])] = child
    return out


def start_ddp(faces: Path, name: str) -> tuple[jobs.Job, dict[int, int]]:
    """A 2-process CPU torchrun job started as the dashboard starts it, running (step >= 1)."""
    cfg = preset_config("classic-dcgan", data=str(faces), epochs=100000, **TINY)
    job = jobs.start_training(cfg, name, nproc=2, check_data=False)
    ranks: dict[int, int] = {}

    def running() -> bool:
        ranks.update(workers(job.pid))
        assert job.alive(), job.log_tail(60)
        st = Run(job.run_dir).status()
        return len(ranks) == 2 and st.state == "running" and st.step >= 1
    try:
        wait_for(running, "both ranks to train", log=job.log)
    except BaseException:
        kill(*ranks.values(), job.pid)
        raise
    return job, ranks


def test_torchrun_killed_leaves_no_worker_behind(faces):
    """torchrun is SIGKILLed (the OOM killer, kill -9, a stop that had to kill): its workers, in
    sessions of their own, notice their launcher is gone, stop together and save last.pt."""
    job, ranks = start_ddp(faces, "orphans")
    try:
        os.kill(job.pid, signal.SIGKILL)
        assert gone(*ranks.values(), timeout=HANG_GUARD), (
            f"torchrun's workers trained on without it {HANG_GUARD} s later:\n{job.log_tail(60)}")
    finally:
        kill(*ranks.values())
    st = Run(job.run_dir).status()
    assert st.state == "stopped", (st, job.log_tail(60))
    assert load_checkpoint(job.run_dir / "checkpoints" / "last.pt")["step"] == st.step
    assert "the launcher that started this process" in job.log_tail(200) and "is gone" in job.log_tail(200)
    assert jobs.current_job() is None


def test_a_stop_that_has_to_kill_torchrun_kills_its_workers_too(faces):
    """A worker hangs (SIGSTOP), so torchrun cannot end within stop_job's wait and is SIGKILLed:
    stop_job must not leave the workers (sessions of their own) behind."""
    job, ranks = start_ddp(faces, "hung")
    try:
        os.kill(ranks[1], signal.SIGSTOP)
        assert jobs.stop_job(job, timeout=3) is False  # it had to kill
        assert gone(job.pid, *ranks.values()), "no process of the job may be left behind"
    finally:
        kill(*ranks.values(), job.pid)
    assert jobs.current_job() is None
    assert Run(job.run_dir).state == "dead", "the run shows it ended (not live)"
