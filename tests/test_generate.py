"""generate.py: (seed, index) addressing, determinism, reranking, interpolation, output files; and the
Generate page's logic (AppTest)."""
from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from torch import nn

from animegan import generate as gen
from animegan import images, paths, uploads
from animegan.explore import directions
from animegan.generate import (
    GenerateResult,
    image_batches,
    interpolate,
    interpolation_latents,
    latents,
    mix,
)
from animegan.images import (
    gif_frame_order,
    save_grid,
    save_pngs,
    to_gif,
    to_grid,
    to_zip,
    upscale,
)
from app_pages import after_paint

Z, S = 16, 16


class TinyG(nn.Module):
    """Linear → BatchNorm → ReLU → ConvTranspose → Tanh: the layer kinds of the real
    generators, 16×16 output, cheap."""

    def __init__(self, z_dim: int = Z, img_size: int = S):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        g = torch.Generator().manual_seed(123)
        self.fc = nn.Linear(z_dim, 8 * 4 * 4)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 3, 4, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.bn.running_mean.copy_(torch.randn(8, generator=g) * 0.1)
            self.bn.running_var.fill_(1.5)
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        x = torch.relu(self.bn(self.fc(z).view(-1, 8, 4, 4)))
        return torch.tanh(self.up(x))


class MeanD(nn.Module):
    """Scores an image by its mean brightness (a deterministic stand-in discriminator)."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))


@pytest.fixture
def G():
    return TinyG()


def test_latents_are_addressed_by_seed_and_index():
    grid = latents(7, range(10), Z)
    assert grid.shape == (10, Z) and grid.dtype == torch.float32
    # the documented formula, by hand
    for i in (0, 3, 9):
        g = torch.Generator().manual_seed((7 * 1_000_003 + i) % 2**63)
        assert torch.equal(grid[i], torch.randn(Z, generator=g))
    assert torch.equal(latents(7, [3, 9], Z), grid[[3, 9]])
    assert torch.equal(latents(7, range(5, 10), Z), grid[5:])
    assert not torch.equal(latents(8, range(10), Z), grid)
    assert mix(-1, 5) == (-1_000_003 + 5) % 2**63 and 0 <= mix(2**70, 1) < 2**63
    assert latents(-3, [0], Z).shape == (1, Z) and latents(2**62, [0], Z).shape == (1, Z)


def test_truncation_of_a_generator_of_unknown_layout_scales_z(G):
    """TinyG is no DCGAN/linear generator: truncation falls back to scaling z (the DCGAN case, toward
    the mean first-block features, is tested in test_explore.py)."""
    z = latents(1, range(8), Z)
    assert torch.equal(gen.render(G, z, truncation=0.5), gen.render(G, 0.5 * z))
    assert torch.equal(gen.generate(G, 1, 8, truncation=0.5).images, gen.render(G, 0.5 * z))
    assert torch.equal(gen.generate(G, 1, 8).images, gen.render(G, z))
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError):
            gen.generate(G, 1, 1, truncation=bad)


def test_generate_is_deterministic_and_restores_training_mode(G):
    G.train()
    rm = G.bn.running_mean.clone()
    a = gen.generate(G, 42, 12, batch_size=5)
    b = gen.generate(G, 42, 12, batch_size=5)
    assert isinstance(a, GenerateResult)
    assert a.images.dtype == torch.uint8 and a.images.shape == (12, 3, S, S)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert a.indices == list(range(12)) and a.seed == 42 and a.scores is None
    assert G.training, "generate must give the model back in the mode it found it"
    assert torch.equal(G.bn.running_mean, rm), "eval mode: BatchNorm statistics untouched"
    assert not torch.equal(gen.generate(G, 43, 12).images, a.images)


def test_image_i_of_a_grid_is_reproducible_alone(G):
    grid = gen.generate(G, 5, 16).images
    for i in range(16):
        one = gen.generate(G, 5, 1, start=i)
        assert one.indices == [i]
        assert torch.equal(one.images[0], grid[i]), f"image {i}"
    page2 = gen.generate(G, 5, 8, start=8, batch_size=3)
    assert page2.indices == list(range(8, 16)) and torch.equal(page2.images, grid[8:])


def test_image_batches_stream_the_same_images(G):
    batches = list(image_batches(G, 10, seed=5, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(b.dtype == torch.uint8 for b in batches)
    assert torch.equal(torch.cat(batches), gen.generate(G, 5, 10).images)


def test_rerank_keeps_the_highest_scored_in_index_order(G):
    D = MeanD()
    n, k, start = 4, 3, 2
    res = gen.generate(G, 9, n, start=start, D=D, rerank=k)
    G.eval()
    with torch.no_grad():  # D sees G's float output, as in training
        scores = D(G(latents(9, range(start, start + n * k), Z)))
    best = sorted(np.argsort(-scores.numpy(), kind="stable")[:n].tolist())
    assert res.indices == [start + j for j in best]
    assert res.indices == sorted(res.indices) and len(res.images) == n
    assert np.allclose(res.scores, scores[best].numpy(), atol=1e-6)
    assert min(res.scores) >= max(s for j, s in enumerate(scores.tolist()) if j not in best)
    for img, i in zip(res.images, res.indices, strict=True):  # every kept image redraws alone from (seed, i)
        assert torch.equal(img, gen.generate(G, 9, 1, start=i).images[0])
    plain = gen.generate(G, 9, n, start=start, D=D, rerank=1)
    assert plain.indices == list(range(start, start + n)) and plain.scores is None


def test_interpolate_endpoints_are_the_grid_images(G):
    for mode in ("slerp", "lerp"):
        frames = interpolate(G, 3, 4, 6, index_a=2, index_b=5, mode=mode)
        assert frames.shape == (6, 3, S, S) and frames.dtype == torch.uint8
        assert torch.equal(frames[0], gen.generate(G, 3, 1, start=2).images[0])
        assert torch.equal(frames[-1], gen.generate(G, 4, 1, start=5).images[0])
    with pytest.raises(ValueError):
        interpolate(G, 3, 4, 6, mode="cubic")


def test_slerp_stays_on_the_shell():
    za, zb = latents(0, [0], 512)[0], latents(1, [0], 512)[0]
    mid_s = interpolation_latents(za, zb, 3, "slerp")[1]
    mid_l = interpolation_latents(za, zb, 3, "lerp")[1]
    r = (za.norm() + zb.norm()) / 2
    assert abs(mid_s.norm() - r) / r < 0.05  # near-orthogonal Gaussians: slerp keeps the norm
    assert mid_l.norm() < 0.8 * r  # the straight line cuts through the low-density middle


def test_gif_goes_there_and_back(G, tmp_path):
    steps = 5
    frames = interpolate(G, 1, 2, steps)
    assert gif_frame_order(steps) == [0, 1, 2, 3, 4, 3, 2, 1]
    buf = io.BytesIO()
    to_gif(frames, buf, fps=10, upscale=2)
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.n_frames == 2 * steps - 2
    assert im.size == (2 * S, 2 * S)
    assert im.info.get("loop") == 0
    assert im.info.get("duration") == 100
    p = tmp_path / "sub" / "a.gif"
    to_gif(frames, p)
    assert Image.open(p).n_frames == 2 * steps - 2
    assert gif_frame_order(1) == [0] and gif_frame_order(2) == [0, 1]


def test_zip_and_pngs_hold_exact_pixels(G, tmp_path):
    res = gen.generate(G, 11, 3, start=7)
    data = to_zip(res.images, res.seed, res.indices)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names == ["seed11_00007.png", "seed11_00008.png", "seed11_00009.png"]
        for name, img in zip(names, res.images, strict=True):
            px = np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("RGB"))
            assert np.array_equal(px, img.permute(1, 2, 0).numpy())
    paths = save_pngs(res.images, tmp_path / "out", res.seed, res.indices)
    assert [p.name for p in paths] == names and all(p.is_file() for p in paths)
    assert np.array_equal(np.asarray(Image.open(paths[1])), res.images[1].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError):
        to_zip(res.images, 11, [1, 2])


def test_grid_and_upscale(G, tmp_path):
    imgs = gen.generate(G, 0, 8).images
    grid = to_grid(imgs, cols=4, padding=2)
    assert grid.size == (4 * (S + 2) + 2, 2 * (S + 2) + 2)
    tile = np.asarray(grid)[2 : 2 + S, 2 : 2 + S]
    assert np.array_equal(tile, imgs[0].permute(1, 2, 0).numpy())
    big = upscale(grid, 3)
    assert big.size == (grid.width * 3, grid.height * 3)
    assert np.array_equal(np.asarray(big)[::3, ::3], np.asarray(grid))
    smooth = upscale(grid, 3, smooth=True)
    assert smooth.size == big.size and not np.array_equal(np.asarray(smooth), np.asarray(big))
    t = upscale(imgs[0], 2)
    assert t.shape == (3, 2 * S, 2 * S) and torch.equal(t[:, ::2, ::2], imgs[0])
    p = save_grid(imgs, tmp_path / "g" / "grid.png", cols=4, scale=2)
    assert Image.open(p).size == (grid.width * 2, grid.height * 2)
    with pytest.raises(TypeError):
        to_grid(imgs.float())


def test_grid_png_is_the_grid_of_generate(G):
    png = gen.grid_png(G, 4, 6, cols=3, scale=2)
    want = upscale(to_grid(gen.generate(G, 4, 6).images, cols=3), 2)
    got = Image.open(io.BytesIO(png))
    assert got.format == "PNG" and got.size == want.size
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want))
    one = Image.open(io.BytesIO(images.png_bytes(gen.generate(G, 4, 1).images[0])))
    assert np.array_equal(np.asarray(one), gen.generate(G, 4, 1).images[0].permute(1, 2, 0).numpy())


def test_download_names():
    assert images.grid_name(7) == "seed7_grid.png" and images.grid_name(7, "zip") == "seed7_faces.zip"
    assert images.interpolation_name(1, 2) == "seed1_to_2.gif"


@pytest.mark.parametrize("name, want", [
    ("../evil name.pt", "evil-name.pt"),
    ("C:\\Users\\me\\best.pt", "best.pt"),
    (".hidden.pt", "hidden.pt"),
    ("weights", "weights.pt"),
    ("model.PT", "model.PT"),
    ("", "upload.pt"),
    ("...", "upload.pt"),
])
def test_checkpoint_upload_name_is_one_safe_pt_name(name, want):
    assert uploads.checkpoint_upload_name(name) == want


def test_save_checkpoint_upload_stays_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMEGAN_HOME", str(tmp_path / "home"))
    p = uploads.save_checkpoint_upload("../../outside.pt", b"bytes")
    assert p == tmp_path / "home" / "uploads" / "outside.pt" and p.read_bytes() == b"bytes"
    q = uploads.save_checkpoint_upload("a/b/c", b"x", folder=tmp_path / "elsewhere")
    assert q == tmp_path / "elsewhere" / "c.pt"


# =========================================================================== the Generate page (AppTest)
# The page's logic, driven in this process: a click in the grid sets `gen_pick` (its browser test is
# tests/test_browser_generate.py); here the pick is set the way that click sets it.

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "generate.py")
SYNTHETIC64 = Path(__file__).resolve().parent.parent / "checkpoints" / "synthetic64.pt"
PAGE_TIMEOUT = 180  # the CPU is shared with training runs


@pytest.fixture
def shipped_synthetic(tmp_path, monkeypatch):
    """Only synthetic64 ships (the smallest shipped checkpoint)."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    shutil.copy(SYNTHETIC64, folder / "synthetic64.pt")
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", folder)
    return folder / "synthetic64.pt"


