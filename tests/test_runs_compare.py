"""Runs compared (curves of several runs on one chart, smoothing, x axes, evaluation labels, live
refresh, filmstrip and timelapse) and a Compare page that does not mislead (one chart per metric, n
and reference, rough values marked, checkpoints at their own size, SWD curves, refused jobs).

The package side (`animegan.curves`, `animegan.timelapse`) is tested directly; the pages with
streamlit's AppTest (which runs them in this process, so monkeypatching works).
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from animegan import curves, jobs, paths, rundir, timelapse
from animegan.config import preset_config
from animegan.rundir import Run, RunWriter, append_jsonl, read_json, write_json_atomic
from app_pages import after_paint
from tests.chart_data import vega_chart, vega_charts

ROOT = Path(__file__).resolve().parent.parent
RUNS = str(ROOT / "app_pages" / "runs.py")
HOME = str(ROOT / "app_pages" / "home.py")
COMPARE = str(ROOT / "app_pages" / "compare.py")
TIMEOUT = 120  # the CPU is shared with training runs
SLEEPER = [__import__("sys").executable, "-c", "import time; time.sleep(60)"]


# --------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny finished anime64 runs (different batch sizes, evaluated every epoch) and an export."""
    from animegan.checkpoint import export_generator
    from animegan.synth import write_synthetic
    from animegan.train import train

    base = tmp_path_factory.mktemp("trained")
    faces = write_synthetic(base / "faces", n=48)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(base / "home"))
        for name, batch in (("alpha", 8), ("beta", 16)):
            cfg = preset_config("anime64", data=str(faces), ngf=8, ndf=8, batch_size=batch, epochs=2, val_size=4,
                                test_size=4, eval_every=1, eval_n=4, threads=1, compile="off", log_every=1)
            assert train(cfg, base / "runs" / name, progress=False) == "finished"
            out[name] = base / "runs" / name
        export_generator(out["alpha"], base / "shipped" / "alpha64.pt")
    return {"faces": faces, "shipped": base / "shipped", **out}


@pytest.fixture(autouse=True)
def no_shipped_no_job(monkeypatch, tmp_path, animegan_home):
    empty = tmp_path / "no-shipped"
    empty.mkdir()
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", empty)
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


def install(run_dir: Path, name: str | None = None) -> Run:
    dst = paths.ensure(paths.runs_dir()) / (name or run_dir.name)
    shutil.copytree(run_dir, dst)
    return Run(dst)


def touch_status(run: Run) -> None:
    """Make `run` the most recently updated (the Runs page picks it first)."""
    later = time.time() + 5
    os.utime(run.path / "status.json", (later, later))


def app(script: str) -> AppTest:
    """`script` in a new session, as after the browser painted it once (app_pages/after_paint.py)."""
    at = AppTest.from_file(script, default_timeout=TIMEOUT)
    at.session_state[after_paint.painted_key("cmp_below")] = True
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def figure(at: AppTest, title: str) -> dict:
    found = [f for f in figures(at) if (f["layout"].get("title") or {}).get("text") == title]
    assert len(found) == 1, [(f["layout"].get("title") or {}).get("text") for f in figures(at)]
    return found[0]


def legend_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("showlegend", True)]


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def make_run(path: Path, batch_size: int, rows: list[dict], evals: list[dict] = (), img_size: int = 64) -> Run:
    path.mkdir(parents=True)
    write_json_atomic(path / "config.json", {"batch_size": batch_size, "img_size": img_size, "loss": "hinge",
                                             "eval_metric": "swd"})
    write_json_atomic(path / "status.json", {"state": "finished", "step": rows[-1]["step"] if rows else 0})
    for r in rows:
        append_jsonl(path / "metrics.jsonl", r)
    for e in evals:
        append_jsonl(path / "evals.jsonl", e)
    return Run(path)


@pytest.fixture
def fragments(monkeypatch):
    """Every st.fragment(...) a page makes, as {function name: run_every}."""
    seen: dict[str, object] = {}
    real = st.fragment

    def recording(func=None, *, run_every=None, **kw):
        if func is None:
            return lambda f: recording(f, run_every=run_every, **kw)
        seen[func.__name__] = run_every
        return real(func, run_every=run_every, **kw)
    monkeypatch.setattr(st, "fragment", recording)
    return seen


@pytest.fixture
def media(monkeypatch):
    """The bytes of the images a page showed (AppTest keeps them in an in-memory store)."""
    stores = []

    class Recording(app_test_module.MemoryMediaFileStorage):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            stores.append(self)
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)

    def image_bytes(el) -> bytes:
        file_id = el.proto.imgs[0].url.rsplit("/", 1)[-1].split(".")[0]
        return stores[-1].get_file(file_id).content
    return image_bytes


