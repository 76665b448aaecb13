"""Runs read for charts: scalar series on a chosen x axis, TensorBoard's debiased EMA smoothing,
evaluation series labelled by (metric, n, reference), and evaluation values grouped so that only
like is compared with like.

The pages only draw what these functions return: every number on a chart comes from here.

    rc = RunCurves(run)                          # reads metrics.jsonl, evals.jsonl, config.json once
    x, y = rc.scalar("loss_D", "images")         # images seen = step × batch_size
    smooth = ema(y, 0.6)                         # as TensorBoard's smoothing slider
    for c in rc.evals("step"): c.label           # "SWD · n=2,000 · val split of ..."
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .config import COMPARABLE_N, ROUGH_N
from .rundir import Run, read_jsonl

# The scalars of metrics.jsonl that get a chart, with their names on it.
SCALARS: dict[str, str] = {"loss_D": "loss D", "loss_G": "loss G", "D_x": "D(x)", "D_G_z": "D(G(z))",
                           "gp": "gradient penalty", "images_per_s": "images/s"}
# The x axes a curve can be drawn against, with their axis titles.
X_AXES: dict[str, str] = {"step": "step", "images": "images seen", "epoch": "epoch", "time": "wall time (s)"}


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ema(values: Iterable[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased (the first points are not
    pulled towards 0). weight 0 returns the values; a non-finite value is passed through and
    does not disturb the average."""
    w = min(max(float(weight), 0.0), 0.999)
    out: list[float] = []
    last, count = 0.0, 0
    for v in values:
        if not finite(v):
            out.append(v)
            continue
        last = last * w + (1 - w) * float(v)
        count += 1
        out.append(last / (1 - w ** count) if w > 0 else float(v))
    return out


def is_rough(n: Any) -> bool:
    """n < ROUGH_N images: a rough value (marked as such wherever it is shown)."""
    try:
        return int(n or 0) < ROUGH_N
    except (TypeError, ValueError):
        return True


def eval_key(row: dict[str, Any]) -> tuple[str, int, str]:
    """What makes two evaluation values comparable: the same metric, n and reference."""
    try:
        n = int(row.get("n") or 0)
    except (TypeError, ValueError):
        n = 0
    return str(row.get("metric", "?")).upper(), n, str(row.get("reference") or "")


def eval_label(metric: str, n: int, reference: str) -> str:
    """"SWD · n=2,000 · val split of faces (ab12cd34) @64px" (+ " · rough" for n < ROUGH_N):
    series that differ in metric, n or reference never share a label."""
    label = f"{str(metric).upper()} · n={int(n):,}" + (f" · {reference}" if reference else "")
    return label + (" · rough" if is_rough(n) else "")


_SPLIT_OF = re.compile(r"(split of )(.+?)( \([0-9a-f]{8}\))")


def short_reference(text: str) -> str:
    """A reference label (or a text holding one) with the data source's folders left out:
    "val split of faces (ab12cd34) @64px" for "val split of /data/x/faces (ab12cd34) @64px". The
    fingerprint stays, so two different references still read differently."""
    return _SPLIT_OF.sub(lambda m: m.group(1) + (Path(m.group(2)).name or m.group(2)) + m.group(3), str(text))


def group_evals(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int, str], list[dict[str, Any]]]:
    """Rows grouped by (metric, n, reference), in order of first appearance; values are never
    combined across groups (and never added within one)."""
    out: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("metric") is not None and finite(r.get("value")):
            out.setdefault(eval_key(r), []).append(r)
    return out


@dataclass
class Curve:
    """One series of one run: x and y of equal length, finite values only."""
    run: str
    key: str          # "loss_D", or an evaluation's (metric, n, reference) label
    label: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    n: int | None = None
    metric: str | None = None


