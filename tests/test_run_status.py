"""rundir.RunStatus: what a run is doing, decided once (with what is alive now), and the one resume."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from animegan.config import TrainConfig
from animegan.rundir import ResumeError, Run, write_json_atomic


@dataclass
class FakeJob:
    kind: str
    run_dir: Path | None
    is_alive: bool = True
    started: float = 1000.0

    def alive(self) -> bool:
        return self.is_alive


def gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_run(path: Path, status: dict | None, **cfg) -> Run:
    write_json_atomic(path / "config.json", TrainConfig(**cfg).to_dict())
    if status is not None:
        write_json_atomic(path / "status.json", status)
    return Run(path)


def test_a_run_whose_process_is_gone_reads_dead_with_why(tmp_path):
    run = make_run(tmp_path / "r", {"state": "running", "pid": gone_pid(), "step": 7, "total_steps": 20, "epoch": 1,
                                    "epochs": 4, "last_error": None})
    status = run.status()
    assert (status.state, status.recorded_state, status.live) == ("dead", "running", False)
    assert "gone" in status.last_error and status.step == 7 and status.fraction == pytest.approx(0.35)
    assert run.state == "dead"
    live = make_run(tmp_path / "live", {"state": "running", "pid": os.getpid(), "step": 3})
    assert live.status().state == "running" and live.status().live and live.status().last_error is None


def test_a_run_its_job_is_starting_reads_starting(tmp_path):
    run = make_run(tmp_path / "r", None, epochs=5)
    assert run.status().state == "unknown" and run.status().epochs == 5  # the config's epochs until the trainer's
    job = FakeJob("train", tmp_path / "r")
    assert run.status(job).state == "starting" and run.trained_by(job)
    # A stopped run being resumed: starting while its trainer imports torch; not for other jobs.
    make_run(tmp_path / "r", {"state": "stopped", "pid": gone_pid(), "step": 4, "stop_reason": "signal"})
    assert run.status(job).state == "starting" and run.status(job).step == 4
    assert run.status().state == "stopped" and run.status().stop_reason == "signal"
    for other in (FakeJob("eval", tmp_path / "r"), FakeJob("train", tmp_path / "else"),
                  FakeJob("train", tmp_path / "r", is_alive=False)):
        assert run.status(other).state == "stopped" and not run.trained_by(other)


def test_a_run_that_ended_while_its_process_exits_reads_its_end_not_starting(tmp_path):
    """Issue 26 #9: the trainer wrote "finished" and is freeing memory; its job is still alive for
    those seconds. The run reads finished (Train, Runs and the Runs selector), not "starting"."""
    job = FakeJob("train", tmp_path / "r", started=1000.0)
    run = make_run(tmp_path / "r", {"state": "finished", "pid": os.getpid(), "step": 20, "epoch": 20, "epochs": 20,
                                    "updated": 1060.0})
    status = run.status(job)
    assert (status.state, status.live, status.phase) == ("finished", False, "finished")
    # The same file written before this job started (a run being resumed) still reads starting.
    make_run(tmp_path / "r", {"state": "stopped", "pid": gone_pid(), "step": 4, "updated": 900.0})
    assert run.status(job).state == "starting"


def test_a_running_run_compiling_shows_the_compiling_phase(tmp_path):
    run = make_run(tmp_path / "r", {"state": "running", "pid": os.getpid(), "compiling": True, "step": 0})
    assert (run.status().state, run.status().phase, run.status().live) == ("running", "compiling", True)
    make_run(tmp_path / "r", {"state": "running", "pid": os.getpid(), "compiling": False, "step": 3})
    assert run.status().phase == "running"


def test_a_damaged_status_reads_unknown(tmp_path):
    run = make_run(tmp_path / "r", None)
    (run.path / "status.json").write_text('{"state": "runn')
    assert run.status().state == "unknown" and run.status().step == 0
    (run.path / "status.json").write_text('{"state": "finished", "step": "x", "eta_s": "nan", "images_per_s": null}')
    status = run.status()
    assert (status.state, status.step, status.eta_s, status.images_per_s) == ("finished", 0, None, 0.0)


def test_resume_config_is_the_one_decision(tmp_path):
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    run = make_run(tmp_path / "r", {"state": "finished", "pid": gone_pid(), "step": 10}, epochs=2, max_steps=10)
    with pytest.raises(ResumeError, match="no checkpoints/last.pt"):
        run.resume_config()
    last.parent.mkdir()
    last.write_bytes(b"")
    assert run.resume_config() == TrainConfig(epochs=2, max_steps=10)  # as it was (the CLI: flags on top)
    assert run.resume_config(epochs=5) == TrainConfig(epochs=5, max_steps=0), "a finished run given more epochs runs on"
    write_json_atomic(run.path / "status.json", {"state": "stopped", "step": 4})
    assert run.resume_config(epochs=5) == TrainConfig(epochs=5, max_steps=10), "a stopped one keeps its cap"
    write_json_atomic(run.path / "status.json", {"state": "running", "pid": os.getpid()})
    with pytest.raises(ResumeError, match=f"still training \\(pid {os.getpid()}\\)"):
        run.resume_config()
    with pytest.raises(ResumeError, match="no run to resume"):
        Run(tmp_path / "nothing").resume_config()