# --------------------------------------------------------------------------- curves (package)
def test_ema_is_tensorboards_debiased_moving_average():
    assert curves.ema([5.0, 5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0, 5.0])  # not pulled towards 0
    # by hand: last = last·w + (1-w)·v, divided by 1 - w^count
    assert curves.ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    assert curves.ema([1.0, 4.0, 2.0], 0.0) == [1.0, 4.0, 2.0]
    out = curves.ema([1.0, float("nan"), 3.0], 0.5)
    assert math.isnan(out[1]) and out[2] == pytest.approx((0.25 + 1.5) / 0.75)


def test_x_axes_step_images_epoch_and_wall_time(tmp_path):
    t0 = 1_000_000.0
    rows = [{"step": s, "epoch": s / 4, "time": t0 + 10 * s, "loss_D": float(s)} for s in (1, 2, 3, 4)]
    rows.append({"step": 5, "epoch": 1.25, "time": t0 + 50, "loss_D": float("nan")})  # not finite: left out
    rc = curves.RunCurves(make_run(tmp_path / "r", 16, rows))
    assert rc.scalar("loss_D", "step") == ([1, 2, 3, 4], [1, 2, 3, 4])
    assert rc.scalar("loss_D", "images")[0] == [16, 32, 48, 64]       # step × batch_size of config.json
    assert rc.scalar("loss_D", "epoch")[0] == [0.25, 0.5, 0.75, 1.0]
    assert rc.scalar("loss_D", "time")[0] == [0, 10, 20, 30]           # from the run's first row
    assert rc.x_at_steps([2, 3], "time") == [10, 20] and rc.x_at_steps([3], "images") == [48]
    with pytest.raises(ValueError, match="unknown x axis"):
        rc.scalar("loss_D", "kimg")


def test_evaluation_series_never_share_a_label(tmp_path):
    ev = [{"step": s, "epoch": s, "time": 1.0 + s, "metric": m, "value": v, "n": n, "reference": ref}
          for s, m, v, n, ref in [(1, "swd", 9.0, 4, "val split of /d/faces (aaaaaaaa) @64px"),
                                  (2, "swd", 8.0, 4, "val split of /d/faces (aaaaaaaa) @64px"),
                                  (2, "swd", 7.0, 2000, "val split of /d/faces (aaaaaaaa) @64px"),
                                  (2, "swd", 6.0, 4, "val split of /e/faces (bbbbbbbb) @64px"),
                                  (2, "fid", 99.0, 4, "val split of /d/faces (aaaaaaaa) @64px")]]
    ev.append({"checkpoint": "/x.pt", "metric": "swd", "value": 1.0, "n": 4, "reference": "r"})  # no step: no x
    rc = curves.RunCurves(make_run(tmp_path / "r", 8, [{"step": 1, "time": 1.0, "loss_D": 1.0}], ev))
    cs = rc.evals("step")
    labels = [c.label for c in cs]
    assert len(cs) == 4 and len(set(labels)) == 4, labels
    first = next(c for c in cs if c.n == 4 and "aaaaaaaa" in c.label and c.metric == "SWD")
    assert first.x == [1, 2] and first.y == [9.0, 8.0]
    assert all(("rough" in c.label) == (c.n < curves.ROUGH_N) for c in cs)
    assert curves.short_reference(labels[0]) == "SWD · n=4 · val split of faces (aaaaaaaa) @64px · rough"


def test_evaluation_groups_are_never_added_and_best_is_like_for_like(tmp_path):
    rows = [{"metric": "swd", "value": 32.2, "n": 500, "reference": "R"},
            {"metric": "swd", "value": 34.4, "n": 2000, "reference": "R"},
            {"metric": "swd", "value": 30.0, "n": 2000, "reference": "S"}]
    groups = curves.group_evals(rows)
    assert list(groups) == [("SWD", 500, "R"), ("SWD", 2000, "R"), ("SWD", 2000, "S")]
    assert [[r["value"] for r in g] for g in groups.values()] == [[32.2], [34.4], [30.0]]
    assert curves.comparable_note(500) == "rough" and curves.comparable_note(2000) == "same n and reference only"
    assert curves.comparable_note(10_000) == ""
    # A run's "best" is the lowest among values comparable with its latest one, not a tiny-n value.
    ev = [{"step": 1, "metric": "swd", "value": 1.0, "n": 4, "reference": "R"},
          {"step": 2, "metric": "swd", "value": 40.0, "n": 2000, "reference": "R"},
          {"step": 3, "metric": "swd", "value": 38.0, "n": 2000, "reference": "R"}]
    assert make_run(tmp_path / "r", 8, [{"step": 1}], ev).best_eval()["value"] == 38.0


