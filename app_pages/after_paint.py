"""Draw what is below the fold after the browser has painted the page once.

A page's first paint waits for everything it draws. What a person cannot see without scrolling
(Generate's picked face, its strips, the interpolation GIF...) can come a moment later: on a new
session's first run the page draws a placeholder and a few lines of JavaScript (a Streamlit v2
component) which, once the browser has painted, ask for a rerun that draws the rest. From then on
this session draws everything at once: only the first paint of a visit is split.
"""
from __future__ import annotations

import streamlit as st
import streamlit.components.v2  # noqa: F401  (st.components.v2)

_JS = """
export default function (component) {
  const { parentElement, setTriggerValue } = component;
  if (parentElement.__animeganAsked) return;      // once per page load
  parentElement.__animeganAsked = true;
  // the next frame: the browser has painted what the page drew so far
  requestAnimationFrame(() => setTimeout(() => setTriggerValue("painted", true), 0));
}
"""


def painted_key(key: str) -> str:
    """The session-state key that says the part under `key` is drawn at once from now on in this session."""
    return f"{key}_painted"


PENDING_CLASS = "st-key-after_paint_pending"  # marks the placeholder (scripts/page_times.py waits for it to go)


def painted(key: str, placeholder: str) -> bool:
    """Whether the rest of the page may be drawn now: False on a new session's first run of the page,
    which then draws the `placeholder` line and the component that asks for a rerun once the
    browser has painted; True on every later run (call this where the deferred part goes, after
    what is above the fold)."""
    flag = painted_key(key)
    if st.session_state.get(flag):
        return True
    # The next run draws it, whatever asks for it: the browser's answer or anything the user does
    # first (a browser that never answers still gets the whole page at its first click).
    st.session_state[flag] = True
    with st.container(key=f"{PENDING_CLASS.removeprefix('st-key-')}_{key}"):
        st.caption(placeholder)
        component = st.components.v2.component("animegan.after_paint", html="", js=_JS)
        component(key=key, data={}, on_painted_change=lambda: None)  # the answer's rerun is what counts
    return False
