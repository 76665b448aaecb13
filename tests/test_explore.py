"""Exploring what a generator learned: latent directions, truncation toward the average face,
projection (inversion), the memorisation check, and exports that carry the discriminator."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import generate, paths
from animegan.checkpoint import export_generator, load_checkpoint, load_generator, no_discriminator_reason
from animegan.config import preset_config
from animegan.data import prepare, to_float, to_uint8
from animegan.explore import directions
from animegan.explore.anatomy import discriminator_features, first_linear
from animegan.explore.invert import invert, laplacian_pyramid, load_face
from animegan.explore.memorisation import memorisation_score, nearest_training_faces
from animegan.models import build_generator, build_models, split_generator

SYNTHETIC64 = paths.SHIPPED_CHECKPOINTS / "synthetic64.pt"
ANIME64 = paths.SHIPPED_CHECKPOINTS / "anime64.pt"


@pytest.fixture(scope="module")
def synthetic64():
    return load_generator(SYNTHETIC64)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny finished anime64 run (EMA, BatchNorm D with minibatch-stddev) and its export."""
    from animegan.synth import write_synthetic
    from animegan.train import train

    base = tmp_path_factory.mktemp("explore")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(base / "home"))
        faces = write_synthetic(base / "faces", n=48, workers=1)
        cfg = preset_config("anime64", data=str(faces), ngf=8, ndf=8, batch_size=8, epochs=1, max_steps=3,
                            val_size=4, test_size=4, latest_every=3, log_every=3, compile="off")
        assert train(cfg, base / "run", progress=False) == "finished"
        export_generator(base / "run", base / "export.pt")
    return base


@pytest.fixture(scope="module")
def faces_data(tmp_path_factory):
    """400 synthetic faces as a folder, prepared at 64 px with 40 val and 40 test faces."""
    from animegan.synth import write_synthetic

    base = tmp_path_factory.mktemp("memo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANIMEGAN_HOME", str(base / "home"))
        faces = write_synthetic(base / "faces", n=400, workers=1)
        data = prepare(faces, 64, val=40, test=40)
    return data


# --------------------------------------------------------------------------- directions


def _orthonormal(v: torch.Tensor) -> bool:
    return torch.allclose(v @ v.T, torch.eye(len(v)), atol=1e-5)


@pytest.mark.parametrize("method", directions.METHODS)
def test_directions_are_orthonormal_and_deterministic(synthetic64, method):
    G = synthetic64.G
    a = directions.find(G, method, 8)
    b = directions.find(G, method, 8)
    assert a.method == method and a.vectors.shape == (8, G.z_dim) and a.vectors.dtype == torch.float32
    assert _orthonormal(a.vectors)
    assert torch.equal(a.vectors, b.vectors), "the same weights give the same directions, bit for bit"
    # direction i does not depend on how many are asked for
    assert torch.allclose(directions.find(G, method, 3).vectors, a.vectors[:3], atol=1e-6)
    # the sign convention: each direction's largest entry is positive
    assert (a.vectors.gather(1, a.vectors.abs().argmax(1, keepdim=True)) > 0).all()


def test_sefa_is_the_top_eigenvectors_of_the_first_layer():
    G = build_generator("dcgan", 16, 8, 32)
    A = first_linear(G)
    assert A.shape == (8 * 4 * 4 * 4, 16)  # ngf·2^(n_up) channels × 4×4 outputs, z_dim inputs
    # the layer really computes A·z: compare with the network's own first ConvTranspose2d
    z = torch.randn(3, 16, dtype=torch.float64)
    want = G.net[0].double()(z.view(3, 16, 1, 1)).flatten(1)
    assert torch.allclose(z @ A.T, want, atol=1e-10)
    d = directions.sefa(G, 4)
    M = (A.T @ A).float()
    for v, lam in zip(d.vectors, d.strength, strict=True):
        assert torch.allclose(M @ v, lam * v, rtol=1e-3, atol=1e-5)
    assert d.strength == sorted(d.strength, reverse=True)
    # no other unit direction moves the first layer's output more than the first one
    r = torch.randn(200, 16, dtype=torch.float64)
    r /= r.norm(dim=1, keepdim=True)
    assert (A @ d.vectors[0].double()).norm() >= (r @ A.T).norm(dim=1).max()


