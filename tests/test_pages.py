"""The Home, Dataset, Generate and Compare pages (and app.py), driven with streamlit's AppTest.

AppTest runs the page scripts in this process, so monkeypatching `animegan.paths` works: a tiny
exported checkpoint stands in for the shipped ones.
"""
from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from animegan import jobs, paths, rundir
from animegan.config import preset_config
from app_pages import after_paint

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
HOME = str(ROOT / "app_pages" / "home.py")
DATASET = str(ROOT / "app_pages" / "dataset.py")
GENERATE = str(ROOT / "app_pages" / "generate.py")
COMPARE = str(ROOT / "app_pages" / "compare.py")
TIMEOUT = 90  # the CPU is shared with training runs
PAINTED_ONCE = ("gen_below", "cmp_below")  # what Generate and Compare draw after the first paint (after_paint)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A finished tiny run (trained once per module) and an export of it."""
    from animegan.checkpoint import export_generator
    from animegan.synth import write_synthetic
    from animegan.train import train

    base = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(base / "home"))
        faces = write_synthetic(base / "faces", n=48)
        cfg = preset_config("classic-dcgan", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=1, max_steps=4,
                            val_size=4, test_size=4, latest_every=2, log_every=2)
        run = base / "run" / "tiny"
        assert train(cfg, run, progress=False) == "finished"
        shipped = base / "shipped"
        export_generator(run, shipped / "tiny-export.pt")
    return {"faces": faces, "run": run, "shipped": shipped}


@pytest.fixture(autouse=True)
def no_shipped(monkeypatch, tmp_path, animegan_home):
    """By default no shipped checkpoints (a fresh clone may have none); tests opt in."""
    empty = tmp_path / "no-shipped"
    empty.mkdir()
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", empty)
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


@pytest.fixture
def shipped(tiny, monkeypatch):
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tiny["shipped"])
    return tiny["shipped"] / "tiny-export.pt"


def install_run(tiny) -> rundir.Run:
    dst = paths.ensure(paths.runs_dir()) / "tiny"
    shutil.copytree(tiny["run"], dst)
    return rundir.Run(dst)


def app_test(script: str, painted: bool = True) -> AppTest:
    """`script` in a new session; `painted`: as after the browser painted the page once (AppTest has
    no browser to ask for what a page draws after its first paint: app_pages/after_paint.py)."""
    at = AppTest.from_file(script, default_timeout=TIMEOUT)
    if painted:
        for key in PAINTED_ONCE:
            at.session_state[after_paint.painted_key(key)] = True
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.success]
    parts += [e.value for e in at.warning] + [c for im in at.image for c in im.captions]
    return "\n".join(str(p) for p in parts)


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def face_png(seed: int) -> bytes:
    from animegan.synth import render_face
    img, _ = render_face(0, seed, size=64)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- a fresh home
def test_app_and_every_page_render_on_a_fresh_home():
    at = app_test(APP)
    assert any("animegan" in t.value for t in at.title)
    for name in ("dataset", "train", "runs", "generate", "compare", "home"):
        page = f"app_pages/{name}.py"
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert at.title, page
    # nothing prepared or rendered by just looking
    assert not (paths.synthetic_dir() / "meta.json").exists()


@pytest.mark.parametrize("script", [HOME, DATASET, GENERATE, COMPARE])
def test_page_renders_alone_on_a_fresh_home(script):
    at = app_test(script)
    assert not at.error, errors(at)


def test_fresh_home_explains_what_to_do():
    assert "No runs yet" in texts(app_test(HOME))
    assert "No checkpoint yet" in texts(app_test(GENERATE))
    assert "Nothing to compare yet" in texts(app_test(COMPARE))
    at = app_test(DATASET)
    assert any(b.label == "Prepare" for b in at.button)
    assert "10,000 faces" in texts(at)


# --------------------------------------------------------------------------- every page
def test_pages_import_the_package_one_way():
    """Pages import the installed package (app.py alone puts the repository on sys.path, for
    `streamlit run` from elsewhere)."""
    page_files = sorted((ROOT / "app_pages").glob("*.py"))
    assert len(page_files) >= 7
    for f in page_files:
        assert "sys.path" not in f.read_text(), f
    assert (ROOT / "app.py").read_text().count("sys.path.insert") == 1