@pytest.fixture(scope="module")
def tiny_with_d(tmp_path_factory):
    """A tiny anime64 run's export (it carries the discriminator) and the faces it trained on."""
    from animegan.checkpoint import export_generator
    from animegan.config import preset_config
    from animegan.synth import write_synthetic
    from animegan.train import train

    base = tmp_path_factory.mktemp("tinyd")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(base / "home"))
        faces = write_synthetic(base / "faces", n=60, workers=1)
        cfg = preset_config("anime64", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=1, max_steps=2,
                            val_size=6, test_size=6, latest_every=2, log_every=2, compile="off")
        assert train(cfg, base / "run", progress=False) == "finished"
        export_generator(base / "run", base / "shipped" / "tiny-d.pt")
    return base


def page(painted: bool = True) -> AppTest:
    """The Generate page in a new session; `painted`: as after the browser painted it once (AppTest
    has no browser to ask for the part below the grid: app_pages/after_paint.py)."""
    at = AppTest.from_file(PAGE, default_timeout=PAGE_TIMEOUT)
    if painted:
        at.session_state[after_paint.painted_key("gen_below")] = True
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [c for im in at.image for c in im.captions] + [c.value for c in at.code]
    return "\n".join(str(p) for p in parts)


def image_captions(at: AppTest) -> list[str]:
    return [c for im in at.image for c in im.captions]


