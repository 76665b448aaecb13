"""A shared link to a page, opened as the very first request after the server starts, gives the
normal six-page app: the titles and order of app.py's navigation, the wide layout, no raw file names.

(Streamlit serves a first request for a page from a folder named `pages/` next to the entry script
as a legacy v1 multipage app, until some session has run app.py; that is why the page scripts live
in `app_pages/`.) Real Chromium against `streamlit run app.py`; skipped where Chromium is missing.
"""
from __future__ import annotations

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, _settle, serve

SIX_PAGES = ["Home", "Dataset", "Train", "Runs", "Generate", "Compare"]


@pytest.fixture(scope="module")
def sync_api():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright import sync_api
    return sync_api


def test_no_legacy_pages_folder_next_to_app_py():
    assert not (ROOT / "pages").exists(), "a pages/ folder next to app.py turns deep links into a v1 app"


@pytest.mark.parametrize("path, title", [("/runs", "Runs"), ("/dataset", "Dataset")])
def test_a_deep_link_as_the_first_request_gives_the_six_page_app(sync_api, tmp_path, path, title):
    home = tmp_path / "home"
    home.mkdir()
    with serve(home, tmp_path / "streamlit.log") as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            _settle(page, base + path)   # the server's first request
            nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            labels = [t.strip().splitlines()[-1].strip() for t in nav]
            assert labels == SIX_PAGES, nav
            assert not {"app", "shared", "home", "runs", "dataset"} & set(labels), labels
            assert page.locator("h1").first.inner_text().strip() == title
            assert page.title() == "animegan"   # app.py ran: its set_page_config, as through "/"
            width = page.locator('[data-testid="stMainBlockContainer"]').first.bounding_box()["width"]
            assert width > 1000, f"wide layout: main column {width:.0f} px in a 1400 px window"
        finally:
            browser.close()
