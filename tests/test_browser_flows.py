"""Dashboard flows in a real browser (headless Debian Chromium, playwright's driver only): resuming a
run from the Train page and from the Runs page, and switching uploads on the Dataset page and
handing the data to the Train page. What AppTest cannot see: real reruns, fragments that refresh
themselves, a trainer process started by the app, file uploads and page switches.

The servers and helpers are test_browser's; skipped with a reason where Chromium is missing.
"""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, _settle, serve, sync_api  # noqa: F401  (sync_api: the shared fixture)

from animegan import jobs
from animegan.checkpoint import load_checkpoint
from animegan.rundir import Run, read_json, write_json_atomic

TRAINING_TIMEOUT_S = 240      # a resumed trainer imports torch and reads the data on a busy CPU
METRICS_JS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')].map(m => [
    m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
    m.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))"""


@pytest.fixture(scope="module")
def flows_home(sync_api, tmp_path_factory):
    """A home with a small prepared synthetic set and run "paused": stopped after one epoch of a
    long run (checkpoints/last.pt at step 5 of 2,000 epochs), eager, one thread."""
    from animegan import paths
    from animegan.config import preset_config
    from animegan.data import prepare
    from animegan.synth import write_synthetic
    from animegan.train import train

    home = tmp_path_factory.mktemp("flows-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(home))
        write_synthetic(paths.synthetic_dir(), n=48, workers=1)
        prepare("synthetic", 64, synthetic_n=48)
        cfg = preset_config("classic-dcgan", data=str(paths.synthetic_dir() / "images"), ngf=8, ndf=8, batch_size=8,
                            epochs=1, val_size=4, test_size=4, latest_every=5, log_every=1, compile="off", threads=1)
        out = paths.runs_dir() / "paused"
        assert train(cfg, out, progress=False) == "finished"
    write_json_atomic(out / "config.json", dict(read_json(out / "config.json"), epochs=2000))
    write_json_atomic(out / "status.json", dict(read_json(out / "status.json"), state="stopped", epochs=2000))
    return home


@pytest.fixture(scope="module")
def flows_server(flows_home, tmp_path_factory):
    """One `streamlit run app.py` for this file's tests (each opens its own browser: a session of its own)."""
    with serve(flows_home, tmp_path_factory.mktemp("flows-log") / "streamlit.log") as base:
        yield base


@pytest.fixture
def app_url(flows_server, flows_home):
    try:
        yield flows_server
    finally:  # a trainer the app started outlives the test: stop it with the test
        job = jobs.current_job(flows_home / "runs")
        if job is not None:
            jobs.stop_job(job, timeout=30, root=flows_home / "runs")


@pytest.fixture
def page(sync_api, app_url):
    """A browser page that has opened the app once at "/": Streamlit serves a deep link that is the
    server's very first request from the pages/ folder alone (not through app.py's navigation)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1600})
            _settle(pg, app_url + "/")
            yield pg
        finally:
            browser.close()


def run_heading(page) -> str:
    """The Train page's "Run NAME: state" heading, as text."""
    heads = [t for t in page.locator("h3").all_inner_texts() if " Run " in f" {t}" and ":" in t]
    return heads[0] if heads else ""


def train_view(page) -> tuple[str, int]:
    """(state, step) as the Train page shows them now."""
    head = run_heading(page)
    step = page.evaluate(METRICS_JS).get("Step", "0")
    return (head.rsplit(":", 1)[1].strip() if ":" in head else ""), int(step.replace(",", "") or 0)


def watch(read, done, timeout: float, what: str) -> list:
    """Poll read() every half second until done(value); the distinct values seen, in order."""
    seen: list = []
    end = time.time() + timeout
    while time.time() < end:
        v = read()
        if not seen or seen[-1] != v:
            seen.append(v)
        if done(v):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; seen: {seen}")


