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
from animegan.config import PRESETS, TrainConfig, preset_config
from animegan.rundir import Run, append_jsonl, read_json, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "app_pages" / "train.py")
RUNS = str(ROOT / "app_pages" / "runs.py")


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
    before = set(paths.runs_dir().glob("*"))
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    errs = texts(at, "error")
    assert any(text in e for e in errs), errs
    assert jobs.current_job() is None
    assert set(paths.runs_dir().glob("*")) == before, "nothing may be written for a refused start"


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
    ("tr_batch_size", 1, "**Batch size** must be at least 2"),
    ("tr_epochs", 0, "**Epochs** must be at least 1"),
    ("tr_eval_n", 1, "**Images per evaluation** must be at least 2"),
    ("tr_lr_g", 0.0, "**Learning rate G** must be more than 0 (it is 0)"),
    ("tr_log_every", 0, "**Log every N steps**"),
    ("tr_minutes", -1.0, "**Time budget, minutes** must be 0 (no budget) or more (it is -1)"),  # that field alone
])
def test_train_page_says_why_an_out_of_range_number_cannot_start(key, value, message):
    """An out-of-range number is checked by config.validate on Start and reported, naming the
    form's field (not a command-line flag); it is neither replaced by a default behind the
    user's back nor a Start that silently does nothing. The form says so before Start too."""
    at = app(TRAIN).run()
    at.number_input(key=key).set_value(value)
    at.button(key="tr_time").click().run()  # any submit of the form: the estimate says what is wrong
    assert [w for w in texts(at, "warning") if w.startswith("Before you start:") and message in w], texts(at, "warning")
    assert not texts(at, "error") and "train_speed_measured" not in at.session_state  # nothing timed
    start_and_expect_error(at, message)
    assert not any("--" in e for e in texts(at, "error")), texts(at, "error")
    assert at.number_input(key=key).value == value, "the form keeps what the user typed"
    assert not texts(at, "warning"), "after Start the message is shown once, as the error"


def test_train_page_refuses_settings_the_data_cannot_feed(faces):
    """A batch larger than the training split and an image size larger than the images are
    caught before launch, with what to change; nothing starts, nothing is written."""
    at = app(TRAIN).run()
    at.text_input(key="tr_data").input(str(faces))
    at.number_input(key="tr_batch_size").set_value(64)
    at.button(key="tr_time").click().run()  # a submit of the form
    warned = " ".join(texts(at, "warning"))
    assert "**Batch size** 64 is larger than the training split" in warned and "40 images" in warned, warned
    start_and_expect_error(at, "lower the batch size to 40 or less")
    at.number_input(key="tr_batch_size").set_value(8)
    at.selectbox(key="tr_img_size").set_value(128)
    start_and_expect_error(at, "**Image size** 128 px is larger than the images")
    assert "choose image size 96 or less" in " ".join(texts(at, "error"))
    at.selectbox(key="tr_img_size").set_value(96)  # what the data gives: no warning any more
    at.button(key="tr_time").click().run()
    assert not texts(at, "warning") and not texts(at, "error"), texts(at, "warning")
    assert any("40 training images" in c for c in texts(at, "caption"))


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
    given = read_json(job.extra["config"])  # the child's settings, beside the job lock
    assert given["ngf"] == 8 and given["max_steps"] == 100_000
    assert any("Started run ui-run" in s for s in texts(at, "success"))
    assert at.button(key="tr_start").disabled  # one job at a time
    assert any("A job is running" in s for s in texts(at, "info"))
    # the child is still importing torch: the page says so at once
    assert subheader_state(at, "ui-run") == "starting"
    assert any("Starting: loading PyTorch" in s for s in texts(at, "info"))

    run = Run(job.run_dir)
    wait_for(lambda: run.status(job).step >= 2 or run.status(job).state in ("failed", "dead"), 300, "training steps")
    assert run.status(job).state == "running", (run.status(job), job.log_tail())
    at.run()
    assert not at.exception
    assert subheader_state(at, "ui-run") == "running"
    assert at.get("progress") and at.get("metric")
    at.button(key="train_stop").click().run(timeout=180)
    assert not at.exception
    assert jobs.current_job() is None
    assert run.status().state == "stopped" and run.status().stop_reason == "signal"
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
    assert run.status(job).state == "starting", "a stopped run being resumed reads starting at once"
    wait_for(lambda: (run.status(job).state == "running" and run.status(job).step > saved_step)
             or run.status(job).state in ("failed", "dead", "finished", "stopped"), 300, "the resumed run to train")
    assert run.status(job).state == "running" and run.status(job).step > saved_step, (run.status(job), job.log_tail())
    at.run()
    assert subheader_state(at, "ui-run") == "running"
    at.button(key="train_stop").click().run(timeout=180)
    assert jobs.current_job() is None
    assert run.status().state == "stopped" and run.status().step > saved_step, run.status()
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