def test_page_pick_steer_with_sliders_and_reset(shipped_synthetic):
    at = page()
    assert "Click a face to pick it" in texts(at) and at.get("bidi_component")
    assert "seed 0, index 0" in image_captions(at)
    at.session_state["gen_pick"] = 5  # what a click on face 5 of the grid does
    rerun(at)
    t = texts(at)
    assert "seed 0, index 5" in image_captions(at) and "identical pixels" in t and "--n 1 --start 5" in t
    plain = at.session_state["gen_face_png"]
    strips = [c for c in image_captions(at) if c.startswith("direction ")]
    assert len(strips) == 5 and all("-3 · -2 · -1 · +0 · +1 · +2 · +3" in c for c in strips)
    at.slider(key="gen_dir_0").set_value(2.0)
    at.slider(key="gen_dir_2").set_value(-1.5)
    rerun(at)
    assert at.session_state["gen_face_png"] != plain
    assert "seed 0, index 5, edited (2 directions)" in image_captions(at)
    assert "--edit 0=2 --edit 2=-1.5" in texts(at)
    at.button(key="gen_dir_reset").click()
    rerun(at)
    assert at.slider(key="gen_dir_0").value == 0.0 and at.session_state["gen_face_png"] == plain
    at.radio(key="gen_dir_method").set_value("ganspace")
    at.slider(key="gen_dir_k").set_value(3)
    at.slider(key="gen_dir_1").set_value(1.0)
    rerun(at)
    assert len([c for c in image_captions(at) if c.startswith("direction ")]) == 3
    assert "--directions ganspace" in texts(at)
    at.number_input(key="gen_n").set_value(4)
    rerun(at)
    assert at.session_state["gen_pick"] == 3, "the pick is clamped into a smaller grid"
    at.toggle(key="gen_smooth").set_value(False)
    rerun(at)