# --------------------------------------------------------------------------- home
def test_home_lists_a_finished_run_and_the_shipped_checkpoint(tiny, shipped):
    install_run(tiny)
    at = app_test(HOME)
    runs_table = at.table[0].value
    assert list(runs_table["run"]) == ["tiny"]
    assert list(runs_table["state"]) == ["finished"]
    t = texts(at)
    assert "tiny-export" in t and "parameters" in t
    assert at.image, "the shipped checkpoint's sample grid"
    assert "Runs" in t and "Data caches" in t


def test_home_explains_the_dagger_without_runs_and_shows_storage_bytes_first(tiny, shipped, monkeypatch):
    """Issue 26 #14: a shipped checkpoint's evaluation with n < COMPARABLE_N carries "†"; its note
    shows on Home with no runs at all. The storage tables put the bytes before the long names."""
    from app_pages import shared as page_shared
    monkeypatch.setattr(page_shared, "eval_rows", lambda ev: [{"metric": "swd", "value": 31.2, "n": 200}])
    at = app_test(HOME)
    t = texts(at)
    assert "†" in t and page_shared.DAGGER_NOTE in t
    install_run(tiny)
    at = app_test(HOME)
    runs_table = [d.value for d in at.table if "run" in d.value.columns and "bytes" in d.value.columns][0]
    assert list(runs_table.columns)[0] == "bytes" and list(runs_table["run"]) == ["tiny"]


def test_home_shows_the_running_job_with_its_progress(tiny, tmp_path):
    run = install_run(tiny)
    log = tmp_path / "job.log"
    log.write_text("step 3/4\n")
    # pid above any pid_max: never a live process, so nothing can ever be signalled by mistake
    fake = jobs.Job(kind="train", pid=999_999_999, argv=[], log=log, run_dir=run.path,
                    started=time.time() - 120, label="training run tiny")
    with pytest.MonkeyPatch.context() as mp:  # undone before the autouse fixture looks for jobs to stop
        mp.setattr(jobs, "current_job", lambda *a, **k: fake)
        at = app_test(HOME)
        assert "training run tiny" in texts(at)
        assert at.get("progress") and "step 4/4" in at.get("progress")[0].proto.text
        fake.kind, fake.label, fake.run_dir = "eval", "SWD of tiny-export.pt", None
        at = app_test(HOME)
        assert "SWD of tiny-export.pt" in texts(at) and "step 3/4" in texts(at)