class RunCurves:
    """One run's series, read once: metrics rows, evaluation rows and config."""

    def __init__(self, run: Run):
        self.run = run
        self.rows = [r for r in read_jsonl(run.path / "metrics.jsonl") if finite(r.get("step"))]
        self.eval_rows = [e for e in run.evals() if finite(e.get("value")) and finite(e.get("step"))]
        self.config = run.config()
        try:
            self.batch_size = int(self.config.get("batch_size") or 0)
        except (TypeError, ValueError):
            self.batch_size = 0
        times = [r["time"] for r in self.rows if finite(r.get("time"))]
        times = times or [e["time"] for e in self.eval_rows if finite(e.get("time"))]
        self.t0 = min(times) if times else None

    @property
    def name(self) -> str:
        return self.run.name

    def keys(self) -> list[str]:
        """The SCALARS this run logged with at least one finite value (gp only where not all 0)."""
        out = []
        for k in SCALARS:
            vals = [r.get(k) for r in self.rows if finite(r.get(k))]
            if vals and (k != "gp" or any(v != 0 for v in vals)):
                out.append(k)
        return out

    def x_of(self, row: dict[str, Any], axis: str) -> float | None:
        """A row's position on `axis`: step; images seen (step × batch_size); epoch; seconds since
        the run's first row. None where the row cannot say (no time, no batch size)."""
        step = row.get("step")
        if axis == "step":
            return float(step) if finite(step) else None
        if axis == "images":
            return float(step) * self.batch_size if finite(step) and self.batch_size > 0 else None
        if axis == "epoch":
            return float(row["epoch"]) if finite(row.get("epoch")) else None
        if axis == "time":
            t = row.get("time")
            return float(t) - self.t0 if finite(t) and self.t0 is not None else None
        raise ValueError(f"unknown x axis {axis!r}; choose one of: {', '.join(X_AXES)}")

    def scalar(self, key: str, axis: str = "step") -> tuple[list[float], list[float]]:
        """(x, y) of a metrics.jsonl column; rows without that value or without an x are left out."""
        xs, ys = [], []
        for r in self.rows:
            x, v = self.x_of(r, axis), r.get(key)
            if x is not None and finite(v):
                xs.append(x)
                ys.append(float(v))
        return xs, ys

    def curve(self, key: str, axis: str = "step") -> Curve:
        x, y = self.scalar(key, axis)
        return Curve(self.name, key, SCALARS.get(key, key), x, y)

    def evals(self, axis: str = "step") -> list[Curve]:
        """One curve per (metric, n, reference) the run was evaluated with during training."""
        out = []
        for (metric, n, ref), rows in group_evals(self.eval_rows).items():
            pts = sorted((x, float(e["value"])) for e in rows if (x := self.x_of(e, axis)) is not None)
            out.append(Curve(self.name, eval_label(metric, n, ref), eval_label(metric, n, ref),
                             [p[0] for p in pts], [p[1] for p in pts], n=n, metric=metric))
        return out

    def x_at_steps(self, steps: Iterable[int], axis: str) -> list[float | None]:
        """Where steps (a collapse, a rollback) fall on `axis`: the x of the last metrics row at or
        before each step (the first row for earlier ones); None without rows."""
        pts = [(r["step"], self.x_of(r, axis)) for r in self.rows]
        pts = [(s, x) for s, x in pts if x is not None]
        if axis == "step":
            return [float(s) for s in steps]
        if axis == "images" and self.batch_size > 0:
            return [float(s) * self.batch_size for s in steps]
        out: list[float | None] = []
        for s in steps:
            before = [x for st, x in pts if st <= s]
            out.append(before[-1] if before else (pts[0][1] if pts else None))
        return out


def comparable_note(n: Any) -> str:
    """"" for n >= COMPARABLE_N; "rough" below ROUGH_N; else "same n and reference only"."""
    if is_rough(n):
        return "rough"
    try:
        return "" if int(n) >= COMPARABLE_N else "same n and reference only"
    except (TypeError, ValueError):
        return "rough"


# -- a checkpoint's evaluation curve ----------------------------------------------------------------
# A checkpoint may carry the evaluation curve of its training under CURVE_KEY: a list of
# {"kimg": thousands of images seen, "value": SWD, "n": images compared, "split": "val"}.
CURVE_KEY = "curve"


def curve_points(raw: Any) -> list[dict[str, Any]]:
    """The usable points of a checkpoint's curve, by images seen: finite kimg and value; anything
    else (a damaged or foreign entry) is left out. [] for a checkpoint without a curve."""
    if not isinstance(raw, (list, tuple)):
        return []
    out = []
    for p in raw:
        if isinstance(p, dict) and finite(p.get("kimg")) and finite(p.get("value")):
            try:
                n = int(p.get("n") or 0)
            except (TypeError, ValueError):
                n = 0
            out.append({"kimg": float(p["kimg"]), "value": float(p["value"]), "n": n, "split": str(p.get("split") or "")})
    return sorted(out, key=lambda p: p["kimg"])


def curve_series(raw: Any) -> dict[tuple[int, str], tuple[list[float], list[float]]]:
    """A checkpoint's curve as (images seen, value) series, one per (n, split): points measured
    differently are never joined into one line."""
    out: dict[tuple[int, str], tuple[list[float], list[float]]] = {}
    for p in curve_points(raw):
        xs, ys = out.setdefault((p["n"], p["split"]), ([], []))
        xs.append(p["kimg"] * 1000)
        ys.append(p["value"])
    return out


def log_ticks(values: Iterable[float], per_decade: tuple[float, ...] = (1.0, 2.0, 5.0)) -> tuple[list[float], list[str]]:
    """Readable ticks for a log axis over these values: 1, 2, 5, 10, 20, 50, ... (full numbers,
    never plotly's lone minor digits "9 8 7 ..."); ([], []) when no value is positive."""
    pos = [float(v) for v in values if finite(v) and float(v) > 0]
    if not pos:
        return [], []
    lo, hi = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in per_decade]
    ticks = [t for t in ticks if min(pos) / 2.5 <= t <= max(pos) * 2.5]
    return ticks, [f"{t:,.10g}" if t >= 1 else f"{t:.10g}" for t in ticks]