def test_page_direction_names_are_kept_for_the_checkpoint(shipped_synthetic):
    at = page()
    h = directions.checkpoint_hash(shipped_synthetic)
    at.text_input(key=f"gen_dname_{h[:12]}_sefa_1").input("hair colour")
    rerun(at)
    assert directions.load_names(h, "sefa") == {1: "hair colour"}
    assert (paths.home() / "directions" / f"{h}.json").is_file()
    again = page()  # a new session: the name comes back, on the slider and the strip
    assert again.slider(key="gen_dir_1").label == "Direction 1: hair colour"
    assert any(c.startswith("direction 1: hair colour:") for c in image_captions(again))


def test_page_truncation_strip_and_interpolation_seeds_follow(shipped_synthetic):
    at = page()
    assert any(c.startswith("ψ 1 · 0.85") and "0 (the average face)" in c for c in image_captions(at))
    assert at.number_input(key="gen_seed_b").value == 1
    at.number_input(key="gen_seed").set_value(7)
    rerun(at)
    assert at.number_input(key="gen_seed_b").value == 8, "seed B follows the main seed"
    at.button(key="gen_new_seed").click()
    rerun(at)
    assert at.session_state["gen_seed_b"] == (at.session_state["gen_seed"] + 1) % (2**31)
    at.number_input(key="gen_seed").set_value(3)
    rerun(at)
    at.session_state["gen_pick"] = 2
    rerun(at)
    assert any("seed 3, index 2 → seed 4, index 0" in c for c in image_captions(at))
    at.button(key="gen_pin").click()  # pin face 2, then pick face 6: the walk goes 6 → 2
    rerun(at)
    at.session_state["gen_pick"] = 6
    at.number_input(key="gen_steps").set_value(5)
    rerun(at)
    assert at.radio(key="gen_interp_to").value == "the pinned face"
    at.slider(key="gen_frame").set_value(4)
    rerun(at)
    assert any("frame 4 of 4: seed 3, index 6 → seed 3, index 2" in c for c in image_captions(at))
    assert [b.label for b in at.get("download_button")] == ["Grid (PNG)", "Every face (zip of PNGs)", "GIF"]


