"""Runs: every training run, replayed: samples by epoch, curves, evaluations, config, files.

Everything here is read from the run directory (`animegan.rundir.Run`), so runs started from
the command line show up exactly like runs started from the Train page.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from animegan import jobs
from animegan.config import COMPARABLE_N, LIVE_STATES, TrainConfig
from animegan.rundir import Run, list_runs
from pages import shared

COLORS = {"loss_D": "#ff6fa8", "loss_G": "#4dabf7", "D_x": "#69db7c", "D_G_z": "#ffa94d", "gp": "#b197fc"}


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def series(m: dict[str, list], col: str) -> tuple[list, list]:
    pts = [(s, v) for s, v in zip(m.get("step") or [], m.get(col) or [], strict=False) if s is not None and finite(v)]
    return [p[0] for p in pts], [p[1] for p in pts]


def collapse_marks(run: Run, m: dict[str, list]) -> list[tuple[int, str]]:
    """(step, description) of every collapse: events.jsonl rows and metrics rows with "collapse"."""
    out: dict[int, str] = {}
    for e in run.events():
        if e.get("event") == "collapse" and e.get("step") is not None:
            out[int(e["step"])] = f"{e.get('reason') or 'collapse'} → {e.get('action') or '?'}"
    for s, c in zip(m.get("step") or [], m.get("collapse") or [], strict=False):
        if c and s is not None:
            out.setdefault(int(s), str(c))
    return sorted(out.items())


def chart(m: dict[str, list], cols: list[tuple[str, str]], title: str, ytitle: str,
          marks: list[tuple[int, str]], rollbacks: list[int]) -> go.Figure | None:
    fig = go.Figure()
    for col, name in cols:
        x, y = series(m, col)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=COLORS.get(col))))
    if not fig.data:
        return None
    for s, _ in marks:
        fig.add_vline(x=s, line_dash="dash", line_color="#ff4b4b", annotation_text="collapse",
                      annotation_position="top left")
    for s in rollbacks:
        fig.add_vline(x=s, line_dash="dot", line_color="#ffa94d", annotation_text="rollback",
                      annotation_position="bottom right")
    fig.update_layout(title=title, height=320, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step",
                      yaxis_title=ytitle, legend=dict(orientation="h", y=1.15, x=1, xanchor="right"))
    return fig


def run_label(run: Run) -> str:
    st_ = run.status()
    state = st_.get("state", "unknown")
    ep = f" · epoch {st_.get('epoch', 0)}/{st_.get('epochs', '?')}" if st_.get("epochs") else ""
    return f"{run.name} · {state}{ep}"


def replay(run_path: str, playing: bool) -> None:
    """The per-epoch grids with a slider; while playing, each refresh moves it one epoch on."""
    run = Run(run_path)
    grids = run.grids()
    if not grids:
        st.info("No epoch grids yet: the first one is saved at the end of epoch 1.")
        return
    epochs = [e for e, _ in grids]
    paths_by_epoch = dict(grids)
    key = f"runs_epoch::{run.name}"
    ss = st.session_state
    if ss.get(key) not in epochs:
        ss[key] = epochs[0] if playing else epochs[-1]
    elif playing and len(epochs) > 1:
        ss[key] = epochs[(epochs.index(ss[key]) + 1) % len(epochs)]
    if len(epochs) > 1:
        st.select_slider("Epoch", options=epochs, key=key, format_func=lambda e: f"epoch {e}")
    ep = ss[key]
    path = paths_by_epoch[ep]
    try:
        png = path.read_bytes()
    except OSError:
        st.warning(f"The grid of epoch {ep} could not be read (deleted meanwhile?).")
        return
    st.image(png, caption=f"epoch {ep}: the same fixed noise as every other epoch", width=420)
    st.download_button(f"Download epoch {ep} grid (PNG)", data=png, file_name=f"{run.name}-epoch_{ep:04d}.png",
                       mime="image/png", key=f"runs_dl_grid::{run.name}", on_click="ignore")


def show_curves(run: Run) -> None:
    m = run.metrics()
    if not m.get("step"):
        st.info("No metrics logged yet.")
        return
    marks = collapse_marks(run, m)
    rollbacks = [int(e["step"]) for e in run.events() if e.get("event") == "rollback" and e.get("step") is not None]
    if marks:
        st.warning("Mode collapse detected: " + "; ".join(f"step {s:,} ({d})" for s, d in marks))
    loss = run.config().get("loss", "bce")
    figs = [chart(m, [("loss_D", "loss D"), ("loss_G", "loss G")], "Losses", "loss", marks, rollbacks),
            chart(m, [("D_x", "D(x)"), ("D_G_z", "D(G(z))")], "Discriminator on real and fake",
                  "mean sigmoid(D)" if loss == "bce" else "mean score", marks, rollbacks)]
    if any(finite(v) and v != 0 for v in m.get("gp") or []):
        figs.append(chart(m, [("gp", "gradient penalty")], "Gradient penalty", "gp", marks, rollbacks))
    figs = [f for f in figs if f is not None]
    cols = st.columns(2)
    for i, fig in enumerate(figs):
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"runs_chart_{i}")


def show_evals(run: Run) -> None:
    ev = [e for e in run.evals() if finite(e.get("value"))]
    if not ev:
        st.caption("No evaluations yet (set *Evaluate every N epochs* when training, or measure a checkpoint "
                   "on the Compare page).")
        return
    rows = [{"epoch": e.get("epoch"), "step": e.get("step"), "metric": str(e.get("metric", "?")).upper(),
             "value": round(float(e["value"]), 4), "n": e.get("n"), "reference": e.get("reference", ""),
             "checkpoint": Path(e["checkpoint"]).name if e.get("checkpoint") else "",
             "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(e["time"])) if finite(e.get("time")) else ""}
            for e in ev]
    fig = go.Figure()
    groups: dict[tuple, list[dict]] = {}
    for e in ev:
        if e.get("epoch") is not None:
            groups.setdefault((str(e.get("metric", "?")).upper(), e.get("n"), e.get("reference", "")), []).append(e)
    for (metric, n, _ref), es in groups.items():
        es = sorted(es, key=lambda e: e["epoch"])
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in es], y=[e["value"] for e in es], mode="lines+markers",
                                 name=f"{metric} (n={n})"))
    if fig.data:
        last = max(e["epoch"] for es in groups.values() for e in es)
        fig.update_xaxes(dtick=max(1, math.ceil(last / 10)))
        fig.update_layout(title="Evaluations (lower is better)", height=320, margin=dict(l=10, r=10, t=40, b=10),
                          xaxis_title="epoch", yaxis_title="value", legend=dict(orientation="h", y=1.15, x=1, xanchor="right"))
        st.plotly_chart(fig, width="stretch", key="runs_eval_chart")
    st.dataframe(rows, width="stretch", hide_index=True)
    refs = sorted({str(e.get("reference", "")) for e in ev if e.get("reference")})
    if refs:
        st.caption("Reference: " + "; ".join(refs))
    small = sorted({int(e["n"]) for e in ev if finite(e.get("n")) and not shared.comparable(e["n"])})
    if small:
        st.caption(f"Measured with n = {', '.join(f'{n:,}' for n in small)} images (< {COMPARABLE_N:,}): these values "
                   f"are only comparable at the same n and reference, not with published numbers.")


def show_files(run: Run) -> None:
    cks = run.checkpoints()
    if not cks:
        st.caption("No checkpoints yet.")
        return
    names = [p.name for p in cks]
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Checkpoint", names, index=len(names) - 1, key=f"runs_ck::{run.name}",
                        format_func=lambda n: f"{n} ({(run.path / 'checkpoints' / n).stat().st_size / 1e6:.1f} MB)"
                        if (run.path / "checkpoints" / n).exists() else n)
    path = run.path / "checkpoints" / pick

    def read() -> bytes:
        return path.read_bytes()
    c2.download_button("Download checkpoint", data=read, file_name=f"{run.name}-{pick}",
                       mime="application/octet-stream", key=f"runs_dl_ck::{run.name}", on_click="ignore")


def show_manage(run: Run, live: bool, job: jobs.Job | None, state: str) -> None:
    c1, c2 = st.columns(2, border=True)
    with c1:
        st.markdown("**Resume**")
        if live or state in LIVE_STATES:
            st.caption("This run is training now; watch or stop it on the Train page.")
        elif run.last_checkpoint() is None:
            st.caption("No checkpoints/last.pt: this run cannot be resumed.")
        else:
            cfg = TrainConfig.from_dict(run.config())
            more = state == "finished"
            epochs = st.number_input("Train until epoch", min_value=1, max_value=100_000, step=1,
                                     value=int(cfg.epochs) + (10 if more else 0), key=f"runs_resume_epochs::{run.name}",
                                     help="Raise it to continue a finished run")
            if job is not None:
                st.caption(f"Another job is running ({job.describe()}); resume when it ends.")
            if st.button("Resume from last checkpoint", icon=":material/play_arrow:", key=f"runs_resume::{run.name}", disabled=job is not None):
                cfg = cfg.replace(epochs=int(epochs), max_steps=0 if more else cfg.max_steps)
                try:
                    jobs.start_training(cfg, run.name, resume=True)
                except jobs.JobError as e:
                    st.error(str(e))
                else:
                    st.session_state["train_watch"] = run.name
                    shared.flash("runs", "success", f"Resumed run {run.name} in the background; watch it on the Train page.")
                    st.rerun()
    with c2:
        st.markdown("**Delete**")
        if live or state in LIVE_STATES:
            st.warning("This run is training; stop it (Train page) before deleting it.")
            return
        try:
            mb = run.size_bytes() / 1e6
        except OSError:
            mb = 0.0
        ok = st.checkbox(f"I understand: this deletes run {run.name} for good ({mb:,.1f} MB)",
                         help="Its checkpoints, samples, curves and logs are all removed", key=f"runs_del_ok::{run.name}")
        if st.button("Delete run", icon=":material/delete:", key=f"runs_delete::{run.name}", disabled=not ok, type="primary"):
            try:
                run.delete()
            except (RuntimeError, OSError) as e:
                st.error(f"Could not delete {run.name}: {e}")
            else:
                st.session_state.pop("runs_pick", None)
                shared.flash("runs", "success", f"Deleted run {run.name}.")
                st.rerun()


# -- the page ------------------------------------------------------------------------------------

st.title("Runs")
shared.show_flash("runs")
runs = list_runs()
if not runs:
    st.info("No runs yet. Start one on the **Train** page: pick a preset and a data source (the built-in "
            "'synthetic' set works offline), then press *Start training*. Runs made with "
            "`python -m animegan train` show up here too.")
    st.stop()

by_name = {r.name: r for r in runs}
if st.session_state.get("runs_pick") not in by_name:
    st.session_state["runs_pick"] = runs[0].name
labels = {r.name: run_label(r) for r in runs}
name = st.selectbox("Run (most recently updated first)", list(by_name), key="runs_pick", format_func=lambda n: labels[n])
run = by_name[name]
job = jobs.current_job()
live = job is not None and job.kind == "train" and job.run_dir is not None and Path(job.run_dir) == run.path
status = run.status()
state = "starting" if live and status.get("state") not in LIVE_STATES else status.get("state", "unknown")
cfg = run.config()

c1, c2, c3, c4 = st.columns(4)
c1.metric("State", state)
c2.metric("Epoch", f"{status.get('epoch', 0)}/{status.get('epochs', cfg.get('epochs', '?'))}")
c3.metric("Steps", f"{int(status.get('step') or 0):,}")
best = run.best_eval()
c4.metric("Best eval", f"{str(best.get('metric', '')).upper()} {best['value']:.3f}" if best and finite(best.get("value")) else "–",
          help=f"n={best.get('n')}, epoch {best.get('epoch')}" if best else None)
st.caption(f"{cfg.get('preset') or 'no preset'} · model {cfg.get('model', '?')} · {cfg.get('img_size', '?')}px · "
           f"loss {cfg.get('loss', '?')} · batch {cfg.get('batch_size', '?')} · data {cfg.get('data', '?')} · {run.path}")
if state in ("failed", "dead"):
    st.error(f"This run {'failed' if state == 'failed' else 'died'}: {status.get('last_error') or 'no error recorded'}")
elif state == "collapsed":
    st.warning(f"This run stopped on mode collapse: {status.get('last_error') or ''}")
elif live:
    st.info("This run is training now: the Train page shows it live; here it is as of this page load.")

st.subheader("Samples by epoch")
play = st.toggle("Play", key=f"runs_play::{run.name}", help="Step through the epochs (about one per second)")
st.fragment(replay, run_every=1.0 if play else None)(str(run.path), play)

st.subheader("Training curves")
show_curves(run)

st.subheader("Evaluations")
show_evals(run)

with st.expander("Config (config.json)"):
    st.json(cfg, expanded=True)

st.subheader("Files")
show_files(run)
with st.expander("End of train.log"):
    st.code(run.log_tail(40) or "(no log)", language=None)

st.subheader("Manage")
show_manage(run, live, job, state)
