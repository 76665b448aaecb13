"""The verbs, end to end, in process: what a user types in a terminal."""
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from animegan import config, paths
from animegan.checkpoint import CheckpointError, load_checkpoint, load_generator
from animegan.cli import build_parser, config_from_args, main
from animegan.data import prepare
from animegan.metrics.evaluation import reference_label
from animegan.rundir import Run, evals_for_checkpoint, read_json, write_json_atomic
from animegan.synth import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--ngf", "8", "--ndf", "8", "--batch-size", "8", "--val-size", "4", "--test-size", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny anime64 run (it has EMA and a discriminator), trained through the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    faces = write_synthetic(tmp / "faces", n=48)
    out = tmp / "run"
    assert main(["train", "--preset", "anime64", "--data", str(faces), "--out", str(out), "--epochs", "1", "--max-steps", "4", *TINY]) == 0
    return faces, out


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_prepare_prints_the_report(trained, capsys):
    faces, _ = trained
    (faces / "images" / "broken.png").write_bytes(b"not an image at all")
    assert main(["prepare", "--data", str(faces), "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "48 usable" in out.replace(",", "") and "not an image" in out and "broken.png" in out
    assert main(["prepare", "--data", str(faces), "--size", "64"]) == 0
    assert "reused, nothing decoded" in capsys.readouterr().out
    (faces / "images" / "broken.png").unlink()


def test_train_writes_config_with_overrides(trained):
    _, out = trained
    cfg = Run(out).config()
    assert cfg["preset"] == "anime64" and cfg["ngf"] == 8 and cfg["ema_kimg"] == 10.0 and cfg["max_steps"] == 4


def test_existing_run_is_not_overwritten_by_accident(trained, capsys):
    faces, out = trained
    assert main(["train", "--preset", "anime64", "--data", str(faces), "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err


def test_generate_is_reproducible_to_the_byte(trained, tmp_path):
    _, out = trained
    ck = str(out / "checkpoints" / "last.pt")
    for name in ("a.png", "b.png"):
        assert main(["generate", "--checkpoint", ck, "--seed", "7", "--n", "16", "--out", str(tmp_path / name)]) == 0
    assert sha(tmp_path / "a.png") == sha(tmp_path / "b.png")
    assert main(["generate", "--checkpoint", ck, "--seed", "8", "--n", "16", "--out", str(tmp_path / "c.png")]) == 0
    assert sha(tmp_path / "a.png") != sha(tmp_path / "c.png")
    # Face 5 of the grid, alone, as a PNG: the same pixels as in the grid.
    assert main(["generate", "--checkpoint", ck, "--seed", "7", "--n", "1", "--start", "5", "--format", "pngs", "--out", str(tmp_path / "one")]) == 0
    assert main(["generate", "--checkpoint", ck, "--seed", "7", "--n", "16", "--format", "zip", "--out", str(tmp_path / "all.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "all.zip") as z:
        names = sorted(z.namelist())
        assert len(names) == 16
        fifth = [n for n in names if n.endswith("00005.png")][0]
        assert z.read(fifth) == next((tmp_path / "one").glob("*.png")).read_bytes()


def test_rerank_needs_a_discriminator(trained, tmp_path, capsys):
    _, out = trained
    ck = out / "checkpoints" / "last.pt"
    assert main(["generate", "--checkpoint", str(ck), "--n", "4", "--rerank", "3", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "g.pt")]) == 0  # exports carry D: re-ranking works
    assert main(["generate", "--checkpoint", str(tmp_path / "g.pt"), "--n", "4", "--rerank", "3", "--out", str(tmp_path / "r2.png")]) == 0
    # an export made before exports carried D: refused, saying why
    old = torch.load(tmp_path / "g.pt", weights_only=True)
    torch.save({**old, "D": None}, tmp_path / "old.pt")
    assert main(["generate", "--checkpoint", str(tmp_path / "old.pt"), "--n", "4", "--rerank", "3", "--out", str(tmp_path / "r3.png")]) == 2
    err = capsys.readouterr().err
    assert "discriminator" in err and "exported without it" in err


def test_export_is_small_fp16_safe_and_samples_like_the_run(trained, tmp_path):
    _, out = trained
    exp = tmp_path / "exp.pt"
    assert main(["export", str(out), "--out", str(exp)]) == 0
    raw = torch.load(exp, weights_only=True)
    assert raw["kind"] == "generator" and raw["version"] >= 1 and raw.get("D") is not None
    for net in ("G_ema", "D"):  # the generator and (for re-ranking, inversion, memorisation) the discriminator
        floats = [v.dtype for v in raw[net].values() if v.is_floating_point()]
        assert len(floats) > 10 and set(floats) == {torch.float16}, net
    assert raw["config"]["model"] == "anime64"
    a = load_generator(exp)
    b = load_generator(out / "checkpoints" / "last.pt")
    z = torch.randn(4, a.config.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # fp16 storage: the same faces up to half-precision rounding
        assert (a.G(z) - b.G(z)).abs().max() < 0.02
    assert a.ema and b.ema


def test_export_carries_a_given_measurement_and_hardware(trained, tmp_path, capsys):
    """How a shipped checkpoint gets its card numbers: measure (test split), then export with it."""
    faces, out = trained
    ck = out / "checkpoints" / "last.pt"
    assert main(["swd", "--checkpoint", str(ck), "--data", str(faces), "--split", "test", "--n", "4", "--json"]) == 0
    measured = tmp_path / "test.json"
    measured.write_text(capsys.readouterr().out)
    exp = tmp_path / "exp.pt"
    assert main(["export", str(ck), "--out", str(exp), "--eval", str(measured), "--hardware", "a 2-core CPU"]) == 0
    raw = torch.load(exp, weights_only=True)
    assert raw["eval"]["reference"].startswith("test split of") and raw["eval"]["n"] == 4
    assert raw["info"]["hardware"] == "a 2-core CPU"
    (tmp_path / "bad.json").write_text("SWD 12.3 n=4")
    assert main(["export", str(ck), "--out", str(tmp_path / "x.pt"), "--eval", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "not a metric result" in err and "--json" in err and not (tmp_path / "x.pt").exists()


def test_interpolation_gif(trained, tmp_path):
    _, out = trained
    gif = tmp_path / "walk.gif"
    assert main(["interpolate", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--seed-a", "1", "--seed-b", "2",
                 "--steps", "6", "--out", str(gif)]) == 0
    im = Image.open(gif)
    assert im.n_frames == 2 * 6 - 2  # there and back: 6 steps, the two ends not repeated
    assert im.size == (128, 128)  # 64 px, --upscale 2 by default


def test_user_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["prepare", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert main(["generate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "norun")]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_fine_tune_from_a_checkpoint(trained, tmp_path, capsys):
    faces, out = trained
    exp = tmp_path / "base.pt"
    assert main(["export", str(out), "--out", str(exp)]) == 0
    ft = tmp_path / "ft"
    assert main(["train", "--preset", "anime64", "--data", str(faces), "--out", str(ft), "--epochs", "1", "--max-steps", "3",
                 "--init-from", str(exp), *TINY]) == 0
    assert Run(ft).config()["init_from"] == str(exp)
    assert "initialised from" in (ft / "train.log").read_text()
    # Another width: refused, naming what differs.
    bad = tmp_path / "bad"
    args = ["train", "--preset", "anime64", "--data", str(faces), "--out", str(bad), "--max-steps", "2", "--init-from", str(exp), *TINY]
    args[args.index("--ngf") + 1] = "16"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ngf: checkpoint 8 vs given 16" in err  # checkpoint.adopt_architecture's words


def test_checkpoints_record_the_format_version(trained):
    _, out = trained
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["format"] == "animegan-checkpoint" and ck["kind"] == "train"
    bad = out.parent / "future.pt"
    torch.save({**ck, "version": 99}, bad)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(bad)


# -- the flags and the presets ---------------------------------------------------------------------

def _every_field_changed() -> config.TrainConfig:
    """A config in which every field (but the preset) differs from its default."""
    d = config.TrainConfig()
    over = {}
    for f in dataclasses.fields(d):
        v = getattr(d, f.name)
        if f.name == "preset":
            continue
        if f.name == "compile":
            over[f.name] = "on"
        elif isinstance(v, bool):
            over[f.name] = not v
        elif isinstance(v, list):
            over[f.name] = [3, 7]
        elif isinstance(v, int):
            over[f.name] = v + 3
        elif isinstance(v, float):
            over[f.name] = v + 0.25
        else:
            over[f.name] = f"x-{f.name}"
    return d.replace(**over)


def test_every_config_field_is_a_flag_that_round_trips():
    cfg = _every_field_changed()
    flags = config.to_flags(cfg)
    assert len(flags) == len(dataclasses.fields(cfg)) + 1  # one flag per field but preset; milestones has 2 values
    assert config_from_args(build_parser().parse_args(["train", *flags])) == cfg


def test_presets_by_current_and_old_names():
    for name in config.PRESETS:
        assert config_from_args(build_parser().parse_args(["train", "--preset", name])) == config.preset_config(name)
    for old, new in config.PRESET_ALIASES.items():
        cfg = config_from_args(build_parser().parse_args(["train", "--preset", old, "--epochs", "3"]))
        assert cfg.preset == new and cfg == config.preset_config(new, epochs=3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--preset", "dcgan-ish"])


# -- metrics --------------------------------------------------------------------------------------

def test_swd_measures_the_split_the_checkpoint_held_out(trained, capsys, tmp_path):
    _, out = trained  # trained with --val-size 4; on 100 faces a default split would hold out 10
    more = write_synthetic(tmp_path / "more", n=100)
    assert main(["swd", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--data", str(more), "--n", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 4


def test_swd_verb_prints_records_and_labels_its_reference(trained, capsys):
    faces, out = trained
    ck = out / "checkpoints" / "last.pt"
    assert main(["swd", "--checkpoint", str(ck), "--data", str(faces), "--n", "50", "--seed", "3", "--json", "--record"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out.strip().splitlines()[-1])
    data = prepare(str(faces), 64)
    assert res["metric"] == "swd" and res["seed"] == 3 and res["value"] > 0
    assert res["n"] == len(data.split_images("val")) < 50
    assert f"used n={res['n']}" in captured.err
    assert res["reference"] == reference_label(data.source, data.fingerprint, 64, "val")
    assert [(e["metric"], e["value"]) for e in evals_for_checkpoint(ck) if e.get("seed") == 3] == [("swd", res["value"])]
    assert main(["swd", "--checkpoint", str(ck), "--data", str(faces), "--n", "4", "--split", "test"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("SWD ") and " n=4 " in line and "test split of" in line
    assert "only comparable at the same n and reference" in line  # 4 < COMPARABLE_N


def test_fid_without_weights_is_one_clear_error(trained, capsys, tmp_path, monkeypatch):
    faces, out = trained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ANIMEGAN_INCEPTION_WEIGHTS", raising=False)
    assert main(["fid", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--data", str(faces), "--n", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: FID needs the Inception weights") and err.count("\n") == 1
    assert not paths.cache_dir().exists(), "said so before decoding the data set"


# -- resume -----------------------------------------------------------------------------------------

def test_resume_refuses_a_run_another_process_trains_and_takes_it_once_that_is_gone(trained, tmp_path, capsys):
    _, out = trained
    run_dir = tmp_path / "copy"
    shutil.copytree(out, run_dir)
    first = load_generator(run_dir / "checkpoints" / "last.pt").step
    status = read_json(run_dir / "status.json")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json_atomic(run_dir / "status.json", {**status, "state": "running", "pid": other.pid})
        assert Run(run_dir).status().state == "running"
        assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--max-steps", "6", "--no-progress"]) == 2
        assert f"still training (pid {other.pid})" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    # Its process is gone: the run reads dead, with why, and resumes.
    dead = Run(run_dir).status()
    assert dead.state == "dead" and dead.recorded_state == "running" and "gone" in dead.last_error
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--max-steps", "6", "--no-progress"]) == 0
    st = Run(run_dir).status()
    assert st.state == "finished" and st.step == 6 > first
    assert load_generator(run_dir / "checkpoints" / "last.pt").step == 6


def test_generate_infers_the_format_from_the_out_path(tmp_path):
    ck = str(ROOT / "checkpoints" / "synthetic64.pt")
    assert main(["generate", "--checkpoint", ck, "--n", "3", "--out", str(tmp_path / "faces.zip")]) == 0
    assert sorted(zipfile.ZipFile(tmp_path / "faces.zip").namelist()) == [f"seed0_{i:05d}.png" for i in range(3)]
    assert main(["generate", "--checkpoint", ck, "--n", "2", "--out", str(tmp_path / "folder")]) == 0
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["seed0_00000.png", "seed0_00001.png"]
    assert main(["generate", "--checkpoint", ck, "--n", "2", "--format", "zip", "--out", str(tmp_path / "x.png")]) == 0
    assert zipfile.is_zipfile(tmp_path / "x.png"), "--format still wins"


def test_init_from_adopts_the_checkpoints_architecture_and_refuses_contradictions(tmp_path, capsys):
    from animegan.checkpoint import adopt_architecture
    from animegan.config import preset_config
    ck = str(ROOT / "checkpoints" / "synthetic64.pt")
    cfg = adopt_architecture(preset_config("anime64", init_from=ck))
    assert (cfg.model, cfg.ngf, cfg.ndf, cfg.z_dim) == ("anime64", 16, 16, 100), "the preset's 32/32 gave way"
    with pytest.raises(CheckpointError, match="ngf: checkpoint 16 vs given 48"):
        adopt_architecture(preset_config("anime64", init_from=ck, ngf=48), {"ngf"})
    rc = main(["train", "--preset", "anime64", "--init-from", ck, "--ngf", "48", "--out", str(tmp_path / "r")])
    assert rc != 0 and "ngf: checkpoint 16 vs given 48" in capsys.readouterr().err
    assert not (tmp_path / "r").exists(), "nothing written for a refused start"


# -- exploring: directions, invert, nearest, memorisation ------------------------------------------

SYNTHETIC64 = ROOT / "checkpoints" / "synthetic64.pt"


def test_directions_verb_draws_a_strip_per_direction_and_names_them(tmp_path, capsys):
    out = tmp_path / "dirs.png"
    assert main(["directions", "--checkpoint", str(SYNTHETIC64), "--k", "3", "--measure", "--name", "1=hair colour",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert Image.open(out).size == ((7 * 66 + 2) * 2, (3 * 66 + 2) * 2), "3 rows of 7 strengths, 2x"
    assert "sefa: 3 directions" in text and "hair colour" in text and "random unit directions" in text
    changes = [float(x) for x in re.findall(r"change\s+([\d.]+) /unit step", text)]
    assert len(changes) == 4 and min(changes[:3]) > changes[3], "found directions beat random ones"
    assert main(["directions", "--checkpoint", str(SYNTHETIC64), "--k", "2", "--method", "both", "--faces", "2",
                 "--out", str(tmp_path / "both.png")]) == 0
    for m in ("sefa", "ganspace"):
        assert Image.open(tmp_path / f"both-{m}.png").size == ((7 * 66 + 2) * 2, (4 * 66 + 2) * 2)
    assert "hair colour" in capsys.readouterr().out, "the name is kept (home folder) and shown next time"


def test_generate_edit_moves_faces_along_a_direction(tmp_path, capsys):
    base = ["generate", "--checkpoint", str(SYNTHETIC64), "--seed", "7", "--n", "4"]
    assert main([*base, "--out", str(tmp_path / "plain.png")]) == 0
    assert main([*base, "--edit", "0=0", "--out", str(tmp_path / "zero.png")]) == 0
    assert main([*base, "--edit", "0=2.5", "--edit", "3=-1", "--out", str(tmp_path / "edit.png")]) == 0
    assert main([*base, "--edit", "0=2.5", "--edit", "3=-1", "--directions", "ganspace", "--out", str(tmp_path / "g.png")]) == 0
    assert sha(tmp_path / "plain.png") == sha(tmp_path / "zero.png")
    assert len({sha(tmp_path / f) for f in ("plain.png", "edit.png", "g.png")}) == 3
    capsys.readouterr()
    assert main([*base, "--edit", "hair", "--out", str(tmp_path / "x.png")]) == 2
    assert "DIRECTION=STRENGTH" in capsys.readouterr().err
    z_dim = load_generator(base[base.index("--checkpoint") + 1]).config.z_dim
    assert main([*base, "--edit", f"{z_dim}=1", "--out", str(tmp_path / "x.png")]) == 2  # a user's mistake, not a bug
    assert f"has {z_dim} latent directions, numbered 0 to {z_dim - 1}" in capsys.readouterr().err


def test_invert_verb_saves_the_latent_and_prints_mae_last(tmp_path, capsys):
    import numpy as np

    from animegan.generate import generate, render
    from animegan.images import png_bytes
    G = load_generator(SYNTHETIC64).G
    face = generate(G, 4, 1, start=3).images[0]
    src = tmp_path / "face.png"
    src.write_bytes(png_bytes(face))
    out = tmp_path / "inverted.png"
    # a short search (the defaults' quality: test_explore's inversion test): MAE ~5 on this face
    assert main(["invert", "--checkpoint", str(SYNTHETIC64), "--image", str(src), "--out", str(out),
                 "--restarts", "1", "--steps", "120"]) == 0
    captured = capsys.readouterr()
    last = captured.out.strip().splitlines()[-1]
    assert re.fullmatch(r"MAE \d+\.\d+", last) and float(last.split()[1]) <= 10
    assert "(1 restarts x 120 steps, " in captured.out, "the search it was asked for"
    assert "exported without it" in captured.err, "no discriminator in this export: said so"
    assert Image.open(out).size == (2 * 256 + 4, 256)
    z = torch.from_numpy(np.load(out.with_suffix(".npy")))
    assert z.shape == (G.z_dim,)
    right = np.asarray(Image.open(out))[:, 260:][::4, ::4]
    assert np.array_equal(right, render(G, z[None])[0].permute(1, 2, 0).numpy()), "the .npy redraws the projection"
    assert main(["invert", "--checkpoint", str(SYNTHETIC64), "--image", str(tmp_path / "none.png"), "--out", str(out)]) == 2


def test_nearest_and_memorisation_verbs(trained, tmp_path, capsys):
    faces, run = trained
    ck = str(run / "checkpoints" / "last.pt")
    out = tmp_path / "nn.png"
    assert main(["nearest", "--checkpoint", ck, "--data", str(faces), "--seed", "3", "--index", "2", "--k", "4",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pixels at 32 px" in text and "discriminator features" in text
    assert Image.open(out).size == ((5 * 66 + 2) * 2, (2 * 66 + 2) * 2), "two rows: the face and its 4 nearest"
    assert main(["memorisation", "--checkpoint", ck, "--data", str(faces), "--n", "20", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(r["spaces"]) == {"pixels", "discriminator"} and r["n"] == 20 and r["n_reference"] == 4
    assert all(0 <= s["share"] <= 1 for s in r["spaces"].values())
    assert main(["memorisation", "--checkpoint", str(SYNTHETIC64), "--data", str(faces), "--n", "10"]) == 0
    assert "memorisation score: pixels" in capsys.readouterr().out


@pytest.mark.parametrize("field, value", [("minutes", -5), ("eval_kimg", -1), ("lr_d", 0.0), ("batch_size", 1),
                                          ("aug_brightness", 1.5), ("patience", -2)])
def test_a_wrong_number_is_named_alone_with_the_value_given(field, value):
    """The Train page shows validate()'s message with every flag as its form label: a message that
    names a second field sends the user to a field they never touched (budget -5 once said
    "Time budget and Also evaluate every N k images must be 0 or more")."""
    from animegan.config import ConfigError, preset_config, validate
    with pytest.raises(ConfigError) as e:
        validate(preset_config("anime64", **{field: value}))
    flags = re.findall(r"--[a-z0-9-]+", str(e.value))
    assert flags == [f"--{field.replace('_', '-')}"] and f"{value:g}" in str(e.value)


def test_only_the_projects_own_errors_are_user_errors(monkeypatch, capsys):
    """A user's mistake is one line and exit 2; a bug (here a ValueError from deep inside a verb)
    keeps its traceback instead of passing for a user's mistake."""
    import animegan.cli as cli

    def buggy(args):
        raise ValueError("invalid literal for int() with base 10: 'x'")
    monkeypatch.setattr(cli, "cmd_info", buggy)
    with pytest.raises(ValueError, match="invalid literal"):
        main(["info"])
    assert main(["train", "--preset", "anime64", "--batch-size", "1"]) == 2
    assert capsys.readouterr().err == "error: --batch-size must be at least 2, as BatchNorm needs a batch (it is 1)\n"


def test_timelapse_verb(trained, tmp_path, capsys):
    _, out = trained
    gif = tmp_path / "t.gif"
    assert main(["timelapse", str(out), "--out", str(gif), "--fps", "2"]) == 0
    assert Image.open(gif).format == "GIF" and f"of run {out.name} at 2 fps" in capsys.readouterr().out
    for args, words in ([str(out), "--out", str(tmp_path / "t.mp4")], "only .gif is written"), \
                       (["no-such-run", "--out", str(gif)], "no run 'no-such-run'"), \
                       ([str(out), "--out", str(gif), "--fps", "0"], "--fps must be > 0"):
        assert main(["timelapse", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    empty = tmp_path / "empty"
    shutil.copytree(out, empty)
    shutil.rmtree(empty / "samples")
    assert main(["timelapse", str(empty), "--out", str(gif)]) == 2
    assert "has no epoch grids yet" in capsys.readouterr().err


def test_overwrite_with_a_refused_setting_leaves_the_run_as_it_was(trained, tmp_path, capsys):
    _, out = trained
    copy = tmp_path / "kept"
    shutil.copytree(out, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert main(["train", "--preset", "anime64", "--out", str(copy), "--overwrite", "--batch-size", "1"]) == 2
    assert "--batch-size must be at least 2" in capsys.readouterr().err
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before, "the preflight comes before --overwrite"
