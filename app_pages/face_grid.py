"""A grid of faces as one picture; a click on a face picks it.

A few lines of JavaScript (a Streamlit v2 component), not a chart: Plotly's 4.7 MB bundle made the
Generate page's first paint and every redraw of the grid slow. The picked face's outline moves
in the browser at the click, before the page has answered; the page gets the index of the face.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Callable

import streamlit as st
import streamlit.components.v2  # noqa: F401  (st.components.v2)

_CSS = """
.face-grid { position: relative; display: inline-block; width: 100%; line-height: 0; }
.face-grid img { width: 100%; height: auto; cursor: pointer; image-rendering: auto; }
.face-grid .picked { position: absolute; box-sizing: border-box; border: 3px solid #ff6fa8;
                     pointer-events: none; display: none; }
"""

_JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let box = parentElement.querySelector('.face-grid');
  if (!box) {
    box = document.createElement('div');
    box.className = 'face-grid';
    const img = document.createElement('img');
    img.setAttribute('data-grid', '');
    img.alt = 'faces';
    const mark = document.createElement('div');
    mark.className = 'picked';
    box.append(img, mark);
    parentElement.appendChild(box);
  }
  const img = box.querySelector('img'), mark = box.querySelector('.picked');
  const { src, n, cols, size, pad, width, height, picked } = data;
  if (img.getAttribute('src') !== src) img.setAttribute('src', src);
  img.dataset.n = n;
  img.dataset.cols = cols;
  box.style.maxWidth = width + 'px';
  const pct = (v, whole) => (100 * v / whole) + '%';
  function place(i) {
    if (i === null || i === undefined || i < 0 || i >= n) { mark.style.display = 'none'; return; }
    const x = pad + (i % cols) * (size + pad), y = pad + Math.floor(i / cols) * (size + pad);
    mark.style.left = pct(x - 1, width); mark.style.top = pct(y - 1, height);
    mark.style.width = pct(size + 2, width); mark.style.height = pct(size + 2, height);
    mark.style.display = 'block';
  }
  function faceAt(e) {
    const r = img.getBoundingClientRect();
    const x = (e.clientX - r.left) * width / r.width, y = (e.clientY - r.top) * height / r.height;
    const c = Math.floor((x - pad / 2) / (size + pad)), row = Math.floor((y - pad / 2) / (size + pad));
    const i = row * cols + c;
    return (c < 0 || c >= cols || row < 0 || i >= n) ? null : i;
  }
  place(picked);
  img.onmousemove = (e) => { const i = faceAt(e); img.title = i === null ? '' : `face ${i}: click to pick it`; };
  img.onclick = (e) => {
    const i = faceAt(e);
    if (i === null) return;
    place(i);                      // at once, before the page answers
    setTriggerValue('picked', i);
  };
}
"""

def grid_layout(n: int, cols: int, size: int, pad: int) -> tuple[int, int, int]:
    """(columns, width, height) in pixels of n faces of `size` px laid out `cols` a row, `pad` px
    apart and around, as images.to_grid lays them out (never more columns than faces)."""
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    return cols, cols * (size + pad) + pad, rows * (size + pad) + pad


def face_grid(png: bytes, n: int, cols: int, size: int, pad: int, picked: int | None, key: str,
              on_pick: Callable[[], None]) -> None:
    """The grid picture `png` (n faces, as images.to_grid drew them) at its own size, shrunk
    where the column is narrower; `picked` outlined. A click calls `on_pick`, with the clicked
    face's index in `picked_face(key)`."""
    cols, width, height = grid_layout(n, cols, size, pad)
    # Registered at each call: the same definition again is a no-op, and each runtime (each
    # AppTest too) gets it before it mounts.
    # Not in a shadow root: the picture is part of the page (found by document queries, as a
    # screen reader or a page-speed measurement looks for it); the CSS names only .face-grid.
    component = st.components.v2.component("animegan.face_grid", html="", css=_CSS, js=_JS, isolate_styles=False)
    component(data={"src": "data:image/png;base64," + base64.b64encode(png).decode(), "n": n, "cols": cols,
                     "size": size, "pad": pad, "width": width, "height": height, "picked": picked},
               key=key, on_picked_change=on_pick, width="stretch")


def picked_face(key: str) -> int | None:
    """The index of the face just clicked in the grid drawn with `key` (inside `on_pick`), else None."""
    state = st.session_state.get(key)
    value = state.get("picked") if hasattr(state, "get") else getattr(state, "picked", None)
    return None if value is None else int(value)
