"""animegan.metrics.realism, the judge (a classifier two-sample test): two sets of real faces are a coin
toss for it, noise is told apart every time, the same call gives the same number, and the
`realism` verb measures what `swd` measures, with its messages."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from animegan.cli import main
from animegan.metrics.realism import checkpoint_realism, realism_accuracy
from animegan.synth import render_face, write_synthetic

ROOT = Path(__file__).resolve().parent.parent
SYNTH64 = ROOT / "checkpoints" / "synthetic64.pt"  # trained with --val-size 500 --test-size 500


@pytest.fixture(scope="module")
def faces():
    """600 built-in synthetic faces at 64 px, uint8 (600, 3, 64, 64): real faces of one kind."""
    return torch.from_numpy(np.stack([np.asarray(render_face(0, i, 64)[0]).transpose(2, 0, 1) for i in range(600)]))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """100 synthetic faces as a folder: a checkpoint trained with 500 held-out faces sees splits of 10 here."""
    return write_synthetic(tmp_path_factory.mktemp("realism") / "faces", n=100)


def test_two_sets_of_real_faces_are_a_coin_toss(faces):
    # 20 epochs: long enough that the judge memorises its training halves (~0.8-0.9 there), so a
    # judge scored on what it trained on cannot pass; the held-out halves stay at chance.
    r = realism_accuracy(faces[:300], faces[300:], seed=0, epochs=20)
    assert (r.n, r.n_train, r.n_test, r.size, r.epochs) == (300, 150, 150, 64, 20)
    assert abs(r.accuracy - 0.5) <= 0.12, r
    assert r.train_accuracy > r.accuracy, "it memorised its training halves, and that did not leak into the score"


def test_noise_is_told_from_faces_every_time(faces):
    noise = torch.randint(0, 256, (100, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    r = realism_accuracy(noise, faces[:100], seed=0, epochs=3)
    assert r.accuracy > 0.95, r
    assert r.loss < 0.6, "right, and surer than a coin (ln 2 = 0.69)"
    as_float = realism_accuracy(noise.float() / 127.5 - 1, faces[:100], seed=0, epochs=3)
    assert as_float.accuracy == r.accuracy, "float images in the generators' range [-1, 1] are the same images"


def test_the_same_call_gives_the_same_number(faces):
    torch.manual_seed(1)  # the caller's random state neither matters to the judge nor is changed by it
    state = torch.get_rng_state()
    a = realism_accuracy(faces[:100], faces[100:200], seed=5, epochs=3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    b = realism_accuracy(faces[:100], faces[100:200], seed=5, epochs=3)
    assert (a.accuracy, a.train_accuracy, a.loss) == (b.accuracy, b.train_accuracy, b.loss)
    other = realism_accuracy(faces[:100], faces[100:200], seed=6, epochs=3)
    assert other.loss != a.loss, "the seed picks the halves and the judge: another seed, another judge"


def test_the_judge_refuses_sets_it_cannot_compare(faces):
    with pytest.raises(ValueError, match="equal-size"):
        realism_accuracy(faces[:10], faces[10:30])
    with pytest.raises(ValueError, match="one shape"):
        realism_accuracy(faces[:10], faces[10:20, :, :32, :32])
    with pytest.raises(ValueError, match="at least 2"):
        realism_accuracy(faces[:1], faces[1:2])


def test_verb_prints_one_json_object_on_the_split_the_checkpoint_held_out(small_set, capsys):
    assert main(["realism", "--checkpoint", str(SYNTH64), "--data", str(small_set), "--split", "test",
                 "--n", "2000", "--seed", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert 0.0 <= res["accuracy"] <= 1.0
    assert (res["n"], res["split"], res["size"], res["seed"]) == (10, "test", 64, 3), \
        "the 10 faces synthetic64's own split holds out of 100, at its 64 px"
    assert res["reference"].startswith("test split of")
    assert "note: the test split has 10 images; used n=10" in err
    again = checkpoint_realism(SYNTH64, str(small_set), "test", n=2000, seed=3)
    assert again.accuracy == res["accuracy"], "the verb is the package function"
    assert main(["realism", "--checkpoint", str(SYNTH64), "--data", str(small_set), "--n", "6"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("REALISM ") and " n=6 " in line and "val split of" in line


def test_verb_says_what_swd_says_about_checkpoints_and_small_splits(small_set, tmp_path, capsys):
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    shutil.copy(SYNTH64, tmp_path / "copy.pt")
    for ck in (tmp_path / "missing.pt", not_a_checkpoint, tmp_path):
        said = []
        for verb in ("swd", "realism"):
            assert main([verb, "--checkpoint", str(ck), "--data", str(small_set)]) == 2
            said.append(capsys.readouterr().err)
        assert said[0] == said[1] and said[0].startswith("error: ") and "Traceback" not in said[0], said
    notes = []
    for verb in ("swd", "realism"):
        assert main([verb, "--checkpoint", str(tmp_path / "copy.pt"), "--data", str(small_set), "--n", "50"]) == 0
        notes.append([ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note: ")])
    assert notes[0] == notes[1] == ["note: the val split has 10 images; used n=10"]


def test_dcgan64_is_told_from_real_faces(real64, shared_zip, monkeypatch):
    """The classic DCGAN's faces against the real test split: the judge tells them apart."""
    monkeypatch.setenv("ANIMEGAN_HOME", str(real64[1]))  # where the real set is prepared once per session
    r = checkpoint_realism(ROOT / "checkpoints" / "dcgan64.pt", str(shared_zip), "test", n=300, seed=0)
    assert r.n == 300 and r.size == 64 and r.split == "test"
    assert r.accuracy > 0.9, r
