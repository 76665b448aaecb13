"""Round 3 of the recipe ablation: the residual networks without normalisation layers (R3GAN),
skip-layer excitation in G (FastGAN), the relativistic pairing loss (RpGAN) and the R2 penalty."""
import copy
import math

import pytest
import torch
from torch import nn

from animegan.checkpoint import export_generator, load_generator
from animegan.config import ConfigError, preset_config, validate
from animegan.generate import generate
from animegan.losses import d_loss, g_loss, r2_penalty
from animegan.models import ResBlock, build_models
from animegan.rundir import Run
from animegan.step import build_nets, train_step
from animegan.synth import write_synthetic
from animegan.train import train

NEW_MODELS = ("resnet", "anime64-sle")


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the ablation runs (and a busy 2-core machine runs small nets faster so)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


# -- the networks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", NEW_MODELS)
@pytest.mark.parametrize("size", (32, 64, 96, 128))
def test_new_models_draw_every_size_in_range_and_score_each_image(model, size):
    G, D = build_models(model, 16, 8, 8, size, seed=0)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    x = G(z)
    assert x.shape == (6, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.01
    assert D(x).shape == (6,)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the trainer runs where bf16 is native
        s = D(G(z))
    assert s.shape == (6,) and torch.isfinite(s.float()).all()
    again, _ = build_models(model, 16, 8, 8, size, seed=0)
    assert torch.equal(again(z), x), "initialised from the seed"


def test_resnet_has_no_normalisation_and_its_blocks_start_as_the_identity():
    G, D = build_models("resnet", 16, 8, 8, 64)
    norms = (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)
    assert not [m for m in (*G.modules(), *D.modules()) if isinstance(m, norms)]
    blocks = [m for m in (*G.modules(), *D.modules()) if isinstance(m, ResBlock)]
    assert len(blocks) >= 8
    for b in blocks:
        x = torch.randn(2, b.conv1.in_channels, 8, 8)
        assert torch.equal(b(x), x)
    # ...and they are not dead: one update of every weight changes what G draws through them
    z = torch.randn(4, 16)
    G(z).square().mean().backward()
    assert all(b.conv2.weight.grad.abs().sum() > 0 for b in blocks if b in set(G.modules()))


def test_sle_generator_is_anime64_with_channel_gates():
    base, _ = build_models("anime64", 16, 8, 8, 64, seed=0)
    sle, _ = build_models("anime64-sle", 16, 8, 8, 64, seed=0)
    gates = [m for n, m in sle.named_modules() if n.startswith("sle.") and n.count(".") == 1]
    assert len(gates) == 2  # 4 → 16 and 8 → 32
    missing, unexpected = sle.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("sle.") for k in missing)
    z = torch.randn(8, 16)  # train mode: BatchNorm on the batch, as in training
    with torch.no_grad():
        for g in gates:
            for p in g.parameters():
                p.normal_(0.0, 1.0)  # gates that differ per channel (at init they are all about 0.5)
    assert (sle(z) - base(z)).abs().mean() > 0.01 * base(z).abs().mean(), "the gates change what G draws"
    with torch.no_grad():
        for g in gates:  # every gate fully open (sigmoid → 1): the anime64 generator exactly
            g.gate[3].weight.zero_()
            g.gate[3].bias.fill_(100.0)
    torch.testing.assert_close(sle(z), base(z))


# -- the relativistic pairing loss and R2 -------------------------------------------------------------

def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_rpgan_losses_match_their_formula_and_are_differentiable():
    r, f = [2.0, -1.0, 0.5, 0.0], [1.0, 0.0, 3.0, -2.0]
    real, fake = torch.tensor(r, requires_grad=True), torch.tensor(f, requires_grad=True)
    ld = d_loss("rpgan", real, fake)
    assert ld.item() == pytest.approx(sum(_softplus(-(a - b)) for a, b in zip(r, f, strict=True)) / 4, rel=1e-6)
    ld.backward()
    sig = [1 / (1 + math.exp(a - b)) for a, b in zip(r, f, strict=True)]  # sigmoid(-(r - f))
    assert real.grad.tolist() == pytest.approx([-s / 4 for s in sig], rel=1e-5)
    assert fake.grad.tolist() == pytest.approx([s / 4 for s in sig], rel=1e-5)
    fake.grad = None
    lg = g_loss("rpgan", fake, real.detach())
    assert lg.item() == pytest.approx(sum(_softplus(-(b - a)) for a, b in zip(r, f, strict=True)) / 4, rel=1e-6)
    lg.backward()
    assert fake.grad.tolist() == pytest.approx([-1 / (1 + math.exp(b - a)) / 4 for a, b in zip(r, f, strict=True)], rel=1e-5)
    # relativistic: only the paired differences count
    assert d_loss("rpgan", real + 5, fake + 5).item() == pytest.approx(ld.item(), rel=1e-6)
    with pytest.raises(ValueError, match="real"):
        g_loss("rpgan", fake)


