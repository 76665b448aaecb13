"""Compare: the same seeds drawn by up to four checkpoints side by side (each at its own size),
their measured quality and SWD curves, and an FID/SWD summary of every run and checkpoint in
which only like is compared with like: one chart per (metric, n, reference), values never added."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from animegan import comparison, curves, data, jobs, paths, rundir
from animegan.checkpoint import CheckpointError, LoadedGenerator
from animegan.config import COMPARABLE_N, METRICS, SPLITS, SYNTHETIC
from animegan.metrics.fid import find_inception_weights, missing_weights_message
from app_pages import after_paint, shared

CAVEAT = "only comparable at the same n and reference"
# FIDs the classic write-ups reported for their own models (64×64). Not measured here.
CLASSIC_FIDS = [("plain GAN", 140.9), ("DCGAN", 76.97), ("WGAN-GP", 61.49)]
REF_STYLES = [([2, 3], "#9aa0a6"), ([6, 4], "#f2b134"), ([6, 3, 2, 3], "#4fc3b1")]  # (dash, colour) per CLASSIC_FIDS line
PER_ROW = 2          # checkpoints side by side: two per row keeps faces at >= native size down to 800 px
ZOOMS = ["auto", 1, 2, 3]
GRID_BUDGET_PX = 560  # "auto" zoom: the largest zoom whose grid fits this width (a card at 1400 px)
BELOW_THE_FACES = "cmp_below"  # after_paint's key for the curves and measurements under the checkpoints
LABEL_GREY = "#8a8f98"  # numbers written over charts: readable on the light and the dark theme


# --------------------------------------------------------------------------- helpers


def checkpoint_evals(path: Path, generator: LoadedGenerator) -> list[dict]:
    """What is known about this exact checkpoint's quality, newest last: for an export its embedded
    summary; for a training checkpoint its run's evaluations at its step; plus every result
    recorded for this file (the "compute" button, `--record`)."""
    rows: list[dict] = []
    if generator.kind == "train":
        run = rundir.run_of_checkpoint(path)
        if run is not None:
            rows += [dict(e, source="during training") for e in run.evals()
                     if "checkpoint" not in e and e.get("step") == generator.step]
        elif generator.eval.get("step") == generator.step:
            rows += [dict(e, source="embedded") for e in shared.eval_rows(generator.eval)]
    else:
        rows += [dict(e, source="embedded") for e in shared.eval_rows(generator.eval)]
    rows += [dict(e, source="computed here") for e in rundir.evals_for_checkpoint(path)]
    seen, out = set(), []
    for r in rows:
        k = (str(r.get("metric")), r.get("value"), r.get("n"), r.get("reference"))
        if k not in seen and r.get("metric") is not None and r.get("value") is not None:
            seen.add(k)
            out.append(r)
    return out


def training_time(generator: LoadedGenerator) -> tuple[float | None, str]:
    """Training time of a checkpoint as the trainer recorded it in the file (`info.train_seconds`:
    time spent training, summed over resumes), and where it came from."""
    secs = generator.info.get("train_seconds")
    if isinstance(secs, (int, float)) and not isinstance(secs, bool) and secs >= 0:
        return float(secs), "recorded by the trainer"
    return None, "not recorded in this checkpoint"


def eval_line(e: dict) -> str:
    """One evaluation as a line that wraps (a table cell would cut the reference)."""
    metric, n, ref = curves.eval_key(e)
    rough = " **rough**" if curves.is_rough(n) else ("" if shared.comparable(n) else " †")
    src = f" · {e['source']}" if e.get("source") else ""
    return f"**{metric} {float(e['value']):.3f}** · n={n:,}{rough} · vs {curves.short_reference(ref) or '?'}{src}"


def summary_rows(choices: dict[str, Path]) -> list[dict]:
    """One row per (run or checkpoint, metric, n, reference): a run's best value within each
    such group (never across groups), a checkpoint's every recorded value."""
    rows: list[dict] = []
    for run in rundir.list_runs():
        for (metric, n, ref), es in curves.group_evals(run.evals()).items():
            best = min(es, key=lambda e: float(e["value"]))
            rows.append({"name": f"run {run.name}", "kind": "run (best)", "metric": metric, "value": float(best["value"]),
                         "n": n, "reference": ref, "epoch": best.get("epoch")})
    for label, p in choices.items():
        if not label.startswith(("shipped: ", "opened: ")):
            continue
        try:
            generator = shared.get_generator(p)
        except (CheckpointError, OSError):
            continue
        for e in checkpoint_evals(p, generator):
            metric, n, ref = curves.eval_key(e)
            rows.append({"name": label, "kind": label.split(":")[0], "metric": metric, "value": float(e["value"]),
                         "n": n, "reference": ref, "epoch": generator.epoch})
    for r in rows:
        r["note"] = curves.comparable_note(r["n"])
    return rows


