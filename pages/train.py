"""Train: set up a run, start it in the background, watch it live, stop or resume it.

The trainer is a separate process (`animegan.jobs`): closing the tab or restarting the app does
not stop it, and opening this page later finds it again (the job lock and the run directory).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from animegan import jobs, paths
from animegan.augment import DIFFAUG_OPS
from animegan.checkpoint import CheckpointError, load_checkpoint
from animegan.config import PRESETS, TrainConfig, preset_config
from animegan.data import DataError, iter_source_files
from animegan.losses import LOSSES
from animegan.models import MODELS
from animegan.rundir import Run, list_runs, safe_run_name
from animegan.train import available_devices
from pages.shared import checkpoint_choices

# Form widgets are keyed "tr_<TrainConfig field>"; a preset fills all of them.
INT_FIELDS = ("epochs", "batch_size", "z_dim", "ngf", "ndf", "n_critic", "eval_every", "eval_n", "seed",
              "max_steps", "log_every", "latest_every", "val_size", "test_size")
FLOAT_FIELDS = ("lr_g", "lr_d", "aug_flip", "aug_brightness", "ema_kimg")
CHOICE_FIELDS = ("model", "img_size", "loss", "eval_metric", "collapse_action", "compile")
FORM_FIELDS = ("data",) + INT_FIELDS + FLOAT_FIELDS + CHOICE_FIELDS + ("diffaug",)
EXTRA_KEYS = ("tr_preset", "tr_device", "tr_nproc", "tr_init", "tr_name")
COLORS = {"loss_D": "#ff6fa8", "loss_G": "#4dabf7"}
SAVED = "train_form_saved"          # non-widget copy: survives visits to other pages
LIVE_STATES = ("starting", "running")
STATE_ICON = {"starting": ":material/hourglass_top:", "running": ":material/directions_run:",
              "finished": ":material/check_circle:", "stopped": ":material/pause_circle:",
              "collapsed": ":material/warning:", "failed": ":material/error:", "dead": ":material/heart_broken:",
              "unknown": ":material/help:"}


def default_name(preset: str) -> str:
    return f"{preset or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def fill_from_config(cfg: TrainConfig) -> None:
    ss = st.session_state
    for f in FORM_FIELDS:
        v = getattr(cfg, f)
        if f == "diffaug":
            v = [p.strip() for p in v.split(",") if p.strip() in DIFFAUG_OPS]
        elif f in INT_FIELDS or f == "img_size":
            v = int(v)
        elif f in FLOAT_FIELDS:
            v = float(v)
        ss[f"tr_{f}"] = v


def on_preset_change() -> None:
    ss = st.session_state
    data = ss.get("tr_data", "synthetic")
    fill_from_config(preset_config(ss["tr_preset"]))
    ss["tr_data"] = data  # the data source is not part of a recipe
    if ss.get("tr_name") in ("", ss.get("_tr_auto_name")):  # not typed by the user: follow the preset
        ss["tr_name"] = ss["_tr_auto_name"] = default_name(ss["tr_preset"])


def init_state() -> None:
    ss = st.session_state
    if "tr_epochs" in ss:
        pass
    elif ss.get(SAVED):
        for k, v in ss[SAVED].items():
            ss[k] = v
    else:
        ss["tr_preset"] = "anime64"
        fill_from_config(preset_config("anime64"))
        ss["tr_device"] = "auto"
        ss["tr_nproc"] = 1
        ss["tr_init"] = "scratch"
    if ss.pop("_tr_renew_name", False) or not ss.get("tr_name"):
        ss["tr_name"] = ss["_tr_auto_name"] = default_name(ss.get("tr_preset", ""))


def save_state() -> None:
    ss = st.session_state
    ss[SAVED] = {k: ss[k] for k in [f"tr_{f}" for f in FORM_FIELDS] + list(EXTRA_KEYS) if k in ss}


def fmt_eta(s) -> str:
    if s is None:
        return "–"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def flash(kind: str, msg: str) -> None:
    st.session_state["train_flash"] = (kind, msg)


def show_flash() -> None:
    kind, msg = st.session_state.pop("train_flash", (None, None))
    if kind:
        getattr(st, kind)(msg)


def tail_of(path: Path, n: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 250 * n))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def loss_chart(run: Run) -> go.Figure | None:
    m = run.metrics()
    steps = m.get("step") or []
    fig = go.Figure()
    for col, name in (("loss_D", "loss D"), ("loss_G", "loss G")):
        pts = [(s, v) for s, v in zip(steps, m.get(col) or [], strict=False)
               if s is not None and isinstance(v, (int, float)) and math.isfinite(v)]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=name,
                                     line=dict(color=COLORS[col])))
    if not fig.data:
        return None
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step", yaxis_title="loss",
                      title="Losses", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def watched_run(job: jobs.Job | None) -> Run | None:
    """The running job's run; else the one started from here last; else the newest run."""
    if job is not None and job.kind == "train" and job.run_dir:
        return Run(job.run_dir)
    name = st.session_state.get("train_watch")
    if name:
        r = Run(paths.runs_dir() / name)
        if r.path.is_dir():
            return r
    runs = list_runs()
    return runs[0] if runs else None


