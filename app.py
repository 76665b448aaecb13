"""The animegan dashboard: `streamlit run app.py`.

A multipage app; every page is a thin layer over the `animegan` package (see app_pages/).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run /elsewhere/app.py` must still find the package
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="animegan", page_icon="🎨", layout="wide")


def _page(name: str, title: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(str(ROOT / "app_pages" / f"{name}.py"), title=title, icon=icon, default=default)


st.navigation([
    _page("home", "Home", ":material/home:", default=True),
    _page("dataset", "Dataset", ":material/photo_library:"),
    _page("train", "Train", ":material/model_training:"),
    _page("runs", "Runs", ":material/monitoring:"),
    _page("generate", "Generate", ":material/auto_awesome:"),
    _page("compare", "Compare", ":material/compare:"),
]).run()