def test_page_projection_of_an_uploaded_face(shipped_synthetic):
    from animegan.checkpoint import load_generator

    G = load_generator(shipped_synthetic).G
    face = gen.generate(G, 0, 1, start=2).images[0]
    at = page()
    at.file_uploader(key="gen_face_upload").set_value(("my face.png", images.png_bytes(face), "image/png"))
    rerun(at)
    at.button(key="gen_project").click()
    rerun(at)
    caps = image_captions(at)
    proj = next(c for c in caps if "as loaded (left) and its projection" in c)
    assert float(re.search(r"mean absolute error ([\d.]+) of 255", proj).group(1)) <= 10
    assert "the projection of my face.png" in caps, "the projection is the picked face now"
    assert "pixels and the laplacian pyramid were used" in texts(at).lower(), "no D in this export: said so"
    at.slider(key="gen_dir_0").set_value(1.0)
    rerun(at)
    assert "the projection of my face.png, edited (1 directions)" in image_captions(at)
    at.button(key="gen_back_to_grid").click()
    rerun(at)
    assert "seed 0, index 0, edited (1 directions)" in image_captions(at)
    at.file_uploader(key="gen_face_upload").set_value(("junk.png", b"not an image", "image/png"))
    rerun(at)
    at.button(key="gen_project").click()
    rerun(at)
    assert "junk.png cannot be used" in texts(at)


def test_page_memorisation_check_with_a_discriminator(tiny_with_d, monkeypatch):
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tiny_with_d / "shipped")
    at = page()
    assert at.slider(key="gen_k"), "an export with D offers re-ranking"
    assert at.text_input(key="gen_mem_data").value == str(tiny_with_d / "faces"), "the data from its config"
    at.button(key="gen_mem_go").click()
    rerun(at)
    caps = [c for c in image_captions(at) if "nearest training faces" in c]
    assert len(caps) == 2 and "pixels at 32 px" in caps[0] and "discriminator features" in caps[1]
    at.number_input(key="gen_mem_n").set_value(50)
    at.button(key="gen_mem_score").click()
    rerun(at)
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table.columns) >= {"space", "score", "threshold"}
    assert ((table["score"] >= 0) & (table["score"] <= 1)).all()
    assert "5th percentile" in texts(at)
    at.text_input(key="gen_mem_data").input(str(tiny_with_d / "nowhere"))
    at.button(key="gen_mem_go").click()
    rerun(at)
    assert at.error, "a missing data folder is one clear error"
