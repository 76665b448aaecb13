"""Train: set up a run, start it in the background, watch it live, stop or resume it.

The trainer is a separate process (`animegan.jobs`): closing the tab or restarting the app does
not stop it, and opening this page later finds it again (the job lock and the run directory).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import streamlit as st

from animegan import jobs, paths, speed
from animegan.augment import DIFFAUG_OPS
from animegan.checkpoint import CheckpointError, adopt_architecture
from animegan.config import (
    ARCHITECTURE_FIELDS,
    COLLAPSE_ACTIONS,
    IMAGE_SIZES,
    LOSSES,
    METRICS,
    PRESETS,
    SWITCHES,
    SYNTHETIC,
    UNKNOWN_STATE,
    AnimeganError,
    ConfigError,
    TrainConfig,
    canonical_preset,
    preset_config,
)
from animegan.devices import available_devices
from animegan.metrics.fid import find_inception_weights, missing_weights_message
from animegan.models import MODELS
from animegan.preflight import RunPlan, preflight
from animegan.rundir import COMPILING_PHASE, Run, RunStatus, list_runs, safe_run_name, tail_lines
from animegan.step import COMPILE_MIN_STEPS, COMPILE_SECONDS
from app_pages import shared

# Form widgets are keyed "tr_<TrainConfig field>"; a preset fills all of them.
INT_FIELDS = ("epochs", "batch_size", "z_dim", "ngf", "ndf", "n_critic", "eval_every", "eval_n", "seed",
              "max_steps", "log_every", "latest_every", "val_size", "test_size")
FLOAT_FIELDS = ("lr_g", "lr_d", "aug_flip", "aug_brightness", "aug_brightness_strength", "ema_kimg", "minutes",
                "eval_kimg")
CHOICE_FIELDS = ("model", "img_size", "loss", "eval_metric", "collapse_action", "compile")
FORM_FIELDS = ("data",) + INT_FIELDS + FLOAT_FIELDS + CHOICE_FIELDS + ("diffaug",)
EXTRA_KEYS = ("tr_preset", "tr_device", "tr_nproc", "tr_init", "tr_name")
# The form's labels, by TrainConfig field: the widgets use them, and messages name the field the
# user sees where the package names a command-line flag ("--batch-size" -> "Batch size").
LABELS = {
    "data": "Data source", "model": "Model", "img_size": "Image size", "epochs": "Epochs", "batch_size": "Batch size",
    "lr_g": "Learning rate G", "lr_d": "Learning rate D", "loss": "Loss", "n_critic": "D steps per G step (n_critic)",
    "z_dim": "Latent size (z_dim)", "ngf": "G width (ngf)", "ndf": "D width (ndf)",
    "ema_kimg": "Generator EMA half-life, k images (0 = off)", "aug_flip": "Flip probability",
    "aug_brightness": "Brightness jitter probability", "aug_brightness_strength": "Brightness strength",
    "diffaug": "DiffAugment policy", "eval_every": "Evaluate every N epochs (0 = off)",
    "eval_n": "Images per evaluation", "eval_kimg": "Also evaluate every N k images (0 = off)", "eval_metric": "Metric", "seed": "Random seed", "device": "Device",
    "minutes": "Time budget, minutes (0 = none)", "max_steps": "Max steps (0 = no limit; smoke runs)",
    "log_every": "Log every N steps", "latest_every": "Sample grid every N steps", "collapse_action": "On mode collapse",
    "val_size": "Validation images", "test_size": "Test images", "compile": "torch.compile",
}
HANDOFF = "train_handoff"           # set by the Dataset page's "Train on this data"
COLORS = {"loss_D": "#ff6fa8", "loss_G": "#4dabf7", "aug_p": "#ffd43b"}
SAVED = "train_form_saved"          # non-widget copy: survives visits to other pages
MEASURED = "train_speed_measured"   # speed key -> speed.Speed timed on this page (this session)
STATE_ICON = {"starting": ":material/hourglass_top:", "running": ":material/directions_run:",
              "finished": ":material/check_circle:", "stopped": ":material/pause_circle:",
              "collapsed": ":material/warning:", "failed": ":material/error:", "dead": ":material/heart_broken:",
              COMPILING_PHASE: ":material/memory:", UNKNOWN_STATE: ":material/help:"}


def label(field: str) -> str:
    """A field's label without its parenthetical hint, for messages."""
    return LABELS[field].split(" (")[0]


