"""generate.py: (seed, index) addressing, determinism, reranking, interpolation, output files."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from animegan import generate as gen
from animegan.generate import (
    GenerateResult,
    gif_frame_order,
    image_batches,
    interpolate,
    interpolation_latents,
    latents,
    mix,
    save_grid,
    save_pngs,
    to_gif,
    to_grid,
    to_zip,
    upscale,
)

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


def test_truncation_scales_latents():
    z = latents(1, range(32), Z)
    zt = latents(1, range(32), Z, truncation=0.5)
    assert torch.allclose(zt, 0.5 * z)
    assert (zt.norm(dim=1) < z.norm(dim=1)).all()
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError):
            latents(1, [0], Z, truncation=bad)


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
    one = Image.open(io.BytesIO(gen.png_bytes(gen.generate(G, 4, 1).images[0])))
    assert np.array_equal(np.asarray(one), gen.generate(G, 4, 1).images[0].permute(1, 2, 0).numpy())


def test_download_names():
    assert gen.grid_name(7) == "seed7_grid.png" and gen.grid_name(7, "zip") == "seed7_faces.zip"
    assert gen.interpolation_name(1, 2) == "seed1_to_2.gif"


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
    assert gen.checkpoint_upload_name(name) == want


def test_save_checkpoint_upload_stays_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMEGAN_HOME", str(tmp_path / "home"))
    p = gen.save_checkpoint_upload("../../outside.pt", b"bytes")
    assert p == tmp_path / "home" / "uploads" / "outside.pt" and p.read_bytes() == b"bytes"
    q = gen.save_checkpoint_upload("a/b/c", b"x", folder=tmp_path / "elsewhere")
    assert q == tmp_path / "elsewhere" / "c.pt"