def test_found_directions_change_faces_more_than_random_ones(synthetic64):
    G = synthetic64.G
    rnd = directions.random_change(G, count=3, n=16)
    for method in directions.METHODS:
        top = directions.find(G, method, 3)
        assert all(directions.change_per_step(G, v, n=16) > 1.5 * rnd for v in top.vectors), method


def test_shift_edits_and_strips(synthetic64):
    G = synthetic64.G
    d = directions.find(G, "sefa", 4)
    sh = directions.shift(d, {0: 2.0, 3: -1.0})
    assert torch.allclose(sh, 2 * d.vectors[0] - d.vectors[3])
    plain = generate.generate(G, 5, 4).images
    edited = generate.generate(G, 5, 4, shift=sh).images
    assert not torch.equal(plain, edited)
    assert torch.equal(generate.generate(G, 5, 4, shift=torch.zeros(G.z_dim)).images, plain)
    z = generate.latents(5, [1], G.z_dim)[0]
    strip = directions.strip(G, z, d.vectors[0])
    assert strip.shape == (len(directions.STRIP_STEPS), 3, 64, 64)
    assert torch.equal(strip[directions.STRIP_STEPS.index(0.0)], plain[1]), "the strip's middle is the face itself"
    img = directions.strips_image(G, d, generate.latents(5, [1, 2], G.z_dim), scale=1)
    assert img.size == (7 * 66 + 2, 4 * 2 * 66 + 2)  # 7 strengths; 2 faces per direction
    with pytest.raises(ValueError):
        directions.shift(d, {4: 1.0})


def test_direction_names_live_in_the_home_folder_keyed_by_content(synthetic64, tmp_path, animegan_home):
    copy = tmp_path / "elsewhere" / "renamed.pt"
    copy.parent.mkdir()
    shutil.copy(SYNTHETIC64, copy)
    h = directions.checkpoint_hash(SYNTHETIC64)
    assert h == directions.checkpoint_hash(copy) and len(h) == 64
    before = sorted(p.name for p in SYNTHETIC64.parent.iterdir())
    f = directions.save_name(h, "sefa", 2, "  hair   colour ")
    assert f.parent == animegan_home / "directions" and f.name == f"{h}.json"
    assert directions.load_names(directions.checkpoint_hash(copy), "sefa") == {2: "hair colour"}
    assert directions.load_names(h, "ganspace") == {}
    directions.save_name(h, "sefa", 2, "")
    assert directions.load_names(h, "sefa") == {}
    assert sorted(p.name for p in SYNTHETIC64.parent.iterdir()) == before, "nothing written beside a shipped file"
    with pytest.raises(ValueError):
        directions.save_name("../../etc/x", "sefa", 0, "no")


# --------------------------------------------------------------------------- truncation


def test_truncation_pulls_first_block_features_toward_their_mean():
    G = build_generator("dcgan", 16, 8, 32).eval()
    z = generate.latents(3, range(4), 16)
    # psi = 1 is exactly G(z), bit for bit
    with torch.no_grad():
        assert torch.equal(generate.render(G, z), to_uint8(G(z)))
    split = split_generator(G)
    zc = torch.randn(generate.TRUNCATION_SAMPLES, 16, generator=torch.Generator().manual_seed(generate.TRUNCATION_SEED))
    with torch.no_grad():
        centre = split.head(zc).double().mean(0, keepdim=True).float()
        want = split.tail(centre + 0.5 * (split.head(z) - centre))
    assert torch.equal(generate.render(G, z, truncation=0.5), to_uint8(want))
    # psi -> 0: every face becomes the average face
    near0 = generate.render(G, z, truncation=1e-6).float()
    assert (near0 - generate.average_face(G).float()).abs().max() <= 1
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError):
            generate.render(G, z, truncation=bad)


