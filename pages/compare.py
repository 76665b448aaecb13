"""Compare: the same seeds drawn by two to four checkpoints side by side, their measured
quality, and an FID/SWD summary of every run and shipped checkpoint."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from animegan import jobs, paths, rundir
from animegan.checkpoint import CheckpointError, LoadedGenerator
from animegan.config import COMPARABLE_N, METRICS, SYNTHETIC
from pages import shared

CAVEAT = "only comparable at the same n and reference"
# FIDs the classic write-ups reported for their own models (64×64). Not measured here.
CLASSIC_FIDS = [("plain GAN", 140.9), ("DCGAN", 76.97), ("WGAN-GP", 61.49)]
REF_STYLES = [("dot", "#9aa0a6"), ("dash", "#f2b134"), ("dashdot", "#4fc3b1")]


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


def summary_rows(choices: dict[str, Path]) -> list[dict]:
    rows: list[dict] = []
    for run in rundir.list_runs():
        by_metric: dict[str, dict] = {}
        for e in run.evals():
            m, v = e.get("metric"), e.get("value")
            if m is None or v is None:
                continue
            if m not in by_metric or v < by_metric[m]["value"]:
                by_metric[m] = e
        for m, e in by_metric.items():
            rows.append({"name": f"run {run.name}", "kind": "run (best)", "metric": str(m).upper(),
                         "value": float(e["value"]), "n": int(e.get("n") or 0), "reference": e.get("reference", ""),
                         "epoch": e.get("epoch")})
    for label, p in choices.items():
        if not label.startswith(("shipped: ", "opened: ")):
            continue
        try:
            lg = shared.get_generator(p)
        except (CheckpointError, OSError):
            continue
        for e in checkpoint_evals(p, lg):
            rows.append({"name": label, "kind": label.split(":")[0], "metric": str(e["metric"]).upper(),
                         "value": float(e["value"]), "n": int(e.get("n") or 0), "reference": e.get("reference", ""),
                         "epoch": lg.epoch})
    for r in rows:
        r["note"] = "" if shared.comparable(r["n"]) else CAVEAT
    return rows


def fid_chart(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    if rows:
        fig.add_trace(go.Bar(x=[r["name"] for r in rows], y=[r["value"] for r in rows],
                             text=[f"{r['value']:.1f}<br>n={r['n']:,}" for r in rows], textposition="outside",
                             marker_color="#ff6fa8", name="measured here", width=0.5 if len(rows) < 3 else None,
                             hovertext=[f"vs {r['reference']}" for r in rows], showlegend=False))
    for (name, v), (dash, color) in zip(CLASSIC_FIDS, REF_STYLES, strict=True):
        fig.add_hline(y=v, line_dash=dash, line_color=color, line_width=2)
        # a legend entry for the line (hlines have none)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash=dash, color=color, width=2),
                                 name=f"{name} {v}: classic write-up, not measured here"))
    top = max([v for _, v in CLASSIC_FIDS] + [r["value"] for r in rows]) * 1.2
    fig.update_layout(title="FID (lower is better)", yaxis_title="FID", yaxis_range=[0, top], height=460,
                      margin=dict(t=50, b=40, l=50, r=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0))
    if not rows:
        fig.update_xaxes(visible=False)
    return fig


def swd_chart(rows: list[dict]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[r["name"] for r in rows], y=[r["value"] for r in rows],
                           text=[f"{r['value']:.2f}<br>n={r['n']:,}" for r in rows], textposition="outside",
                           marker_color="#7fb3ff", hovertext=[f"vs {r['reference']}" for r in rows],
                           width=0.5 if len(rows) < 3 else None))
    fig.update_layout(title="SWD ×10³ (lower is better)", yaxis_title="SWD ×10³", height=460,
                      margin=dict(t=50, b=40, l=50, r=10))
    fig.update_yaxes(range=[0, max(r["value"] for r in rows) * 1.25])
    return fig


def last_error_lines(log_text: str) -> str:
    lines = [ln for ln in log_text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error:"):
            return "\n".join(lines[i:])[len("error:"):].strip()
    return lines[-1] if lines else "the job ended without a result (no log output)"


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
    except (jobs.JobError, ValueError, OSError) as e:
        shared.flash("cmp", "error", str(e))
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


# =========================================================================== page
st.title("Compare")
st.caption(f"The same seeds drawn by each checkpoint, with what was measured about each. {shared.DAGGER_NOTE}.")

choices = shared.checkpoint_choices()
labels = list(choices)
if not labels:
    st.info(f"Nothing to compare yet: no checkpoint shipped in `{paths.SHIPPED_CHECKPOINTS}` and no run has saved one. "
            "Train a run on the **Train** page (or open a checkpoint on the **Generate** page); the summary below "
            "shows the classic write-ups' reported FIDs meanwhile.")
else:
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
    c1, c2, c3, _ = st.columns([1, 1, 1, 3])
    seed = int(c1.number_input("Seed", 0, shared.MAX_SEED, 0, key="cmp_seed"))
    n = int(c2.number_input("Faces each", 1, 64, 16, key="cmp_n"))
    ncols = int(c3.number_input("Columns", 1, 16, 4, key="cmp_cols"))
    if len(sel) == 1:
        st.caption("Pick at least one more checkpoint to compare.")
    loaded: dict[str, tuple[Path, LoadedGenerator]] = {}
    if sel:
        for col, label in zip(st.columns(max(2, len(sel))), sel, strict=False):
            p = Path(choices[label])
            with col, st.container(border=True):
                st.markdown(f"**{label}**")
                try:
                    lg = shared.get_generator(p)
                except (CheckpointError, OSError) as e:
                    shared.show_error(e)
                    continue
                if not shared.sample_grid(p, seed, n, ncols):
                    continue
                loaded[label] = (p, lg)
                secs, where = training_time(p, lg)
                evs = checkpoint_evals(p, lg)
                cfg = lg.config
                st.markdown(f"{cfg.model}, {cfg.loss}, {cfg.img_size}px · **{lg.params:,}** generator parameters  \n"
                            f"epoch {lg.epoch}, step {lg.step:,}" + (" · EMA" if lg.ema else "") + "  \n"
                            f"training time: {shared.fmt_duration(secs)}" + (f" ({where})" if where else ""))
                if evs:
                    st.dataframe(pd.DataFrame([{"metric": str(e["metric"]).upper(), "value": round(float(e["value"]), 3),
                                                "n": int(e.get("n") or 0), "reference": e.get("reference", ""),
                                                "from": e.get("source", "")} for e in evs]), hide_index=True)
                    if not all(shared.comparable(e.get("n")) for e in evs):
                        st.caption(f"{shared.DAGGER_NOTE}.")
                else:
                    st.caption("No FID/SWD measured for this checkpoint yet — compute one below.")

    # ----------------------------------------------------------------------- compute
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
    e1, e2, e3, e4 = st.columns([2, 1, 2, 1])
    target = e1.selectbox("Checkpoint", pool, index=pool.index(without[0]) if without else 0, key="cmp_eval_ckpt")
    e2.radio("Metric", list(METRICS), format_func=str.upper, horizontal=True, key="cmp_eval_metric",
             help="SWD needs nothing extra. FID needs the Inception weights (pytorch-fid) on this machine.")
    try:
        cfg_data = shared.get_generator(Path(choices[target])).config.data
    except (CheckpointError, OSError):
        cfg_data = SYNTHETIC
    default_data = cfg_data if cfg_data == SYNTHETIC or Path(cfg_data).expanduser().exists() else SYNTHETIC
    e3.text_input("Reference data (its val split)", value=default_data, key=f"cmp_eval_data_{target}",
                  help="The checkpoint's training data by default: a folder, a .zip or 'synthetic'.")
    e4.number_input("n", 2, 50_000, 1000, step=500, key="cmp_eval_n",
                    help=f"Images compared (capped by the split's size). {COMPARABLE_N:,} for numbers comparable "
                         "with published ones; fewer is faster but only comparable at the same n.")
    busy = st.session_state.get("cmp_job") is not None or cur is not None
    st.button("Compute in the background", icon=":material/play_arrow:", type="primary", disabled=busy,
              key="cmp_eval_go", on_click=start_eval)

# --------------------------------------------------------------------------- summary
st.subheader("Summary: every run and shipped checkpoint")
rows = summary_rows(choices)
if rows:
    df = pd.DataFrame(rows)[["name", "kind", "metric", "value", "n", "reference", "epoch", "note"]]
    st.dataframe(df, hide_index=True, column_config={"value": st.column_config.NumberColumn(format="%.3f")})
else:
    st.caption("No FID or SWD has been measured yet: runs evaluate during training when `eval_every` > 0, and any "
               "checkpoint can be measured above.")
fid_rows = [r for r in rows if r["metric"] == "FID"]
swd_rows = [r for r in rows if r["metric"] == "SWD"]
g1, g2 = st.columns(2)
with g1:
    st.plotly_chart(fid_chart(fid_rows), key="cmp_fid_chart")
    st.caption("Reference lines: FIDs **reported by the classic write-ups** for their plain GAN, DCGAN and WGAN-GP "
               "at 64×64 — not measured here, against their own data and n. "
               + ("" if fid_rows else "No FID measured here yet."))
with g2:
    if swd_rows:
        st.plotly_chart(swd_chart(swd_rows), key="cmp_swd_chart")
        st.caption("SWD is on its own scale (×10³, averaged over pyramid levels): not comparable with FID.")
    else:
        st.info("No SWD measured yet. SWD needs no extra download: compute it above for any checkpoint.")
if not all(shared.comparable(r["n"]) for r in rows):
    st.caption(f"Values with n < {COMPARABLE_N:,} are {CAVEAT}.")