def group_chart(metric: str, n: int, rows: list[dict]) -> dict:
    """One bar per name, each its own value (the newest where a name has several in this group):
    nothing is stacked or added. Rough values (n < ROUGH_N) are faint and say so. A Vega-Lite
    spec (its rows in `data.values`) for st.vega_lite_chart."""
    last: dict[str, dict] = {}
    for r in rows:
        last[r["name"]] = r
    rows = list(last.values())
    rough = curves.is_rough(n)
    fmt = "{:.1f}" if metric == "FID" else "{:.2f}"
    values = [{"name": r["name"], "value": float(r["value"]), "label": fmt.format(r["value"]) + (" rough" if rough else ""),
               "reference": None} for r in rows]
    top = max([r["value"] for r in rows] + ([v for _, v in CLASSIC_FIDS] if metric == "FID" else []))
    title = f"{metric}{' ×10³' if metric == 'SWD' else ''} (lower is better)"
    x = {"field": "name", "type": "nominal", "title": None, "sort": [r["name"] for r in rows],
         "axis": {"labelAngle": 0, "labelLimit": 180}}
    y = {"field": "value", "type": "quantitative", "title": title, "scale": {"domain": [0, top * 1.2]}}
    bars = {"transform": [{"filter": "datum.reference === null"}], "encoding": {"x": x, "y": y}, "layer": [
        {"mark": {"type": "bar", "width": {"band": 0.5}, "color": "#ff6fa8" if metric == "FID" else "#7fb3ff",
                  "opacity": 0.55 if rough else 1.0, "tooltip": True}},
        {"mark": {"type": "text", "dy": -8, "color": LABEL_GREY}, "encoding": {"text": {"field": "label"}}}]}
    layers = [bars]
    if metric == "FID":
        names = [f"{name} {v} (classic write-up, not measured here)" for name, v in CLASSIC_FIDS]
        values += [{"name": None, "value": v, "label": None, "reference": ref} for (_, v), ref in zip(CLASSIC_FIDS, names,
                                                                                                    strict=True)]
        layers.append({"transform": [{"filter": "datum.reference !== null"}], "mark": {"type": "rule", "strokeWidth": 2},
                       "encoding": {"y": y,
                                    "color": {"field": "reference", "type": "nominal", "title": None,
                                              "scale": {"domain": names, "range": [c for _, c in REF_STYLES]},
                                              "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 400}},
                                    "strokeDash": {"field": "reference", "type": "nominal", "legend": None,
                                                   "scale": {"domain": names, "range": [d for d, _ in REF_STYLES]}}}})
    # No title: the heading above the chart names its metric, n and reference (and wraps).
    return {"data": {"values": values}, "height": 360, "layer": layers}


def curve_chart(picked: list[tuple[str, Path]]) -> dict | None:
    """SWD against images seen, for every picked checkpoint that carries its evaluation curve
    (one line per (n, split), in its checkpoint's colour; none for a checkpoint without a curve).
    A Vega-Lite spec for st.vega_lite_chart; None when no picked checkpoint carries a curve."""
    values, names, colors = [], [], []
    for i, (label, p) in enumerate(picked):
        color = shared.RUN_COLORS[i % len(shared.RUN_COLORS)]
        for (n, split), (x, y) in curves.curve_series(shared.checkpoint_curve(p)).items():
            name = f"{label} · n={n:,}" + (f" · {split}" if split else "") + (" · rough" if curves.is_rough(n) else "")
            names.append(name)
            colors.append(color)
            values += [{"line": name, "images seen": xi, "SWD": yi, "rough": curves.is_rough(n)}
                       for xi, yi in zip(x, y, strict=True)]
    if not values:
        return None
    few = len(values) < 30 * len(names)
    return {"data": {"values": values}, "height": 360,
            "title": {"text": "SWD during training (lower is better)", "anchor": "start", "fontSize": 15},
            "mark": {"type": "line", "point": few, "tooltip": True},
            "encoding": {
                "x": {"field": "images seen", "type": "quantitative", "title": "images seen"},
                "y": {"field": "SWD", "type": "quantitative", "title": "SWD ×10³"},
                "color": {"field": "line", "type": "nominal", "title": None, "scale": {"domain": names, "range": colors},
                          "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 500}},
                "strokeDash": {"field": "rough", "type": "nominal", "legend": None,
                               "scale": {"domain": [False, True], "range": [[1, 0], [2, 3]]}}}}


def last_error_lines(log_text: str) -> str:
    lines = [ln for ln in log_text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error:"):
            return "\n".join(lines[i:])[len("error:"):].strip()
    return lines[-1] if lines else "the job ended without a result (no log output)"


def auto_zoom(sizes: list[int], cols: int) -> int:
    """The largest zoom (1-3) at which the widest picked grid fits GRID_BUDGET_PX; at least 1."""
    widest = max(sizes or [64])
    return max([1] + [z for z in (2, 3) if cols * (widest + 2) * z + 2 * z <= GRID_BUDGET_PX])


# --------------------------------------------------------------------------- background measuring
def current_measure() -> comparison.Measure:
    state = st.session_state
    return comparison.Measure(metric=str(state.get("cmp_eval_metric", METRICS[0])),
                              data=str(state.get("cmp_eval_data") or SYNTHETIC).strip(),
                              split=str(state.get("cmp_eval_split", "test")), n=int(state.get("cmp_eval_n", 2000)))


def start_next() -> None:
    """Start the first queued measurement (one job at a time); say why when it cannot start."""
    state = st.session_state
    queue = state.get("cmp_queue") or []
    m = comparison.Measure(**state.get("cmp_measure", {}))
    while queue:
        label, path = queue.pop(0)
        try:
            job = jobs.start_eval(path, m.metric, m.data, m.n, m.split, m.seed)
        except (jobs.JobError, CheckpointError, ValueError, OSError) as e:
            shared.flash("cmp", "error", f"{label}: not measured: {e}")
            queue.clear()
            break
        state["cmp_job"], state["cmp_job_ckpt"] = job, path
        break
    state["cmp_queue"] = queue


def start_measuring() -> None:
    """The Measure button's callback: queue every selected checkpoint not yet measured this way."""
    state = st.session_state
    m = current_measure()
    if m.problem():
        shared.flash("cmp", "error", f"Not started: {m.problem()}.")
        return
    state["cmp_measure"] = asdict(m)
    state["cmp_queue"] = [list(t) for t in state.get("cmp_todo", [])]
    if not state["cmp_queue"]:
        shared.flash("cmp", "info", "Every selected checkpoint is already measured this way.")
        return
    start_next()


@st.fragment(run_every=2)
def watch_job() -> None:
    job = st.session_state.get("cmp_job")
    if job is None:
        cur = jobs.current_job()
        if cur is None or cur.kind != "eval":
            st.rerun(scope="app")
        job = cur
    queued = len(st.session_state.get("cmp_queue") or [])
    if job.alive():
        secs = max(0.0, time.time() - job.started)
        st.info(f"{job.label}: running for {secs:.0f} s (pid {job.pid})" + (f"; {queued} more queued" if queued else "")
                + ". This part of the page refreshes by itself; other pages stay usable.",
                icon=":material/hourglass_top:")
        tail = job.log_tail(6)
        if tail:
            st.code(tail, language=None)
        return
    result = jobs.eval_result(job)
    ckpt = st.session_state.pop("cmp_job_ckpt", None)
    if result is not None:
        if ckpt:
            comparison.record(ckpt, result, requested_n=(st.session_state.get("cmp_measure") or {}).get("n"))
        shared.flash("cmp", "success", f"{job.label}: {shared.fmt_eval(result)} vs "
                                       f"{curves.short_reference(result.get('reference', '?'))}.")
    else:
        try:
            text = Path(job.log).read_text(errors="replace")
        except OSError:
            text = ""
        shared.flash("cmp", "error", f"{job.label} failed: {last_error_lines(text)}")
        st.session_state["cmp_queue"] = []
    st.session_state.pop("cmp_job", None)
    if st.session_state.get("cmp_queue"):
        start_next()
    st.rerun(scope="app")


# --------------------------------------------------------------------------- page sections
def checkpoint_card(label: str, p: Path, seed: int, n: int, ncols: int, zoom: int) -> LoadedGenerator | None:
    """One checkpoint: its faces at `zoom` × their own size, what it is, what was measured."""
    st.markdown(f"**{label}**")
    try:
        generator = shared.get_generator(p)
    except (CheckpointError, OSError) as e:
        shared.show_error(e)
        return None
    cfg = generator.config
    if not shared.sample_grid(p, seed, n, ncols, scale=zoom,
                              caption=f"seed {seed}, faces 0…{n - 1} · {cfg.img_size} px shown at {zoom}×"):
        return None
    secs, where = training_time(generator)
    st.markdown(f"{cfg.model}, {cfg.loss}, **{cfg.img_size} px** · **{generator.params:,}** generator parameters  \n"
                f"epoch {generator.epoch}, step {generator.step:,}" + (" · EMA" if generator.ema else "") + "  \n"
                + (f"training time: {shared.fmt_duration(secs)} ({where})" if secs is not None else f"training time {where}"))
    evs = checkpoint_evals(p, generator)
    if evs:
        st.markdown("  \n".join(eval_line(e) for e in evs))
    else:
        st.caption("No FID/SWD measured for this checkpoint yet — compute one below.")
    return generator


def side_by_side(choices: dict[str, Path], labels: list[str]) -> tuple[list[str], dict[str, tuple[Path, LoadedGenerator]]]:
    if "cmp_sel" in st.session_state:
        kept = [s for s in st.session_state["cmp_sel"] if s in labels]
        if kept != st.session_state["cmp_sel"]:
            st.session_state["cmp_sel"] = kept
        default_kw: dict = {}
    else:
        default = [lb for lb in labels if lb.startswith("shipped: ")][:4]
        default += [lb for lb in labels if lb not in default][:max(0, 2 - len(default))]
        default_kw = {"default": default}
    sel = st.multiselect("Checkpoints to compare (two to four)", labels, max_selections=4, key="cmp_sel", **default_kw)
    c1, c2, c3, c4 = st.columns(4)
    seed = int(c1.number_input("Seed", 0, shared.MAX_SEED, 0, key="cmp_seed"))
    n = int(c2.number_input("Faces each", 1, 64, 16, key="cmp_n"))
    ncols = int(c3.number_input("Columns", 1, 16, 4, key="cmp_cols"))
    zoom_pick = c4.selectbox("Zoom", ZOOMS, key="cmp_zoom", format_func=lambda z: "auto" if z == "auto" else f"{z}×",
                             help="Every checkpoint's faces at the same zoom of their own size: a 96 px face stays "
                                  "1.5× a 64 px one. auto: the largest zoom that fits.")
    if len(sel) == 1:
        st.caption("Pick at least one more checkpoint to compare.")
    sizes = []
    for label in sel:
        try:
            sizes.append(int(shared.get_generator(Path(choices[label])).config.img_size))
        except (CheckpointError, OSError):
            pass
    zoom = auto_zoom(sizes, ncols) if zoom_pick == "auto" else int(zoom_pick)
    loaded: dict[str, tuple[Path, LoadedGenerator]] = {}
    for start in range(0, len(sel), PER_ROW):
        for col, label in zip(st.columns(PER_ROW), sel[start:start + PER_ROW], strict=False):
            p = Path(choices[label])
            with col, st.container(border=True):
                generator = checkpoint_card(label, p, seed, n, ncols, zoom)
                if generator is not None:
                    loaded[label] = (p, generator)
    if any(not shared.comparable(e.get("n")) for p, generator in loaded.values() for e in checkpoint_evals(p, generator)):
        st.caption(f"{shared.DAGGER_NOTE}.")
    return sel, loaded


def curves_section(loaded: dict[str, tuple[Path, LoadedGenerator]]) -> None:
    chart = curve_chart([(lb, p) for lb, (p, _) in loaded.items()])
    if chart is not None:
        st.vega_lite_chart(chart, width="stretch", key="cmp_curve_chart",
                           alt="SWD during training of " + ", ".join(loaded))
        without = [lb for lb, (p, _) in loaded.items() if not shared.checkpoint_curve(p)]
        if without:
            st.caption("No evaluation curve in: " + ", ".join(without) + ".")


@st.cache_data(ttl=30, show_spinner=False)
def data_fingerprint(source: str) -> str | None:
    """The reference data's fingerprint (its listing; nothing decoded), None where it cannot be listed."""
    try:
        return data.fingerprint(source)
    except data.DataError:
        return None


def measured_rows(sel: list[str], loaded: dict[str, tuple[Path, LoadedGenerator]], m: comparison.Measure,
                  fp: str | None) -> list[dict]:
    """One row per selected checkpoint: its size and what was measured of it the way `m` measures."""
    rows = []
    for label in sel:
        if label not in loaded:
            continue
        p, generator = loaded[label]
        size = int(generator.config.img_size)
        embedded = [dict(e) for e in checkpoint_evals(p, generator)]
        value = comparison.recorded(p, m, fp, size, embedded) if fp else None
        judge = comparison.recorded(p, m, fp, size, embedded, metric=comparison.REALISM) if fp else None
        rows.append({"label": label, "path": str(p), "size": size, "result": value, "judge": judge})
    return rows


def measure_chart(rows: list[dict], m: comparison.Measure) -> dict:
    """One chart, every measured checkpoint a bar beside the others; one colour (and legend entry)
    per image size, since values at different sizes are not comparable. Every selected checkpoint
    keeps its place on the axis, measured or not. A Vega-Lite spec for st.vega_lite_chart."""
    sizes = [f"{size} px" for size in sorted({r["size"] for r in rows})]
    order = [r["label"] for r in rows]
    values = []
    for r in rows:
        value = None if r["result"] is None else float(r["result"]["value"])
        label = ("not measured yet" if value is None else f"{value:.1f}"
                 + (f" · judge {float(r['judge']['value']):.3f}" if r["judge"] else ""))
        values.append({"checkpoint": r["label"], "size": f"{r['size']} px", "value": value, "label": label,
                       "measured": value is not None})
    unit = " ×10³" if m.metric == "swd" else ""
    x = {"field": "checkpoint", "type": "nominal", "title": None, "sort": order, "scale": {"domain": order},
         "axis": {"labelAngle": 0, "labelLimit": 220}}
    top = max([v["value"] for v in values if v["measured"]] or [1.0])
    y = {"field": "value", "type": "quantitative", "title": f"{m.metric.upper()}{unit} (lower is better)",
         "scale": {"zero": True, "domainMax": top * 1.15}}   # room for the numbers over the bars
    colors = [shared.RUN_COLORS[i % len(shared.RUN_COLORS)] for i in range(len(sizes))]
    return {"data": {"values": values}, "height": 380, "layer": [
        {"transform": [{"filter": "datum.measured"}], "mark": {"type": "bar", "width": {"band": 0.5}, "tooltip": True},
         "encoding": {"x": x, "y": y, "color": {"field": "size", "type": "nominal", "title": "image size",
                                                 "scale": {"domain": sizes, "range": colors},
                                                 "legend": {"orient": "top", "direction": "horizontal"}}}},
        {"transform": [{"filter": "datum.measured"}], "mark": {"type": "text", "dy": -8, "color": LABEL_GREY},
         "encoding": {"x": x, "y": y, "text": {"field": "label"}}},
        {"transform": [{"filter": "!datum.measured"}], "mark": {"type": "text", "dy": -8, "color": LABEL_GREY},
         "encoding": {"x": x, "y": {"datum": 0, "type": "quantitative"}, "text": {"field": "label"}}}]}


def comparability_notes(rows: list[dict], m: comparison.Measure) -> list[str]:
    """Which of the measured numbers compare with which, and why the others do not
    (`comparison.differences`, the one answer to that question)."""
    groups: list[list[dict]] = []
    for r in (r for r in rows if r["result"] is not None):
        home = next((g for g in groups if not comparison.differences(g[0]["result"], r["result"])), None)
        if home is None:
            groups.append([r])
        else:
            home.append(r)
    notes = []
    if len(groups) == 1 and len(groups[0]) > 1:
        notes.append(f"All {len(groups[0])} bars compare: the same {m.metric.upper()}, n, split and data, "
                     f"at the same size.")
    elif len(groups) > 1:
        for g in groups:
            names = ", ".join(f"**{r['label']}**" for r in g)
            notes.append(f"{names} ({g[0]['size']} px): " + ("compare with each other" if len(g) > 1 else "alone"))
        why = comparison.differences(groups[0][0]["result"], groups[1][0]["result"])
        notes.append("Bars of different colours do not compare: " + ", ".join(why)
                     + (". SWD compares faces at their own size: a 96 px face has detail a 64 px one cannot have"
                        if any("px against" in w for w in why) else "") + ".")
    if groups and not shared.comparable(m.n):
        notes.append(f"n = {m.n:,} < {COMPARABLE_N:,}: these compare with each other, not with published numbers.")
    return notes


def measure_section(sel: list[str], loaded: dict[str, tuple[Path, LoadedGenerator]]) -> None:
    st.subheader("Measure them the same way")
    try:
        cur = jobs.current_job()
    except Exception as e:  # noqa: BLE001  # a broken lock file: say so, keep the page
        cur = None
        st.caption(f"(could not read the job lock: {e})")
    shared.show_flash("cmp")
    if st.session_state.get("cmp_job") is not None or (cur is not None and cur.kind == "eval"):
        watch_job()
    elif cur is not None:
        st.info(f"{cur.describe()} is running; one job at a time — measure when it has finished.")
    if not loaded:
        st.caption("Pick checkpoints above to measure them.")
        return
    first = loaded[sel[0]][1].config.data if sel and sel[0] in loaded else SYNTHETIC
    default_data = first if first == SYNTHETIC or Path(first).expanduser().exists() else SYNTHETIC
    e1, e2, e3, e4 = st.columns([3, 2, 2, 2])
    e1.text_input("Reference data", value=default_data, key="cmp_eval_data",
                  help="Every checkpoint is measured against this data: a folder, a .zip or 'synthetic'.")
    fid_here = find_inception_weights() is not None
    e2.radio("Metric", list(METRICS), horizontal=True, key="cmp_eval_metric",
             format_func=lambda v: v.upper() if v != "fid" or fid_here else "FID (unavailable here)",
             help="SWD needs nothing extra. FID needs the Inception weights (pytorch-fid) on this machine.")
    e3.selectbox("Split", list(SPLITS), index=list(SPLITS).index("test"), key="cmp_eval_split",
                 help="test: faces no checkpoint selected on. Every checkpoint is measured on the same split.")
    e4.number_input("n", 2, 50_000, 2000, step=500, key="cmp_eval_n",
                    help=f"Images compared (capped by the split's size). {COMPARABLE_N:,} for numbers comparable "
                         f"with published ones; below {curves.ROUGH_N:,} the value is rough.")
    if not fid_here and st.session_state.get("cmp_eval_metric") == "fid":
        st.caption(f"FID is unavailable here. {missing_weights_message()}")
    m = current_measure()
    fp = data_fingerprint(m.data)
    rows = measured_rows(sel, loaded, m, fp)
    todo = [(r["label"], r["path"]) for r in rows if r["result"] is None]
    st.session_state["cmp_todo"] = todo
    busy = st.session_state.get("cmp_job") is not None or cur is not None
    label = (f"Measure {len(todo)} of {len(rows)} in the background" if todo else "All measured this way")
    st.button(label, icon=":material/play_arrow:", type="primary", disabled=busy or not todo, key="cmp_eval_go",
              on_click=start_measuring,
              help="One job at a time, each checkpoint in turn: disabled while a training or an evaluation runs"
              if busy else "Results are kept by checkpoint content and settings: nothing is measured twice.")
    if any(r["result"] is not None for r in rows):
        st.markdown(f"**{m.metric.upper()} on the {m.split} split of {curves.short_reference(m.data) or m.data}, "
                    f"n={m.n:,}**, each checkpoint at its own size")
        st.vega_lite_chart(measure_chart(rows, m), width="stretch", key="cmp_measure_chart",
                           alt=f"{m.metric.upper()} of " + ", ".join(r["label"] for r in rows))
        for note in comparability_notes(rows, m):
            st.caption(note)
    table = [{"checkpoint": r["label"], "size": f"{r['size']} px",
              m.metric.upper(): "not measured yet" if r["result"] is None else f"{float(r['result']['value']):.2f}",
              "realism judge": "not recorded" if r["judge"] is None else f"{float(r['judge']['value']):.3f}"}
             for r in rows]
    # A plain table: a handful of rows, and st.dataframe's grid is a 1.2 MB script for the browser.
    st.table(table, hide_index=True)
    st.caption("Realism judge: held-out accuracy of a small CNN telling the checkpoint's faces from real ones "
               "(0.5 = it cannot, 1.0 = always), shown where it was recorded for this split, n and data.")


def summary_section(choices: dict[str, Path]) -> None:
    # Drawn when opened, not hidden in the closed expander on every visit: its table and one chart
    # per group were most of Compare's first paint.
    with st.expander("Every value recorded for any run or checkpoint, grouped by how it was measured",
                     key="cmp_summary_open", on_change="rerun") as box:
        if box.open:
            recorded_values(choices)


def recorded_values(choices: dict[str, Path]) -> None:
    rows = summary_rows(choices)
    if not rows:
        st.caption("No FID or SWD has been measured yet: runs evaluate during training when `eval_every` > 0, and any "
                   "checkpoint can be measured above.")
    else:
        df = pd.DataFrame(rows)[["name", "metric", "value", "n", "note", "epoch", "reference"]]
        df["reference"] = df["reference"].map(curves.short_reference)  # in full above each chart below
        st.dataframe(df, hide_index=True, width="stretch",
                     column_config={"value": st.column_config.NumberColumn(format="%.3f"),
                                    "reference": st.column_config.TextColumn(width="large")})
        st.caption("One chart per metric, n and reference: only values measured the same way share a scale. "
                   f"Faint bars: n < {curves.ROUGH_N:,}, rough values.")
    groups = curves.group_evals(rows)
    order = sorted(groups, key=lambda k: (k[0] != "SWD", -k[1], k[2]))
    cols = st.columns(2)
    for i, key in enumerate(order):
        metric, n, ref = key
        with cols[i % 2]:
            st.markdown(f"**{metric} · n={n:,}**" + (" · rough" if curves.is_rough(n) else "")
                        + f"  \nvs {ref or 'an unrecorded reference'}")
            st.vega_lite_chart(group_chart(metric, n, groups[key]), width="stretch", key=f"cmp_group_chart_{i}",
                               alt=f"{metric} at n={n:,} of " + ", ".join(sorted({r['name'] for r in groups[key]})))
    if not any(k[0] == "FID" for k in groups):
        st.caption("No FID measured here yet. For scale, the classic write-ups **reported** (not measured here, "
                   "against their own data and n) FIDs at 64×64 of "
                   + ", ".join(f"{v} for their {name}" for name, v in CLASSIC_FIDS) + ".")
    else:
        st.caption("FID reference lines: FIDs **reported by the classic write-ups** for their plain GAN, DCGAN and "
                   "WGAN-GP at 64×64 — not measured here, against their own data and n.")
    if rows and not all(shared.comparable(r["n"]) for r in rows):
        st.caption(f"Values with n < {COMPARABLE_N:,} are {CAVEAT}.")


# =========================================================================== page
st.title("Compare")
shared.narrow_window_layout()
st.caption(f"The same seeds drawn by each checkpoint, with what was measured about each. {shared.DAGGER_NOTE}.")

choices = shared.checkpoint_choices()
labels = list(choices)
if not labels:
    st.info(f"Nothing to compare yet: no checkpoint shipped in `{paths.SHIPPED_CHECKPOINTS}` and no run has saved one. "
            "Train a run on the **Train** page (or open a checkpoint on the **Generate** page); the summary below "
            "shows the classic write-ups' reported FIDs meanwhile.")
else:
    sel, loaded = side_by_side(choices, labels)
    # Under the checkpoints' faces, out of sight in a new visit's first screen: drawn once the
    # browser has painted the page (after_paint), at once on every later run of this session.
    if after_paint.painted(BELOW_THE_FACES, "Drawing the curves and the measurements..."):
        curves_section(loaded)
        measure_section(sel, loaded)
summary_section(choices)
