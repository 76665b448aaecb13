"""Your own characters in a real browser (issue 27 §3): a folder of your pictures on the Dataset page
→ prepare → curate (the planted duplicates and blurred faces are left out) → save as a new source
→ "Make a generator of this" → the Train page, with the curated zip as its data.

The server and helpers are test_browser's; skipped with a reason where Chromium is missing. With
SHOTS_DIR set, the curate section is also saved as screenshots at 1400 and 800 px there.
"""
from __future__ import annotations

import os
from pathlib import Path

from test_browser import CHROMIUM, CHROMIUM_ARGS, _settle, serve, sync_api  # noqa: F401  (sync_api: the shared fixture)
from test_page_dataset_curate import BLURRED, planted  # noqa: F401  (planted: the shared fixture)

from animegan import data

METRICS_JS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')].map(m => [
    m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
    m.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))"""


def shoot(page, name: str) -> None:
    """With SHOTS_DIR set: the whole page at 1400 and at 800 px (the sidebar collapsed, as a narrow
    window's first load does), as NAME-WIDTH.png."""
    out = os.environ.get("SHOTS_DIR")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 1200})
        _settle(page)
        collapse = page.locator('[data-testid="stSidebarCollapseButton"] button')
        if width < 1000 and collapse.count():
            page.locator('[data-testid="stSidebar"]').hover()
            collapse.first.click()
            page.wait_for_timeout(800)
        tall = page.evaluate("""() => document.querySelector('[data-testid="stMain"]').scrollHeight""")
        page.set_viewport_size({"width": width, "height": max(1200, int(tall))})
        page.wait_for_timeout(1000)
        page.screenshot(path=str(Path(out) / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1400, "height": 1600})
    _settle(page)


def test_own_pictures_curated_then_handed_to_train(sync_api, planted, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    with serve(home, tmp_path / "streamlit.log") as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            _settle(page, base + "/")
            _settle(page, base + "/dataset")
            page.get_by_text("A folder (or .zip) on this machine").click()
            _settle(page)
            box = page.locator(".st-key-ds_folder input")
            box.fill(str(planted))
            box.press("Enter")
            _settle(page)
            page.locator(".st-key-ds_prepare button").click()
            _settle(page)
            page.locator(".st-key-ds_curate button").click()
            _settle(page)
            assert page.evaluate(METRICS_JS)["Images kept"] == "16 of 19"
            shoot(page, "dataset-curate")

            # the least sharp lead their gallery: leave them out
            caps = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
            sharp = [c.removeprefix("sharpness ").split(": ") for c in caps if c.startswith("sharpness ")]
            assert {sharp[0][1], sharp[1][1]} == set(BLURRED), sharp[:4]
            for blurred in (sharp[0][1], sharp[1][1]):  # picked by hand in "Leave out these images too"
                page.locator('[data-testid="stMultiSelect"] input').first.click()
                page.keyboard.type(blurred)
                page.wait_for_timeout(500)
                page.keyboard.press("Enter")
                page.keyboard.press("Escape")
                _settle(page)
            assert page.evaluate(METRICS_JS)["Images kept"] == "14 of 19"

            name = page.locator(".st-key-ds_cur_name input")
            name.fill("my character")
            name.press("Enter")
            _settle(page)
            page.locator(".st-key-ds_cur_save button").click()
            _settle(page)
            out = home / "curated" / "my character.zip"
            page.get_by_text("It is now this page's source").wait_for(timeout=30_000)
            assert out.is_file()
            assert page.evaluate(METRICS_JS)["Usable"] == "14"
            names = set(data.prepare(str(out), 64, val=0, test=0).names)
            assert len(names) == 14 and not names & set(BLURRED)

            page.locator(".st-key-ds_curate button").click()
            _settle(page)
            shoot(page, "dataset-curated")
            page.locator(".st-key-ds_cur_make button").click()
            page.wait_for_url("**/train", timeout=60_000)
            _settle(page)
            assert page.locator(".st-key-tr_data input").input_value() == str(out)
        finally:
            browser.close()