def in_words(error: Exception) -> str:
    """A package error as this page says it: the field a ConfigError names by its label on the
    form (in bold), a field that only a preset sets by its config name."""
    if isinstance(error, ConfigError):
        return error.render(lambda f: f"**{label(f)}**" if f in LABELS else f"`{f}`")
    return str(error)


def default_name(preset: str) -> str:
    return f"{preset or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def fill_from_config(cfg: TrainConfig, only: list[str] | None = None) -> None:
    session = st.session_state
    for f in only or FORM_FIELDS:
        v = getattr(cfg, f)
        if f == "diffaug":
            v = [p.strip() for p in v.split(",") if p.strip() in DIFFAUG_OPS]
        elif f in INT_FIELDS or f == "img_size":
            v = int(v)
        elif f in FLOAT_FIELDS:
            v = float(v)
        session[f"tr_{f}"] = v


def on_preset_change() -> None:
    session = st.session_state
    data = session.get("tr_data", SYNTHETIC)
    fill_from_config(preset_config(session["tr_preset"]))
    session["tr_data"] = data  # the data source is not part of a recipe
    if session.get("tr_name") in ("", session.get("_tr_auto_name")):  # not typed by the user: follow the preset
        session["tr_name"] = session["_tr_auto_name"] = default_name(session["tr_preset"])


def init_state() -> None:
    session = st.session_state
    if "tr_epochs" in session:
        pass
    elif session.get(SAVED):
        for k, v in session[SAVED].items():
            session[k] = v
    else:
        session["tr_preset"] = "anime64"
        fill_from_config(preset_config("anime64"))
        session["tr_device"] = "auto"
        session["tr_nproc"] = 1
        session["tr_init"] = "scratch"
    try:  # a form saved before the presets were renamed (seed-* -> classic-*)
        session["tr_preset"] = canonical_preset(session.get("tr_preset", ""))
    except ConfigError:
        session["tr_preset"] = "anime64"
    missing = [f for f in FORM_FIELDS if f"tr_{f}" not in session]
    if missing:  # a form saved before these fields were on it: the preset's values
        fill_from_config(preset_config(session["tr_preset"]), missing)
    if session.pop("_tr_renew_name", False) or not session.get("tr_name"):
        session["tr_name"] = session["_tr_auto_name"] = default_name(session.get("tr_preset", ""))
    take_handoff()


HANDOFF_EXTRA = ("preset", "init_from", "minutes")  # handed keys besides FORM_FIELDS (the own-data flow)


def take_handoff() -> None:
    """The Dataset page's "Train on this data": a preset (its values first), then its source, size,
    augmentation, time budget and starting checkpoint fill the form; the flash says what came."""
    session = st.session_state
    hand = session.pop(HANDOFF, None)
    if not hand:
        return
    said = []
    if hand.get("preset"):
        try:
            preset = canonical_preset(str(hand["preset"]))
        except ConfigError:
            preset = None
        if preset in PRESETS:
            data = session.get("tr_data", SYNTHETIC)
            session["tr_preset"] = preset
            fill_from_config(preset_config(preset))
            session["tr_data"] = data
            said.append(f"preset **{preset}**")
    for k, v in hand.items():
        if k in FORM_FIELDS:
            session[f"tr_{k}"] = v
    if "minutes" in hand:
        session["tr_minutes"] = float(hand["minutes"] or 0)
        said.append(f"time budget {float(hand['minutes'] or 0):g} min")
    init = hand.get("init_from")
    if init:
        given, choices = Path(str(init)).expanduser(), shared.checkpoint_choices()
        pick = (next((n for n, p in choices.items() if p.resolve() == given.resolve()), None)
                or next((n for n, p in choices.items() if p.stem == given.stem), None))
        if pick is not None:
            session["tr_init"] = pick
            said.append(f"starting from **{pick}**")
        else:
            said.append(f"the checkpoint `{init}` is not among **Start from**'s choices: pick one there")
    aug = ", ".join(f"{label(k).lower()} {hand[k]:g}" for k in ("aug_flip", "aug_brightness", "aug_brightness_strength")
                    if k in hand)
    policy = ",".join(hand.get("diffaug") or []) or "none"
    first = "; ".join(said) + "; " if said else ""
    shared.flash("train", "info", f"From the Dataset page: {first}data `{hand.get('data')}` at {hand.get('img_size')} px; "
                                  f"{aug}; DiffAugment {policy}. The other settings are as they were: check them and "
                                  f"press **Start training**.")


