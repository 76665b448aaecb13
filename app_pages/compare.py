"""Compare: the same seeds drawn by up to four checkpoints side by side (each at its own size),
their measured quality and SWD curves, and an FID/SWD summary of every run and checkpoint in
which only like is compared with like: one chart per (metric, n, reference), values never added."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from animegan import curves, jobs, paths, rundir
from animegan.checkpoint import CheckpointError, LoadedGenerator
from animegan.config import COMPARABLE_N, METRICS, SYNTHETIC
from animegan.metrics import find_inception_weights, missing_weights_message
from app_pages import shared

CAVEAT = "only comparable at the same n and reference"
# FIDs the classic write-ups reported for their own models (64×64). Not measured here.
CLASSIC_FIDS = [("plain GAN", 140.9), ("DCGAN", 76.97), ("WGAN-GP", 61.49)]
REF_STYLES = [("dot", "#9aa0a6"), ("dash", "#f2b134"), ("dashdot", "#4fc3b1")]
PER_ROW = 2          # checkpoints side by side: two per row keeps faces at >= native size down to 800 px
ZOOMS = ["auto", 1, 2, 3]
GRID_BUDGET_PX = 560  # "auto" zoom: the largest zoom whose grid fits this width (a card at 1400 px)


# --------------------------------------------------------------------------- helpers


def checkpoint_evals(path: Path, lg: LoadedGenerator) -> list[dict]:
    """What is known about this exact checkpoint's quality, newest last: for an export its embedded
    summary; for a training checkpoint its run's evaluations at its step; plus every result
    recorded for this file (the "compute" button, `--record`)."""
    rows: list[dict] = []
    if lg.kind == "train":
        run = rundir.run_of_checkpoint(path)
        if run is not None:
            rows += [dict(e, source="during training") for e in run.evals()
                     if "checkpoint" not in e and e.get("step") == lg.step]
        elif lg.eval.get("step") == lg.step:
            rows += [dict(e, source="embedded") for e in shared.eval_rows(lg.eval)]
    else:
        rows += [dict(e, source="embedded") for e in shared.eval_rows(lg.eval)]
    rows += [dict(e, source="computed here") for e in rundir.evals_for_checkpoint(path)]
    seen, out = set(), []
    for r in rows:
        k = (str(r.get("metric")), r.get("value"), r.get("n"), r.get("reference"))
        if k not in seen and r.get("metric") is not None and r.get("value") is not None:
            seen.add(k)
            out.append(r)
    return out


def training_time(path: Path, lg: LoadedGenerator) -> tuple[float | None, str]:
    """Wall-clock training time of the run behind a checkpoint, and where it came from."""
    for k in ("train_seconds", "training_seconds", "train_time_s", "elapsed_s", "wall_s"):
        if isinstance(lg.info.get(k), (int, float)):
            return float(lg.info[k]), "recorded in the checkpoint"
    run = rundir.run_of_checkpoint(path)
    if run is None and lg.info.get("source_checkpoint"):
        run = rundir.run_of_checkpoint(lg.info["source_checkpoint"])
    if run is not None:
        s = run.status()
        start = s.get("first_started") or s.get("started")
        end = s.get("updated")
        if start and end:
            return float(end) - float(start), f"run {run.name}, wall clock"
    return None, ""


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
            lg = shared.get_generator(p)
        except (CheckpointError, OSError):
            continue
        for e in checkpoint_evals(p, lg):
            metric, n, ref = curves.eval_key(e)
            rows.append({"name": label, "kind": label.split(":")[0], "metric": metric, "value": float(e["value"]),
                         "n": n, "reference": ref, "epoch": lg.epoch})
    for r in rows:
        r["note"] = curves.comparable_note(r["n"])
    return rows


def group_chart(metric: str, n: int, rows: list[dict]) -> go.Figure:
    """One bar per name, each its own value (the newest where a name has several in this group):
    nothing is stacked or added. Rough values (n < ROUGH_N) are hatched and say so."""
    last: dict[str, dict] = {}
    for r in rows:
        last[r["name"]] = r
    rows = list(last.values())
    rough = curves.is_rough(n)
    fmt = "{:.1f}" if metric == "FID" else "{:.2f}"
    fig = go.Figure(go.Bar(
        x=[r["name"] for r in rows], y=[r["value"] for r in rows], width=0.5 if len(rows) < 3 else None,
        text=[fmt.format(r["value"]) + (" rough" if rough else "") for r in rows], textposition="outside",
        marker=dict(color="#ff6fa8" if metric == "FID" else "#7fb3ff", opacity=0.55 if rough else 1.0,
                    pattern=dict(shape="/" if rough else "")), showlegend=False, cliponaxis=False))
    top = max(r["value"] for r in rows)
    if metric == "FID":
        for (name, v), (dash, color) in zip(CLASSIC_FIDS, REF_STYLES, strict=True):
            fig.add_hline(y=v, line_dash=dash, line_color=color, line_width=2)
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash=dash, color=color, width=2),
                                     name=f"{name} {v} (classic write-up, not measured here)"))
        top = max([top] + [v for _, v in CLASSIC_FIDS])
    # No title: the heading above the chart names its metric, n and reference (and wraps).
    fig.update_layout(barmode="group", height=360,
                      yaxis=dict(title=f"{metric}{' ×10³' if metric == 'SWD' else ''} (lower is better)",
                                 range=[0, top * 1.2]),
                      margin=dict(t=24, b=10, l=50, r=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, xanchor="left", font_size=11))
    return fig


def curve_chart(picked: list[tuple[str, Path]]) -> go.Figure | None:
    """SWD against images seen, for every picked checkpoint that carries its evaluation curve
    (one line per (n, split); none for a checkpoint without a curve)."""
    fig = go.Figure()
    for i, (label, p) in enumerate(picked):
        color = shared.RUN_COLORS[i % len(shared.RUN_COLORS)]
        for (n, split), (x, y) in curves.curve_series(shared.checkpoint_curve(p)).items():
            name = f"{label} · n={n:,}" + (f" · {split}" if split else "") + (" · rough" if curves.is_rough(n) else "")
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines", name=name,
                                     line=dict(color=color, dash="dot" if curves.is_rough(n) else "solid")))
    if not fig.data:
        return None
    fig.update_layout(title=dict(text="SWD during training (lower is better)", x=0, xanchor="left", font_size=15),
                      height=360, xaxis_title="images seen", yaxis_title="SWD ×10³", showlegend=True,
                      margin=dict(t=40, b=10, l=50, r=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left", font_size=11))
    return fig


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


# --------------------------------------------------------------------------- background evaluation
def start_eval() -> None:
    """The compute button's callback: reads the form's current values (not the ones of the previous run)."""
    ss = st.session_state
    label = ss.get("cmp_eval_ckpt")
    path = shared.checkpoint_choices().get(label)
    if path is None:
        shared.flash("cmp", "error", f"{label} is no longer available; pick another checkpoint")
        return
    try:
        job = jobs.start_eval(path, ss.get("cmp_eval_metric", METRICS[0]), str(ss.get(f"cmp_eval_data_{label}") or SYNTHETIC),
                              int(ss.get("cmp_eval_n", 1000)))
    except (jobs.JobError, CheckpointError, ValueError, OSError) as e:
        shared.flash("cmp", "error", f"Not started: {e}")
        return
    ss["cmp_job"] = job


@st.fragment(run_every=2)
def watch_job() -> None:
    job = st.session_state.get("cmp_job")
    if job is None:
        cur = jobs.current_job()
        if cur is None or cur.kind != "eval":
            st.rerun(scope="app")
        job = cur
    if job.alive():
        mins = max(0.0, time.time() - job.started)
        st.info(f"{job.label}: running for {mins:.0f} s (pid {job.pid}). This part of the page refreshes by "
                "itself; other pages stay usable.", icon=":material/hourglass_top:")
        tail = job.log_tail(6)
        if tail:
            st.code(tail, language=None)
        return
    result = jobs.eval_result(job)
    if result is not None:
        shared.flash("cmp", "success", f"{job.label}: {shared.fmt_eval(result)} vs {result.get('reference', '?')} — "
                                       "recorded with the checkpoint.")
    else:
        try:
            text = Path(job.log).read_text(errors="replace")
        except OSError:
            text = ""
        shared.flash("cmp", "error", f"{job.label} failed: {last_error_lines(text)}")
    st.session_state.pop("cmp_job", None)
    st.rerun(scope="app")


# --------------------------------------------------------------------------- page sections
def checkpoint_card(label: str, p: Path, seed: int, n: int, ncols: int, zoom: int) -> LoadedGenerator | None:
    """One checkpoint: its faces at `zoom` × their own size, what it is, what was measured."""
    st.markdown(f"**{label}**")
    try:
        lg = shared.get_generator(p)
    except (CheckpointError, OSError) as e:
        shared.show_error(e)
        return None
    cfg = lg.config
    if not shared.sample_grid(p, seed, n, ncols, scale=zoom,
                              caption=f"seed {seed}, faces 0…{n - 1} · {cfg.img_size} px shown at {zoom}×"):
        return None
    secs, where = training_time(p, lg)
    st.markdown(f"{cfg.model}, {cfg.loss}, **{cfg.img_size} px** · **{lg.params:,}** generator parameters  \n"
                f"epoch {lg.epoch}, step {lg.step:,}" + (" · EMA" if lg.ema else "") + "  \n"
                f"training time: {shared.fmt_duration(secs)}" + (f" ({where})" if where else ""))
    evs = checkpoint_evals(p, lg)
    if evs:
        st.markdown("  \n".join(eval_line(e) for e in evs))
    else:
        st.caption("No FID/SWD measured for this checkpoint yet — compute one below.")
    return lg


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
                lg = checkpoint_card(label, p, seed, n, ncols, zoom)
                if lg is not None:
                    loaded[label] = (p, lg)
    if any(not shared.comparable(e.get("n")) for p, lg in loaded.values() for e in checkpoint_evals(p, lg)):
        st.caption(f"{shared.DAGGER_NOTE}.")
    fig = curve_chart([(lb, p) for lb, (p, _) in loaded.items()])
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="cmp_curve_chart")
        without = [lb for lb, (p, _) in loaded.items() if not shared.checkpoint_curve(p)]
        if without:
            st.caption("No evaluation curve in: " + ", ".join(without) + ".")
    return sel, loaded


def compute_section(choices: dict[str, Path], labels: list[str], sel: list[str],
                    loaded: dict[str, tuple[Path, LoadedGenerator]]) -> None:
    st.subheader("Compute SWD / FID")
    try:
        cur = jobs.current_job()
    except Exception as e:  # noqa: BLE001  # a broken lock file: say so, keep the page
        cur = None
        st.caption(f"(could not read the job lock: {e})")
    shared.show_flash("cmp")
    if st.session_state.get("cmp_job") is not None or (cur is not None and cur.kind == "eval"):
        watch_job()
    elif cur is not None:
        st.info(f"{cur.describe()} is running; one job at a time — compute a metric when it has finished.")
    pool = sel if sel else labels
    without = [lb for lb in pool if lb in loaded and not checkpoint_evals(*loaded[lb])]
    e1, e2, e3 = st.columns([3, 2, 1])
    target = e1.selectbox("Checkpoint", pool, index=pool.index(without[0]) if without else 0, key="cmp_eval_ckpt")
    fid_here = find_inception_weights() is not None
    e2.radio("Metric", list(METRICS), horizontal=True, key="cmp_eval_metric",
             format_func=lambda m: m.upper() if m != "fid" or fid_here else "FID (unavailable here)",
             help="SWD needs nothing extra. FID needs the Inception weights (pytorch-fid) on this machine.")
    if not fid_here and st.session_state.get("cmp_eval_metric") == "fid":
        st.caption(f"FID is unavailable here. {missing_weights_message()}")
    e3.number_input("n", 2, 50_000, 1000, step=500, key="cmp_eval_n",
                    help=f"Images compared (capped by the split's size). {COMPARABLE_N:,} for numbers comparable "
                         f"with published ones; below {curves.ROUGH_N:,} the value is rough.")
    try:
        cfg_data = shared.get_generator(Path(choices[target])).config.data
    except (CheckpointError, OSError):
        cfg_data = SYNTHETIC
    default_data = cfg_data if cfg_data == SYNTHETIC or Path(cfg_data).expanduser().exists() else SYNTHETIC
    st.text_input("Reference data (its val split)", value=default_data, key=f"cmp_eval_data_{target}",
                  help="The checkpoint's training data by default: a folder, a .zip or 'synthetic'.")
    busy = st.session_state.get("cmp_job") is not None or cur is not None
    st.button("Compute in the background", icon=":material/play_arrow:", type="primary", disabled=busy,
              key="cmp_eval_go", on_click=start_eval,
              help="One job at a time: disabled while a training or an evaluation runs" if busy else None)


def summary_section(choices: dict[str, Path]) -> None:
    st.subheader("Summary: every run and checkpoint")
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
                   f"Hatched bars: n < {curves.ROUGH_N:,}, rough values.")
    groups = curves.group_evals(rows)
    order = sorted(groups, key=lambda k: (k[0] != "SWD", -k[1], k[2]))
    cols = st.columns(2)
    for i, key in enumerate(order):
        metric, n, ref = key
        with cols[i % 2]:
            st.markdown(f"**{metric} · n={n:,}**" + (" · rough" if curves.is_rough(n) else "")
                        + f"  \nvs {ref or 'an unrecorded reference'}")
            st.plotly_chart(group_chart(metric, n, groups[key]), width="stretch", key=f"cmp_group_chart_{i}")
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
    compute_section(choices, labels, sel, loaded)
summary_section(choices)
