"""The Train and Runs pages, driven through their widgets with streamlit's AppTest."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from animegan import jobs, paths
from animegan.checkpoint import load_checkpoint
from animegan.config import preset_config
from animegan.rundir import Run, append_jsonl, read_json, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "pages" / "train.py")
RUNS = str(ROOT / "pages" / "runs.py")


@pytest.fixture(autouse=True)
def no_job_left(animegan_home):
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    from animegan.synth import write_synthetic
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, faces):
    """A finished 2-epoch run (trained once per module), plus an evaluation and a collapse event."""
    from animegan.train import train
    home = tmp_path_factory.mktemp("tiny-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(home))
        cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=2, val_size=4,
                            test_size=4, latest_every=2, log_every=1)
        out = home / "runs" / "tiny"
        assert train(cfg, out, progress=False) == "finished"
    for ep in (1, 2):
        append_jsonl(out / "evals.jsonl", {"epoch": ep, "step": 5 * ep, "time": time.time(), "metric": "swd",
                                           "value": 900.0 - ep, "n": 4, "reference": "val split of faces", "seed": 0})
    append_jsonl(out / "events.jsonl", {"time": time.time(), "step": 7, "epoch": 1, "event": "collapse",
                                        "reason": "samples alike", "action": "warn"})
    return out


def install(run_dir: Path, name: str | None = None) -> Run:
    """A copy of a run in this test's home folder."""
    dst = paths.ensure(paths.runs_dir()) / (name or run_dir.name)
    shutil.copytree(run_dir, dst)
    return Run(dst)