def save_state() -> None:
    session = st.session_state
    session[SAVED] = {k: session[k] for k in [f"tr_{f}" for f in FORM_FIELDS] + list(EXTRA_KEYS) if k in session}


def loss_chart(run: Run) -> dict | None:
    """The run's losses against steps and, where the run logs it (--ada-target > 0), the adaptive
    augmentation probability on its own 0..1 axis at the right. A Vega-Lite spec; None before the
    first logged step."""
    m = run.metrics()
    steps = m.get("step") or []
    names = {"loss_D": "loss D", "loss_G": "loss G", "aug_p": "augment p"}
    values = [{"step": s, "series": name, "value": float(v)}
              for col, name in names.items() for s, v in zip(steps, m.get(col) or [], strict=False)
              if s is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    drawn = [name for col, name in names.items() if any(r["series"] == name for r in values)]
    if not any(name in drawn for name in ("loss D", "loss G")):
        return None
    ada = "augment p" in drawn
    color = {"field": "series", "type": "nominal", "title": None,
             "scale": {"domain": drawn, "range": [COLORS[col] for col, name in names.items() if name in drawn]},
             "legend": {"orient": "top", "direction": "horizontal"}}
    x = {"field": "step", "type": "quantitative", "title": "step"}
    layers = [{"transform": [{"filter": "datum.series !== 'augment p'"}], "mark": {"type": "line", "tooltip": True},
               "encoding": {"x": x, "y": {"field": "value", "type": "quantitative", "title": "loss"}, "color": color}}]
    if ada:
        layers.append({"transform": [{"filter": "datum.series === 'augment p'"}],
                       "mark": {"type": "line", "strokeDash": [2, 3], "tooltip": True},
                       "encoding": {"x": x, "color": color,
                                    "y": {"field": "value", "type": "quantitative", "title": "augment p",
                                          "scale": {"domain": [0, 1]}, "axis": {"orient": "right", "grid": False}}}})
    return {"data": {"values": values}, "height": 300, "layer": layers,
            "title": {"text": "Losses" + (" and augmentation p" if ada else ""), "anchor": "start"},
            "resolve": {"scale": {"y": "independent"}}}


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
    try:
        jobs.resume(run)
    except jobs.JobError as e:
        shared.show_error(e)
        return
    st.session_state["train_watch"] = run.name
    shared.flash("train", "success", f"Resuming run {run.name} from checkpoints/last.pt.")
    st.rerun()


def stop_button(run: Run, job: jobs.Job) -> None:
    if not st.button("Stop", icon=":material/stop:", key="train_stop", width="stretch",
                     help="Graceful: the trainer finishes its step and saves a checkpoint"):
        return
    with st.spinner("Stopping: the trainer finishes its step and saves checkpoints/last.pt..."):
        try:
            ok = jobs.stop_job(job)
        except jobs.JobError as e:
            shared.show_error(e)
            return
    if ok:
        shared.flash("train", "success", f"Stopped run {run.name}; its last checkpoint is saved, Resume continues from it.")
    else:
        shared.flash("train", "warning", f"Run {run.name} did not stop in time and was killed; resuming continues from "
                                         f"its last saved checkpoint.")
    st.rerun()


def show_state(run: Run, status: RunStatus) -> None:
    """What the run's state means for the user, and the end of its log when it went wrong."""
    state, step, err = status.state, status.step, status.last_error or ""
    if state == "starting":
        st.info("Starting: loading PyTorch and preparing the data (the first time, the data set is decoded "
                "into a cache)...")
    elif status.phase == COMPILING_PHASE:
        st.info(f"Compiling the networks (torch.compile) before the first step: up to about {COMPILE_SECONDS:.0f} s "
                f"on a CPU, then the steps run faster. The time budget starts after it; images/s and ETA appear "
                f"after it.", icon=":material/memory:")
    elif state in ("failed", "dead"):
        st.error(f"The run {'failed' if state == 'failed' else 'died'}: {err or 'no error recorded'}")
        with st.expander("End of the log", expanded=True):
            st.code(run.log_tail(30) or "(train.log is empty)", language=None, wrap_lines=True)
            console = tail_lines(run.path / "console.log", 30)
            if console:
                st.caption("console.log (the process's own output)")
                st.code(console, language=None, wrap_lines=True)
    elif state == "collapsed":
        st.warning(f"Training stopped on mode collapse: {err or 'see the log'}. Try a lower learning rate, "
                   f"a different loss, DiffAugment, or collapse action 'rollback'.")
    elif state == "stopped":
        st.info(f"Stopped at step {step:,}. Resume continues from checkpoints/last.pt.")
    elif state == "finished":
        st.success(f"Finished: {step:,} steps. Its epochs, curves and checkpoints are on the Runs page.")


def show_progress(run: Run, live: bool) -> None:
    """Latest samples, the loss curves and the log."""
    left, right = st.columns([2, 3])
    grid = run.latest_grid()
    if grid is not None:
        try:
            left.image(grid.read_bytes(), caption="latest samples (fixed noise)", width="stretch")
        except OSError:
            pass
    else:
        left.caption("Samples appear here after the first steps.")
    chart = loss_chart(run)
    if chart is not None:
        right.vega_lite_chart(chart, width="stretch", key="train_loss_chart", alt=f"Losses of run {run.name}")
    else:
        right.caption("Loss curves appear after the first logged steps.")
    with st.expander("Log", expanded=live):
        st.code(run.log_tail(15) or tail_lines(run.path / "console.log", 15) or "(no log yet)", language=None,
                wrap_lines=True)


def speed_metrics(status: RunStatus) -> tuple[str, str]:
    """Images/s and ETA as the trainer wrote them (its own smoothed speed: never recomputed here
    from single rows, which jump); "–" while there is no speed yet (starting, compiling)."""
    ips = status.images_per_s if status.images_per_s > 0 else 0.0
    if status.phase == COMPILING_PHASE:
        return COMPILING_PHASE, "–"
    ips_text = "–" if not ips else f"{ips:,.1f}" if ips < 100 else f"{ips:,.0f}"
    return ips_text, shared.fmt_eta(status.eta_s) if status.state == "running" else "–"


def monitor(was_running: bool) -> None:
    """The job view; a fragment that refreshes itself every 2 s while a job runs."""
    job = jobs.current_job()
    if was_running and job is None:
        st.session_state.pop(MEASURED, None)  # the run recorded real speeds: steps timed before it are stale
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
    status = run.status(job)  # a run its job is still starting reads "starting"
    live = run.trained_by(job)
    state, step, total = status.state, status.step, status.total_steps

    head, btn = st.columns([4, 1])
    head.subheader(f"{STATE_ICON.get(status.phase, '')} Run `{run.name}`: {status.phase}")
    if live:
        with btn:
            stop_button(run, job)
    st.progress(status.fraction, text=f"step {step:,} / {total:,}" if total else "preparing...")
    ips, eta = speed_metrics(status)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Epoch", f"{status.epoch}/{status.epochs}" if status.epochs else "–")
    c2.metric("Step", f"{step:,}")
    c3.metric("Images/s", ips, help="The trainer's own moving average")
    c4.metric("ETA", eta)
    show_state(run, status)
    if not live and state in ("failed", "dead", "stopped") and run.last_checkpoint() is not None:
        if st.button("Resume from last checkpoint", icon=":material/play_arrow:", key="train_resume", disabled=job is not None):
            resume(run)
    show_progress(run, live)


def config_from_form(preset: str) -> TrainConfig:
    session = st.session_state
    kw = {f: session[f"tr_{f}"] for f in FORM_FIELDS if f != "diffaug"}
    kw["diffaug"] = ",".join(session["tr_diffaug"])
    kw["data"] = str(kw["data"]).strip()
    for f in INT_FIELDS:
        kw[f] = int(kw[f])
    for f in FLOAT_FIELDS:
        kw[f] = float(kw[f])
    kw["img_size"] = int(kw["img_size"])
    kw["device"] = session["tr_device"]
    return preset_config(preset, **kw)


def from_checkpoint(cfg: TrainConfig, preset: str, ckpt: Path) -> tuple[TrainConfig, str]:
    """Fine-tuning: the architecture fields left at the preset's value come from the checkpoint
    (`checkpoint.adopt_architecture`); ones the user changed must agree with it (CheckpointError
    lists the contradictions). Returns the config and a note of what was taken."""
    base = preset_config(preset)
    given = {k for k in ARCHITECTURE_FIELDS if getattr(cfg, k) != getattr(base, k)}
    new = adopt_architecture(cfg.replace(init_from=str(ckpt)), given)
    taken = [f"{label(k).lower()} {getattr(cfg, k)} → {getattr(new, k)}" for k in ARCHITECTURE_FIELDS
             if getattr(cfg, k) != getattr(new, k)]
    return new, (" From the checkpoint: " + ", ".join(taken) + ".") if taken else ""


def processes(cfg: TrainConfig, n_cuda: int) -> int:
    """The training processes the form asks for: "Number of GPUs" where there are several and the
    device is left to pick them (auto), else one."""
    several = n_cuda > 1 and not str(cfg.device).startswith(("cpu", "mps", "cuda:"))
    return int(st.session_state.get("tr_nproc", 1)) if several else 1


def start(n_cuda: int, choices: dict[str, Path]) -> None:
    """Start training from the form: every refusal is one message, never a silent no-op."""
    session = st.session_state
    cfg = config_from_form(session["tr_preset"])
    init, notes = session.get("tr_init", "scratch"), ""
    if init != "scratch":
        if init not in choices:
            shared.show_error(f"The checkpoint {init} is no longer there: pick another one under **Start from**.")
            return
        try:
            cfg, notes = from_checkpoint(cfg, session["tr_preset"], choices[init])
        except CheckpointError as e:
            msg = str(e).replace("Leave those settings out to use the checkpoint's",
                                 "Set those fields back to the preset's values to use the checkpoint's")
            shared.show_error(f"Cannot start from {init}: {msg}")
            return
    nproc = processes(cfg, n_cuda)
    try:
        name = safe_run_name(session["tr_name"])
        jobs.start_training(cfg, name, nproc=nproc)  # its preflight: the same checks as the estimate's
    except AnimeganError as e:  # ConfigError (naming its field), JobError, a bad run name
        shared.show_error(in_words(e))
        return
    session["train_watch"] = name
    session["_tr_renew_name"] = True
    renamed = f" (saved as `{name}`)" if name != session["tr_name"].strip() else ""
    shared.flash("train", "success", f"Started run {name}{renamed}. It trains in the background: you can close this tab.{notes}")
    save_state()
    st.rerun()


# -- before Start: can the data feed these settings, and how long is an epoch here? ---------------

@st.cache_data(ttl=30, show_spinner=False)
def _preflight(cfg_items: tuple, processes: int) -> RunPlan:
    return preflight(TrainConfig(**dict(cfg_items)), processes)


@st.cache_data(ttl=10, show_spinner=False)
def _recorded(cfg_items: tuple, device: str) -> speed.Speed | None:
    return speed.recorded_speed(TrainConfig(**dict(cfg_items)), device)


def _items(cfg: TrainConfig) -> tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.to_dict().items())


