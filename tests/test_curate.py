"""Curation (animegan.data.curate and the `curate` verb): planted exact and near duplicates,
blurred images and an outlier are found, and the curated zip holds what it should."""
from __future__ import annotations

import argparse
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from animegan.cli_common import UserError
from animegan.data.curate import DECISIONS_FILE, analyse, read_decisions, write_curated
from animegan.data.sources import DataError
from animegan.synth import write_synthetic

N_FACES = 30
BLURRED = ("blurred_a.png", "blurred_b.png")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """30 synthetic faces, plus: an exact copy of face 3, a re-saved (JPEG), slightly resized and
    brightened face 5, two faces not otherwise in the set blurred, and a picture of noise."""
    root = tmp_path_factory.mktemp("planted")
    faces = write_synthetic(root / "synth", n=N_FACES + 2, seed=11, workers=1) / "images"
    src = root / "set"
    src.mkdir()
    for i in range(N_FACES):
        shutil.copy(faces / f"{i:05d}.png", src / f"face_{i:02d}.png")
    shutil.copy(faces / "00003.png", src / "copy_of_3.png")
    im = Image.open(faces / "00005.png").convert("RGB")
    im = im.resize((70, 70), Image.Resampling.BICUBIC).point(lambda v: min(255, int(v * 1.05)))
    im.save(src / "resaved_5.jpg", quality=85)
    for k, name in enumerate(BLURRED):
        Image.open(faces / f"{N_FACES + k:05d}.png").convert("RGB").filter(ImageFilter.GaussianBlur(3)).save(src / name)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / "noise.png")
    return src


def _zip_of(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    return out


def test_finds_exact_and_near_duplicates_blur_and_outlier(planted):
    cur = analyse(planted, 64)
    assert len(cur.names) == N_FACES + 5
    groups = {frozenset([g.keep, *g.drop]): g for g in cur.duplicates}
    assert set(groups) == {frozenset({"face_03.png", "copy_of_3.png"}), frozenset({"face_05.png", "resaved_5.jpg"})}
    exact = groups[frozenset({"face_03.png", "copy_of_3.png"})]
    assert exact.kind == "exact" and exact.keep == "copy_of_3.png"    # the same bytes: the first by name
    assert exact.distance == {"copy_of_3.png": 0, "face_03.png": 0}
    near = groups[frozenset({"face_05.png", "resaved_5.jpg"})]
    assert near.kind == "near" and near.keep == "face_05.png"           # the sharper: the original
    # the two blurred faces are the least sharp, each with its score, ascending
    assert {s.name for s in cur.sharpness[:2]} == set(BLURRED)
    scores = [s.score for s in cur.sharpness]
    assert scores == sorted(scores) and scores[2] > 2 * scores[1]
    # the noise is the farthest from the rest, descending
    assert cur.outliers[0].name == "noise.png"
    far = [s.score for s in cur.outliers]
    assert far == sorted(far, reverse=True) and far[0] > 1.4 * far[1]


def test_no_options_drops_only_duplicates_and_the_zip_holds_the_kept_files(planted, tmp_path):
    cur = analyse(planted, 64)
    dec = cur.decide()
    assert dec.dropped == {"face_03.png": "duplicate", "resaved_5.jpg": "duplicate"}
    out = write_curated(cur, dec, tmp_path / "curated.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {*dec.kept, DECISIONS_FILE}
        assert "noise.png" in names and set(BLURRED) <= names            # nothing else dropped
        assert zf.read("face_07.png") == (planted / "face_07.png").read_bytes()  # the original bytes
        record = json.loads(zf.read(DECISIONS_FILE))
    assert record["dropped"] == dec.dropped and sorted(record["kept"]) == sorted(dec.kept)
    assert record["scores"]["noise.png"]["outlier"] == cur.outliers[0].score
    # the curated zip is a source the project reads: the kept images, the decisions file ignored
    assert sorted(analyse(out, 64).names) == sorted(dec.kept)


def test_thresholds_picks_and_reapplying_the_decisions(planted, tmp_path):
    src = _zip_of(planted, tmp_path / "set.zip")            # a zip source, read through zipread
    cur = analyse(src, 64)
    cut = (cur.sharpness[1].score + cur.sharpness[2].score) / 2
    dec = cur.decide(exclude=["face_10.png"], sharpness_below=cut, outlier_above=(cur.outliers[0].score + cur.outliers[1].score) / 2)
    assert dec.dropped == {"face_03.png": "duplicate", "resaved_5.jpg": "duplicate", "face_10.png": "picked",
                           BLURRED[0]: "blurred", BLURRED[1]: "blurred", "noise.png": "outlier"}
    first = write_curated(cur, dec, tmp_path / "first.zip")
    again = cur.decide(apply=read_decisions(first))
    assert sorted(again.kept) == sorted(dec.kept)
    with pytest.raises(DataError, match="not an image of"):
        cur.decide(exclude=["no_such.png"])


def test_the_verb_writes_the_zip_and_says_what_it_did(planted, tmp_path, capsys):
    from animegan.cli_curate import add_parser
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    out = tmp_path / "verb.zip"
    a = parser.parse_args(["curate", "--data", str(planted), "--out", str(out)])
    assert a.fn(a) == 0
    text = capsys.readouterr().out
    assert "exact: keep copy_of_3.png; face_03.png (0)" in text and f"kept {N_FACES + 3}, dropped 2" in text
    with zipfile.ZipFile(out) as zf:
        assert len([n for n in zf.namelist() if n != DECISIONS_FILE]) == N_FACES + 3
    a = parser.parse_args(["curate", "--data", str(planted)])
    with pytest.raises(UserError, match="--out"):
        a.fn(a)
    with pytest.raises(DataError, match="not a decisions file"):
        read_decisions(planted / "face_00.png")
    with pytest.raises(DataError, match=r"\.zip"):
        write_curated(analyse(planted, 64), analyse(planted, 64).decide(), tmp_path / "x.tar")


def test_phash_ignores_resaving_and_sees_different_faces():
    from animegan.data.curate import phash
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, 3, 64, 64), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[0].transpose(1, 2, 0)).filter(ImageFilter.GaussianBlur(1)).save(buf, "JPEG", quality=90)
    smooth = np.asarray(Image.fromarray(a[0].transpose(1, 2, 0)).filter(ImageFilter.GaussianBlur(1))).transpose(2, 0, 1)
    resaved = np.asarray(Image.open(buf)).transpose(2, 0, 1)
    other = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    h = phash(np.stack([smooth, resaved, other]))
    assert int(np.bitwise_count(h[0] ^ h[1])) <= 6 < int(np.bitwise_count(h[0] ^ h[2]))


def test_near_duplicates_are_not_chained_into_one_group():
    """A near B and B near C does not make A a duplicate of C: every member of a group is near the
    image it was grouped with (chained, a set of similar faces melted into one group and lost most
    of its images)."""
    from animegan.data.curate import _groups
    a, b, c = 0, 0b1111, 0b1111_1111  # a-b 4 bits, b-c 4 bits, a-c 8 bits
    hashes = np.array([a, b, c, 0xFFFF_FFFF_0000_0000], dtype=np.uint64)
    assert _groups(hashes, 6) == [[0, 1]]
    assert _groups(hashes, 8) == [[0, 1, 2]]