def test_runs_page_says_compiling_and_the_end_state_while_the_trainer_exits(tiny_run, monkeypatch):
    """Issue 26 #2 and #9 on Runs: a compiling run says so in its selector and state; a run whose
    trainer wrote "finished" while its job is still exiting reads finished, not "starting"."""
    run = install(tiny_run, "busy")
    st = read_json(run.path / "status.json")
    write_json_atomic(run.path / "status.json", dict(st, state="running", pid=os.getpid(), compiling=True, step=0))
    at = app(RUNS).run()
    assert not at.exception, at.exception
    pick = at.selectbox(key="runs_pick")
    assert pick.format_func(pick.value).startswith("busy · compiling"), pick.format_func(pick.value)
    assert {m.label: m.value for m in at.metric}["State"] == "compiling"
    job = jobs.Job(kind="train", pid=os.getpid(), argv=[], log=run.path / "console.log", run_dir=run.path,
                   started=time.time() - 60, label="training run busy")
    monkeypatch.setattr(jobs, "current_job", lambda *a, **k: job)
    write_json_atomic(run.path / "status.json", dict(st, state="finished", pid=os.getpid(), updated=time.time()))
    at.run()
    pick = at.selectbox(key="runs_pick")
    assert " · finished" in pick.format_func(pick.value), pick.format_func(pick.value)
    assert {m.label: m.value for m in at.metric}["State"] == "finished"
    monkeypatch.undo()  # before the autouse fixture looks for a job to stop


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
    assert st.state == "finished" and st.epoch == 3 and st.step > saved_step, (st, job.log_tail())
    assert load_checkpoint(run.last_checkpoint())["step"] == st.step
    at.run()
    assert {m.label: m.value for m in at.metric}["State"] == "finished"
    assert {m.label: m.value for m in at.metric}["Steps"] == f"{st.step:,}"


def test_train_page_while_an_evaluation_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "job_argv_for_eval", lambda *a, **k: list(SLEEPER))
    jobs.start_eval(paths.SHIPPED_CHECKPOINTS / "synthetic64.pt", "swd", "synthetic", 10)
    at = app(TRAIN).run()
    assert not at.exception
    assert any("evaluation is running" in i for i in texts(at, "info"))
    assert at.button(key="tr_start").disabled
    at.button(key="train_stop_eval").click().run()
    assert jobs.current_job() is None
    assert not at.button(key="tr_start").disabled


# -- Train: fine-tuning, the time budget, FID, the estimate, the monitor ----------------------------

def recording_argv(monkeypatch) -> list:
    """Training jobs that only sleep; the configs they were given are recorded."""
    seen: list = []

    def argv(config_file, *a, **k):
        seen.append(TrainConfig.from_dict(read_json(config_file)))
        return list(SLEEPER)
    monkeypatch.setattr(jobs, "job_argv_for_training", argv)
    return seen


def small_form(at: AppTest, faces: Path, **values) -> None:
    at.text_input(key="tr_data").input(str(faces))
    for key, v in dict(tr_batch_size=8, tr_val_size=4, tr_test_size=4, **values).items():
        at.number_input(key=key).set_value(v)