def measure(running: bool, n_cuda: int) -> None:
    """The "Estimate time per epoch" button: when no earlier run with these settings recorded its
    speed here, time a few eager steps of them on this device."""
    if running:
        shared.show_error("A job is running: timing steps now would slow it and measure the wrong thing. "
                          "Time them when it has ended.")
        return
    try:
        cfg = config_from_form(st.session_state["tr_preset"])
        device = speed.device_type(cfg.device)
        _preflight(_items(cfg), processes(cfg, n_cuda))
    except ConfigError:  # settings that cannot train: the estimate below says why, as a warning
        return
    if st.session_state.get(MEASURED, {}).get(speed.speed_key(cfg, device)) or _recorded(_items(cfg), device):
        return  # known already: the estimate below uses it
    try:
        with st.spinner(f"Timing {max(2, cfg.n_critic)} training steps of batch {cfg.batch_size} on this "
                        f"{device.upper()}..."):
            measured = speed.time_steps(cfg)
    except RuntimeError as e:  # out of memory on the device, for one
        shared.show_error(f"Could not time steps with these settings: {str(e).splitlines()[0][:200]}. "
                          f"Lower the batch size or the widths.")
        return
    st.session_state.setdefault(MEASURED, {})[speed.speed_key(cfg, device)] = measured