def resume(run: Run) -> None:
    cfg = TrainConfig.from_dict(run.config())
    try:
        jobs.start_training(cfg, run.name, resume=True)
    except jobs.JobError as e:
        st.error(str(e))
        return
    st.session_state["train_watch"] = run.name
    flash("success", f"Resuming run {run.name} from checkpoints/last.pt.")
    st.rerun()


def monitor(was_running: bool) -> None:
    """The job view; a fragment that refreshes itself every 2 s while a job runs."""
    job = jobs.current_job()
    if was_running and job is None:
        st.rerun()  # the job ended: redraw the whole page (the form is free again)
    if job is not None and job.kind != "train":
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info(f"An evaluation is running: {job.describe()}. Training can start when it ends.")
        if c2.button("Stop it", icon=":material/stop:", key="train_stop_eval"):
            jobs.stop_job(job, timeout=10)
            st.rerun()
    run = watched_run(job)
    if run is None:
        st.caption("No training runs yet: set one up below and press **Start training**.")
        return
    live = job is not None and job.kind == "train" and job.run_dir is not None and Path(job.run_dir) == run.path
    status = run.status()
    state = status.get("state", "unknown")
    if live and state not in LIVE_STATES:
        state = "starting"  # resumed: the trainer has not rewritten its status yet
    epoch, epochs = int(status.get("epoch") or 0), int(status.get("epochs") or run.config().get("epochs") or 0)
    step, total = int(status.get("step") or 0), int(status.get("total_steps") or 0)

    head, btn = st.columns([4, 1])
    head.subheader(f"{STATE_ICON.get(state, '')} Run `{run.name}`: {state}")
    if live:
        if btn.button("Stop", icon=":material/stop:", key="train_stop", help="Graceful: the trainer finishes its step and saves a checkpoint",
                      width="stretch"):
            with st.spinner("Stopping: the trainer finishes its step and saves checkpoints/last.pt..."):
                try:
                    ok = jobs.stop_job(job)
                except jobs.JobError as e:
                    st.error(str(e))
                    return
            if ok:
                flash("success", f"Stopped run {run.name}; its last checkpoint is saved, Resume continues from it.")
            else:
                flash("warning", f"Run {run.name} did not stop in time and was killed; resuming continues from "
                                 f"its last saved checkpoint.")
            st.rerun()

    frac = min(1.0, step / total) if total else 0.0
    st.progress(frac, text=f"step {step:,} / {total:,}" if total else "preparing...")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Epoch", f"{epoch}/{epochs}" if epochs else "–")
    c2.metric("Step", f"{step:,}")
    c3.metric("Images/s", f"{float(status.get('images_per_s') or 0):.0f}")
    c4.metric("ETA", fmt_eta(status.get("eta_s")) if state == "running" else "–")

    err = status.get("last_error") or ""
    if state == "starting":
        st.info("Starting: loading PyTorch and preparing the data (the first time, the data set is decoded "
                "into a cache)...")
    elif state in ("failed", "dead"):
        st.error(f"The run {'failed' if state == 'failed' else 'died'}: {err or 'no error recorded'}")
        with st.expander("End of the log", expanded=True):
            st.code(run.log_tail(30) or "(train.log is empty)", language=None)
            console = tail_of(run.path / "console.log", 30)
            if console:
                st.caption("console.log (the process's own output)")
                st.code(console, language=None)
    elif state == "collapsed":
        st.warning(f"Training stopped on mode collapse: {err or 'see the log'}. Try a lower learning rate, "
                   f"a different loss, DiffAugment, or collapse action 'rollback'.")
    elif state == "stopped":
        st.info(f"Stopped at step {step:,}. Resume continues from checkpoints/last.pt.")
    elif state == "finished":
        st.success(f"Finished: {step:,} steps. Its epochs, curves and checkpoints are on the Runs page.")
    if not live and state in ("failed", "dead", "stopped") and run.last_checkpoint() is not None:
        if st.button("Resume from last checkpoint", icon=":material/play_arrow:", key="train_resume", disabled=job is not None):
            resume(run)

    left, right = st.columns([2, 3])
    grid = run.latest_grid()
    if grid is not None:
        try:
            left.image(grid.read_bytes(), caption="latest samples (fixed noise)", width="stretch")
        except OSError:
            pass
    else:
        left.caption("Samples appear here after the first steps.")
    fig = loss_chart(run)
    if fig is not None:
        right.plotly_chart(fig, width="stretch", key="train_loss_chart")
    else:
        right.caption("Loss curves appear after the first logged steps.")
    with st.expander("Log", expanded=live):
        st.code(run.log_tail(15) or tail_of(run.path / "console.log", 15) or "(no log yet)", language=None)