# --------------------------------------------------------------------------- filmstrip and timelapse
def coloured_run(tmp_path: Path, epochs: int = 3, faces: int = 9, size: int = 16) -> Run:
    """A run whose epoch grids (written by the trainer's RunWriter) hold face i of epoch e in one
    flat colour: red = 20·i, green = 40·e."""
    path = tmp_path / "coloured"
    w = RunWriter(path)
    w.open({"img_size": size, "batch_size": 8}, {"state": "finished"})
    for e in range(1, epochs + 1):
        imgs = torch.zeros(faces, 3, size, size)
        for i in range(faces):
            imgs[i, 0], imgs[i, 1] = 20 * i / 255, 40 * e / 255
        w.grid(imgs * 2 - 1, f"epoch_{e:04d}.png")
    return Run(path)


def test_filmstrip_puts_face_i_of_every_epoch_in_row_i(tmp_path):
    run = coloured_run(tmp_path)
    strip = timelapse.filmstrip(run, faces=4, max_epochs=8)
    size, cell = 16, 16 + timelapse.PADDING
    assert strip.size == (timelapse.PADDING + 3 * cell, timelapse.LABEL_H + timelapse.PADDING + 4 * cell)
    for e in (1, 2, 3):
        for i in range(4):
            x = timelapse.PADDING + (e - 1) * cell + size // 2
            y = timelapse.LABEL_H + timelapse.PADDING + i * cell + size // 2
            r, g, _ = strip.getpixel((x, y))
            assert abs(r - 20 * i) <= 1 and abs(g - 40 * e) <= 1, (e, i, r, g)
    assert timelapse.pick_epochs(list(range(1, 21)), 5) == [1, 6, 11, 15, 20]
    assert timelapse.filmstrip(Run(tmp_path / "none")) is None


def test_timelapse_gif_has_one_frame_per_epoch_and_a_cli(tmp_path, capsys):
    run = coloured_run(tmp_path, epochs=4)
    gif = Image.open(io.BytesIO(timelapse.gif_bytes(run, fps=5)))
    assert gif.format == "GIF" and gif.n_frames == 4
    durations = []
    for k in range(gif.n_frames):
        gif.seek(k)
        durations.append(gif.info["duration"])
    assert durations[0] == 200 and durations[-1] > durations[0]  # the last epoch is held
    out = tmp_path / "t.gif"
    from animegan.cli import main
    assert main(["timelapse", str(run.path), "--out", str(out), "--fps", "2"]) == 0
    assert Image.open(out).n_frames == 4 and "4 epoch(s)" in capsys.readouterr().out


# --------------------------------------------------------------------------- Runs page
def test_runs_overlay_puts_every_picked_run_on_one_chart_per_scalar(trained):
    install(trained["beta"])
    touch_status(install(trained["alpha"]))
    at = app(RUNS)
    assert at.selectbox(key="runs_pick").value == "alpha"
    fig = figure(at, "Loss D")
    assert [t["name"] for t in legend_traces(fig)] == ["alpha"]
    at.multiselect(key="runs_overlay").set_value(["beta"]).run()
    assert not at.exception
    titles = [(f["layout"].get("title") or {}).get("text") for f in figures(at)]
    for title in ("Loss D", "Loss G", "D(x): D on real images", "D(G(z)): D on generated images", "Images per second",
                  "SWD (lower is better)"):
        assert title in titles, titles
    fig = figure(at, "Loss D")
    assert [t["name"] for t in legend_traces(fig)] == ["alpha", "beta"]
    raw = [t for t in fig["data"] if not t.get("showlegend", True)]
    assert len(raw) == 2 and all(t["opacity"] < 0.5 for t in raw)  # the raw curve faint behind the smooth one
    alpha_raw, alpha_smooth = fig["data"][0], fig["data"][1]
    assert alpha_smooth["y"] == pytest.approx(curves.ema(alpha_raw["y"], 0.6))
    assert alpha_raw["line"]["color"] == alpha_smooth["line"]["color"]
    # legend under the plot, title on top: the legend never covers it
    assert fig["layout"]["legend"]["y"] < 0 and fig["layout"]["legend"]["yanchor"] == "top"
    # x axis by images seen: each run's steps × its own batch size
    at.selectbox(key="runs_x").set_value("images").run()
    beta = [t for t in figure(at, "Loss D")["data"] if t["name"] == "beta"][0]
    steps = [r["step"] for r in rundir.read_jsonl(trained["beta"] / "metrics.jsonl") if "loss_D" in r]
    assert beta["x"] == [16 * s for s in steps]
    # no smoothing: one trace per run; log scale
    at.slider(key="runs_smooth").set_value(0.0).run()
    at.toggle(key="runs_log").set_value(True).run()
    fig = figure(at, "Loss D")
    assert len(fig["data"]) == 2 and fig["layout"]["yaxis"]["type"] == "log"
    swd = figure(at, "SWD (lower is better)")
    names = [t["name"] for t in swd["data"]]
    assert len(names) == 2 and len(set(names)) == 2 and all("n=4" in n and "rough" in n for n in names), names