def test_train_page_fine_tunes_with_the_checkpoints_architecture_and_a_time_budget(tiny_run, faces, monkeypatch):
    """Start from a checkpoint: the architecture fields left at the preset's values come from the
    checkpoint (`checkpoint.adopt_architecture`); a changed one that contradicts it is listed;
    the time budget field reaches the run."""
    install(tiny_run)  # classic-dcgan: model dcgan, ngf = ndf = 8, 64 px
    seen = recording_argv(monkeypatch)
    at = app(TRAIN).run()
    assert at.selectbox(key="tr_preset").value == "anime64"  # model anime64, ngf = ndf = 32
    small_form(at, faces, tr_ngf=16, tr_minutes=2.5)
    at.selectbox(key="tr_init").set_value("run tiny: last")
    start_and_expect_error(at, "ngf: checkpoint 8 vs given 16")
    assert "Set those fields back to the preset's values to use the checkpoint's" in " ".join(texts(at, "error"))
    at.number_input(key="tr_ngf").set_value(PRESETS["anime64"]["ngf"])  # back to the preset's: the checkpoint's is used
    at.button(key="tr_start").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    cfg = seen[-1]
    assert (cfg.model, cfg.ngf, cfg.ndf, cfg.img_size) == ("dcgan", 8, 8, 64)
    assert Path(cfg.init_from) == (paths.runs_dir() / "tiny" / "checkpoints" / "last.pt").resolve()
    assert cfg.minutes == 2.5
    note = " ".join(texts(at, "success"))
    w = PRESETS["anime64"]["ngf"]
    assert f"From the checkpoint: model anime64 → dcgan, g width {w} → 8, d width {w} → 8" in note, note


def test_train_page_shows_fid_unavailable_before_a_job_can_fail(monkeypatch, tmp_path, faces):
    monkeypatch.setenv("ANIMEGAN_INCEPTION_WEIGHTS", str(tmp_path / "no-weights.pth"))
    at = app(TRAIN).run()
    assert "FID (unavailable here)" in at.selectbox(key="tr_eval_metric").options
    note = [c for c in texts(at, "caption") if "FID is unavailable here" in c]
    assert note and "no-weights.pth" in note[0] and "ANIMEGAN_INCEPTION_WEIGHTS" in note[0], texts(at, "caption")
    small_form(at, faces, tr_eval_every=1)
    at.selectbox(key="tr_eval_metric").set_value("fid")
    start_and_expect_error(at, "FID cannot be computed")
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"x")
    monkeypatch.setenv("ANIMEGAN_INCEPTION_WEIGHTS", str(weights))
    at.run()
    assert "FID" in at.selectbox(key="tr_eval_metric").options
    assert not [c for c in texts(at, "caption") if "FID is unavailable" in c]


def estimate_caption(at: AppTest) -> str:
    found = [c for c in texts(at, "caption") if c.startswith("**Data:**")]
    assert len(found) == 1, texts(at, "caption")
    return found[0]


def test_train_page_estimates_the_time_per_epoch(tiny_run, faces, monkeypatch):
    """From an earlier run with the same settings on this machine (the trainer's recorded speed),
    else from a few steps timed only when asked (never on the page's load)."""
    import socket

    from animegan import speed
    run = install(tiny_run, "fast")
    st = read_json(run.path / "status.json")
    write_json_atomic(run.path / "status.json", dict(st, images_per_s=80.0, device="cpu", world_size=1,
                                                     host=socket.gethostname()))
    real_time_steps = speed.time_steps
    monkeypatch.setattr(speed, "time_steps", lambda *a, **k: pytest.fail("steps were timed without being asked"))
    at = app(TRAIN).run()
    at.selectbox(key="tr_preset").set_value("classic-dcgan").run()
    small_form(at, faces, tr_ngf=8, tr_ndf=8, tr_epochs=3)
    at.button(key="tr_time").click().run()  # the recorded speed is used: nothing is timed
    text = estimate_caption(at)
    assert "40 training images" in text and "5 steps of 8 per epoch" in text, text
    assert "80.0 images/s: an earlier run with these settings on this CPU (fast)" in text, text
    assert "about 0 s" in text or "about 1 s" in text, text  # 40 images at 80 images/s
    at.number_input(key="tr_batch_size").set_value(16)
    at.text_input(key="tr_name").input("fast")  # a refused start (the name exists) also applies the form
    at.button(key="tr_start").click().run()
    assert any("a run named fast already exists" in e for e in texts(at, "error"))
    assert "press **Estimate time per epoch** to time a few steps" in estimate_caption(at)
    monkeypatch.setattr(speed, "time_steps", real_time_steps)
    at.button(key="tr_time").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    text = estimate_caption(at)
    assert "steps of batch 16 timed on this CPU" in text and " ago)" in text and "just now" not in text, text
    assert jobs.current_job() is None