def validate_data(source: str) -> str | None:
    """None when usable, else the message."""
    source = source.strip()
    if not source:
        return "Enter a data source: 'synthetic', a folder of images or a .zip."
    if source == "synthetic":
        return None
    p = Path(source).expanduser()
    if not p.exists():
        return f"Data source not found: {p}. Enter a folder of images, a .zip of images, or 'synthetic'."
    try:
        first = next(iter(iter_source_files(p)), None)
    except DataError as e:
        return str(e)
    except OSError as e:
        return f"Cannot read {p}: {e}"
    if first is None:
        return f"No images in {p} (looked for .png, .jpg, .jpeg, .webp, ... files)."
    return None


def config_from_form(preset: str) -> TrainConfig:
    ss = st.session_state
    kw = {f: ss[f"tr_{f}"] for f in FORM_FIELDS if f != "diffaug"}
    kw["diffaug"] = ",".join(ss["tr_diffaug"])
    kw["data"] = kw["data"].strip()
    for f in INT_FIELDS:
        kw[f] = int(kw[f])
    for f in FLOAT_FIELDS:
        kw[f] = float(kw[f])
    kw["img_size"] = int(kw["img_size"])
    kw["device"] = ss["tr_device"]
    return preset_config(preset, **kw)


def adopt_architecture(cfg: TrainConfig, ckpt: Path) -> tuple[TrainConfig, list[str]]:
    """Fine-tuning needs the checkpoint's architecture: take it, and say what changed."""
    ck = load_checkpoint(ckpt)
    other = TrainConfig.from_dict(ck.get("config", {}))
    keys = ("model", "img_size", "z_dim", "ngf", "ndf")
    changed = [f"{k} {getattr(cfg, k)} → {getattr(other, k)}" for k in keys if getattr(cfg, k) != getattr(other, k)]
    return cfg.replace(**{k: getattr(other, k) for k in keys}, init_from=str(ckpt)), changed


def start(job_running: bool, n_cuda: int, choices: dict[str, Path]) -> None:
    ss = st.session_state
    if job_running or jobs.current_job() is not None:
        st.error("A job is already running; stop it before starting another.")
        return
    msg = validate_data(ss["tr_data"])
    if msg:
        st.error(msg)
        return
    try:
        name = safe_run_name(ss["tr_name"])
    except ValueError as e:
        st.error(str(e))
        return
    cfg = config_from_form(ss["tr_preset"])
    init = ss.get("tr_init", "scratch")
    notes = ""
    if init != "scratch":
        try:
            cfg, changed = adopt_architecture(cfg, choices[init])
        except (CheckpointError, KeyError) as e:
            st.error(f"Cannot start from {init}: {e}")
            return
        if changed:
            notes = " Starting from a checkpoint uses its architecture: " + ", ".join(changed) + "."
    nproc = int(ss.get("tr_nproc", 1)) if n_cuda > 1 and not str(cfg.device).startswith(("cpu", "mps", "cuda:")) else 1
    try:
        jobs.start_training(cfg, name, nproc=nproc)
    except jobs.JobError as e:
        st.error(str(e))
        return
    ss["train_watch"] = name
    ss["_tr_renew_name"] = True
    renamed = f" (saved as `{name}`)" if name != ss["tr_name"].strip() else ""
    flash("success", f"Started run {name}{renamed}. It trains in the background: you can close this tab.{notes}")
    save_state()
    st.rerun()


# -- the page ------------------------------------------------------------------------------------

st.title("Train")
init_state()
show_flash()

job = jobs.current_job()
running = job is not None
st.fragment(monitor, run_every=2 if running else None)(running)

st.divider()
st.subheader("New run")
if running:
    st.info(f"A job is running: {job.describe()}. Stop it (above) before starting another run.")

devices = ["auto"] + available_devices()
n_cuda = sum(d.startswith("cuda:") for d in devices)
if st.session_state.get("tr_device") not in devices:
    st.session_state["tr_device"] = "auto"