def test_runs_evaluation_series_of_one_run_have_distinct_labels(trained):
    run = install(trained["alpha"])
    for ep, n in ((1, 8), (2, 8)):
        append_jsonl(run.path / "evals.jsonl", {"epoch": ep, "step": 5 * ep, "time": time.time(), "metric": "swd",
                                                "value": 500.0 - ep, "n": n, "reference": "val split of x (cccccccc) @64px"})
    at = app(RUNS)
    names = [t["name"] for t in figure(at, "SWD (lower is better)")["data"]]
    assert len(names) == 2 and len(set(names)) == 2, names
    assert any("n=8" in n and "cccccccc" in n for n in names) and any("n=4" in n for n in names)
    table = at.dataframe[0].value
    assert set(table["note"]) == {"rough"}


def test_runs_filmstrip_and_timelapse_download(trained):
    install(trained["alpha"])
    at = app(RUNS)
    captions = [c for im in at.image for c in im.captions]
    assert any("each column one epoch" in c for c in captions), captions
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download timelapse (GIF)" in labels


def test_runs_page_refreshes_itself_while_the_run_trains(trained, fragments):
    run = install(trained["alpha"])
    app(RUNS)
    assert fragments["run_view"] is None  # finished: nothing to follow
    write_json_atomic(run.path / "status.json", dict(read_json(run.path / "status.json"), state="running",
                                                     pid=os.getpid()))
    at = app(RUNS)
    assert fragments["run_view"] == 2.0
    assert any("training now" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["State"] == "running"


def test_home_now_running_refreshes_itself_while_a_job_runs(trained, fragments, tmp_path):
    run = install(trained["alpha"])
    app(HOME)
    assert fragments["now_running"] is None
    log = tmp_path / "job.log"
    log.write_text("step 3/4\n")
    fake = jobs.Job(kind="train", pid=999_999_999, argv=[], log=log, run_dir=run.path, started=time.time() - 60,
                    label="training run alpha")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "current_job", lambda *a, **k: fake)
        at = app(HOME)
        assert fragments["now_running"] == 2.0
        assert at.get("progress")


# --------------------------------------------------------------------------- Compare page
def test_compare_one_chart_per_metric_n_and_reference_never_adding(trained, monkeypatch):
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", trained["shipped"])
    ck = trained["shipped"] / "alpha64.pt"
    ref = "val split of synthetic (ba22c57a) @64px"
    for value, n in ((32.2, 500), (34.4, 2000)):
        rundir.record_eval(ck, {"metric": "swd", "value": value, "n": n, "reference": ref, "seed": 0})
    at = app(COMPARE)
    at.session_state["cmp_summary_open"] = True   # the summary draws when opened
    at.run()
    assert not at.error, errors(at)
    charts = [[r for r in c["rows"] if r["name"] is not None] for c in vega_charts(at, "SWD at n=")]  # the bars
    values = sorted(r["value"] for bars in charts for r in bars)
    assert 32.2 in values and 34.4 in values
    assert not any(abs(v - 66.6) < 0.1 for v in values), "a checkpoint's values at different n were added"
    for bars in charts:  # within a chart every bar is its own name: nothing stacked
        assert len(bars) == len({r["name"] for r in bars})
    n500 = [bars for bars in charts if 32.2 in [r["value"] for r in bars]][0]
    assert 34.4 not in [r["value"] for r in n500]               # n=500 and n=2000 on separate scales
    assert all("rough" in r["label"] for r in n500)             # and the n < 1,000 value says so
    summary = at.dataframe[-1].value
    notes = dict(zip(summary["value"], summary["note"], strict=True))
    assert notes[32.2] == "rough" and notes[34.4] == "same n and reference only"
    heads = "\n".join(m.value for m in at.markdown)
    assert "SWD · n=500" in heads and "SWD · n=2,000" in heads and ref in heads


