"""The Generate page in real headless Chromium: a click on a face of the grid picks it, and in a window
800 px wide nothing is cut and faces stay at least 48 px.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its driver only); skipped
with a reason where Chromium is missing. Screenshots go to the test's tmp folder (and to
$ANIMEGAN_SHOTS when set) so a person can look at them.
"""
from __future__ import annotations

import time

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, serve, shot

PAGE_TIMEOUT_S = 240        # the first run imports torch and loads a checkpoint on a busy CPU
QUIET_CHECKS = 6            # consecutive idle checks (0.5 s apart) before the page counts as settled
COLS, SIZE, PAD = 8, 64, 2  # the page's default grid: 8 columns of 64 px faces, 2 px apart
MIN_FACE_PX = 48


@pytest.fixture(scope="module")
def sync_api():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if not (ROOT / "checkpoints" / "anime64.pt").exists():
        pytest.skip("the shipped checkpoints are missing")
    from playwright import sync_api
    return sync_api


@pytest.fixture(scope="module")
def server(sync_api, tmp_path_factory):
    """`streamlit run app.py` on an empty home: the shipped checkpoints are the choices (anime64 first)."""
    home = tmp_path_factory.mktemp("browser-generate-home")
    with serve(home, home / "streamlit.log") as base:
        yield base


def _settle(page) -> None:
    """Wait until the script has finished: no running-status widget and no skeleton for a while."""
    t0, quiet = time.time(), 0
    while quiet < QUIET_CHECKS:
        if time.time() - t0 > PAGE_TIMEOUT_S:
            raise AssertionError(f"the page still runs after {PAGE_TIMEOUT_S} s")
        busy = page.query_selector('[data-testid="stStatusWidget"]') or page.query_selector('[data-testid="stSkeleton"]')
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(500)


def _open_generate(page, base: str) -> None:
    page.goto(base + "/")
    page.wait_for_selector('[data-testid="stApp"]', timeout=PAGE_TIMEOUT_S * 1000)
    _settle(page)
    page.goto(base + "/generate")
    page.wait_for_selector('img[data-grid]', timeout=PAGE_TIMEOUT_S * 1000)
    _settle(page)
    exc = page.query_selector_all('[data-testid="stException"]')
    assert not exc, exc[0].inner_text()[:500]


def _grid_box(page) -> dict:
    """Where the grid picture is drawn (CSS px)."""
    img = page.query_selector('img[data-grid]')
    assert img is not None, "the grid is one picture (app_pages/face_grid.py)"
    return img.bounding_box()


def _click_face(page, index: int) -> None:
    box = _grid_box(page)
    width = COLS * (SIZE + PAD) + PAD
    rows = (64 + COLS - 1) // COLS
    height = rows * (SIZE + PAD) + PAD
    r, c = divmod(index, COLS)
    x = box["x"] + box["width"] * (PAD + c * (SIZE + PAD) + SIZE / 2) / width
    y = box["y"] + box["height"] * (PAD + r * (SIZE + PAD) + SIZE / 2) / height
    page.mouse.click(x, y)
    page.wait_for_timeout(800)
    _settle(page)


def _captions(page) -> list[str]:
    return page.eval_on_selector_all('[data-testid="stImageCaption"]', "els => els.map(e => e.innerText.trim())")





def test_a_click_on_a_face_picks_it(sync_api, server, tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 4800})
            _open_generate(page, server)
            assert "seed 0, index 0" in _captions(page), "face 0 is picked at first"
            _click_face(page, 10)
            assert "seed 0, index 10" in _captions(page), _captions(page)[:4]
            assert any("seed 0, index 10 → seed 1, index 0" in c for c in _captions(page)), "the walk starts there"
            _click_face(page, 61)
            assert "seed 0, index 61" in _captions(page), _captions(page)[:4]
            picture = shot(page, tmp_path, "generate-1400.png")
            assert picture.stat().st_size > 100_000
            print("screenshot:", picture)
        finally:
            browser.close()


_CUT_JS = """() => {
  const W = window.innerWidth, out = [];
  const main = document.querySelector('[data-testid="stMain"]');
  for (const e of main.querySelectorAll('*')) {
    // Plotly's own layers, and the invisible native inputs behind Streamlit's uploader and sliders
    if (e.closest('svg') || (e.tagName === 'INPUT' && (e.type === 'file' || e.type === 'range'))) continue;
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    if (r.width === 0 || s.visibility === 'hidden' || s.display === 'none') continue;
    if (r.right > W + 1) out.push(`${e.tagName} ${e.getAttribute('data-testid') || ''} sticks out to ${Math.round(r.right)}`);
    if (s.textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1) out.push(`"${e.innerText.slice(0, 40)}" is cut`);
  }
  return out;
}"""


def test_at_800_px_nothing_is_cut_and_faces_stay_48_px(sync_api, server, tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 4800})
            _open_generate(page, server)
            _click_face(page, 3)
            assert "seed 0, index 3" in _captions(page)
            cut = page.evaluate(_CUT_JS)
            assert not cut, cut[:10]
            assert _grid_box(page)["width"] / COLS * SIZE / (SIZE + PAD) >= MIN_FACE_PX
            rows = page.eval_on_selector_all(
                '[data-testid="stImage"]',
                "els => els.map(e => [e.querySelector('img').getBoundingClientRect().width, "
                "(e.querySelector('[data-testid=stImageCaption]') || {innerText: ''}).innerText])")
            strips = [(w, c) for w, c in rows if c.startswith("direction ")]
            psi = [(w, c) for w, c in rows if c.startswith("ψ 1")]
            assert len(strips) == 5 and len(psi) == 1
            assert all(w / 7 >= MIN_FACE_PX for w, _ in strips), strips
            assert psi[0][0] / 9 >= MIN_FACE_PX, psi
            assert all(w >= MIN_FACE_PX for w, _ in rows)
            print("screenshot:", shot(page, tmp_path, "generate-800.png"))
        finally:
            browser.close()
