"""The dashboard as a person meets it, in real headless Chromium against `streamlit run app.py`:

- Compare puts two shipped checkpoints measured the same way on one chart, side by side;
- Train says before Start whether a run will torch.compile and why: not with a budget that
  compiling would eat, yes with a long one (`step.compile_decision`);
- every page at 800 px: no horizontal scroll, nothing sticking out, no label, value or choice cut
  with an ellipsis; the Dataset page's report also with the sidebar opened.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its driver only); skipped
with a reason where Chromium or the shipped checkpoints are missing. Screenshots go to the test's
tmp folder (and to $ANIMEGAN_SHOTS when set) so a person can look at them.
"""
from __future__ import annotations

import shutil

import pytest

from tests.test_browser import CHROMIUM, ROOT, _settle, browser, serve, shot  # noqa: F401 (browser: a fixture)
from tests.test_data import noise, put

SHIPPED = ROOT / "checkpoints"
PAIR = ("anime64", "dcgan64")        # two shipped 64 px checkpoints, measured the same way below
FACES_N = 300                        # 3 steps of 64 an epoch for anime64: 200 epochs are 600 steps (>= COMPILE_MIN_STEPS)
PAGES = ["", "dataset", "train", "runs", "generate", "compare"]


@pytest.fixture(scope="module")
def sync_api():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if not all((SHIPPED / f"{n}.pt").exists() for n in PAIR):
        pytest.skip("the shipped checkpoints are missing")
    from playwright import sync_api
    return sync_api


@pytest.fixture(scope="module")
def home(sync_api, tmp_path_factory):
    """A home with the built-in set prepared (a small one), a finished tiny run, a folder of faces,
    and an SWD of two shipped checkpoints on that folder's test split, recorded as Compare's button
    records it."""
    from animegan import comparison, data, paths
    from animegan.config import preset_config
    from animegan.metrics import evaluation
    from animegan.synth import write_synthetic
    from animegan.train import train

    home = tmp_path_factory.mktemp("browser-pages-home")
    faces = home / "faces"
    for i in range(FACES_N):
        put(faces / f"img{i:03d}.png", noise(64, 64, seed=i))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(home))
        write_synthetic(paths.synthetic_dir(), n=48, workers=1)
        data.prepare("synthetic", 64, synthetic_n=48)
        cfg = preset_config("classic-dcgan", data=str(paths.synthetic_dir() / "images"), ngf=8, ndf=8, batch_size=8,
                            epochs=1, max_steps=2, val_size=4, test_size=4, latest_every=1, log_every=1)
        assert train(cfg, paths.runs_dir() / "tiny", progress=False) == "finished"
        ref = evaluation.reference_label(str(faces), data.fingerprint(faces), 64, "test")
        for name, value in zip(PAIR, (31.5, 58.25), strict=True):
            comparison.record(SHIPPED / f"{name}.pt", {"metric": "swd", "value": value, "n": 8, "reference": ref,
                                                       "seed": 0}, requested_n=8)
    return home


@pytest.fixture(scope="module")
def server(home):
    with serve(home, home / "streamlit.log") as base:
        yield base


def no_exception(page) -> None:
    exc = page.query_selector_all('[data-testid="stException"]')
    assert not exc, exc[0].inner_text()[:500]


def submit_number(page, label: str, value: float) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(f"{value:g}")
    box.press("Enter")
    page.wait_for_timeout(300)
    _settle(page)


# --------------------------------------------------------------------------- Compare: one chart


def chart_texts(chart) -> dict[str, list[str]]:
    """What a drawn Vega-Lite chart shows: its axis labels, legend entries, bars and the numbers on them."""
    return chart.evaluate("""c => ({
        x: [...c.querySelectorAll('.role-axis-label text')].map(t => t.textContent),
        legend: [...c.querySelectorAll('.role-legend-label text')].map(t => t.textContent),
        bars: c.querySelectorAll('.role-mark.mark-rect path').length,
        labels: [...c.querySelectorAll('.role-mark.mark-text text')].map(t => t.textContent)})""")


