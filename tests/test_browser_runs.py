"""Runs, Home and Compare in real headless Chromium (`streamlit run app.py` in a subprocess): two
runs overlaid on one chart, pages that follow a live run by themselves, and an 800 px window in
which nothing is cut.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its driver only). Skipped
with a reason where Chromium is missing.
"""
from __future__ import annotations

import shutil
import sys
import time

import pytest
from test_browser import browser, serve, sync_api  # noqa: F401  (browser, sync_api: the shared fixtures)

PAGE_TIMEOUT_S = 180          # a page's first run imports torch on a busy CPU
QUIET_CHECKS = 6              # consecutive idle checks (0.5 s apart) before a page counts as settled
MIN_FACE_PX = 48


@pytest.fixture(scope="module")
def home(sync_api, tmp_path_factory):
    """A home with two tiny finished anime64 runs, alpha then beta (beta is the newest)."""
    from animegan.config import preset_config
    from animegan.synth import write_synthetic
    from animegan.train import train

    home = tmp_path_factory.mktemp("browser-runs-home")
    faces = write_synthetic(home.parent / f"{home.name}-faces", n=48)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(home))
        for name, batch in (("alpha", 8), ("beta", 16)):
            cfg = preset_config("anime64", data=str(faces), ngf=8, ndf=8, batch_size=batch, epochs=3, val_size=4,
                                test_size=4, eval_every=1, eval_n=4, threads=1, compile="off", log_every=1)
            assert train(cfg, home / "runs" / name, progress=False) == "finished"
            time.sleep(0.05)
    return home


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    with serve(home, tmp_path_factory.mktemp("browser-runs-log") / "streamlit.log") as base:
        yield base





def settle(page, url: str | None = None) -> None:
    """(Open url and) wait until the script has finished: no running-status widget and no loading
    skeleton for several checks in a row."""
    t0 = time.time()
    if url is not None:
        page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=PAGE_TIMEOUT_S * 1000)
    quiet = 0
    while quiet < QUIET_CHECKS:
        if time.time() - t0 > PAGE_TIMEOUT_S:
            raise AssertionError(f"{url} still running after {PAGE_TIMEOUT_S} s")
        busy = page.query_selector('[data-testid="stStatusWidget"]') or page.query_selector('[data-testid="stSkeleton"]')
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(500)
    exc = page.query_selector_all('[data-testid="stException"]')
    assert not exc, exc[0].inner_text()[:500]


def open_page(browser, base: str, name: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 2400})
    settle(page, base + "/")  # the app (its st.navigation) first, as a visitor arrives
    if name != "home":
        settle(page, f"{base}/{name}")
    return page


CHARTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(el => ({
    title: ((el.layout.title && el.layout.title.text) || '').replace(/<[^>]+>/g, ''),
    legend: el.data.filter(t => t.showlegend !== false).map(t => t.name),
    drawn_legend: el.querySelectorAll('.legend .traces').length}))"""


def metric_values(page) -> dict[str, str]:
    return page.eval_on_selector_all('[data-testid="stMetric"]', """els => Object.fromEntries(els.map(e => [
        e.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
        e.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))""")


# --------------------------------------------------------------------------- overlay
def test_two_runs_overlaid_on_one_chart(server, browser):
    page = open_page(browser, server, "runs", 1400)
    charts = {c["title"]: c for c in page.evaluate(CHARTS_JS)}
    assert charts["Loss D"]["legend"] == ["beta"], charts  # the newest run alone at first
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Overlay other runs")
    box.locator("input").click()
    page.keyboard.type("alpha")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    settle(page)
    page.keyboard.press("Escape")
    charts = {c["title"]: c for c in page.evaluate(CHARTS_JS)}
    for title in ("Loss D", "Loss G", "Images per second", "SWD (lower is better)"):
        assert len(charts[title]["legend"]) == 2, (title, charts[title])
    assert charts["Loss D"]["legend"] == ["beta", "alpha"]
    assert charts["Loss D"]["drawn_legend"] == 2  # two entries drawn (the faint raw curves have none)
    page.close()


# --------------------------------------------------------------------------- narrow windows
NARROW_JS = """(face) => {
  const W = window.innerWidth, out = [];
  const main = document.querySelector('[data-testid="stMain"]');
  if (document.documentElement.scrollWidth > W + 1) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
  if (main && main.scrollWidth > main.clientWidth + 1) out.push('main scrolls sideways: ' + main.scrollWidth);
  for (const m of document.querySelectorAll('[data-testid="stMetricValue"]'))
    for (const e of [m, ...m.querySelectorAll('*')])
      if (e.scrollWidth > e.clientWidth + 1) out.push('metric cut: ' + m.innerText);
  for (const b of document.querySelectorAll('[data-testid="stMain"] button')) {
    const r = b.getBoundingClientRect();
    if (r.width === 0) continue;
    if (r.right > W + 1 || r.left < -1) out.push('button outside the window: ' + b.innerText);
    if (b.innerText.trim() && b.scrollWidth > b.clientWidth + 1) out.push('button text cut: ' + b.innerText);
  }
  for (const img of document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')) {
    const shown = face * img.clientWidth / img.naturalWidth;
    if (img.naturalWidth && shown < %MIN%) out.push('faces drawn at ' + shown.toFixed(0) + ' px: ' + img.alt);
  }
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.querySelector('.gtitle'), l = el.querySelector('.legend');
    if (!t || !l) continue;
    const a = t.getBoundingClientRect(), b = l.getBoundingClientRect();
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) out.push('legend covers ' + t.textContent);
  }
  return out;
}""".replace("%MIN%", str(MIN_FACE_PX))


@pytest.mark.parametrize("name, face", [("runs", 64), ("home", 128), ("compare", 128)])
def test_nothing_is_cut_in_an_800_px_window(server, browser, name, face):
    """face: the pixels one face takes in the page's PNGs (64 px faces at 1×, or at 2×)."""
    page = open_page(browser, server, name, 800)
    page.wait_for_function("""() => document.querySelector('[data-testid="stSidebar"]')
                              .getAttribute('data-collapsed') === 'true'""", timeout=10_000)
    assert page.query_selector_all('[data-testid="stMain"] [data-testid="stImage"] img'), "no faces drawn"
    problems = page.evaluate(NARROW_JS, face)
    assert not problems, problems
    page.close()


def test_the_sidebar_stays_open_in_a_wide_window(server, browser):
    page = open_page(browser, server, "compare", 1400)
    assert page.get_attribute('[data-testid="stSidebar"]', "data-collapsed") == "false"
    page.close()


# --------------------------------------------------------------------------- live refresh
def test_runs_and_home_follow_a_live_run_without_a_reload(server, browser, home, monkeypatch):
    from animegan import jobs
    from animegan.config import preset_config
    from animegan.rundir import append_jsonl, read_json, read_jsonl, write_json_atomic

    monkeypatch.setenv("ANIMEGAN_HOME", str(home))
    live = home / "runs" / "live"
    shutil.copytree(home / "runs" / "alpha", live)
    monkeypatch.setattr(jobs, "job_argv_for_training", lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(120)"])
    cfg = preset_config("anime64", **{k: v for k, v in read_json(live / "config.json").items() if k != "preset"})
    job = jobs.start_training(cfg, "live", resume=True)
    try:
        st = dict(read_json(live / "status.json"), state="running", pid=job.pid, step=15, total_steps=1000, epochs=200)
        write_json_atomic(live / "status.json", st)
        runs_page = open_page(browser, server, "runs", 1400)
        assert metric_values(runs_page)["Steps"] == "15"
        home_page = open_page(browser, server, "home", 1400)
        assert "step 15/1,000" in home_page.inner_text('[data-testid="stProgress"]')
        last = read_jsonl(live / "metrics.jsonl")[-1]
        for s in range(16, 21):
            append_jsonl(live / "metrics.jsonl", dict(last, step=s, time=last["time"] + s))
        write_json_atomic(live / "status.json", dict(st, step=20))
        runs_page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
                                       .some(e => e.innerText.trim() === '20')""", timeout=20_000)
        home_page.wait_for_function("""() => document.querySelector('[data-testid="stProgress"]').innerText
                                       .includes('step 20/1,000')""", timeout=20_000)
    finally:
        jobs.stop_job(job, timeout=10)
        shutil.rmtree(live, ignore_errors=True)