def test_resume_from_the_train_page_then_from_the_runs_page(page, app_url, flows_home):
    run = Run(flows_home / "runs" / "paused")
    saved = load_checkpoint(run.last_checkpoint())["step"]
    assert saved == 5

    # -- Train page: Resume -> starting -> running past the checkpoint's step -> Stop -> stopped
    _settle(page, app_url + "/train")
    assert train_view(page) == ("stopped", saved), run_heading(page)
    page.locator(".st-key-train_resume button").click()
    seen = watch(lambda: train_view(page), lambda v: v[0] in ("failed", "dead") or (v[0] == "running" and v[1] > saved),
                 TRAINING_TIMEOUT_S, "the resumed run to train")
    assert seen[-1][0] == "running" and seen[-1][1] > saved, (seen, run.status(), run.log_tail(10))
    assert {s for s, _ in seen} >= {"starting", "running"}, seen
    page.locator(".st-key-train_stop button").first.click()
    seen = watch(lambda: train_view(page), lambda v: v[0] not in ("running", "starting"), 120, "the run to stop")
    assert seen[-1][0] == "stopped", (seen, run.status())
    page.get_by_text("Stopped run paused").wait_for(timeout=30_000)
    stopped_at = load_checkpoint(run.last_checkpoint())["step"]
    assert stopped_at > saved and run.status().state == "stopped"

    # -- Runs page: Resume with more epochs -> starting/running -> finished at the new epoch
    epoch = run.status().epoch
    _settle(page, app_url + "/runs")
    assert page.evaluate(METRICS_JS)["State"] == "stopped"
    box = page.locator(".st-key-runs_resume_epochs--paused input")
    box.fill(str(epoch + 3))  # 15 more steps: enough to see it start, train and finish
    box.press("Enter")
    _settle(page)
    page.locator(".st-key-runs_resume--paused button").click()
    states = watch(lambda: page.evaluate(METRICS_JS).get("State", ""), lambda v: v in ("finished", "failed", "dead"),
                   TRAINING_TIMEOUT_S, "the run resumed from the Runs page to finish")
    status = run.status()
    assert states[-1] == "finished", (states, status, run.log_tail(10))
    assert "running" in states or "starting" in states, states
    assert status.epoch == epoch + 3 and status.step > stopped_at
    assert load_checkpoint(run.last_checkpoint())["step"] == status.step
    _settle(page)
    assert page.evaluate(METRICS_JS)["Steps"] == f"{status.step:,}"


def faces_zip(path: Path, n: int) -> Path:
    from animegan.synth import render_face
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            img, _ = render_face(0, i, size=64)
            b = io.BytesIO()
            img.save(b, format="PNG")
            zf.writestr(f"faces/{i}.png", b.getvalue())
    return path


def upload(page, path: Path) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    _settle(page)


def test_switching_uploads_then_training_on_the_one_in_use(page, app_url, flows_home, tmp_path):
    first, second = faces_zip(tmp_path / "first.zip", 6), faces_zip(tmp_path / "second.zip", 11)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not a zip")
    uploads_dir = flows_home / "uploads"
    _settle(page, app_url + "/dataset")
    page.get_by_text("Upload a zip").click()
    _settle(page)

    for zpath, usable in ((first, "6"), (second, "11")):
        upload(page, zpath)
        page.get_by_text(f"Kept as {uploads_dir / zpath.name}").wait_for(timeout=30_000)
        page.locator(".st-key-ds_prepare button").click()
        _settle(page)
        assert page.evaluate(METRICS_JS)["Usable"] == usable, f"{zpath.name} is not the data set in use"

    # A refused upload: its error, and no earlier data set's report under it; nothing kept.
    upload(page, broken)
    err = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert len(err) == 1 and "broken.zip is not a zip archive" in err[0], err
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.get_by_text("Validation report").count() == 0
    assert sorted(p.name for p in uploads_dir.iterdir()) == ["first.zip", "second.zip"]

    # Removing it brings back the newest good upload; "Train on this data" carries it to Train.
    page.locator('[data-testid="stFileChipDeleteBtn"]').first.click()
    _settle(page)
    assert page.evaluate(METRICS_JS)["Usable"] == "11"
    page.locator(".st-key-ds_train button").click()
    page.wait_for_url("**/train", timeout=60_000)
    _settle(page)
    assert page.locator(".st-key-tr_data input").input_value() == str(uploads_dir / "second.zip")
    assert page.get_by_text("From the Dataset page").count() == 1
    # Back on the Dataset page (the sidebar: the same session), the choices of this visit are still there.
    page.locator('[data-testid="stSidebarNav"] a[href$="/dataset"]').click()
    _settle(page)
    page.get_by_text(f"Kept as {uploads_dir / 'second.zip'}").wait_for(timeout=30_000)
    assert page.evaluate(METRICS_JS)["Usable"] == "11"
