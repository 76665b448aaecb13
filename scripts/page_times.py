"""How long the dashboard makes a person wait: every page's first paint and Generate's round trips.

    python scripts/page_times.py [--home DIR] [--rounds 3] [--width 1400] [--pages home,generate,...]

Starts `streamlit run app.py` on a free port (ANIMEGAN_HOME = --home, default a new empty folder: the
shipped checkpoints are the choices), warms it (every page opened once, so torch is imported and the
checkpoints are loaded, as on a server someone already uses), then, in headless Chromium
(/usr/bin/chromium, through playwright):

- first paint: each page in a new Streamlit session, from `goto` until the page is drawn: its title
  is there, the script has stopped running, no skeleton is left (an element whose JavaScript is
  still loading), every chart (Plotly, Vega-Lite) has drawn its SVG and every image has loaded. Twice: in a new
  browser context ("first visit": the browser fetches and compiles the app's JavaScript, 4.7 MB of
  it Plotly's on a page with a chart) and in a new tab of a browser that has visited every page
  ("returning browser": its cache holds the JavaScript, as a person's browser does);
- the whole page drawn, first visit: where a page draws what is below the fold after its first
  paint (app_pages/after_paint.py: Generate under the grid, Compare under the faces), until that
  part is drawn too;
- the JavaScript a first visit fetches for each page (MB): what the browser must parse before the
  page is drawn, a figure a loaded machine does not change (Streamlit loads an element's script the
  first time the page draws one: Plotly's 4.7 MB, st.dataframe's 1.2 MB, st.code's 1.5 MB);
- Generate's round trips, in one session: "New seed", a new number of faces, a click on a face,
  each from the click until the new faces (or the newly picked face) are on screen ("faces drawn";
  Streamlit sends what the script draws as it goes) and until the whole page is drawn and nothing
  runs ("page settled").

Each figure is the median of --rounds tries. Prints a markdown table with the load average before
and after (a loaded machine gives loaded numbers: note it beside them).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ["home", "dataset", "train", "runs", "generate", "compare"]
TIMEOUT_MS = 240_000

# True once the page is drawn: a title, the script not running, no skeleton, every Plotly and
# Vega-Lite chart drawn, every image in the main area loaded.
PAINTED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (!document.querySelector('[data-testid="stMain"] h1')) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (!c.querySelector('.main-svg')) return false;
  for (const c of document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
    if (!c.querySelector('svg, canvas')) return false;
  for (const i of document.querySelectorAll('[data-testid="stMain"] img')) if (!i.complete) return false;
  return true;
}"""

