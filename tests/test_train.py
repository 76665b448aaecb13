"""The trainer: every preset end to end on tiny data, resume equivalence, signals, collapse, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from animegan import step as step_mod
from animegan import train as train_mod
from animegan.checkpoint import load_checkpoint, load_generator
from animegan.config import PRESETS, ConfigError, preset_config
from animegan.metrics.result import MetricResult
from animegan.preflight import DataFitError
from animegan.rundir import ResumeError, Run, RunWriter, write_json_atomic
from animegan.synth import write_synthetic
from animegan.train import train

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(ngf=8, ndf=8, batch_size=8, val_size=4, test_size=4, log_every=2, latest_every=3, threads=1)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


def tiny(preset, faces, **kw):
    return preset_config(preset, data=str(faces), **{**TINY, **kw})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_writes_a_full_run_directory(preset, faces, tmp_path):
    cfg = tiny(preset, faces, epochs=2, max_steps=6)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    assert run.config()["preset"] == preset
    st = run.status()
    assert st.state == "finished" and st.step == 6 and st.total_steps == 6
    # what ran is recorded: the "auto"s as this device decided them
    opts = step_mod.step_options(cfg, torch.device("cpu"), 6).describe()
    assert st.step_options == opts and opts["amp"] == ("bf16" if cfg.amp == "bf16" else "off")
    m = run.metrics()
    assert m["step"][-1] == 6
    for key in ("loss_D", "loss_G", "D_x", "D_G_z", "gp", "lr_G", "lr_D", "images_per_s"):
        values = [v for v in m.get(key, []) if v is not None]  # None: a row without that scalar (no G step)
        assert values and all(abs(v) < 1e6 for v in values), key
    assert [e for e, _ in run.grids()] == sorted({e for e in (1, 2) if e % cfg.sample_every == 0} | {2})  # and the last
    assert (run.path / "samples" / "latest.png").exists()
    assert (run.path / "train.log").read_text()
    lg = load_generator(run.last_checkpoint())
    size = cfg.img_size
    assert lg.G(torch.randn(2, cfg.z_dim)).shape == (2, 3, size, size)
    if preset == "classic-wgangp":
        assert any(v > 0 for v in m["gp"]), "the gradient penalty is computed"
    else:
        assert all(v == 0 for v in m["gp"]), "no gradient penalty without wgan-gp"


def _weights(path):
    ck = load_checkpoint(path)
    return {k: ck[k] for k in ("G", "D", "G_ema", "opt_g", "opt_d") if ck.get(k) is not None}, ck["step"]


def _assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("preset", ["anime64", "classic-wgangp"])
def test_resume_gives_the_same_weights_as_one_go(preset, faces, tmp_path):
    cfg = tiny(preset, faces, epochs=2, aug_flip=0.5, aug_brightness=0.5)
    assert train(cfg, tmp_path / "one", progress=False) == "finished"
    assert train(cfg.replace(epochs=1), tmp_path / "two", progress=False) == "finished"
    assert train(cfg, tmp_path / "two", resume=True, progress=False) == "finished"
    w1, s1 = _weights(tmp_path / "one" / "checkpoints" / "last.pt")
    w2, s2 = _weights(tmp_path / "two" / "checkpoints" / "last.pt")
    assert s1 == s2 == 10
    _assert_same(w1, w2)


def _cli(*args, env_home, **kw):
    env = dict(os.environ, ANIMEGAN_HOME=str(env_home), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "animegan", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(faces, tmp_path, animegan_home):
    out = tmp_path / "run"
    p = _cli("train", "--preset", "classic-dcgan", "--data", str(faces), "--out", str(out), "--ngf", "8", "--ndf", "8",
             "--batch-size", "8", "--val-size", "4", "--test-size", "4", "--epochs", "1000", "--compile", "off", "--threads", "1",
             "--no-progress", env_home=animegan_home)
    deadline = time.time() + 120
    while time.time() < deadline and Run(out).status().step < 3:
        assert p.poll() is None, p.stdout.read()
        time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 0, p.stdout.read()
    st = Run(out).status()
    assert st.state == "stopped" and st.stop_reason == "signal"
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == st.step >= 3
    assert any(e["event"] == "stopped" for e in Run(out).events())


def _collapsing_models(*a, **kw):
    G, D = _real_build(*a, **kw)
    last = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    torch.nn.init.zeros_(last.weight)  # with lr_g ~0 every sample stays the same flat image
    return G, D


_real_build = step_mod.build_models


@pytest.mark.parametrize("action", ["stop", "rollback"])
def test_forced_collapse_is_detected(action, faces, tmp_path, monkeypatch):
    monkeypatch.setattr(step_mod, "build_models", _collapsing_models)
    cfg = tiny("classic-dcgan", faces, epochs=10, max_steps=30, lr_g=1e-12, latest_every=5, collapse_action=action)
    state = train(cfg, tmp_path / "run", progress=False)
    run = Run(tmp_path / "run")
    events = [e["event"] for e in run.events()]
    assert "collapse" in events
    collapse_rows = [m for m in (run.metrics().get("collapse") or []) if m]
    assert collapse_rows and "alike" in collapse_rows[0]
    if action == "stop":
        assert state == "collapsed" and run.status().state == "collapsed" and run.status().stop_reason == "collapse"
        assert "collapse" in run.status().last_error
    else:
        # Rolled back with a halved, then quartered... learning rate; a collapse that persists
        # after the last rollback ends the run as collapsed instead of looping forever.
        rbs = [e for e in run.events() if e["event"] == "rollback"]
        assert [e["lr_D"] for e in rbs] == pytest.approx([cfg.lr_d / 2, cfg.lr_d / 4, cfg.lr_d / 8])
        assert state == "collapsed" and "rollbacks" in run.status().last_error


def test_healthy_training_is_not_flagged(faces, tmp_path):
    cfg = tiny("anime64", faces, epochs=10, max_steps=30, latest_every=5)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    assert not [e for e in Run(tmp_path / "run").events() if e["event"] == "collapse"]


def test_bad_settings_are_clear_errors(faces, tmp_path):
    # found once the data is prepared (it is too small): the preflight's own message, naming the
    # field; the run is marked failed with it
    with pytest.raises(DataFitError, match="--batch-size 512 is larger than the training split: it has only "
                                           "[0-9]+ images, fewer than one batch") as e:
        train(tiny("classic-dcgan", faces, batch_size=512), tmp_path / "r1", progress=False)
    assert e.value.field == "batch_size"
    failed = Run(tmp_path / "r1").status()
    assert failed.state == "failed" and "--batch-size 512 is larger" in failed.last_error
    # found in the settings alone (config.validate): refused before anything is written
    with pytest.raises(ConfigError, match="unknown loss") as e:
        train(tiny("classic-dcgan", faces, loss="nope"), tmp_path / "r2", progress=False)
    assert not isinstance(e.value, train_mod.TrainingError)
    assert not (tmp_path / "r2").exists()
    assert issubclass(train_mod.TrainingError, ConfigError)  # one `except ConfigError` catches both


def test_resume_forgets_rows_logged_after_the_checkpoint(faces, tmp_path):
    cfg = tiny("classic-dcgan", faces, epochs=1, log_every=1)
    out = tmp_path / "run"
    assert train(cfg, out, progress=False) == "finished"
    # Rows a killed trainer logged after its last checkpoint...
    from animegan.rundir import append_jsonl
    append_jsonl(out / "metrics.jsonl", {"step": 99, "loss_D": 1.0})
    assert train(cfg.replace(epochs=2), out, resume=True, progress=False) == "finished"
    steps = Run(out).metrics()["step"]
    assert steps == sorted(steps) and 99 not in steps and steps[-1] == 10


def test_evaluation_during_training_keeps_the_best(faces, tmp_path):
    cfg = tiny("classic-dcgan", faces, epochs=3, eval_every=1, eval_n=4, eval_metric="swd")
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    evals = run.evals()
    assert [e["epoch"] for e in evals] == [1, 2, 3] and [e["step"] for e in evals] == [5, 10, 15]
    assert all(e["metric"] == "swd" and e["n"] == 4 and e["reference"].startswith("val split of ") for e in evals)
    best = min(evals, key=lambda e: e["value"])
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert ck["step"] == best["step"] and ck["epoch"] == best["epoch"] and ck["eval"]["value"] == best["value"]
    assert ck["best"]["value"] == best["value"]


def test_patience_stops_at_the_evaluation_that_exhausts_it(faces, tmp_path, monkeypatch):
    # Scripted values: better, better, worse, better (the count starts again), worse, worse -> stop.
    values = iter([5.0, 4.0, 4.5, 3.5, 4.1, 4.2, 1.0, 1.0])

    def scripted(G, data, split, *, metric, n, seed=0, device="cpu", inception_weights=None):
        return MetricResult(metric, next(values), n, f"{split} split (scripted)", seed)

    monkeypatch.setattr("animegan.metrics.evaluation.evaluate_on_split", scripted)
    cfg = tiny("classic-dcgan", faces, epochs=8, eval_every=1, eval_n=4, eval_metric="swd", patience=2)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    assert [e["value"] for e in run.evals()] == [5.0, 4.0, 4.5, 3.5, 4.1, 4.2]
    stops = [e for e in run.events() if e["event"] == "early_stop"]
    assert len(stops) == 1 and stops[0]["step"] == 30 and stops[0]["best_epoch"] == 4 and stops[0]["patience"] == 2
    st = run.status()
    assert st.state == "finished" and st.step == 30 and st.total_steps == 40
    assert st.stop_reason == "early_stop"
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["step"] == 30
    best = load_checkpoint(run.path / "checkpoints" / "best.pt")
    assert best["step"] == 20 and best["eval"]["value"] == 3.5 and best["best"]["bad_evals"] == 0


def test_an_early_stop_by_eval_kimg_mid_epoch_is_finished_not_stopped(faces, tmp_path, monkeypatch):
    # Evaluations every 24 images (3 steps; 5 steps an epoch): better, worse -> stop at step 6, mid-epoch.
    values = iter([5.0, 6.0, 1.0, 1.0])

    def scripted(G, data, split, *, metric, n, seed=0, device="cpu", inception_weights=None):
        return MetricResult(metric, next(values), n, f"{split} split (scripted)", seed)

    monkeypatch.setattr("animegan.metrics.evaluation.evaluate_on_split", scripted)
    cfg = tiny("classic-dcgan", faces, epochs=8, eval_kimg=0.024, eval_n=4, eval_metric="swd", patience=1)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    st = run.status()
    assert (st.state, st.stop_reason, st.step) == ("finished", "early_stop", 6)
    assert [(e["event"], e["step"]) for e in run.events()] == [("early_stop", 6)]
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["step"] == 6


def test_fid_without_inception_weights_is_skipped_with_a_clear_log_line(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights there, and no network in tests
    monkeypatch.setattr("animegan.metrics.fid.find_inception_weights", lambda path=None: None)
    cfg = tiny("classic-dcgan", faces, epochs=1, eval_every=1, eval_n=4, eval_metric="fid")
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "FID skipped" in log and "pt_inception-2015-12-05-6726825d.pth" in log
    assert [e["metric"] for e in Run(tmp_path / "run").evals()] == ["swd"]


def test_compile_is_automatic_only_for_long_cpu_runs():
    from animegan.cli import build_parser, config_from_args
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    cfg = preset_config("anime64")
    assert cfg.compile == "auto"
    assert not step_mod.compile_enabled(cfg, cpu, 100)       # short runs stay eager: compiling costs ~40 s
    assert not step_mod.compile_enabled(cfg, cuda, 10_000)   # opt-in on CUDA
    assert step_mod.compile_enabled(cfg.replace(compile="on"), cuda, 10)
    assert not step_mod.compile_enabled(cfg.replace(compile="off"), cpu, 10_000)
    # the other step options: channels_last and bf16 autocast are CUDA's defaults; a CPU with native
    # bf16 stays in fp32 unless asked (a bf16 run stalled there: docs/recipes.md)
    StepOptions = step_mod.StepOptions
    assert step_mod.step_options(cfg, cpu, 100) == StepOptions(compile=False, channels_last=False, amp=False)
    assert step_mod.step_options(cfg, cuda, 100) == StepOptions(compile=False, channels_last=True, amp=True)
    assert step_mod.step_options(cfg.replace(amp="off", channels_last="off"), cuda, 100) == StepOptions()
    assert step_mod.step_options(cfg.replace(amp="bf16", channels_last="on", compile="on"), cpu, 1) == StepOptions(True, True, True)
    a = build_parser().parse_args(["train", "--compile"])
    assert config_from_args(a).compile == "on"


def test_tensorboard_scalars_and_images_are_written(faces, tmp_path):
    cfg = tiny("classic-dcgan", faces, epochs=1, max_steps=4, tensorboard=True)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_minutes_budget_ends_the_run_finished_with_a_checkpoint(faces, tmp_path):
    cfg = tiny("anime64", faces, epochs=10_000, minutes=0.05, eval_kimg=0.05, eval_n=4, compile="off")  # (not about compiling)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    st = run.status()
    assert st.state == "finished" and st.stop_reason == "time_budget"
    assert 0 < st.step < st.total_steps, "stopped by the clock, not by the epochs"
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ck["step"] == st.step
    assert any(e["event"] == "time_budget" for e in run.events())
    evals = run.evals()
    assert evals and all("kimg" in e for e in evals)
    assert evals[-1]["step"] == st.step, "the budget's end is evaluated"
    from animegan.checkpoint import export_generator
    assert [c["kimg"] for c in ck["curve"]] == [e["kimg"] for e in evals], "last.pt carries the SWD curve"
    out = export_generator(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "export.pt")
    assert load_checkpoint(out)["curve"] == ck["curve"] and ck["curve"][0]["split"] == "val", "and so does its export"


def test_r1_penalty_is_applied_lazily(faces, tmp_path):
    cfg = tiny("anime64", faces, epochs=1, max_steps=5, loss="bce", r1_gamma=1.0, r1_every=2, log_every=1)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    from animegan.rundir import read_jsonl
    rows = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss_D" in r]
    r1 = [r.get("r1") for r in rows]
    assert [v is not None and v > 0 for v in r1] == [True, False, True, False, True], r1


def test_resume_of_a_run_whose_trainer_died_while_starting_goes_ahead(faces, tmp_path, monkeypatch):
    # status.json says "starting" under a process that is gone (killed while importing torch): the
    # run reads dead, and a resume goes ahead, loading last.pt once.
    cfg = tiny("classic-dcgan", faces, epochs=1)
    out = tmp_path / "run"
    assert train(cfg, out, progress=False) == "finished"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    status = json.loads((out / "status.json").read_text())
    write_json_atomic(out / "status.json", {**status, "state": "starting", "pid": gone.pid})
    assert Run(out).status().state == "dead"
    loads = []
    real_load = train_mod.ckpt.load_checkpoint
    monkeypatch.setattr(train_mod.ckpt, "load_checkpoint", lambda path, *a, **kw: loads.append(Path(path)) or real_load(path, *a, **kw))
    assert train(cfg.replace(epochs=2), out, resume=True, progress=False) == "finished"
    assert Run(out).status().step == 10
    assert loads == [out / "checkpoints" / "last.pt"], "a resume loads last.pt once"


def test_resume_of_a_run_another_live_process_trains_is_refused_untouched(faces, tmp_path):
    cfg = tiny("classic-dcgan", faces, epochs=1)
    out = tmp_path / "run"
    assert train(cfg, out, progress=False) == "finished"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        status = json.loads((out / "status.json").read_text())
        write_json_atomic(out / "status.json", {**status, "state": "starting", "pid": other.pid})
        before = {n: (out / n).read_bytes() for n in ("config.json", "status.json", "metrics.jsonl")}
        with pytest.raises(ResumeError, match=f"still training \\(pid {other.pid}\\)"):
            train(cfg.replace(epochs=2), out, resume=True, progress=False)
        assert {n: (out / n).read_bytes() for n in before} == before
    finally:
        other.kill()
        other.wait()
    assert train(cfg.replace(epochs=2), out, resume=True, progress=False) == "finished"  # once it is gone


def test_resume_without_last_pt_is_refused(faces, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(tiny("classic-dcgan", faces).to_dict()))
    with pytest.raises(ResumeError, match="no checkpoints/last.pt"):
        train(tiny("classic-dcgan", faces), out, resume=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_a_disabled_run_writer_writes_nothing(tmp_path):
    # torchrun ranks other than 0 hold one
    w = RunWriter(tmp_path / "run", enabled=False)
    w.open({"a": 1}, {"state": "starting"})
    w.update_status(state="running")
    w.metrics({"step": 1, "loss_D": 1.0})
    w.eval({"step": 1, "metric": "swd", "value": 1.0})
    w.event("stopped", 1, 0)
    w.grid(torch.zeros(4, 3, 8, 8), "latest.png")
    w.drop_rows_after(0)
    assert not (tmp_path / "run").exists() and w.best_eval("swd") == {}