@pytest.mark.parametrize("name", ["synthetic64", "anime64"])
def test_the_average_face_is_a_face_not_the_flat_image_of_z_zero(name):
    """The old truncation scaled z toward 0, and G(0) of these BatchNorm generators is a flat field:
    psi = 0.5 looked washed out. The average face has contrast, and psi = 0.5 keeps most of it."""
    G = load_generator(paths.SHIPPED_CHECKPOINTS / f"{name}.pt").G
    with torch.no_grad():
        zero = to_uint8(G(torch.zeros(1, G.z_dim)))[0].float()
    avg = generate.average_face(G).float()

    def contrast(x: torch.Tensor) -> float:  # spatial std per channel: a flat field of any colour has ~0
        return float(x.flatten(-2).std(dim=-1).mean())
    assert contrast(avg) > 1.8 * contrast(zero), (contrast(avg), contrast(zero))
    z = generate.latents(0, range(32), G.z_dim)
    full = generate.render(G, z).float().std(dim=(1, 2, 3)).mean()
    half = generate.render(G, z, truncation=0.5).float().std(dim=(1, 2, 3)).mean()
    with torch.no_grad():
        scaled = to_uint8(G(0.5 * z)).float().std(dim=(1, 2, 3)).mean()
    assert half > 0.85 * full and half > scaled, (float(full), float(half), float(scaled))


# --------------------------------------------------------------------------- inversion


def test_an_inversion_of_a_face_the_generator_drew_reaches_mae_10(synthetic64):
    G = synthetic64.G  # one face here (another in test_cli's invert verb test)
    target = generate.generate(G, 11, 1, start=7).images[0]
    inv = invert(G, target)
    assert inv.mae <= 10, inv.mae
    assert torch.equal(inv.image, generate.render(G, inv.z[None])[0]), "the image is G(z) of the latent returned"
    assert inv.z.shape == (G.z_dim,) and not inv.used_discriminator
    # the optimisation does the work: its starting point alone is far off
    assert invert(G, target, steps=0).mae > 2 * inv.mae + 5


def test_load_face_crops_and_resizes_like_the_data_pipeline():
    from animegan.data.decode import decode_row

    im = Image.new("RGB", (150, 90), (255, 0, 0))
    im.paste((0, 0, 255), (30, 0, 120, 90))  # the centre square is blue, the sides red
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    face = load_face(buf.getvalue(), 64)
    assert face.shape == (3, 64, 64) and face.dtype == torch.uint8
    assert bytes(face.numpy().tobytes()) == decode_row(buf.getvalue(), "x", 64)[0]
    assert face[2].float().mean() > 250 and face[0].float().mean() < 5, "centre-cropped: only the blue square"
    from animegan.data import DataError
    with pytest.raises(DataError):
        load_face(b"not an image", 64)


def test_laplacian_pyramid_reassembles_the_image():
    x = torch.rand(2, 3, 32, 32)
    bands = laplacian_pyramid(x, 3)
    assert [b.shape[-1] for b in bands] == [32, 16, 8, 4]
    up = bands[-1]
    for b in reversed(bands[:-1]):
        up = torch.nn.functional.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False) + b
    assert torch.allclose(up, x, atol=1e-5)


def test_inversion_uses_the_discriminator_where_present(tiny_run):
    lg = load_generator(tiny_run / "export.pt", with_discriminator=True)
    assert lg.D is not None
    target = generate.generate(lg.G, 1, 1).images[0]
    inv = invert(lg.G, target, D=lg.D, restarts=2, steps=30, candidates=16)
    assert inv.used_discriminator and inv.mae < 60
    assert all(p.requires_grad for p in lg.D.parameters()), "the networks' parameters are given back as they were"


# --------------------------------------------------------------------------- exports carry D


def test_exports_carry_the_discriminator_and_old_exports_still_load(tiny_run):
    raw = load_checkpoint(tiny_run / "export.pt")
    train_ck = load_checkpoint(tiny_run / "run" / "checkpoints" / "last.pt")
    assert raw["D"] is not None and set(raw["D"]) == set(train_ck["D"])
    assert {v.dtype for v in raw["D"].values() if v.is_floating_point()} == {torch.float16}
    lg = load_generator(tiny_run / "export.pt", with_discriminator=True)
    for k, v in lg.D.state_dict().items():
        assert torch.allclose(v.float(), train_ck["D"][k].float(), atol=2e-3, rtol=1e-3), k
    # an export of an export keeps it
    export_generator(tiny_run / "export.pt", tiny_run / "again.pt")
    assert load_checkpoint(tiny_run / "again.pt")["D"] is not None
    # the shipped exports have none: they load, and a feature that needs D says why it is missing
    old = load_generator(SYNTHETIC64, with_discriminator=True)
    assert old.D is None
    msg = no_discriminator_reason(old, "The memorisation check's feature space")
    assert "exported without it" in msg and "synthetic64.pt" in msg