def app(path: str) -> AppTest:
    return AppTest.from_file(path, default_timeout=90)


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def wait_for(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


# -- Train -------------------------------------------------------------------------------------

def test_train_page_renders_on_a_fresh_home():
    at = app(TRAIN).run()
    assert not at.exception
    assert any("No training runs yet" in c for c in texts(at, "caption"))
    assert at.selectbox(key="tr_preset").value == "anime64"
    assert at.number_input(key="tr_batch_size").value == 64
    assert not at.button(key="tr_start").disabled
    at.selectbox(key="tr_preset").set_value("classic-dcgan").run()  # a preset fills the form
    assert at.number_input(key="tr_batch_size").value == 128
    assert at.selectbox(key="tr_loss").value == "bce"
    assert at.text_input(key="tr_name").value.startswith("classic-dcgan-")


def start_and_expect_error(at: AppTest, text: str) -> None:
    """Press Start: the page shows one error containing `text`, no traceback, and starts nothing."""
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    errs = texts(at, "error")
    assert any(text in e for e in errs), errs
    assert jobs.current_job() is None
    assert not any(paths.runs_dir().glob("*/config.json")), "nothing may be written for a refused start"


def test_train_page_refuses_bad_input_without_traceback(tmp_path):
    at = app(TRAIN).run()
    at.text_input(key="tr_data").input(str(tmp_path / "nowhere"))
    start_and_expect_error(at, "not found")
    at.text_input(key="tr_data").input("synthetic")
    at.selectbox(key="tr_model").set_value("dcgan")
    at.selectbox(key="tr_img_size").set_value(96)
    at.text_input(key="tr_name").input("x")
    start_and_expect_error(at, "cannot draw 96px")
    at.selectbox(key="tr_img_size").set_value(64)
    at.text_input(key="tr_name").input("???")
    start_and_expect_error(at, "no usable characters")


@pytest.mark.parametrize("key, value, message", [
    ("tr_batch_size", 1, "--batch-size must be at least 2"),
    ("tr_epochs", 0, "--epochs must be at least 1"),
    ("tr_eval_n", 1, "--eval-n must be at least 2"),
    ("tr_lr_g", 0.0, "--lr-g and --lr-d must be more than 0"),
    ("tr_log_every", 0, "must be at least 1"),
])
def test_train_page_says_why_an_out_of_range_number_cannot_start(key, value, message):
    """An out-of-range number is checked by config.validate on Start and reported; it is neither
    replaced by a default behind the user's back nor a Start that silently does nothing."""
    at = app(TRAIN).run()
    at.number_input(key=key).set_value(value)
    start_and_expect_error(at, message)
    assert at.number_input(key=key).value == value, "the form keeps what the user typed"


def test_train_page_refuses_a_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    at = app(TRAIN).run()
    at.text_input(key="tr_data").input(str(tmp_path / "empty"))
    start_and_expect_error(at, "No images")


def subheader_state(at: AppTest, name: str) -> str:
    """The state the Train page's monitor shows for run `name` ("Run `name`: state")."""
    heads = [s for s in texts(at, "subheader") if f"`{name}`:" in s]
    assert len(heads) == 1, texts(at, "subheader")
    return heads[0].rsplit(":", 1)[1].strip()


def test_train_page_starts_watches_stops_and_resumes_a_job(faces):
    at = app(TRAIN).run()
    at.selectbox(key="tr_preset").set_value("classic-dcgan").run()
    # Form values are sent with the submit, as in a browser.
    at.text_input(key="tr_data").input(str(faces))
    for key, v in dict(tr_ngf=8, tr_ndf=8, tr_batch_size=8, tr_epochs=10_000, tr_log_every=1, tr_latest_every=2,
                       tr_val_size=4, tr_test_size=4, tr_max_steps=100_000).items():
        at.number_input(key=key).set_value(v)
    at.selectbox(key="tr_compile").set_value("off")  # a long CPU run would compile (~40 s) before its first step
    at.text_input(key="tr_name").input("ui run!")
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    assert not texts(at, "error"), texts(at, "error")
    job = jobs.current_job()
    assert job is not None and job.kind == "train" and job.run_dir.name == "ui-run"
    assert "--ngf=8" in job.argv and "--max-steps=100000" in job.argv
    assert any("Started run ui-run" in s for s in texts(at, "success"))
    assert at.button(key="tr_start").disabled  # one job at a time
    assert any("A job is running" in s for s in texts(at, "info"))
    # the child is still importing torch: the page says so at once
    assert subheader_state(at, "ui-run") == "starting"
    assert any("Starting: loading PyTorch" in s for s in texts(at, "info"))

    run = Run(job.run_dir)
    wait_for(lambda: run.status().get("step", 0) >= 2 or run.state in ("failed", "dead"), 300, "training steps")
    assert run.state == "running", (run.status(), job.log_tail())
    at.run()
    assert not at.exception
    assert subheader_state(at, "ui-run") == "running"
    assert at.get("progress") and at.get("metric")
    at.button(key="train_stop").click().run(timeout=180)
    assert not at.exception
    assert jobs.current_job() is None
    assert run.state == "stopped"
    assert any("Stopped run ui-run" in s for s in texts(at, "success"))
    assert subheader_state(at, "ui-run") == "stopped"
    assert not at.button(key="tr_start").disabled
    saved_step = load_checkpoint(run.last_checkpoint())["step"]
    assert saved_step >= 2

    # Resume from the page: the same run continues from its checkpoint, past the saved step.
    at.button(key="train_resume").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    assert any("Resuming run ui-run" in s for s in texts(at, "success"))
    job = jobs.current_job()
    assert job is not None and job.run_dir == run.path
    wait_for(lambda: (run.state == "running" and run.status().get("step", 0) > saved_step)
             or run.state in ("failed", "dead", "finished", "stopped"), 300, "the resumed run to train")
    assert run.state == "running" and run.status()["step"] > saved_step, (run.status(), job.log_tail())
    at.run()
    assert subheader_state(at, "ui-run") == "running"
    at.button(key="train_stop").click().run(timeout=180)
    assert jobs.current_job() is None
    assert run.state == "stopped" and run.status()["step"] > saved_step, run.status()
    assert load_checkpoint(run.last_checkpoint())["step"] > saved_step
    assert subheader_state(at, "ui-run") == "stopped"


def test_train_page_shows_a_dead_run_with_its_log(tiny_run):
    run = install(tiny_run, "crashed")
    st = read_json(run.path / "status.json")
    write_json_atomic(run.path / "status.json", dict(st, state="running", pid=2**22 + 12345, last_error=None))
    (run.path / "console.log").write_text("Traceback ...\nMemoryError: out of memory\n")
    at = app(TRAIN).run()
    assert not at.exception
    assert any("died" in e for e in texts(at, "error"))
    assert any("MemoryError" in c for c in texts(at, "code"))
    assert not at.button(key="train_resume").disabled  # last.pt exists and no job is running


# -- Runs ----------------------------------------------------------------------------------------

def test_runs_page_without_runs_points_to_train():
    at = app(RUNS).run()
    assert not at.exception
    assert any("No runs yet" in i and "Train" in i for i in texts(at, "info"))


def test_runs_page_shows_a_finished_run(tiny_run):
    run = install(tiny_run)
    at = app(RUNS).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_pick").value == "tiny"
    slider = at.select_slider(key="runs_epoch::tiny")
    assert slider.options == ["epoch 1", "epoch 2"] and slider.value == 2
    assert len(at.get("plotly_chart")) >= 3  # losses, D outputs, evaluations
    assert at.get("json")
    assert any("collapse" in w.lower() and "step 7" in w for w in texts(at, "warning"))
    assert any("only comparable at the same n" in c for c in texts(at, "caption"))
    evals = at.dataframe[0].value
    assert list(evals["metric"]) == ["SWD", "SWD"] and list(evals["value"]) == [899.0, 898.0]
    assert list(evals["n"]) == [4, 4]
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("epoch 2 grid" in lb for lb in labels) and "Download checkpoint" in labels
    # The slider, and the play toggle that steps through the epochs.
    slider.set_value(1).run()
    assert at.select_slider(key="runs_epoch::tiny").value == 1
    at.toggle(key="runs_play::tiny").set_value(True).run()
    assert not at.exception
    assert at.select_slider(key="runs_epoch::tiny").value == 2
    assert run.exists


def test_runs_page_deletes_with_confirmation(tiny_run):
    run = install(tiny_run, "doomed")
    at = app(RUNS).run()
    assert at.button(key="runs_delete::doomed").disabled  # not before "I understand"
    at.checkbox(key="runs_del_ok::doomed").check().run()
    at.button(key="runs_delete::doomed").click().run()
    assert not at.exception
    assert not run.path.exists()
    assert any("Deleted run doomed" in s for s in texts(at, "success"))
    assert any("No runs yet" in i for i in texts(at, "info"))


def test_runs_page_will_not_delete_a_training_run(tiny_run):
    run = install(tiny_run, "busy")
    st = read_json(run.path / "status.json")
    write_json_atomic(run.path / "status.json", dict(st, state="running", pid=os.getpid()))
    at = app(RUNS).run()
    assert not at.exception
    assert any("stop it" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "runs_delete::busy"]
    assert run.exists


SLEEPER = [__import__("sys").executable, "-c", "import time; time.sleep(60)"]


def test_runs_page_resumes_a_run(tiny_run):
    """Resume a finished run with more epochs from the Runs page: it trains again, past its
    checkpoint, and finishes at the new epoch count."""
    run = install(tiny_run, "again")
    saved_step = load_checkpoint(run.last_checkpoint())["step"]
    assert run.state == "finished" and saved_step > 0
    at = app(RUNS).run()
    assert at.number_input(key="runs_resume_epochs::again").value == 12  # finished: offer 10 more epochs
    at.number_input(key="runs_resume_epochs::again").set_value(3)
    at.button(key="runs_resume::again").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    assert any("Resumed run again" in s for s in texts(at, "success"))
    job = jobs.current_job()
    assert job is not None and job.run_dir == run.path
    # While it runs it can be neither resumed again nor deleted.
    assert not [b for b in at.button if b.key in ("runs_resume::again", "runs_delete::again")]
    assert {m.label: m.value for m in at.metric}["State"] == "starting"  # the child is importing torch
    wait_for(lambda: jobs.current_job() is None, 300, "the resumed run to end")
    steps = run.metrics()["step"]
    assert max(steps) > saved_step and steps == sorted(steps), "it trained on from its checkpoint"
    st = run.status()
    assert st["state"] == "finished" and st["epoch"] == 3 and st["step"] > saved_step, (st, job.log_tail())
    assert load_checkpoint(run.last_checkpoint())["step"] == st["step"]
    at.run()
    assert {m.label: m.value for m in at.metric}["State"] == "finished"
    assert {m.label: m.value for m in at.metric}["Steps"] == f"{st['step']:,}"


def test_train_page_while_an_evaluation_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "job_argv_for_eval", lambda *a, **k: list(SLEEPER))
    ck = tmp_path / "g.pt"
    ck.write_bytes(b"x")
    jobs.start_eval(ck, "swd", "synthetic", 10)
    at = app(TRAIN).run()
    assert not at.exception
    assert any("evaluation is running" in i for i in texts(at, "info"))
    assert at.button(key="tr_start").disabled
    at.button(key="train_stop_eval").click().run()
    assert jobs.current_job() is None
    assert not at.button(key="tr_start").disabled