def test_train_page_says_before_start_whether_it_will_compile_and_why(faces, monkeypatch):
    """Issue 26 #2: a 1.5 min budget is no time to spend ~75 s compiling: auto stays eager and the
    page says so before Start; without the budget the same long CPU run compiles, and it says that."""
    from animegan import step
    monkeypatch.setattr(step.shutil, "which", lambda name: "/usr/bin/cc")  # a C compiler, whatever this machine has
    at = app(TRAIN).run()
    at.selectbox(key="tr_preset").set_value("classic-dcgan").run()
    small_form(at, faces, tr_ngf=8, tr_ndf=8, tr_epochs=200, tr_minutes=1.5)  # 1,000 steps
    at.selectbox(key="tr_device").set_value("cpu")
    at.button(key="tr_time").click().run()
    text = estimate_caption(at)
    assert "**Compiling:** torch.compile stays off" in text and "1.5 min budget" in text, text
    at.number_input(key="tr_minutes").set_value(0.0)
    at.button(key="tr_time").click().run()
    text = estimate_caption(at)
    assert "**Compiling:** torch.compile is on (auto: 1,000 steps on a CPU)" in text, text
    assert "compiling included" in text, text  # the estimate counts the compile time


def test_train_page_estimate_follows_a_running_runs_real_speed(tiny_run, faces):
    """Issue 26 #3: steps timed here are replaced by the first real steps of a run with the same
    settings (its status.json images/s), and the timing names how old it is."""
    import socket

    from animegan import speed
    at = app(TRAIN).run()
    at.selectbox(key="tr_preset").set_value("classic-dcgan").run()
    small_form(at, faces, tr_ngf=8, tr_ndf=8, tr_epochs=3)
    at.selectbox(key="tr_device").set_value("cpu")
    cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, epochs=3, batch_size=8, val_size=4,
                        test_size=4, device="cpu")
    at.session_state["train_speed_measured"] = {  # steps timed here 10 minutes ago (nothing is timed now)
        speed.speed_key(cfg, "cpu"): speed.Speed(10.0, "measured", "2 steps timed", timed_at=time.time() - 600)}
    at.button(key="tr_time").click().run()
    assert "10.0 images/s: 2 steps timed, 10 min ago" in estimate_caption(at), estimate_caption(at)
    run = install(tiny_run, "live-same")
    write_json_atomic(run.path / "config.json", cfg.to_dict())
    write_json_atomic(run.path / "status.json", dict(read_json(run.path / "status.json"), state="running",
                      pid=os.getpid(), images_per_s=30.0, device="cpu", world_size=1, host=socket.gethostname()))
    import streamlit
    streamlit.cache_data.clear()  # the page keeps recorded speeds 10 s
    at.run()
    text = estimate_caption(at)
    assert "30.0 images/s: an earlier run with these settings on this CPU (live-same)" in text, text


