"""Home: what the app does, where it trains and writes, what is running, the latest runs and
the shipped checkpoints (with a few faces from each)."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from animegan import data, jobs, paths
from animegan.checkpoint import CheckpointError
from animegan.devices import device_summary
from animegan.rundir import Run, list_runs
from app_pages import shared
from app_pages.shared import fmt_bytes


@st.cache_resource(show_spinner=False)
def _device() -> dict:
    return device_summary()


# --------------------------------------------------------------------------- intro
st.title("animegan")
shared.narrow_window_layout()
st.markdown(
    "Train GANs that draw **64×64 anime faces**, from the built-in synthetic set, a folder of images or an uploaded zip.  \n"
    "Watch a run live (losses, D(x)/D(G(z)), sample grids of the same noise every epoch), stop and resume it, and "
    "measure it with **FID/SWD**.  \n"
    "Then draw faces from any checkpoint by seed, interpolate between seeds and compare checkpoints side by side.")

dev = _device()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Trains on", dev.get("name", "?"), help=f"torch device {dev.get('device')}; available: "
          f"{', '.join(dev.get('available', []))}")
c2.metric("PyTorch", dev.get("torch", "?"))
c3.metric("CPU threads", dev.get("threads", "?"))
c4.metric("Devices here", len(dev.get("available", [])), help=", ".join(dev.get("available", [])))

# --------------------------------------------------------------------------- active job
REFRESH_S = 2.0  # how often "Now running" redraws itself while a job runs


def now_running(was_running: bool) -> None:
    """The running job and its progress: a fragment that redraws itself every REFRESH_S seconds
    while a job runs, and the whole page once when it has ended (its run joins the list below)."""
    try:
        job = jobs.current_job()
    except Exception as e:  # noqa: BLE001  # a broken lock file must not take the home page down
        st.caption(f"(could not read the job lock: {e})")
        return
    if was_running and job is None:
        st.rerun(scope="app")
    if job is None:
        st.caption("No training or evaluation job is running. Start one on the **Train** page, or compute a "
                   "metric on the **Compare** page.")
        return
    st.markdown(f"**{job.label}** — pid {job.pid or '(starting)'}, started "
                f"{max(0.0, time.time() - job.started) / 60:.0f} min ago")
    if job.kind == "train" and job.run_dir is not None:
        status = Run(job.run_dir).status(job)
        eta = status.eta_s
        text = (f"{status.phase}: epoch {status.epoch}/{status.epochs or '?'}, "
                f"step {status.step:,}/{status.total_steps:,}" + (f", about {eta / 60:.0f} min left" if eta else ""))
        st.progress(status.fraction, text=text)
        st.caption(f"This part of the page follows it (every {REFRESH_S:.0f} s); curves on the **Runs** page, "
                   "stop it on the **Train** page.")
    else:
        tail = job.log_tail(1)
        if tail:
            st.caption(f"last log line: {tail}")


st.subheader("Now running")
try:
    running = jobs.current_job() is not None
except Exception:  # noqa: BLE001  # reported inside the fragment
    running = False
st.fragment(now_running, run_every=REFRESH_S if running else None)(running)

# --------------------------------------------------------------------------- runs
st.subheader("Latest runs")
runs = list_runs()
if not runs:
    st.info(f"No runs yet (looked in `{paths.runs_dir()}`). Start one on the **Train** page — the `classic-dcgan` "
            "preset on the built-in synthetic set, with a few epochs, runs on a CPU.")
else:
    rows = []
    try:
        job = jobs.current_job()
    except Exception:  # noqa: BLE001  # a broken lock file: reported under "Now running"
        job = None
    for r in runs[:10]:
        status = r.status(job)
        b = r.best_eval()
        rows.append({
            "run": r.name,
            "state": status.phase,
            "epoch": f"{status.epoch}/{status.epochs or '?'}",
            "step": f"{status.step:,}/{status.total_steps:,}",
            "best": shared.fmt_eval(b) if b else "not evaluated",
            "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(status.updated)) if status.updated else "",
        })
    # Plain tables here and below: a few rows each, and st.dataframe's grid is 1.2 MB of JavaScript
    # for the browser to load before the page is drawn.
    st.table(pd.DataFrame(rows), hide_index=True)
    more = f" ({len(runs) - 10} more on the Runs page)" if len(runs) > 10 else ""
    st.caption(f"{len(runs)} run(s) in `{paths.runs_dir()}`{more}. {shared.DAGGER_NOTE}.")

# --------------------------------------------------------------------------- shipped checkpoints
st.subheader("Shipped checkpoints")
shipped = shared.shipped_checkpoints()
if not shipped:
    st.info(f"No shipped checkpoints in `{paths.SHIPPED_CHECKPOINTS}` yet. Train a run, then export it with "
            "`python -m animegan export RUN --out checkpoints/NAME.pt` — or open any checkpoint on the "
            "**Generate** page.")
dagger_shown = False  # an evaluation line carries "†": the note that explains it follows the list
for ckpt in shipped:
    with st.container(border=True):
        try:
            loaded = shared.get_generator(ckpt)
            size = ckpt.stat().st_size
        except (CheckpointError, OSError) as e:
            st.markdown(f"**{ckpt.stem}**")
            shared.show_error(e)
            continue
        left, right = st.columns([1, 2], vertical_alignment="center")
        cfg = loaded.config
        evs = shared.eval_rows(loaded.eval)
        dagger_shown = dagger_shown or any("†" in shared.fmt_eval(e) for e in evs)
        left.markdown(f"**{ckpt.stem}**  \n{cfg.model}, {cfg.loss} loss, {cfg.img_size}px  \n"
                      f"generator: {loaded.params:,} parameters  \n"
                      f"evaluation: {', '.join(shared.fmt_eval(e) for e in evs) if evs else 'none recorded'}  \n"
                      f"file: {fmt_bytes(size)}")
        with right:
            # two rows of four: faces stay at least their own size in a narrow window too
            shared.sample_grid(ckpt, seed=0, n=8, cols=4, caption="8 faces, seed 0 (the same faces every time)")
if dagger_shown:
    st.caption(f"{shared.DAGGER_NOTE}.")  # the † next to an evaluation, explained where it first shows

# --------------------------------------------------------------------------- storage
st.subheader("Storage")
st.markdown(f"Home folder: `{paths.home()}` (set `ANIMEGAN_HOME` to move it).")
caches = data.cache_usage()
run_sizes = [(r.name, r.size_bytes()) for r in runs]
# One table under the other, the numbers first: side by side, a long source path pushed the bytes
# column out of sight.
st.markdown(f"**Data caches** — {fmt_bytes(sum(c['bytes'] for c in caches))}")
if caches:
    st.table(pd.DataFrame([{
        "bytes": fmt_bytes(c["bytes"]), "size": f"{c['size']}px" if c.get("size") else "?",
        "images": f"{c['count']:,}" if c.get("count") is not None else "?",
        "complete": "yes" if c["complete"] else "no (leftover)", "source": c["source"],
    } for c in caches]), hide_index=True)
else:
    st.caption("No data caches yet: preparing a source (Dataset page, or the first training run) builds one.")
st.markdown(f"**Runs** — {fmt_bytes(sum(b for _, b in run_sizes))}")
if run_sizes:
    st.table(pd.DataFrame([{"bytes": fmt_bytes(b), "run": n} for n, b in run_sizes]), hide_index=True)
else:
    st.caption("No runs yet.")

if caches:
    if not st.session_state.get("home_confirm_clear"):
        if st.button("Clear data caches…", icon=":material/delete_sweep:", key="home_clear"):
            st.session_state["home_confirm_clear"] = True
            st.rerun()
    else:
        total = sum(c["bytes"] for c in caches)
        st.warning(f"Delete {len(caches)} data cache(s), {fmt_bytes(total)}? Sources are not touched; the next "
                   "prepare decodes them again. Runs are kept.")
        y, n = st.columns([1, 6])
        if y.button("Yes, clear", type="primary", key="home_clear_yes"):
            freed = data.clear_caches()
            st.session_state["home_confirm_clear"] = False
            st.session_state["home_cleared"] = freed
            st.rerun()
        if n.button("Cancel", key="home_clear_no"):
            st.session_state["home_confirm_clear"] = False
            st.rerun()
if "home_cleared" in st.session_state:
    st.success(f"Freed {fmt_bytes(st.session_state.pop('home_cleared'))} of data caches.")