def show_estimate(quiet: bool, n_cuda: int) -> None:
    """Time per epoch on this device for the form's settings (as last applied), and whether the
    data can feed them at all: from earlier runs' recorded speed, else steps timed on demand.
    `quiet`: Start was pressed, so a problem is not shown here (Start reports it, once)."""
    session = st.session_state
    try:
        cfg = config_from_form(session["tr_preset"])
        device = speed.device_type(cfg.device)
        plan = _preflight(_items(cfg), processes(cfg, n_cuda)).data
    except ConfigError as e:  # the same preflight, and so the same message, as Start's
        if not quiet:
            st.warning(f"Before you start: {in_words(e)}", icon=":material/warning:")
        return
    # Real steps first: earlier runs' and a running run's own speed (status.json), then steps timed here.
    found = _recorded(_items(cfg), device) or session.get(MEASURED, {}).get(speed.speed_key(cfg, device))
    compiles, why = speed.compile_plan(cfg, plan, device)
    where = "CPU" if device == "cpu" else device.upper()
    text = f"**Data:** {plan.describe()}.  \n**Compiling:** {why}."
    if found is None:
        text += (f"  \n**Time per epoch on this {where}:** no earlier run with these settings here; press "
                 f"**Estimate time per epoch** to time a few steps (a few seconds"
                 f"{' to a minute' if device == 'cpu' else ''}).")
    else:
        found = speed.as_the_run_will_train(found, compiles)
        epoch_s, total_s = found.epoch_seconds(plan), speed.estimate_seconds(cfg, plan, found, compiles)
        budget = (f", the time budget stopping it after {shared.fmt_duration(cfg.minutes * 60)} of training"
                  if cfg.minutes else "")
        age = (f", {shared.fmt_duration(max(0.0, time.time() - found.timed_at))} ago" if found.timed_at else "")
        text += (f"  \n**Time per epoch on this {where}:** about {shared.fmt_duration(epoch_s)} "
                 f"({found.images_per_s:,.1f} images/s: {found.detail}{age}); the run ≈ "
                 f"{shared.fmt_duration(total_s)} ({cfg.epochs:,} epochs{budget}"
                 f"{', compiling included' if compiles else ''}).")
    st.caption(text)


