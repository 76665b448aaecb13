"""End to end: `streamlit run app.py` in a subprocess, every page opened in real headless Chromium.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (in requirements.txt; its
driver only, no browser download). Skipped with a reason where Chromium is missing.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_TIMEOUT_S = 180          # a page's first run imports torch on a busy CPU
QUIET_CHECKS = 6              # consecutive idle checks (0.5 s apart) before a page counts as settled


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sync_api():
    """Skip (before anything is trained or started) where the browser is missing; the playwright
    package (its driver only) is in requirements.txt."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright import sync_api
    return sync_api


@pytest.fixture(scope="module")
def browser_home(sync_api, tmp_path_factory):
    """A home with a small pre-rendered synthetic set (already prepared) and a finished tiny run."""
    from animegan import paths
    from animegan.config import preset_config
    from animegan.data import prepare
    from animegan.synth import write_synthetic
    from animegan.train import train

    home = tmp_path_factory.mktemp("browser-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(home))
        write_synthetic(paths.synthetic_dir(), n=48, workers=1)
        prepare("synthetic", 64, synthetic_n=48)
        cfg = preset_config("classic-dcgan", data=str(paths.synthetic_dir() / "images"), ngf=8, ndf=8, batch_size=8,
                            epochs=1, max_steps=2, val_size=4, test_size=4, latest_every=1, log_every=1)
        assert train(cfg, paths.runs_dir() / "tiny", progress=False) == "finished"
    return home


@contextmanager
def serve(home: Path, log_path: Path) -> Iterator[str]:
    """`streamlit run app.py` on a free port with ANIMEGAN_HOME=home; yields its base URL and stops
    it (its whole process group) afterwards. Shared with test_browser_flows."""
    port = _free_port()
    env = dict(os.environ, ANIMEGAN_HOME=str(home), PYTHONUNBUFFERED="1")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(base + "/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("streamlit did not come up in 120 s")
                time.sleep(0.5)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def server(browser_home, tmp_path):
    with serve(browser_home, tmp_path / "streamlit.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser(sync_api):
    """One headless Chromium for a test file; each test opens its own pages."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in tmp_path, also copied to $ANIMEGAN_SHOTS when that is set."""
    p = tmp_path / name
    page.screenshot(path=str(p), full_page=True)
    if os.environ.get("ANIMEGAN_SHOTS"):
        Path(os.environ["ANIMEGAN_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, Path(os.environ["ANIMEGAN_SHOTS"]) / name)
    return p


def _settle(page, url: str | None = None) -> float:
    """Open url (None: stay on the page) and wait until the script has finished: no running-status
    widget and no loading skeleton for several checks in a row (the widget appears a moment after
    a run starts)."""
    t0 = time.time()
    if url is not None:
        page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=PAGE_TIMEOUT_S * 1000)
    quiet = 0
    while quiet < QUIET_CHECKS:
        if time.time() - t0 > PAGE_TIMEOUT_S:
            raise AssertionError(f"{url or page.url} still running after {PAGE_TIMEOUT_S} s")
        busy = page.query_selector('[data-testid="stStatusWidget"]') or page.query_selector('[data-testid="stSkeleton"]')
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(500)
    return time.time() - t0


def test_every_page_opens_without_an_exception(sync_api, server, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    seen: dict[str, tuple[float, int]] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            _settle(page, server + "/")
            links = page.eval_on_selector_all('[data-testid="stSidebarNav"] a', "els => els.map(e => e.href)")
            urls = list(dict.fromkeys(links))
            names = [u[len(server):].strip("/") or "home" for u in urls]
            assert {"dataset", "train", "runs", "generate", "compare"} <= set(names), names
            for url, name in zip(urls, names, strict=True):
                dt = _settle(page, url)
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                exc = page.query_selector_all('[data-testid="stException"]')
                seen[name] = (dt, len(exc))
                assert not exc, f"{name}: {exc[0].inner_text()[:500]}"
                assert page.query_selector("h1"), f"{name}: no title rendered"
        finally:
            browser.close()
    assert all((shots / f"{n}.png").stat().st_size > 10_000 for n in seen)
    print("pages:", {n: f"{dt:.1f}s" for n, (dt, _) in seen.items()}, "screenshots in", shots)
