"""Runs: every training run, replayed: curves of any set of runs overlaid, samples by epoch (a
filmstrip and a timelapse GIF), evaluations, config, files.

Everything here is read from the run directory (`animegan.rundir.Run`, charted through
`animegan.curves`), so runs started from the command line show up exactly like runs started from
the Train page. While a shown run trains, the page refreshes itself.
"""
from __future__ import annotations

import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from animegan import curves, images, jobs, timelapse
from animegan.config import COMPARABLE_N
from animegan.curves import finite
from animegan.rundir import Run, RunStatus, list_runs
from app_pages import shared

REFRESH_S = 2.0  # how often the page redraws itself while a shown run trains
# (title, y-axis title, metrics.jsonl column): one chart per scalar, every shown run on it
SCALAR_CHARTS = [("Loss D", "loss", "loss_D"), ("Loss G", "loss", "loss_G"), ("D(x): D on real images", None, "D_x"),
                 ("D(G(z)): D on generated images", None, "D_G_z"), ("Gradient penalty", "gp", "gp"),
                 ("Images per second", "images/s", "images_per_s")]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]


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


def run_label(run: Run, job: jobs.Job | None) -> str:
    status = run.status(job)
    ep = f" · epoch {status.epoch}/{status.epochs}" if status.epochs else ""
    return f"{run.name} · {status.phase}{ep}"


# -- charts ----------------------------------------------------------------------------------------

def overlay_chart(title: str, ytitle: str | None, traces: list[dict], axis: str, smoothing: float, log: bool,
                  marks: list[tuple[float, str, str]] = ()) -> go.Figure | None:
    """One chart, every trace on it: the smoothed curve (exponential moving average, debiased) in
    front and the raw one faint behind it in the same colour; legend under the plot (never over
    the title). traces: dicts of name, color, x, y, dash, hover. marks: (x, text, color) lines."""
    fig = go.Figure()
    for t in traces:
        if not t["x"]:
            continue
        smooth = curves.ema(t["y"], smoothing) if smoothing > 0 else t["y"]
        group = t["name"]
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=t["x"], y=t["y"], mode="lines", name=f"{t['name']} (raw)", legendgroup=group,
                                     showlegend=False, opacity=0.25, hoverinfo="skip",
                                     line=dict(color=t["color"], width=1, dash=t.get("dash", "solid"))))
        fig.add_trace(go.Scatter(x=t["x"], y=smooth, mode="lines+markers" if len(t["x"]) < 30 else "lines",
                                 name=t["name"], legendgroup=group, meta=t.get("hover", t["name"]),
                                 hovertemplate="%{meta}<br>x=%{x:,.4~g}<br>%{y:.4~g}<extra></extra>",
                                 line=dict(color=t["color"], width=2, dash=t.get("dash", "solid"))))
    if not fig.data:
        return None
    for x, text, color in marks:
        if x is not None:
            fig.add_vline(x=x, line_dash="dash", line_color=color, line_width=1, annotation_text=text,
                          annotation_position="top left", annotation_font_size=10)
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font_size=15), height=330,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title=curves.X_AXES[axis], yaxis_title=ytitle,
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, xanchor="left", font_size=11),
                      hovermode="closest", showlegend=True)
    if log:
        vals, text = curves.log_ticks([y for t in fig.data for y in (t.y or ()) if y is not None])
        fig.update_yaxes(type="log", tickvals=vals, ticktext=text)
    return fig


def chart_figures(shown: list[curves.RunCurves], colors: dict[str, str], axis: str, smoothing: float,
                  log: bool) -> list[go.Figure]:
    """The scalar charts, then one evaluation chart per metric (a series per run and (n, reference))."""
    figs = []
    marks = []
    for rc in shown:
        cols = {"step": [r["step"] for r in rc.rows], "collapse": [r.get("collapse") for r in rc.rows]}
        found = collapse_marks(rc.run, cols)
        who = f" ({rc.name})" if len(shown) > 1 else ""
        marks += [(x, f"collapse{who}", "#ff4b4b") for x in rc.x_at_steps([s for s, _ in found], axis)]
        rb = [int(e["step"]) for e in rc.run.events() if e.get("event") == "rollback" and finite(e.get("step"))]
        marks += [(x, f"rollback{who}", "#ffa94d") for x in rc.x_at_steps(rb, axis)]
    keys = {k for rc in shown for k in rc.keys()}
    for title, ytitle, key in SCALAR_CHARTS:
        if key not in keys:
            continue
        if key in ("D_x", "D_G_z"):
            losses = {rc.config.get("loss", "bce") for rc in shown}
            ytitle = ("mean sigmoid(D)" if losses == {"bce"} else "mean score" if "bce" not in losses
                      else "mean D output (sigmoid for bce)")
        traces = [dict(name=rc.name, color=colors[rc.name], x=(c := rc.curve(key, axis)).x, y=c.y) for rc in shown]
        fig = overlay_chart(title, ytitle, traces, axis, smoothing, log, marks if key != "images_per_s" else [])
        if fig is not None:
            figs.append(fig)
    by_metric: dict[str, list[dict]] = {}
    for rc in shown:
        for i, c in enumerate(rc.evals(axis)):
            label = curves.short_reference(c.label)
            # two lines per legend entry: run and n, then the reference (a legend does not wrap)
            how = label.split(" · ", 1)[1] if " · " in label else ""
            by_metric.setdefault(c.metric or "?", []).append(dict(
                name=f"{rc.name} · {how.replace(' · ', '<br>', 1)}" if how else rc.name, color=colors[rc.name],
                x=c.x, y=c.y, dash=DASHES[i % len(DASHES)], hover=f"{rc.name} · {c.label}"))
    for metric, traces in by_metric.items():
        fig = overlay_chart(f"{metric} (lower is better)", metric, traces, axis, 0.0, log)
        if fig is not None:
            figs.append(fig)
    return figs