def test_train_page_monitor_says_compiling_and_shows_the_trainers_speed(tiny_run):
    run = install(tiny_run, "live")
    st = read_json(run.path / "status.json")
    write_json_atomic(run.path / "status.json", dict(st, state="running", pid=os.getpid(), compiling=True,
                                                     images_per_s=0.0, eta_s=None))
    (run.path / "train.log").write_text("a very long log line " * 40 + "\n")
    at = app(TRAIN).run()
    assert subheader_state(at, "live") == "compiling"  # issue 26 #2: compiling is shown as such
    assert any("Compiling the networks" in i for i in texts(at, "info")), texts(at, "info")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images/s"] == "compiling" and metrics["ETA"] == "–", metrics
    write_json_atomic(run.path / "status.json", dict(st, state="running", pid=os.getpid(), compiling=False,
                                                     images_per_s=145.3, eta_s=90))
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images/s"] == "145" and metrics["ETA"] == "1m 30s", metrics  # the trainer's value, as is
    assert not any("Compiling" in i for i in texts(at, "info"))
    logs = [c for c in at.code if "a very long log line" in c.value]
    assert logs and all(c.proto.wrap_lines for c in logs)


def test_train_page_takes_a_preset_budget_and_checkpoint_from_the_handoff(tmp_path, tiny_run):
    """Issue 27 §3: the own-data flow hands a preset (its values first, then the handed fields), a
    starting checkpoint and a time budget; the form shows them and the note says so."""
    run = install(tiny_run)
    ckpt = run.checkpoints()[-1]
    at = app(TRAIN)
    at.session_state["train_handoff"] = {"data": str(tmp_path), "img_size": 64, "preset": "classic-dcgan",
                                         "init_from": str(ckpt), "minutes": 12, "aug_flip": 0.0}
    at.run()
    assert not at.exception, at.exception
    preset = preset_config("classic-dcgan")
    assert at.selectbox(key="tr_preset").value == "classic-dcgan"
    assert at.selectbox(key="tr_model").value == preset.model and at.number_input(key="tr_ngf").value == preset.ngf
    assert at.slider(key="tr_aug_flip").value == 0.0  # a handed field wins over the preset's
    assert at.number_input(key="tr_minutes").value == 12.0
    assert at.selectbox(key="tr_init").value == f"run tiny: {ckpt.stem}"
    note = [i for i in texts(at, "info") if "From the Dataset page" in i]
    assert note and "preset **classic-dcgan**" in note[0] and "time budget 12 min" in note[0], note
    assert f"starting from **run tiny: {ckpt.stem}**" in note[0], note


def test_train_page_chart_shows_the_adaptive_augmentation_p_when_logged(tiny_run):
    """Issue 27 §3: a run with --ada-target > 0 logs aug_p; the Train page's live chart shows it."""
    from tests.chart_data import vega_chart
    run = install(tiny_run, "ada")
    at = app(TRAIN).run()
    drawn = {r["series"] for r in vega_chart(at, "Losses of run ada")["rows"]}
    assert "augment p" not in drawn and "loss D" in drawn
    append_jsonl(run.path / "metrics.jsonl", {"step": 11, "loss_D": 1.0, "loss_G": 2.0, "aug_p": 0.2})
    at.run()
    chart = vega_chart(at, "Losses of run ada")
    assert [r["value"] for r in chart["rows"] if r["series"] == "augment p"] == [0.2], chart["rows"]
    assert chart["spec"]["title"]["text"] == "Losses and augmentation p"


def test_train_page_takes_the_dataset_pages_handoff(tmp_path):
    at = app(TRAIN)
    at.session_state["train_handoff"] = {"data": str(tmp_path), "img_size": 96, "aug_flip": 0.25, "aug_brightness": 0.5,
                                         "aug_brightness_strength": 0.3, "diffaug": ["color", "translation"]}
    at.run()
    assert not at.exception
    assert at.text_input(key="tr_data").value == str(tmp_path)
    assert at.selectbox(key="tr_img_size").value == 96
    assert at.slider(key="tr_aug_flip").value == 0.25 and at.slider(key="tr_aug_brightness").value == 0.5
    assert at.slider(key="tr_aug_brightness_strength").value == 0.3
    assert at.multiselect(key="tr_diffaug").value == ["color", "translation"]
    assert any("From the Dataset page" in i and "DiffAugment color,translation" in i for i in texts(at, "info"))
    at.run()  # taken once: the form keeps it, the note goes
    assert at.text_input(key="tr_data").value == str(tmp_path)
    assert not any("From the Dataset page" in i for i in texts(at, "info"))