def test_shipped_checkpoints_are_untouched_and_draw_as_before():
    """ψ = 1 draws exactly G(latents): the same pixels as before truncation moved."""
    for name in ("anime64", "dcgan64", "synthetic64"):
        lg = load_generator(paths.SHIPPED_CHECKPOINTS / f"{name}.pt")
        with torch.no_grad():
            want = to_uint8(lg.G(generate.latents(7, range(16), lg.G.z_dim)))
        assert torch.equal(generate.generate(lg.G, 7, 16).images, want), name


# --------------------------------------------------------------------------- memorisation


class ReplayG(torch.nn.Module):
    """A "generator" that hands out given real images in order (it ignores z)."""

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.images = torch.from_numpy(np.asarray(images))
        self.z_dim, self.img_size, self.pos = 8, self.images.shape[-1], 0

    def forward(self, z):
        out = self.images[self.pos : self.pos + len(z)]
        self.pos += len(z)
        return to_float(out)


def test_memorisation_score_of_copies_is_1_and_of_held_out_faces_near_0(faces_data):
    data = faces_data
    train, test = data.splits["train"], data.splits["test"]
    _, D = build_models("anime64", 8, 8, 8, 64)
    D.eval()
    copies = memorisation_score(ReplayG(data.images[train[:60]]), data, n=60, D=D)
    held_out = memorisation_score(ReplayG(data.images[test]), data, n=len(test), D=D)
    for space in ("pixels", "discriminator"):
        assert copies.spaces[space].share == 1.0, space
        assert held_out.spaces[space].share <= 0.15, (space, held_out.spaces[space].share)
        assert copies.spaces[space].threshold == held_out.spaces[space].threshold > 0
    s = copies.spaces["pixels"]
    assert s.threshold == pytest.approx(np.percentile(s.reference, 5))
    assert len(s.reference) == 40 and copies.n_reference == 40
    assert "pixels 1.000" in copies.summary() and copies.to_dict()["spaces"]["pixels"]["n"] == 60


def test_nearest_training_faces_of_a_training_face_is_itself(faces_data, monkeypatch):
    from animegan.explore import memorisation

    monkeypatch.setattr(memorisation, "CHUNK", 50)  # the 320 training faces in 7 chunks: rows must add up
    data = faces_data
    row = int(data.splits["train"][217])
    face = torch.from_numpy(np.array(data.images[row]))
    _, D = build_models("anime64", 8, 8, 8, 64)
    D.eval()
    found = nearest_training_faces(face, data, k=3, D=D)
    assert set(found) == {"pixels", "discriminator"}
    for space, nb in found.items():
        assert nb.rows[0] == row and nb.names[0] == data.names[row], space
        assert nb.distances[0] == pytest.approx(0, abs=1e-3) and nb.distances == sorted(nb.distances)
        assert nb.images.shape == (3, 3, 64, 64) and torch.equal(nb.images[0], face)
    assert set(nearest_training_faces(face, data, k=2)) == {"pixels"}, "no D: pixels only"
    val_row = int(data.splits["val"][0])
    assert val_row not in nearest_training_faces(torch.from_numpy(np.array(data.images[val_row])), data, k=5)["pixels"].rows


def test_discriminator_features_ignore_the_rest_of_the_batch():
    _, D = build_models("anime64", 8, 8, 8, 64)
    D.eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    alone = discriminator_features(D, x[:1])
    assert torch.allclose(discriminator_features(D, x)[:1], alone, atol=1e-5), "no minibatch-stddev mixing"
    assert torch.allclose(alone.norm(dim=1), torch.ones(1))