choices = checkpoint_choices()
init_options = ["scratch"] + list(choices)
if st.session_state.get("tr_init") not in init_options:
    st.session_state["tr_init"] = "scratch"

st.selectbox("Preset", list(PRESETS), key="tr_preset", on_change=on_preset_change,
             help="A recipe: choosing one fills every field below with its values")
st.caption(f"Model **{st.session_state['tr_model']}**: {MODELS[st.session_state['tr_model']].description}")

with st.form("train_form", border=True):
    st.text_input("Data source", key="tr_data",
                  help="'synthetic' (the built-in faces), a folder of images, or a .zip of images")
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox("Model", list(MODELS), key="tr_model")
    c2.selectbox("Image size", [64, 96], key="tr_img_size", help="96 needs the dcgan96, wgan-gp or anime64 model")
    c3.number_input("Epochs", min_value=1, max_value=100_000, step=1, key="tr_epochs")
    c4.number_input("Batch size", min_value=2, max_value=4096, step=8, key="tr_batch_size")
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Learning rate G", min_value=0.0, max_value=1.0, step=1e-5, format="%.5f", key="tr_lr_g")
    c2.number_input("Learning rate D", min_value=0.0, max_value=1.0, step=1e-5, format="%.5f", key="tr_lr_d")
    c3.selectbox("Loss", list(LOSSES), key="tr_loss")
    c4.number_input("D steps per G step (n_critic)", min_value=1, max_value=20, step=1, key="tr_n_critic")
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Latent size (z_dim)", min_value=1, max_value=1024, step=1, key="tr_z_dim")
    c2.number_input("G width (ngf)", min_value=2, max_value=1024, step=8, key="tr_ngf")
    c3.number_input("D width (ndf)", min_value=2, max_value=1024, step=8, key="tr_ndf")
    c4.number_input("Generator EMA half-life, k images (0 = off)", min_value=0.0, max_value=1000.0, step=1.0, format="%.1f", key="tr_ema_kimg")
    c1, c2, c3 = st.columns(3)
    c1.slider("Flip probability", 0.0, 1.0, step=0.05, key="tr_aug_flip")
    c2.slider("Brightness jitter probability", 0.0, 1.0, step=0.05, key="tr_aug_brightness")
    c3.multiselect("DiffAugment policy", list(DIFFAUG_OPS), key="tr_diffaug",
                   help="Differentiable augmentation of D's inputs (real and fake)")
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Evaluate every N epochs (0 = off)", min_value=0, max_value=10_000, step=1, key="tr_eval_every")
    c2.number_input("Images per evaluation", min_value=2, max_value=50_000, step=100, key="tr_eval_n")
    c3.selectbox("Metric", ["swd", "fid"], key="tr_eval_metric", help="best.pt follows it; FID needs Inception weights")
    c4.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="tr_seed")
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Device", devices, key="tr_device")
    if n_cuda > 1:
        c2.number_input("Number of GPUs", min_value=1, max_value=n_cuda, step=1, key="tr_nproc",
                        help="More than one runs torchrun, one process per GPU (device auto)")
    c3.selectbox("Start from", init_options, key="tr_init",
                 help="Fine-tune from a checkpoint (its architecture is used) or start from scratch")
    with st.expander("Advanced"):
        c1, c2, c3, c4 = st.columns(4)
        c1.number_input("Max steps (0 = no limit; smoke runs)", min_value=0, max_value=10**9, step=10, key="tr_max_steps")
        c2.number_input("Log every N steps", min_value=1, max_value=10_000, step=1, key="tr_log_every")
        c3.number_input("Sample grid every N steps", min_value=1, max_value=100_000, step=10, key="tr_latest_every")
        c4.selectbox("On mode collapse", ["stop", "rollback", "warn"], key="tr_collapse_action")
        c1, c2, c3 = st.columns(3)
        c1.number_input("Validation images", min_value=0, max_value=100_000, step=100, key="tr_val_size")
        c2.number_input("Test images", min_value=0, max_value=100_000, step=100, key="tr_test_size")
        c3.selectbox("torch.compile", ["auto", "on", "off"], key="tr_compile",
                     help="auto: on for CPU runs of 500+ steps (measured 1.18× faster; ~40 s to compile first)")
    st.text_input("Run name", key="tr_name", help="Letters, digits, '.', '_' and '-'; other characters become '-'")
    submitted = st.form_submit_button("Start training", icon=":material/play_arrow:", type="primary", disabled=running, key="tr_start")

save_state()
if submitted:
    start(running, n_cuda, choices)