# -- Dataset: uploads, the augmentation preview, "Train on this data" ------------------------------

DATASET = str(ROOT / "app_pages" / "dataset.py")


def faces_zip(n: int, folder: str = "faces") -> bytes:
    import io
    import zipfile

    from animegan.synth import render_face
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img, _ = render_face(0, i, size=64)
            b = io.BytesIO()
            img.save(b, format="PNG")
            zf.writestr(f"{folder}/{i}.png", b.getvalue())
    return buf.getvalue()


def corrupt_zip() -> bytes:
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"x/{i}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return buf.getvalue()


def test_dataset_uses_each_new_upload_and_a_refused_one_shows_only_its_error():
    at = app(DATASET).run()
    at.radio(key="ds_kind").set_value("upload").run()
    at.file_uploader(key="ds_upload").set_value(("first set.zip", faces_zip(6), "application/zip")).run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    first = paths.uploads_dir() / "first-set.zip"
    assert at.selectbox(key="ds_upload_pick").value == str(first)
    assert any(f"Kept as `{first}`" in c for c in texts(at, "caption"))
    at.button(key="ds_prepare").click().run()
    assert {m.label: m.value for m in at.metric}["Usable"] == "6"
    # A second upload in the same visit is the one used (not the first one the box held).
    at.file_uploader(key="ds_upload").set_value(("second.zip", faces_zip(11), "application/zip")).run()
    assert at.selectbox(key="ds_upload_pick").value == str(paths.uploads_dir() / "second.zip")
    at.button(key="ds_prepare").click().run()
    assert {m.label: m.value for m in at.metric}["Usable"] == "11"
    # A refused upload: its error alone, not the earlier data set's report under it; nothing kept.
    for name, blob, msg in (("broken.zip", b"PK\x03\x04 not a zip", "is not a zip archive"),
                            ("corrupt.zip", corrupt_zip(), "none of its 3 image files can be used")):
        at.file_uploader(key="ds_upload").set_value((name, blob, "application/zip")).run()
        assert not at.exception
        errs = texts(at, "error")
        assert len(errs) == 1 and msg in errs[0] and "Traceback" not in errs[0], errs
        assert not at.metric and not [s for s in at.selectbox if s.key == "ds_upload_pick"]
        assert sorted(p.name for p in paths.uploads_dir().iterdir()) == ["first-set.zip", "second.zip"]
    # Removing it brings the earlier uploads back.
    at.file_uploader(key="ds_upload").set_value(None).run()
    assert not texts(at, "error")
    assert at.selectbox(key="ds_upload_pick").options == ["second.zip", "first-set.zip"]


def test_dataset_previews_diffaugment_and_hands_the_data_to_train():
    from animegan.synth import write_synthetic
    write_synthetic(paths.synthetic_dir(), n=24, workers=1)
    at = app(DATASET).run()
    at.button(key="ds_prepare").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    assert at.multiselect(key="ds_aug_diffaug").value == ["translation"]  # the default recipe's
    assert at.slider(key="ds_aug_flip").value == 0.5 and at.slider(key="ds_aug_bright").value == 0.0
    captions = [c for im in at.image for c in im.captions]
    assert any("then DiffAugment translation: what D sees" in c for c in captions), captions
    at.multiselect(key="ds_aug_diffaug").set_value(["color", "cutout"]).run()
    assert any("then DiffAugment color, cutout" in c for im in at.image for c in im.captions)
    at.slider(key="ds_aug_flip").set_value(1.0).run()
    at.button(key="ds_train").click().run()
    assert not at.exception
    assert at.session_state["train_handoff"] == {"data": "synthetic", "img_size": 64, "aug_flip": 1.0,
                                                 "aug_brightness": 0.0, "aug_brightness_strength": 0.2,
                                                 "diffaug": ["color", "cutout"]}