def show_curves(run: Run, others: list[str]) -> None:
    """The run's curves, with the curves of `others` on the same charts when picked; x axis,
    smoothing and log scale chosen above the charts."""
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    axis = c1.selectbox("X axis", list(curves.X_AXES), format_func=curves.X_AXES.get, key="runs_x",
                        help="images seen = step × batch size; wall time counts from the run's first logged step")
    smoothing = c2.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="runs_smooth",
                          help="Exponential moving average, debiased (as TensorBoard); the raw curve stays faint behind")
    log = c3.toggle("Log scale", key="runs_log")
    shown = [curves.RunCurves(run)] + [curves.RunCurves(Run(run.path.parent / n)) for n in others
                                       if n != run.name and (run.path.parent / n / "config.json").exists()]
    if not shown[0].rows and len(shown) == 1:
        st.info("No metrics logged yet.")
        return
    colors = {rc.name: shared.RUN_COLORS[i % len(shared.RUN_COLORS)] for i, rc in enumerate(shown)}
    marks = collapse_marks(run, {"step": [r["step"] for r in shown[0].rows],
                                 "collapse": [r.get("collapse") for r in shown[0].rows]})
    if marks:
        st.warning("Mode collapse detected: " + "; ".join(f"step {s:,} ({d})" for s, d in marks))
    figs = chart_figures(shown, colors, axis, float(smoothing), bool(log))
    if log:
        st.caption("Log scale: values ≤ 0 are not drawn.")
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
             "value": round(float(e["value"]), 4), "n": e.get("n"), "note": curves.comparable_note(e.get("n")),
             "reference": curves.short_reference(e.get("reference", "")),
             "checkpoint": Path(e["checkpoint"]).name if e.get("checkpoint") else "",
             "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(e["time"])) if finite(e.get("time")) else ""}
            for e in ev]
    st.dataframe(rows, width="stretch", hide_index=True,
                 column_config={"reference": st.column_config.TextColumn(width="large")})
    small = sorted({int(e["n"]) for e in ev if finite(e.get("n")) and not shared.comparable(e["n"])})
    if small:
        st.caption(f"Measured with n = {', '.join(f'{n:,}' for n in small)} images (< {COMPARABLE_N:,}): these values "
                   f"are only comparable at the same n and reference, not with published numbers; below "
                   f"n = {curves.ROUGH_N:,} they are rough.")


def run_view(run_path: str, shown_phase: str) -> None:
    """The run's state, curves and evaluations: a fragment that redraws itself while the run trains.
    `shown_phase`: the phase the page (its run selector, resume and delete) was drawn with."""
    run = Run(run_path)
    status = run.status(jobs.current_job())
    live, state = status.live, status.state
    if status.phase != shown_phase:
        st.rerun()  # starting -> compiling -> running -> ended: the selector, resume and delete follow
    cfg = run.config()
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("State", status.phase)
    c2.metric("Epoch", f"{status.epoch}/{status.epochs or '?'}")
    c3.metric("Steps", f"{status.step:,}")
    best = run.best_eval()
    c4.metric("Best eval", f"{str(best.get('metric', '')).upper()} {best['value']:.3f}"
              if best and finite(best.get("value")) else "–",
              help=f"n={best.get('n')}, epoch {best.get('epoch')}" if best else None)
    st.caption(f"{cfg.get('preset') or 'no preset'} · model {cfg.get('model', '?')} · {cfg.get('img_size', '?')}px · "
               f"loss {cfg.get('loss', '?')} · batch {cfg.get('batch_size', '?')} · data {cfg.get('data', '?')} · {run.path}")
    if state in ("failed", "dead"):
        st.error(f"This run {'failed' if state == 'failed' else 'died'}: {status.last_error or 'no error recorded'}")
    elif state == "collapsed":
        st.warning(f"This run stopped on mode collapse: {status.last_error or ''}")
    elif live:
        st.info(f"This run is training now: this page follows it (every {REFRESH_S:.0f} s); the Train page can stop it.")
    st.subheader("Training curves")
    others = st.multiselect("Overlay other runs", [r.name for r in list_runs(run.path.parent) if r.name != run.name],
                            key="runs_overlay", placeholder="Pick runs to draw on the same charts",
                            help="Each run keeps one colour on every chart")
    show_curves(run, others)
    st.subheader("Evaluations")
    show_evals(run)