def test_compare_puts_two_checkpoints_measured_alike_on_one_chart(server, home, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    try:
        _settle(page, server + "/compare")
        no_exception(page)
        select = page.locator('[data-testid="stMultiSelect"]', has_text="Checkpoints to compare")
        tags = select.locator("[data-tag]").all_inner_texts()
        for tag in tags:                                              # keep the pair only
            if tag.strip().split(": ")[-1] not in PAIR:
                page.get_by_role("button", name=f"Remove {tag.strip()}").click()
                _settle(page)
        tags = [t.strip() for t in select.locator("[data-tag]").all_inner_texts()]
        assert [t.split(": ")[-1] for t in tags] == list(PAIR), tags
        ref = page.get_by_role("textbox", name="Reference data", exact=True)
        ref.fill(str(home / "faces"))
        ref.press("Enter")
        _settle(page)
        submit_number(page, "n", 8)
        no_exception(page)
        charts = [c for c in page.query_selector_all('[data-testid="stVegaLiteChart"]')
                  if all(f"shipped: {n}" in chart_texts(c)["x"] for n in PAIR)]
        assert len(charts) == 1, f"{len(charts)} charts show both checkpoints"
        seen = chart_texts(charts[0])
        assert seen["bars"] == 2 and seen["legend"] == ["64 px"], seen
        assert {"31.5", "58.2"} <= {t.split(" ")[0] for t in seen["labels"]}, seen["labels"]
        assert "All 2 bars compare" in page.inner_text('[data-testid="stMain"]')
        shot(page, tmp_path, "compare-two-on-one-chart-1400.png")
    finally:
        page.close()


# --------------------------------------------------------------------------- Train: compiling said before Start


def compiling_line(page) -> str:
    lines = [t for t in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts() if "Compiling:" in t]
    assert len(lines) == 1, lines
    return next(x for x in lines[0].splitlines() if x.startswith("Compiling:"))


def apply_form(page, minutes, value: str) -> None:
    """Type the time budget and apply the Train form with "Estimate time per epoch" (it times a few
    steps the first time; Start is not pressed, so nothing starts)."""
    minutes.fill(value)
    minutes.press("Enter")              # commits the number; in this form, Enter does not submit
    page.get_by_role("button", name="Estimate time per epoch").click()
    page.wait_for_timeout(500)
    _settle(page)
    assert float(minutes.input_value()) == float(value)


def test_train_says_before_start_whether_a_budget_leaves_room_to_compile(server, home, browser, tmp_path):
    from animegan import step
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler here: compile=auto never compiles")
    runs = home / "runs"
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == ["tiny"]
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    try:
        _settle(page, server + "/train")
        no_exception(page)
        page.get_by_role("textbox", name="Data source", exact=True).fill(str(home / "faces"))
        page.get_by_role("spinbutton", name="Epochs", exact=True).fill("200")
        minutes = page.get_by_role("spinbutton", name="Time budget, minutes (0 = none)", exact=True)
        short = step.COMPILE_SECONDS / step.COMPILE_BUDGET_SHARE / 60 / 2      # compiling would be 20 % of it
        apply_form(page, minutes, f"{short:.1f}")
        no_exception(page)
        said = compiling_line(page)
        assert "stays off" in said and f"{short:.1f}".rstrip("0").rstrip(".") in said and "budget" in said, said
        assert f"about {step.COMPILE_SECONDS:.0f} s" in said, said
        shot(page, tmp_path, "train-short-budget-1400.png")
        apply_form(page, minutes, "60")
        said = compiling_line(page)
        assert said.startswith("Compiling: torch.compile is on (auto: 600 steps on a CPU)"), said
        assert "the time budget starts after it" in said, said
        assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == ["tiny"], \
            "Enter applied the form; nothing started"
    finally:
        page.close()


# --------------------------------------------------------------------------- 800 px: nothing cut

CUT_JS = """() => {
  const W = document.documentElement.clientWidth, out = [];
  if (document.documentElement.scrollWidth > W + 1) out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${W}`);
  const main = document.querySelector('[data-testid="stMain"]');
  for (const e of main.querySelectorAll('*')) {
    // Plotly's own layers, the invisible native inputs behind Streamlit's uploader and sliders,
    // and what scrolls inside its own box (tables, code)
    if (e.closest('svg') || e.closest('[data-testid="stDataFrame"]') || e.closest('[data-testid="stCode"]')
        || (e.tagName === 'INPUT' && (e.type === 'file' || e.type === 'range'))) continue;
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    if (r.width === 0 || s.visibility === 'hidden' || s.display === 'none') continue;
    if (r.right > W + 1) out.push(`${e.tagName} ${e.getAttribute('data-testid') || ''} "${(e.innerText || '').slice(0, 40)}" sticks out to ${Math.round(r.right)}`);
    if (s.textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1) out.push(`"${e.innerText.slice(0, 40)}" is cut`);
  }
  for (const m of main.querySelectorAll('[data-testid="stMetricLabel"], [data-testid="stMetricValue"]'))
    for (const e of [m, ...m.querySelectorAll('*')])
      if (e.scrollWidth > e.clientWidth + 1) out.push(`metric "${m.innerText.slice(0, 40)}" is cut`);
  return [...new Set(out)];
}"""


@pytest.mark.parametrize("path", PAGES, ids=[p or "home" for p in PAGES])
def test_every_page_at_800_px_shows_everything_whole(server, browser, tmp_path, path):
    page = browser.new_page(viewport={"width": 800, "height": 1600})
    try:
        _settle(page, f"{server}/{path}")
        no_exception(page)
        assert page.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") == "true", "sidebar open"
        cut = page.evaluate(CUT_JS)
        shot(page, tmp_path, f"{path or 'home'}-800.png")
        assert not cut, cut[:10]
        if path == "dataset":   # the report, with the sidebar opened by the person
            assert page.get_by_text("Exact duplicates").count(), "the prepared set's report is shown"
            page.locator('[data-testid="stExpandSidebarButton"]').click()
            page.wait_for_timeout(800)
            assert page.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") == "false"
            cut = page.evaluate(CUT_JS)
            shot(page, tmp_path, "dataset-800-sidebar.png")
            assert not cut, cut[:10]
    finally:
        page.close()


# --------------------------------------------------------------------------- Generate: the zip made on demand


def test_the_zip_of_every_face_is_made_when_asked_for_and_holds_every_face(server, browser, tmp_path):
    import zipfile

    from animegan import images
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    try:
        _settle(page, server + "/generate")
        no_exception(page)
        with page.expect_download(timeout=120_000) as got:
            page.get_by_role("button", name="Every face (zip of PNGs)").click()
        path = tmp_path / "faces.zip"
        got.value.save_as(path)
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            assert names == [images.png_name(0, i) for i in range(64)], names[:3]
            assert zf.read(names[5])[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()