def test_r2_penalty_is_the_squared_input_gradient_on_fakes():
    w = torch.randn(3, 4, 4)
    fake = torch.randn(5, 3, 4, 4, requires_grad=True)
    p = r2_penalty(lambda x: (x * w).flatten(1).sum(1) + (x ** 2).flatten(1).sum(1), fake)
    expected = (w + 2 * fake.detach()).flatten(1).pow(2).sum(1).mean()
    assert p.item() == pytest.approx(expected.item(), rel=1e-5)
    assert p.requires_grad and fake.grad is None  # differentiable for D, detached from G's graph


def test_r2_gamma_is_validated():
    validate(preset_config("anime64", model="resnet", loss="rpgan", r2_gamma=0.2))
    with pytest.raises(ConfigError, match="r2-gamma"):
        validate(preset_config("anime64", r2_gamma=-0.1))


def _sgd_cfg(**kw):
    """Plain SGD (no momentum), fp32, no augmentation: a parameter moves by exactly -lr · its gradient."""
    return preset_config("anime64", model="resnet", ngf=8, ndf=8, img_size=32, loss="rpgan", opt_g="sgd", opt_d="sgd",
                         lr_g=0.5, lr_d=0.5, momentum=0.0, diffaug="", amp="off", compile="off", ema_kimg=0.0,
                         r1_gamma=0.0, r2_gamma=3.0, r1_every=4, **kw)


def _grads(loss, params):
    return torch.autograd.grad(loss, list(params))


def test_train_step_applies_r2_lazily_and_the_paired_losses():
    cfg = _sgd_cfg()
    nets = build_nets(cfg, torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    real, z = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1, torch.randn(8, cfg.z_dim, generator=gen)
    for step, lazy in ((0, True), (1, False)):
        G0, D0 = copy.deepcopy(nets.G), copy.deepcopy(nets.D)
        out = train_step(nets, cfg, real, z, torch.Generator().manual_seed(2), step)
        fake = G0(z)
        loss = d_loss("rpgan", D0(real), D0(fake.detach()))
        if lazy:  # on R1's schedule, on the fakes, scaled by r1_every
            r2 = r2_penalty(D0, fake)
            assert out["r2"].item() == pytest.approx(r2.item(), rel=1e-4) and r2.item() > 0
            loss = loss + cfg.r2_gamma / 2 * cfg.r1_every * r2
        else:
            assert "r2" not in out and "r1" not in out
        for p0, p1, gr in zip(D0.parameters(), nets.D.parameters(), _grads(loss, D0.parameters()), strict=True):
            torch.testing.assert_close(p1, p0 - cfg.lr_d * gr, rtol=1e-4, atol=1e-6)
        # G: softplus(-(D(G(z)) - D(x))) under the D just updated, its gradient through the fakes only
        D1 = copy.deepcopy(nets.D)
        lg = g_loss("rpgan", D1(G0(z)), D1(real).detach())
        assert out["loss_G"].item() == pytest.approx(lg.item(), rel=1e-5)
        for p0, p1, gr in zip(G0.parameters(), nets.G.parameters(), _grads(lg, G0.parameters()), strict=True):
            torch.testing.assert_close(p1, p0 - cfg.lr_g * gr, rtol=1e-4, atol=1e-6)


# -- the trainer, end to end -------------------------------------------------------------------------

@pytest.mark.parametrize("model", NEW_MODELS)
def test_rpgan_with_r1_and_r2_trains_and_its_checkpoints_draw_the_same_faces(model, faces, tmp_path):
    cfg = preset_config("anime64", data=str(faces), model=model, loss="rpgan", r1_gamma=0.1, r2_gamma=0.1, r1_every=1,
                        ngf=8, ndf=8, batch_size=8, val_size=4, test_size=4, epochs=2, max_steps=6, log_every=1,
                        latest_every=6, eval_every=0, n_samples=8, threads=1)
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    run = Run(tmp_path / "run")
    m = run.metrics()
    assert m["step"] == [1, 2, 3, 4, 5, 6]
    for key in ("r1", "r2", "loss_D", "loss_G"):
        assert len(m[key]) == 6 and all(v is not None and math.isfinite(v) for v in m[key]), (key, m[key])
    assert all(v > 0 for v in m["r1"]) and all(v > 0 for v in m["r2"])
    last = run.last_checkpoint()
    a = generate(load_generator(last).G, seed=5, n=6).images
    b = generate(load_generator(last).G, seed=5, n=6).images
    assert a.shape == (6, 3, 64, 64) and torch.equal(a, b)
    exported = load_generator(export_generator(tmp_path / "run", tmp_path / "g.pt"))
    assert exported.config.model == model and exported.kind == "generator"
    c = generate(exported.G, seed=5, n=6).images
    assert (c.int() - a.int()).abs().float().mean() < 1.0, "fp16 export draws the same faces"