def test_app_runs_from_another_folder(tmp_path):
    """`streamlit run /path/to/app.py` from elsewhere: app.py puts its own folder on sys.path."""
    import subprocess
    import sys
    code = ("import sys; from streamlit.testing.v1 import AppTest\n"
            f"assert {str(ROOT)!r} not in sys.path\n"
            f"at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT}); at.run()\n"
            "assert not at.exception, [e.message for e in at.exception]\n"
            "at.switch_page('app_pages/runs.py').run()\n"
            "assert not at.exception, [e.message for e in at.exception]\n"
            "print('ok', [t.value for t in at.title])\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0 and "ok ['Runs']" in r.stdout, r.stdout + r.stderr


def test_home_clear_caches_asks_first(tiny):
    from animegan.data import cache_usage, prepare
    prepare(tiny["faces"], 64)
    assert cache_usage()
    at = app_test(HOME)
    at.button(key="home_clear").click().run()
    assert cache_usage(), "nothing is deleted before the confirmation"
    assert "Delete 1 data cache" in texts(at)
    at.button(key="home_clear_yes").click().run()
    assert not at.exception
    assert not cache_usage()
    assert "Freed" in texts(at)


# --------------------------------------------------------------------------- dataset
@pytest.fixture
def messy_folder(tmp_path) -> Path:
    d = tmp_path / "messy"
    d.mkdir()
    for i in range(12):
        (d / f"face{i:02d}.png").write_bytes(face_png(i))
    (d / "copy-of-face03.png").write_bytes(face_png(3))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(d / "tiny.png")
    Image.new("L", (80, 60), 128).save(d / "gray-wide.png")
    return d


def test_dataset_folder_report_lists_skipped_files(messy_folder):
    at = app_test(DATASET)
    at.radio(key="ds_kind").set_value("folder").run()
    at.text_input(key="ds_folder").input(str(messy_folder)).run()
    assert not at.exception
    assert "has not been prepared" in texts(at)
    at.button(key="ds_prepare").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, errors(at)
    # the page shows the state it is in: prepared, no "not prepared yet" box or Prepare button above the report
    assert "has not been prepared" not in texts(at) and not [b for b in at.button if b.key == "ds_prepare"]
    assert any(s.value.startswith("Prepared folder") for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Usable"] == "13" and metrics["Skipped"] == "3" and metrics["Exact duplicates"] == "1"
    assert metrics["Other files ignored"] == "1"
    skipped = at.dataframe[0].value
    assert set(skipped["reason"]) == {"corrupt or truncated", "empty file", "too small"}
    assert "broken.png" in " ".join(skipped["first names"])
    conv = [df.value for df in at.dataframe if "conversion" in df.value.columns]
    assert len(conv) == 1 and "grayscale" in set(conv[0]["conversion"])
    # browse: one page of images, details of the picked one
    assert at.image and len(at.image[0].proto.imgs) == 13
    at.selectbox(key="ds_pick").set_value(5).run()
    assert "face05.png" in texts(at)
    # augmentation preview: before/after grids and the two histograms
    at.slider(key="ds_aug_flip").set_value(1.0).run()
    assert not at.exception
    assert any("before" in c for im in at.image for c in im.captions)
    assert len(at.get("vega_lite_chart")) == 2
    # a rerun does not prepare again (kept per (source, size))
    assert len(at.session_state["ds_prepared"]) == 1


def test_dataset_missing_and_empty_folders_are_clear_errors(tmp_path):
    at = app_test(DATASET)
    at.radio(key="ds_kind").set_value("folder").run()
    at.text_input(key="ds_folder").input(str(tmp_path / "nope")).run()
    assert not at.exception
    assert "not found" in errors(at)
    empty = tmp_path / "empty"
    empty.mkdir()
    at.text_input(key="ds_folder").input(str(empty)).run()
    at.button(key="ds_prepare").click().run()
    assert not at.exception
    assert "No images" in errors(at)


def test_dataset_prerendered_synthetic_set_is_used_as_is():
    from animegan.synth import write_synthetic
    write_synthetic(paths.synthetic_dir(), n=24, workers=1)
    at = app_test(DATASET)
    assert "24 faces" in texts(at)
    at.button(key="ds_prepare").click().run()
    assert not at.exception and not at.error, errors(at)
    assert {m.label: m.value for m in at.metric}["Usable"] == "24"
    # next visit: the cache exists, so the page loads it without a click
    at2 = app_test(DATASET)
    assert {m.label: m.value for m in at2.metric}["Usable"] == "24"


def test_dataset_upload_zip_and_bad_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(6):
            zf.writestr(f"faces/{i}.png", face_png(i))
        zf.writestr("readme.txt", "hello")
    at = app_test(DATASET)
    at.radio(key="ds_kind").set_value("upload").run()
    at.file_uploader(key="ds_upload").set_value(("my faces.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception and not at.error, errors(at)
    dest = Path(at.session_state["ds_upload_dest"])
    assert dest.parent == paths.home() / "uploads" and dest.read_bytes() == buf.getvalue()  # kept as it is
    at.button(key="ds_prepare").click().run()
    assert {m.label: m.value for m in at.metric}["Usable"] == "6"

    at = app_test(DATASET)
    at.radio(key="ds_kind").set_value("upload").run()
    at.file_uploader(key="ds_upload").set_value(("broken.zip", b"PK\x03\x04 this is not a zip", "application/zip")).run()
    assert not at.exception
    assert at.error


# --------------------------------------------------------------------------- generate
def test_generate_same_seed_same_image_new_seed_changes(shipped):
    at = app_test(GENERATE)
    assert not at.error, errors(at)
    assert at.selectbox(key="gen_ckpt").value == "shipped: tiny-export"
    first = at.session_state["gen_grid_png"]
    assert at.image and "64 faces in" in texts(at)
    at.number_input(key="gen_seed").set_value(7).run()
    other = at.session_state["gen_grid_png"]
    assert other != first
    at.number_input(key="gen_seed").set_value(0).run()
    assert at.session_state["gen_grid_png"] == first, "the same seed draws the same faces"
    # an independent session draws the same bytes too
    assert app_test(GENERATE).session_state["gen_grid_png"] == first
    at.button(key="gen_new_seed").click().run()
    assert not at.exception
    assert at.session_state["gen_seed"] != 0
    assert at.number_input(key="gen_seed").value == at.session_state["gen_seed"]


def test_generate_draws_what_is_below_the_grid_after_the_first_paint(shipped):
    """Issue 26 (first paint): a new visit's first run draws the grid and leaves the picked face and
    the tools below it to the rerun the browser asks for once it has painted the page."""
    at = app_test(GENERATE, painted=False)
    assert not at.error, errors(at)
    assert at.session_state["gen_grid_png"] and "Click a face to pick it" in texts(at)
    asks = [c for c in at.get("bidi_component") if c.proto.component_name == "animegan.after_paint"]
    assert len(asks) == 1, "the page asks the browser for the rest"
    assert not at.image and "The picked face" not in [h.value for h in at.subheader]
    at.run()                                                          # the rerun the browser asks for
    assert "The picked face" in [h.value for h in at.subheader] and "seed 0, index 0" in texts(at)
    assert not [c for c in at.get("bidi_component") if c.proto.component_name == "animegan.after_paint"]
    at.number_input(key="gen_seed").set_value(3).run()              # from then on, drawn at once
    assert "seed 3, index 0" in texts(at)


def test_generate_face_viewer_and_controls(shipped):
    at = app_test(GENERATE)
    at.number_input(key="gen_n").set_value(12).run()
    at.session_state["gen_pick"] = 11
    at.run()
    t = texts(at)
    assert "seed 0, index 11" in t and "identical pixels" in t
    at.number_input(key="gen_n").set_value(4).run()  # the picked face is clamped into the smaller grid
    assert not at.exception
    assert at.session_state["gen_pick"] == 3
    at.slider(key="gen_psi").set_value(0.5).run()
    at.number_input(key="gen_steps").set_value(5).run()
    at.slider(key="gen_frame").set_value(4).run()
    assert not at.exception
    assert "frame 4 of 4" in texts(at)
    assert [b.label for b in at.get("download_button")] == ["Grid (PNG)", "Every face (zip of PNGs)", "GIF"]
    assert any(s.key == "gen_k" for s in at.slider), "exports carry D: re-ranking is offered"


def test_generate_training_checkpoint_offers_reranking(tiny, monkeypatch):
    from app_pages import shared
    loads = []
    real = shared.load_generator

    def counting(*a, **k):
        loads.append(a[0])
        return real(*a, **k)
    monkeypatch.setattr(shared, "load_generator", counting)
    run = install_run(tiny)
    at = app_test(GENERATE)
    assert at.selectbox(key="gen_ckpt").value == "run tiny: last"
    at.number_input(key="gen_n").set_value(8).run()
    at.slider(key="gen_k").set_value(3).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "kept the 8 D rated highest" in texts(at)
    # one load of the training checkpoint (and one BatchNorm recalibration) for the faces and the
    # discriminator, kept across reruns and by the Compare page
    app_test(COMPARE)
    assert loads == [str((run.path / "checkpoints" / "last.pt").resolve())]


def test_generate_open_own_checkpoint_path_and_errors(tiny, tmp_path):
    at = app_test(GENERATE)
    at.text_input(key="gen_open_path").input(str(tmp_path / "missing.pt"))
    at.button(key="gen_open_btn").click().run()
    assert not at.exception and "no file at" in errors(at)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    at.text_input(key="gen_open_path").input(str(junk))
    at.button(key="gen_open_btn").click().run()
    assert not at.exception and "junk.pt" in errors(at)
    good = tiny["shipped"] / "tiny-export.pt"
    at.text_input(key="gen_open_path").input(str(good))
    at.button(key="gen_open_btn").click().run()
    assert not at.exception and not at.error, errors(at)
    assert at.selectbox(key="gen_ckpt").value == "opened: tiny-export.pt"
    assert at.image


def test_generate_uploaded_checkpoint(tiny):
    at = app_test(GENERATE)
    data = (tiny["shipped"] / "tiny-export.pt").read_bytes()
    at.file_uploader(key="gen_upload").set_value(("../evil name.pt", data, "application/octet-stream")).run()
    assert not at.exception and not at.error, errors(at)
    saved = paths.home() / "uploads" / "evil-name.pt"
    assert saved.read_bytes() == data
    assert at.selectbox(key="gen_ckpt").value == "opened: evil-name.pt"


# --------------------------------------------------------------------------- compare
def test_compare_draws_curves_and_measurements_after_the_first_paint(shipped):
    """Issue 26 (first paint): a new visit's first run draws the checkpoints' faces and leaves the
    curves and the measurements under them to the rerun the browser asks for once it has painted."""
    at = app_test(COMPARE, painted=False)
    assert not at.error, errors(at)
    assert len(at.image) == 1 and "generator parameters" in texts(at)
    assert [c for c in at.get("bidi_component") if c.proto.component_name == "animegan.after_paint"]
    assert "Measure them the same way" not in [h.value for h in at.subheader]
    at.run()                                                          # the rerun the browser asks for
    assert "Measure them the same way" in [h.value for h in at.subheader]
    assert at.button(key="cmp_eval_go")


def test_compare_two_checkpoints_and_summary(tiny, shipped):
    run = install_run(tiny)
    rundir.record_eval(shipped, {"metric": "swd", "value": 123.4, "n": 48, "reference": "val split of faces", "seed": 0})
    rundir.append_jsonl(run.path / "evals.jsonl", {"epoch": 1, "step": 4, "time": time.time(), "metric": "fid",
                                                   "value": 321.0, "n": 4, "reference": "val split of faces", "seed": 0})
    at = app_test(COMPARE)
    assert not at.error, errors(at)
    assert not at.expander[-1].get("vega_lite_chart"), "the closed summary draws nothing"
    at.session_state["cmp_summary_open"] = True   # what opening it does
    at.run()
    assert at.multiselect(key="cmp_sel").value == ["shipped: tiny-export", "run tiny: last"]
    assert len(at.image) == 2
    t = texts(at)
    assert "generator parameters" in t and "training time" in t
    summary = at.dataframe[-1].value
    assert set(summary["metric"]) == {"SWD", "FID"}
    assert set(summary["name"]) == {"shipped: tiny-export", "run tiny"}
    assert all(summary["note"] == "rough")  # n=48 and n=4: below ROUGH_N
    assert len(at.expander[-1].get("vega_lite_chart")) == 2  # recorded values: one chart per (metric, n, reference)
    at.number_input(key="cmp_seed").set_value(3).run()
    at.multiselect(key="cmp_sel").unselect("run tiny: last").run()
    assert not at.exception and len(at.image) == 1


def _wait_for_job(at: AppTest, limit: float = 240) -> None:
    end = time.time() + limit
    while time.time() < end:
        time.sleep(2)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if "cmp_job" not in at.session_state:
            return
    pytest.fail("the evaluation job did not end in time")


def test_compare_compute_fid_without_weights_then_swd(tiny, shipped, monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMEGAN_INCEPTION_WEIGHTS", str(tmp_path / "no-such-weights.pth"))
    at = app_test(COMPARE)
    assert at.multiselect(key="cmp_sel").value == ["shipped: tiny-export"]
    at.text_input(key="cmp_eval_data").input(str(tiny["faces"]))
    at.number_input(key="cmp_eval_n").set_value(4)
    at.radio(key="cmp_eval_metric").set_value("fid").run()
    assert "FID is unavailable here" in texts(at), "said before the user starts a job that can only fail"
    at.button(key="cmp_eval_go").click().run()
    assert not at.exception
    assert "cmp_job" not in at.session_state, "refused on submit: no job started"
    err = errors(at)
    assert "Inception weights" in err and "Traceback" not in err, err
    at.radio(key="cmp_eval_metric").set_value("swd")
    at.button(key="cmp_eval_go").click().run()
    _wait_for_job(at)
    assert not at.error, errors(at)
    assert "SWD" in "\n".join(s.value for s in at.success)
    assert [e["metric"] for e in rundir.evals_for_checkpoint(shipped)] == ["swd"]
    table = at.table[0].value
    assert list(table["checkpoint"]) == ["shipped: tiny-export"] and float(table["SWD"][0]) > 0
    assert at.button(key="cmp_eval_go").disabled, "measured this way already: nothing left to measure"


def test_compare_busy_slot_is_reported(tiny, shipped, monkeypatch):
    """Another job holds the slot: the compute button is disabled and the page says why."""
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: list(SLEEPER))
    jobs.start_training(preset_config("classic-dcgan", data=str(tiny["faces"]), batch_size=8, val_size=4, test_size=4),
                        "busy")
    at = app_test(COMPARE)
    assert at.button(key="cmp_eval_go").disabled
    assert any("training run busy" in i and "one job at a time" in i for i in (str(x.value) for x in at.info))
    assert not at.error, errors(at)


def test_compare_start_refused_is_reported(tiny, shipped, monkeypatch):
    """The slot is taken between drawing the page and the click: one clear error, no traceback."""
    def busy(*a, **k):
        raise jobs.JobError("a job is already running: training run x")
    monkeypatch.setattr(jobs, "start_eval", busy)
    at = app_test(COMPARE)
    assert not at.button(key="cmp_eval_go").disabled
    at.button(key="cmp_eval_go").click().run()
    assert not at.exception
    assert "already running" in errors(at)
    assert "cmp_job" not in at.session_state


SLEEPER = [__import__("sys").executable, "-c", "import time; time.sleep(60)"]