# What the Generate page shows now: the grid picture (its source) and the picked face's caption.
GENERATE_STATE_JS = """() => {
  const grid = document.querySelector('[data-testid="stPlotlyChart"] svg image')
            || document.querySelector('img[data-grid]');
  const caps = [...document.querySelectorAll('[data-testid="stImageCaption"]')].map(e => e.innerText.trim());
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img')];
  return {grid: grid ? (grid.getAttribute('href') || grid.getAttribute('src') || '').slice(-200) : '',
          caps: caps.join('|'), loaded: imgs.every(i => i.complete)};
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, ANIMEGAN_HOME=str(home), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited ({proc.returncode}); see {log}")
        try:
            urllib.request.urlopen(base + "/_stcore/health", timeout=2)
            return proc, base
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"streamlit did not come up in 120 s; see {log}") from None
            time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def url_of(base: str, page: str) -> str:
    return base + "/" if page == "home" else f"{base}/{page}"


# A part of the page still to come: app_pages/after_paint.py draws what is below the fold once the
# browser has painted the page; its placeholder carries this class until then.
PENDING_JS = """() => !document.querySelector('[class*="st-key-after_paint_pending"]')"""


def first_paint(browser, base: str, page_name: str, width: int, context=None, script_bytes: list | None = None,
                whole: list | None = None) -> float:
    """Seconds from `goto` in a new Streamlit session until the page is drawn: in a new browser
    context (nothing in the browser's cache: a first visit), or in a new tab of `context` (the
    browser has the app's JavaScript already, as a returning visitor's has). `script_bytes`, when
    given, gets the bytes of JavaScript the browser fetched for the page (all of it on a first
    visit): a figure the machine's load does not change. `whole`, when given, gets the seconds until
    the whole page is drawn, what it draws after the first paint (after_paint) included."""
    ctx = context or browser.new_context(viewport={"width": width, "height": 1000})
    page = ctx.new_page()
    fetched: list[int] = []
    if script_bytes is not None:
        page.on("requestfinished", lambda r: fetched.append(
            (r.sizes() or {}).get("responseBodySize", 0) if r.url.split("?")[0].endswith(".js") else 0))
    try:
        t0 = time.perf_counter()
        page.goto(url_of(base, page_name))
        page.wait_for_function(PAINTED_JS, polling=50, timeout=TIMEOUT_MS)
        dt = time.perf_counter() - t0
        if script_bytes is not None:
            script_bytes.append(sum(fetched))
        if whole is not None:   # the first paint itself where nothing was left for later
            pending = not page.evaluate(PENDING_JS)
            if pending:
                page.wait_for_function(f"() => ({PENDING_JS})() && ({PAINTED_JS})()", polling=50, timeout=TIMEOUT_MS)
            whole.append(time.perf_counter() - t0 if pending else dt)
        exc = page.query_selector('[data-testid="stException"]')
        if exc:
            raise SystemExit(f"{page_name}: {exc.inner_text()[:400]}")
        return dt
    finally:
        page.close()
        if context is None:
            ctx.close()


def round_trip(page, action, changed) -> tuple[float, float]:
    """Seconds from `action()` until `changed(state)` first holds for the page's state (the new faces
    or the newly picked face are on screen), and until then the whole page is drawn and nothing runs."""
    t0 = time.perf_counter()
    action()
    seen = None
    while True:
        state = page.evaluate(GENERATE_STATE_JS)
        if seen is None and changed(state) and state["loaded"]:
            seen = time.perf_counter() - t0
        if seen is not None and page.evaluate(PAINTED_JS):
            return seen, time.perf_counter() - t0
        if time.perf_counter() - t0 > TIMEOUT_MS / 1000:
            raise SystemExit("Generate did not change after the action")
        page.wait_for_timeout(25)


def click_face(page, index: int, cols: int) -> None:
    """A click in the middle of face `index` of the grid (cols faces a row, as drawn)."""
    grid = page.query_selector('[data-testid="stPlotlyChart"] svg image') or page.query_selector('img[data-grid]')
    box = grid.bounding_box()
    n = int(page.evaluate("() => { const g = document.querySelector('img[data-grid]');"
                          " return g ? +g.dataset.n : 64; }"))
    rows = -(-n // cols)
    r, c = divmod(index, cols)
    page.mouse.click(box["x"] + box["width"] * (c + 0.5) / cols, box["y"] + box["height"] * (r + 0.5) / rows)


def generate_round_trips(browser, base: str, width: int, rounds: int) -> dict[str, list[float]]:
    ctx = browser.new_context(viewport={"width": width, "height": 1400})
    out: dict[str, list[float]] = {}
    try:
        page = ctx.new_page()
        page.goto(url_of(base, "generate"))
        page.wait_for_function(f"() => ({PENDING_JS})() && ({PAINTED_JS})()", polling=50, timeout=TIMEOUT_MS)
        faces = page.get_by_role("spinbutton", name="Number of faces")
        for r in range(rounds):
            def record(what: str, times: tuple[float, float]) -> None:
                out.setdefault(f"{what}: faces drawn", []).append(times[0])
                out.setdefault(f"{what}: page settled", []).append(times[1])

            before = page.evaluate(GENERATE_STATE_JS)
            record("new seed", round_trip(page, lambda: page.get_by_role("button", name="New seed").click(),
                                          lambda s, b=before: s["grid"] != b["grid"]))
            before = page.evaluate(GENERATE_STATE_JS)
            n = 48 if r % 2 == 0 else 64

            def set_faces(n=n):
                faces.fill(str(n))
                faces.press("Enter")
            record("number of faces", round_trip(page, set_faces, lambda s, b=before: s["grid"] != b["grid"]))
            index = 9 + r
            record("pick a face", round_trip(page, lambda i=index: click_face(page, i, 8),
                                             lambda s, i=index: f"index {i}|" in s["caps"] + "|"))
    finally:
        ctx.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, help="ANIMEGAN_HOME for the server (default: a new empty folder)")
    ap.add_argument("--rounds", type=int, default=3, help="tries per figure; the median is shown (default 3)")
    ap.add_argument("--width", type=int, default=1400, help="browser window width in px (default 1400)")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated pages (default all six)")
    ap.add_argument("--no-round-trips", action="store_true", help="first paints only")
    a = ap.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pages = [p.strip() for p in a.pages.split(",") if p.strip()]
    work = Path(tempfile.mkdtemp(prefix="page-times-"))
    home = a.home or (work / "home")
    home.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    proc, base = start_server(home, work / "streamlit.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            returning = browser.new_context(viewport={"width": a.width, "height": 1000})
            for name in pages:   # warm: imports, checkpoints loaded, pictures cached; the browser cache filled
                first_paint(browser, base, name, a.width, returning)
            paints, again, scripts, wholes = {}, {}, {}, {}
            for name in pages:
                scripts[name], wholes[name] = [], []
                paints[name] = [first_paint(browser, base, name, a.width, script_bytes=scripts[name], whole=wholes[name])
                                for _ in range(a.rounds)]
                again[name] = [first_paint(browser, base, name, a.width, returning) for _ in range(a.rounds)]
                print(f"{name}: first visit {', '.join(f'{t:.2f}' for t in paints[name])} s; returning "
                      f"{', '.join(f'{t:.2f}' for t in again[name])} s", flush=True)
            returning.close()
            trips = {} if a.no_round_trips or "generate" not in pages else generate_round_trips(
                browser, base, a.width, a.rounds)
            browser.close()
    finally:
        stop_server(proc)
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}; "
          f"after {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f}; {os.cpu_count()} cores; "
          f"{a.width} px; median of {a.rounds}\n")
    print("| what | median | tries |")
    print("| --- | --- | --- |")
    for name, ts in paints.items():
        print(f"| {name}: first paint, first visit | {statistics.median(ts):.2f} s | {', '.join(f'{t:.2f}' for t in ts)} |")
        ts = again[name]
        print(f"| {name}: first paint, returning browser | {statistics.median(ts):.2f} s | "
              f"{', '.join(f'{t:.2f}' for t in ts)} |")
        if wholes[name] != paints[name]:   # the page draws part of itself after the first paint
            ts = wholes[name]
            print(f"| {name}: whole page drawn, first visit | {statistics.median(ts):.2f} s | "
                  f"{', '.join(f'{t:.2f}' for t in ts)} |")
        kb = [b / 1e6 for b in scripts[name]]
        print(f"| {name}: JavaScript fetched, first visit | {statistics.median(kb):.2f} MB | "
              f"{', '.join(f'{b:.2f}' for b in kb)} |")
    for name, ts in trips.items():
        print(f"| generate: {name} | {statistics.median(ts):.2f} s | {', '.join(f'{t:.2f}' for t in ts)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
