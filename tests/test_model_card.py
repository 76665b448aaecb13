"""scripts/model_card.py: a checkpoint's card figures and numbers come from the file itself."""
import subprocess
import sys
from pathlib import Path

from PIL import Image

from animegan.checkpoint import export_generator
from animegan.config import preset_config
from animegan.synth import write_synthetic
from animegan.train import train

ROOT = Path(__file__).resolve().parent.parent


def test_card_draws_the_carried_curve_the_seed_grid_and_measures_the_test_split(tmp_path, animegan_home):
    faces = write_synthetic(tmp_path / "faces", n=100)
    cfg = preset_config("anime64", data=str(faces), ngf=8, ndf=8, batch_size=8, val_size=3, test_size=3,
                        threads=1, epochs=2, eval_kimg=0.08, eval_n=3, lr_d=3e-4)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    ck = export_generator(tmp_path / "run", tmp_path / "tiny.pt")
    out = tmp_path / "cards"
    r = subprocess.run([sys.executable, "scripts/model_card.py", str(ck), "--data", str(faces), "--n", "2000",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    grid = Image.open(out / "tiny-grid.png")
    assert grid.size == (8 * 66 + 2, 8 * 66 + 2), "64 faces of 64 px, 8 a row"
    curve = Image.open(out / "tiny-curve.png")
    assert curve.size == (900, 520) and len(curve.convert("L").getcolors(maxcolors=100000)) > 5, "a drawn plot, not a blank"
    assert "`--lr-d 0.0003`" in r.stdout, "the recipe names what differs from the preset"
    assert "images seen" in r.stdout
    assert r.stdout.count(": ") > 3 and "SWD curve" in r.stdout, "at least two evaluations on the curve"
    test_line = [line for line in r.stdout.splitlines() if "SWD on the test split" in line]
    assert test_line and "(n=3," in test_line[0] and "--split test" in test_line[0], \
        "measured on the 3 faces this checkpoint held out for testing, not on a default split of the source"
    assert "two real sets, its test split vs its val split at the same n: " in test_line[0]
    judge_line = [line for line in r.stdout.splitlines() if "Realism judge on the test split" in line]
    assert judge_line and "n=3 per side" in judge_line[0] and "realism --checkpoint" in judge_line[0] \
        and "--split test" in judge_line[0], "the judge beside SWD, on the same held-out faces"
    assert "two real sets, its test split vs its val split at the same n: " in judge_line[0]


def test_card_of_a_checkpoint_without_a_curve_still_draws_its_grid(tmp_path):
    r = subprocess.run([sys.executable, "scripts/model_card.py", "checkpoints/dcgan64.pt", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "carries no curve" in r.stdout and (tmp_path / "dcgan64-grid.png").exists()
    assert not (tmp_path / "dcgan64-curve.png").exists()
