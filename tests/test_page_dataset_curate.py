"""The Dataset page's Curate section (issue 27 §2-§3), driven with streamlit's AppTest: a small set
with planted exact and near duplicates and blurred faces shows them in its galleries; what the
user leaves out is left out of the saved .zip, which becomes the page's source and reads back;
"Make a generator of this" hands the small-data recipe to the Train page."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from streamlit.testing.v1 import AppTest

from animegan import data, paths
from animegan.data import curate
from animegan.synth.face import render_face

ROOT = Path(__file__).resolve().parent.parent
DATASET = str(ROOT / "app_pages" / "dataset.py")
TIMEOUT = 90  # the CPU is shared with training runs
BLURRED = ("face05.png", "face09.png")


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def planted(tmp_path) -> Path:
    """16 faces; face03 twice more (the same bytes, and re-saved smaller), face07 once more (the same
    bytes); two faces blurred."""
    d = tmp_path / "mine"
    d.mkdir()
    for i in range(16):
        img, _ = render_face(0, i, size=64)
        if f"face{i:02d}.png" in BLURRED:
            img = img.filter(ImageFilter.GaussianBlur(3))
        (d / f"face{i:02d}.png").write_bytes(png(img))
    (d / "copy-of-face03.png").write_bytes((d / "face03.png").read_bytes())
    (d / "face07-again.png").write_bytes((d / "face07.png").read_bytes())
    small = Image.open(d / "face03.png").resize((48, 48), Image.BILINEAR)
    (d / "face03-small.png").write_bytes(png(small))
    return d


@pytest.fixture
def base_checkpoints(tmp_path, monkeypatch) -> Path:
    """Shipped checkpoints to start from (the page only lists them; nothing loads them here)."""
    d = tmp_path / "shipped"
    d.mkdir()
    for name in ("dcgan64.pt", "anime64.pt"):
        (d / name).write_bytes(b"stand-in")
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", d)
    return d


def captions(at: AppTest) -> list[str]:
    return [c for im in at.image for c in im.captions]


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def analysed(folder: Path) -> AppTest:
    at = AppTest.from_file(DATASET, default_timeout=TIMEOUT)
    at.run()
    at.radio(key="ds_kind").set_value("folder").run()
    at.text_input(key="ds_folder").input(str(folder)).run()
    at.button(key="ds_prepare").click().run()
    at.button(key="ds_curate").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, errors(at)
    return at


def kept(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Images kept"]


def test_curate_shows_planted_duplicates_and_blur_and_saves_what_is_kept(planted, base_checkpoints):
    at = analysed(planted)
    caps = captions(at)
    # the duplicate groups, each side by side: one of each kept, the others dropped
    kept_dups = {c.split(": ", 1)[1] for c in caps if c.startswith("kept: ")}
    dropped_dups = {c.split(": ", 1)[1] for c in caps if c.startswith("dropped (")}
    face03 = {"face03.png", "copy-of-face03.png", "face03-small.png"}
    assert len(kept_dups & face03) == 1 and dropped_dups & face03 == face03 - kept_dups
    assert len(kept_dups & {"face07.png", "face07-again.png"}) == 1
    assert dropped_dups - face03 == {"face07.png", "face07-again.png"} - kept_dups
    assert any(c.startswith("dropped (exact") for c in caps) and any(c.startswith("dropped (near") for c in caps)
    # the blurred ones lead the sharpness gallery, with their scores
    sharp = [c.removeprefix("sharpness ") for c in caps if c.startswith("sharpness ")]
    assert {sharp[0].split(": ")[1], sharp[1].split(": ")[1]} == set(BLURRED)
    assert any(c.startswith("outlier ") for c in caps)
    assert "PCA of the pixels" in "\n".join(str(m.value) for m in at.markdown)
    # by default only the duplicates go: 19 images, 16 kept
    assert kept(at) == "16 of 19"
    # leave out the blurred ones by threshold, and one more by hand
    scores = {c.split(": ")[1]: float(c.split(": ")[0].replace(",", "")) for c in sharp}
    cut = (max(scores[n] for n in BLURRED) + min(v for n, v in scores.items() if n not in BLURRED)) / 2
    at.slider(key="ds_cur_sharp").set_value(cut).run()
    assert kept(at) == "14 of 19"
    exclude = next(w for w in at.multiselect if w.key.startswith("ds_cur_exclude"))
    exclude.set_value(["face00.png"]).run()
    assert kept(at) == "13 of 19"

    # errors in the user's words: no name, a bad name
    at.button(key="ds_cur_save").click().run()
    assert "Give the curated set a name" in errors(at)
    at.text_input(key="ds_cur_name").input("../up").run()
    at.button(key="ds_cur_save").click().run()
    assert "cannot be used as a name" in errors(at)

    at.text_input(key="ds_cur_name").input("my character").run()
    at.button(key="ds_cur_save").click().run()
    assert not at.exception, [e.message for e in at.exception]
    out = paths.home() / "curated" / "my character.zip"
    assert out.is_file()
    assert any(str(out) in s.value for s in at.success)
    # the saved set is the page's source now, prepared, and reads back with what was kept
    assert at.session_state["ds_kind"] == "folder" and at.session_state["ds_folder"] == str(out)
    assert {m.label: m.value for m in at.metric}["Usable"] == "13"
    names = set(data.prepare(str(out), 64, val=0, test=0).names)
    assert len(names) == 13 and not names & {*BLURRED, "face00.png", *(dropped_dups)}
    assert curate.read_decisions(out)["dropped"]["face00.png"] == "picked"

    # the same name again is refused
    at.button(key="ds_curate").click().run()
    at.text_input(key="ds_cur_name").input("my character").run()
    at.button(key="ds_cur_save").click().run()
    assert "already exists" in errors(at)

    # hand-off to the Train page: the small-data recipe from anime64.pt, 10 minutes, this zip
    assert at.selectbox(key="ds_cur_base").value == "anime64.pt"
    at.button(key="ds_cur_make").click().run()
    hand = at.session_state["train_handoff"]
    assert hand == {"data": str(out), "img_size": 64, "preset": "finetune-small",
                    "init_from": str(base_checkpoints / "anime64.pt"), "minutes": 10.0}


def test_nothing_left_is_refused_and_nothing_written(planted, base_checkpoints):
    at = analysed(planted)
    top = at.slider(key="ds_cur_sharp").max
    at.slider(key="ds_cur_sharp").set_value(top).run()
    assert kept(at).startswith("0 of")
    at.text_input(key="ds_cur_name").input("empty").run()
    at.button(key="ds_cur_save").click().run()
    assert "Nothing is left to save" in errors(at)
    assert not (paths.home() / "curated" / "empty.zip").exists()


def test_no_shipped_checkpoint_says_what_to_do(planted, tmp_path, monkeypatch):
    empty = tmp_path / "none"
    empty.mkdir()
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", empty)
    at = analysed(planted)
    assert any("No shipped checkpoint" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "ds_cur_make"]


def test_is_curated():
    assert not curate.is_curated("synthetic")
    buf = paths.home() / "x.zip"
    paths.ensure(buf.parent)
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", b"")
    assert not curate.is_curated(buf)


def test_the_synthetic_set_is_curated_as_it_is_on_disk(base_checkpoints):
    """Curating the built-in set reads the faces on disk (24 here), never renders the default 10,000."""
    from animegan.synth import rendered_n, write_synthetic
    write_synthetic(paths.synthetic_dir(), n=24, workers=1)
    at = AppTest.from_file(DATASET, default_timeout=TIMEOUT)
    at.run()
    at.button(key="ds_prepare").click().run()
    at.button(key="ds_curate").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert kept(at).endswith("of 24")
    assert rendered_n(paths.synthetic_dir()) == 24