def save_tiny_generator(path: Path, size: int, curve: list | None = None) -> Path:
    """A tiny generator checkpoint made with the package's own functions (a 96 px one need not exist yet)."""
    from animegan.checkpoint import save_checkpoint
    from animegan.models import build_models
    model = "dcgan96" if size == 96 else "dcgan"
    cfg = preset_config("classic-dcgan96" if size == 96 else "classic-dcgan", ngf=8, ndf=8, img_size=size)
    G, _ = build_models(model, cfg.z_dim, cfg.ngf, cfg.ndf, size)
    obj = {"kind": "generator", "config": cfg.to_dict(), "G": G.state_dict(), "G_ema": None, "eval": {},
           "info": {}, "step": 10, "epoch": 1}
    if curve is not None:
        obj[curves.CURVE_KEY] = curve
    return save_checkpoint(obj, path)


def test_compare_96_and_64_px_checkpoints_side_by_side_each_at_its_own_size(tmp_path, monkeypatch, media):
    shipped = tmp_path / "shipped"
    save_tiny_generator(shipped / "a64.pt", 64)
    save_tiny_generator(shipped / "b96.pt", 96)
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", shipped)
    at = app(COMPARE)
    assert at.multiselect(key="cmp_sel").value == ["shipped: a64", "shipped: b96"]
    assert not at.error, errors(at)
    assert len(at.image) == 2
    sizes = {}
    for im in at.image:
        png = Image.open(io.BytesIO(media(im)))
        assert png.format == "PNG"  # as drawn, not re-encoded as JPEG
        sizes[im.captions[0].split(" · ")[1]] = png.size
    zoom = 1  # auto: a row of four 96 px faces at 2× would not fit a card
    assert sizes["64 px shown at 1×"] == (zoom * (4 * 66 + 2),) * 2
    assert sizes["96 px shown at 1×"] == (zoom * (4 * 98 + 2),) * 2
    at.selectbox(key="cmp_zoom").set_value(2).run()
    assert sorted(Image.open(io.BytesIO(media(im))).width for im in at.image) == [532, 788]


def test_compare_shows_the_swd_curve_of_checkpoints_that_carry_one(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    curve = [{"kimg": 2.0, "value": 80.0, "n": 1000, "split": "val"}, {"kimg": 1.0, "value": 90.0, "n": 1000, "split": "val"},
             {"kimg": 3.0, "value": 70.0, "n": 1000, "split": "val"}, {"kimg": "x", "value": 1.0}]
    save_tiny_generator(shipped / "with.pt", 64, curve=curve)
    save_tiny_generator(shipped / "without.pt", 64)
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", shipped)
    at = app(COMPARE)
    chart = vega_chart(at, "SWD during training")
    assert chart["spec"]["title"]["text"] == "SWD during training (lower is better)"
    lines = sorted({r["line"] for r in chart["rows"]})
    assert len(lines) == 1 and lines[0].startswith("shipped: with") and "n=1,000" in lines[0]
    assert [r["images seen"] for r in chart["rows"]] == [1000, 2000, 3000]   # by images seen; the bad point left out
    assert [r["SWD"] for r in chart["rows"]] == [90.0, 80.0, 70.0]
    assert any("No evaluation curve in: shipped: without" in c.value for c in at.caption)
    at.multiselect(key="cmp_sel").unselect("shipped: with").run()
    assert not vega_charts(at, "SWD during training")


def test_compare_shows_why_an_evaluation_was_refused_and_waits_for_a_running_one(trained, monkeypatch):
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", trained["shipped"])

    def refuse(*a, **k):
        raise jobs.JobError("alpha64.pt is not a readable checkpoint: it is damaged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "start_eval", refuse)
        at = app(COMPARE)
        at.button(key="cmp_eval_go").click().run()
        assert not at.exception
        assert "is not a readable checkpoint" in errors(at) and "cmp_job" not in at.session_state
    monkeypatch.setattr(jobs, "job_argv_for_eval", lambda *a, **k: list(SLEEPER))
    at = app(COMPARE)
    at.button(key="cmp_eval_go").click().run()
    assert not at.exception and not at.error, errors(at)
    assert "cmp_job" in at.session_state
    assert at.button(key="cmp_eval_go").disabled  # one job at a time
    assert any("running for" in i.value for i in at.info)


def test_log_axis_ticks_are_readable_numbers():
    vals, text = curves.log_ticks([0.12, 3.0, 41.0, 180.0])
    assert text == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100", "200"]
    assert vals == [float(t.replace(",", "")) for t in text]
    assert curves.log_ticks([2500, 9000])[1] == ["1,000", "2,000", "5,000", "10,000", "20,000"]
    assert curves.log_ticks([0, -1, float("nan")]) == ([], [])
