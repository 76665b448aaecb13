"""UI helpers shared by the pages: cached loading, checkpoint choices, error display.

Pages stay thin: every action is a call into the `animegan` package.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from animegan import paths
from animegan.checkpoint import CheckpointError, LoadedGenerator, load_generator
from animegan.rundir import list_runs


@st.cache_resource(max_entries=8, show_spinner="Loading the generator...")
def _cached_generator(path: str, mtime: float, with_d: bool) -> LoadedGenerator:
    return load_generator(path, device="cpu", with_discriminator=with_d)


def get_generator(path: str | Path, with_d: bool = False) -> LoadedGenerator:
    """Loaded once per file version and kept across reruns (the cache key includes mtime)."""
    p = str(Path(path).resolve())
    return _cached_generator(p, os.path.getmtime(p), with_d)


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
    lg = get_generator(p)
    lst = st.session_state.setdefault("user_checkpoints", [])
    if str(p.resolve()) not in lst:
        lst.append(str(p.resolve()))
    return lg


def show_error(e: BaseException) -> None:
    """A user-caused problem: one clear message, never a traceback."""
    st.error(str(e), icon=":material/error:")


FULL_N = 10_000  # FID/SWD values below this n compare only at the same n and reference


def eval_rows(ev: dict | None) -> list[dict]:
    """An embedded evaluation summary as rows: one row ({metric, value, n, ...}) or a dict of them."""
    if not ev:
        return []
    if "metric" in ev and "value" in ev:
        return [ev]
    return [{"metric": v.get("metric", k), **v} for k, v in ev.items() if isinstance(v, dict) and "value" in v]


def fmt_eval(row: dict) -> str:
    """"SWD 31.20 (n=2,000) †" — the dagger marks n < 10,000 (compare only at the same n)."""
    try:
        n = int(row.get("n") or 0)
        return f"{str(row['metric']).upper()} {float(row['value']):.2f} (n={n:,})" + (" †" if n < FULL_N else "")
    except (KeyError, TypeError, ValueError):
        return "—"
