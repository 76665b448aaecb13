"""UI helpers shared by the pages: cached loading, checkpoint choices, flash messages, formatting,
error display, and the one sample-grid widget.

Pages stay thin: every action is a call into the `animegan` package; what more than one page
shows (a grid of faces, an evaluation, a size, a duration) is drawn or formatted here, once.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from animegan import curves, generate, paths
from animegan.checkpoint import CheckpointError, LoadedGenerator, load_checkpoint, load_generator
from animegan.config import COMPARABLE_N
from animegan.rundir import list_runs

MAX_SEED = generate.MAX_SEED  # the largest seed the seed inputs offer (any int works in the package)
# One colour per run (or checkpoint) on every chart of a page, in the order they were picked.
RUN_COLORS = ["#4dabf7", "#ff6fa8", "#69db7c", "#ffa94d", "#b197fc", "#ffd43b", "#3bc9db", "#f783ac"]
NARROW_PX = 900  # a window at most this wide is narrow: the sidebar starts collapsed, metrics shrink

# -- loading -------------------------------------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner="Loading the generator...")
def _cached_generator(path: str, mtime: float) -> LoadedGenerator:
    # One load per file version for every page and purpose: the discriminator comes along (it is
    # None for exports), so re-ranking does not load (and recalibrate BatchNorm) a second time.
    return load_generator(path, device="cpu", with_discriminator=True)


def get_generator(path: str | Path) -> LoadedGenerator:
    """Loaded once per file version and kept across reruns and pages (the cache key is the
    resolved path and its mtime). `.D` is the discriminator of a training checkpoint, else None."""
    p = str(Path(path).resolve())
    return _cached_generator(p, os.path.getmtime(p))


@st.cache_data(max_entries=32, show_spinner=False)
def _checkpoint_curve(path: str, mtime: float) -> list[dict]:
    return curves.curve_points(load_checkpoint(path).get(curves.CURVE_KEY))


def checkpoint_curve(path: str | Path) -> list[dict]:
    """The evaluation curve a checkpoint carries (`curves.CURVE_KEY`: points of kimg, value, n,
    split), cached per file version; [] when it carries none or cannot be read."""
    try:
        p = Path(path).resolve()
        return _checkpoint_curve(str(p), os.path.getmtime(p))
    except (CheckpointError, OSError):
        return []


def shipped_checkpoints() -> list[Path]:
    return sorted(paths.SHIPPED_CHECKPOINTS.glob("*.pt"))


def checkpoint_choices() -> dict[str, Path]:
    """Label -> path: shipped ones first, then every run's checkpoints, then ones the user opened."""
    out: dict[str, Path] = {}
    for p in shipped_checkpoints():
        out[f"shipped: {p.stem}"] = p
    for run in list_runs():
        for p in reversed(run.checkpoints()):
            out[f"run {run.name}: {p.stem}"] = p
    for p in st.session_state.get("user_checkpoints", []):
        out[f"opened: {Path(p).name}"] = Path(p)
    return out


def add_user_checkpoint(path: str | Path) -> LoadedGenerator:
    """Validate a checkpoint the user brought (path or saved upload) and remember it this session.
    Raises CheckpointError with a clear message when it is not usable."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no file at {p}")
    generator = get_generator(p)
    lst = st.session_state.setdefault("user_checkpoints", [])
    if str(p.resolve()) not in lst:
        lst.append(str(p.resolve()))
    return generator


# -- the one sample-grid widget ------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def _grid_png(path: str, mtime: float, seed: int, n: int, cols: int, scale: int) -> bytes:
    return generate.grid_png(get_generator(path).G, seed, n, cols, scale=scale)


def sample_grid(path: str | Path, seed: int, n: int, cols: int, caption: str | None = None, scale: int = 2) -> bool:
    """Faces 0..n-1 of `seed` drawn by the checkpoint at `path`, `cols` per row: the same faces for
    the same (checkpoint, seed) on every page and every visit (cached per file version). Shows a
    clear error instead of the grid when the checkpoint cannot be used; returns whether it drew."""
    try:
        p = Path(path).resolve()
        png = _grid_png(str(p), os.path.getmtime(p), int(seed), int(n), int(cols), int(scale))
    except (CheckpointError, OSError, ValueError) as e:
        show_error(e)
        return False
    # PNG as drawn (Streamlit would re-encode it as JPEG, blurring the pixels), at its own size:
    # shrunk only where the column is narrower, never stretched.
    st.image(png, caption=caption if caption is not None else f"seed {seed}, faces 0…{n - 1}", output_format="PNG",
             width="content")
    return True


# -- narrow windows ------------------------------------------------------------------------------

_NARROW_CSS = f"""<style>
/* At any width: a label that does not fit its column wraps onto a second line instead of ending in
   "…" (a metric's label, a checkbox's or toggle's): with the sidebar open, 800 px leave five metric
   columns 90 px each. */