# -- samples ---------------------------------------------------------------------------------------

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
    session = st.session_state
    if session.get(key) not in epochs:
        session[key] = epochs[0] if playing else epochs[-1]
    elif playing and len(epochs) > 1:
        session[key] = epochs[(epochs.index(session[key]) + 1) % len(epochs)]
    if len(epochs) > 1:
        st.select_slider("Epoch", options=epochs, key=key, format_func=lambda e: f"epoch {e}")
    ep = session[key]
    path = paths_by_epoch[ep]
    try:
        png = path.read_bytes()
    except OSError:
        st.warning(f"The grid of epoch {ep} could not be read (deleted meanwhile?).")
        return
    # At its own size (shrunk only where the window is narrower): faces never drawn smaller than needed.
    st.image(png, caption=f"epoch {ep}: the same fixed noise as every other epoch", width="content",
             output_format="PNG")
    st.download_button(f"Download epoch {ep} grid (PNG)", data=png, file_name=f"{run.name}-epoch_{ep:04d}.png",
                       mime="image/png", key=f"runs_dl_grid::{run.name}", on_click="ignore")


def show_filmstrip(run: Run) -> None:
    """Face i of every epoch in row i, epochs side by side; and the timelapse GIF to download."""
    n = len(run.grids())
    if n < 2:
        return
    st.markdown("**Filmstrip**: the first faces of the fixed noise, epoch by epoch")
    size = int(run.config().get("img_size") or 64)
    fit = max(2, 700 // (size + 2))  # columns that fit an 800 px window at native size
    k = st.slider("Epochs in the strip", 2, min(n, 64), min(n, fit), key=f"runs_strip_k::{run.name}",
                  help="Evenly spread over the run, first and last included") if n > 2 else 2
    strip = timelapse.filmstrip(run, faces=4, max_epochs=int(k))
    if strip is not None:
        st.image(images.png_bytes(strip), width="content", output_format="PNG",
                 caption=f"{min(k, n)} of {n} epochs; each column one epoch, each row one face")

    def gif() -> bytes:
        return timelapse.gif_bytes(run)
    st.download_button("Download timelapse (GIF)", data=gif, file_name=timelapse.timelapse_name(run), mime="image/gif",
                       key=f"runs_dl_gif::{run.name}", on_click="ignore", icon=":material/movie:",
                       help=f"Every epoch grid, 4 per second; also `python -m animegan timelapse {run.name} --out t.gif`")


# -- files and management --------------------------------------------------------------------------

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


def show_resume(run: Run, status: RunStatus, job: jobs.Job | None) -> None:
    st.markdown("**Resume**")
    if status.live:
        st.caption("This run is training now; watch or stop it on the Train page.")
        return
    if run.last_checkpoint() is None:
        st.caption("No checkpoints/last.pt: this run cannot be resumed.")
        return
    more = status.state == "finished"
    epochs = st.number_input("Train until epoch", min_value=1, max_value=100_000, step=1,
                             value=int(run.config().get("epochs") or status.epochs) + (10 if more else 0),
                             key=f"runs_resume_epochs::{run.name}", help="Raise it to continue a finished run")
    if job is not None:
        st.caption(f"Another job is running ({job.describe()}); resume when it ends.")
    if st.button("Resume from last checkpoint", icon=":material/play_arrow:", key=f"runs_resume::{run.name}",
                 disabled=job is not None):
        try:
            jobs.resume(run, epochs=int(epochs))
        except jobs.JobError as e:
            st.error(str(e))
        else:
            st.session_state["train_watch"] = run.name
            shared.flash("runs", "success", f"Resumed run {run.name} in the background; watch it on the Train page.")
            st.rerun()


def show_delete(run: Run, status: RunStatus) -> None:
    st.markdown("**Delete**")
    if status.live:
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
shared.narrow_window_layout()
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
if [n for n in st.session_state.get("runs_overlay", []) if n not in by_name]:
    st.session_state["runs_overlay"] = [n for n in st.session_state["runs_overlay"] if n in by_name]
job = jobs.current_job()
labels = {r.name: run_label(r, job) for r in runs}
name = st.selectbox("Run (most recently updated first)", list(by_name), key="runs_pick", format_func=lambda n: labels[n])
run = by_name[name]
status = run.status(job)

st.fragment(run_view, run_every=REFRESH_S if status.live else None)(str(run.path), status.phase)

st.subheader("Samples by epoch")
play = st.toggle("Play", key=f"runs_play::{run.name}", help="Step through the epochs (about one per second)")
st.fragment(replay, run_every=1.0 if play else None)(str(run.path), play)
show_filmstrip(run)

with st.expander("Config (config.json)"):
    st.json(run.config(), expanded=True)

st.subheader("Files")
show_files(run)
with st.expander("End of train.log"):
    st.code(run.log_tail(40) or "(no log)", language=None)

st.subheader("Manage")
m1, m2 = st.columns(2, border=True)
with m1:
    show_resume(run, status, job)
with m2:
    show_delete(run, status)