def fid_note() -> str | None:
    """Why FID cannot be picked here (None when it can)."""
    return None if find_inception_weights() is not None else f"FID is unavailable here. {missing_weights_message()}"


def form(running: bool, devices: list[str], n_cuda: int, init_options: list[str]) -> tuple[bool, bool, object]:
    """The New-run form; (Start pressed, Time pressed, the slot for the estimate above the
    buttons). Numbers have no widget bounds: the preflight checks them on Start and says what to
    change (a bound would silently keep the old value)."""
    L = LABELS
    no_fid = fid_note()
    # Enter in a field does not submit: it would press Start, the form's first button, and begin a
    # run of hours from a half-typed form. The settings apply on Start or Estimate.
    with st.form("train_form", border=True, enter_to_submit=False):
        st.text_input(L["data"], key="tr_data",
                      help=f"'{SYNTHETIC}' (the built-in faces), a folder of images, or a .zip of images")
        c1, c2, c3, c4 = st.columns(4)
        c1.selectbox(L["model"], list(MODELS), key="tr_model")
        c2.selectbox(L["img_size"], list(IMAGE_SIZES), key="tr_img_size",
                     help="Not every model draws every size; Start says when they do not fit")
        c3.number_input(L["epochs"], step=1, key="tr_epochs")
        c4.number_input(L["batch_size"], step=8, key="tr_batch_size")
        c1, c2, c3, c4 = st.columns(4)
        c1.number_input(L["lr_g"], step=1e-5, format="%.5f", key="tr_lr_g")
        c2.number_input(L["lr_d"], step=1e-5, format="%.5f", key="tr_lr_d")
        c3.selectbox(L["loss"], list(LOSSES), key="tr_loss")
        c4.number_input(L["n_critic"], step=1, key="tr_n_critic")
        c1, c2, c3, c4 = st.columns(4)
        c1.number_input(L["z_dim"], step=1, key="tr_z_dim")
        c2.number_input(L["ngf"], step=8, key="tr_ngf")
        c3.number_input(L["ndf"], step=8, key="tr_ndf")
        c4.number_input(L["ema_kimg"], step=1.0, format="%.1f", key="tr_ema_kimg")
        c1, c2, c3, c4 = st.columns([1, 1, 1, 1.4])
        c1.slider(L["aug_flip"], 0.0, 1.0, step=0.05, key="tr_aug_flip")
        c2.slider(L["aug_brightness"], 0.0, 1.0, step=0.05, key="tr_aug_brightness")
        c3.slider(L["aug_brightness_strength"], 0.0, 0.5, step=0.05, key="tr_aug_brightness_strength",
                  help="The factor is drawn from [1 − s, 1 + s]")
        c4.multiselect(L["diffaug"], list(DIFFAUG_OPS), key="tr_diffaug",
                       help="Differentiable augmentation of D's inputs (real and fake); preview it on the Dataset page")
        c1, c2, c3, c4 = st.columns(4)
        c1.number_input(L["eval_every"], step=1, key="tr_eval_every")
        c2.number_input(L["eval_n"], step=100, key="tr_eval_n")
        c3.selectbox(L["eval_metric"], list(METRICS), key="tr_eval_metric",
                     format_func=lambda m: "FID (unavailable here)" if m == "fid" and no_fid else m.upper(),
                     help="best.pt follows it. " + (no_fid or "FID uses the Inception weights found on this machine"))
        c4.number_input(L["seed"], step=1, key="tr_seed", help="Initial weights, noise and data order")
        if no_fid:
            st.caption(f":material/block: {no_fid}")
        c1, c2, c3, c4 = st.columns(4)
        c1.selectbox(L["device"], devices, key="tr_device")
        c2.number_input(L["minutes"], step=5.0, format="%.1f", key="tr_minutes",
                        help="Wall-clock budget: the run ends 'finished', with a checkpoint, when it is spent")
        if n_cuda > 1:
            c4.number_input("Number of GPUs", min_value=1, max_value=n_cuda, step=1, key="tr_nproc",
                            help="More than one runs torchrun, one process per GPU (device auto)")
        c3.selectbox("Start from", init_options, key="tr_init",
                     help="Fine-tune from a checkpoint: architecture settings left at the preset's values are "
                          "taken from it; ones you changed must agree with it")
        with st.expander("Advanced"):
            c1, c2, c3, c4 = st.columns(4)
            c1.number_input(L["max_steps"], step=10, key="tr_max_steps")
            c2.number_input(L["log_every"], step=1, key="tr_log_every")
            c3.number_input(L["latest_every"], step=10, key="tr_latest_every")
            c4.selectbox(L["collapse_action"], list(COLLAPSE_ACTIONS), key="tr_collapse_action")
            c1, c2, c3, c4 = st.columns(4)
            c1.number_input(L["val_size"], step=100, key="tr_val_size")
            c2.number_input(L["test_size"], step=100, key="tr_test_size")
            c3.number_input(L["eval_kimg"], step=100.0, format="%.0f", key="tr_eval_kimg",
                            help="For long runs with short epochs (the GPU preset): SWD every N thousand images")
            c4.selectbox(L["compile"], list(SWITCHES), key="tr_compile",
                         help=f"auto: on for CPU runs of {COMPILE_MIN_STEPS}+ steps whose time budget (if any) is "
                              f"long enough; the line above Start says what this run will do and why")
        st.text_input("Run name", key="tr_name", help="Letters, digits, '.', '_' and '-'; other characters become '-'")
        slot = st.container()
        row = st.container(horizontal=True)
        started = row.form_submit_button("Start training", icon=":material/play_arrow:", type="primary",
                                         disabled=running, key="tr_start")
        timed = row.form_submit_button("Estimate time per epoch", icon=":material/timer:", key="tr_time",
                                       disabled=running,
                                       help="From earlier runs with these settings on this device; without one, times "
                                            "a few training steps here (seconds). Also checks the settings against the data")
        return started, timed, slot


# -- the page ------------------------------------------------------------------------------------

st.title("Train")
shared.narrow_window_layout()
init_state()
shared.show_flash("train")

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
choices = shared.checkpoint_choices()
init_options = ["scratch"] + list(choices)
if st.session_state.get("tr_init") not in init_options:
    st.session_state["tr_init"] = "scratch"

st.selectbox("Preset", list(PRESETS), key="tr_preset", on_change=on_preset_change,
             help="A recipe: choosing one fills every field below with its values (classic-*: the classic write-ups' "
                  "published recipes; anime64: the project's own)")
st.caption(f"Model **{st.session_state['tr_model']}**: {MODELS[st.session_state['tr_model']].description}")
submitted, timed, estimate_slot = form(running, devices, n_cuda, init_options)
save_state()
with estimate_slot:
    if timed:
        measure(running, n_cuda)
    show_estimate(quiet=submitted, n_cuda=n_cuda)
if submitted:
    start(n_cuda, choices)