[data-testid="stMetricLabel"] *, [data-testid="stCheckbox"] label * {{
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  word-break: normal !important; overflow-wrap: normal !important;  /* between words, never inside one */
}}
[data-testid="stMetricLabel"] {{ height: auto !important; min-height: 1.5rem; }}
@media (max-width: {NARROW_PX}px) {{
  [data-testid="stMetricValue"] {{ font-size: 1.45rem; }}
  [data-testid="stMetricValue"] > div {{ overflow: visible; text-overflow: clip; white-space: normal; }}
  [data-testid="stMainBlockContainer"] {{ padding-left: 1.25rem; padding-right: 1.25rem; }}
}}
</style>"""
# Streamlit collapses the sidebar by itself only below 768 px. At most NARROW_PX wide, collapse it
# once per page load, as Streamlit does below 768 px (opened again, it stays open until the next
# load), and forget the collapsed state Streamlit then stores, so a wide window later starts with it open.
_NARROW_JS = f"""<script>
(function () {{
  if (window.innerWidth > {NARROW_PX} || window.__animeganSidebarChecked) return;
  window.__animeganSidebarChecked = true;
  function attempt(left) {{
    const bar = document.querySelector('[data-testid="stSidebar"]');
    const btn = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (bar && bar.getAttribute("data-collapsed") === "true") return;
    if (bar && btn) {{
      btn.click();
      setTimeout(function () {{
        Object.keys(localStorage).filter(k => k.startsWith("stSidebarCollapsed-")).forEach(k => localStorage.removeItem(k));
      }}, 300);
      return;
    }}
    if (left > 0) setTimeout(function () {{ attempt(left - 1); }}, 150);
  }}
  attempt(40);
}})();
</script>"""


def narrow_window_layout() -> None:
    """Make the page usable in a window NARROW_PX wide or less: the sidebar collapses (once per load),
    metric values shrink instead of being cut. Draws nothing; call it once near the top of a page."""
    st.html(_NARROW_CSS)
    st.sidebar.html(_NARROW_JS, unsafe_allow_javascript=True)


# -- messages ------------------------------------------------------------------------------------


def show_error(e: BaseException | str) -> None:
    """A user-caused problem: one clear message, never a traceback."""
    st.error(str(e), icon=":material/error:")


def flash(page: str, kind: str, msg: str) -> None:
    """A message for the next run of `page` (shown once by `show_flash`, e.g. after st.rerun()).
    kind: "success", "info", "warning" or "error"."""
    st.session_state[f"{page}_flash"] = (kind, msg)


def show_flash(page: str) -> None:
    kind, msg = st.session_state.pop(f"{page}_flash", (None, None))
    if kind:
        getattr(st, kind)(msg)


# -- formatting ----------------------------------------------------------------------------------

DAGGER_NOTE = (f"† n < {COMPARABLE_N:,}: only comparable at the same n and reference; rough: n < "
               f"{curves.ROUGH_N:,}")


def eval_rows(ev: dict | None) -> list[dict]:
    """An embedded evaluation summary as rows: one row ({metric, value, n, ...}) or a dict of them."""
    if not ev:
        return []
    if "metric" in ev and "value" in ev:
        return [ev]
    return [{"metric": v.get("metric", k), **v} for k, v in ev.items() if isinstance(v, dict) and "value" in v]


def comparable(n: object) -> bool:
    """An FID/SWD measured on n images compares with published numbers (n >= COMPARABLE_N)."""
    try:
        return int(n or 0) >= COMPARABLE_N
    except (TypeError, ValueError):
        return False


def fmt_eval(row: dict) -> str:
    """"SWD 31.20 (n=2,000) †" — the dagger marks n < COMPARABLE_N (compare only at the same n);
    "SWD 880.10 (n=20, rough) †" below curves.ROUGH_N."""
    try:
        n = int(row.get("n") or 0)
        rough = ", rough" if curves.is_rough(n) else ""
        return f"{str(row['metric']).upper()} {float(row['value']):.2f} (n={n:,}{rough})" + ("" if comparable(n) else " †")
    except (KeyError, TypeError, ValueError):
        return "—"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover


def fmt_eta(s: float | None) -> str:
    """Seconds left as "42s", "3m 05s", "2h 07m"; "–" when unknown."""
    if s is None:
        return "–"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def fmt_duration(s: float | None) -> str:
    """A length of time as "45 s", "12 min", "2.5 h"; "unknown" when not known."""
    if s is None or s < 0:
        return "unknown"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
