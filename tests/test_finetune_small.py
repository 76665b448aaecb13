"""The small-data levers (FreezeD, adaptive augmentation) and the `finetune-small` preset, which
must start from every shipped checkpoint whatever its architecture."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from animegan.augment import ada_adjust, diff_augment
from animegan.checkpoint import adopt_architecture, load_checkpoint
from animegan.config import ConfigError, TrainConfig, preset_config, validate
from animegan.models import MODELS, build_models, discriminator_blocks
from animegan.step import build_nets, freeze_discriminator, train_step
from animegan.synth import write_synthetic
from animegan.train import train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "checkpoints").glob("*.pt"))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=24, seed=5, workers=1) / "images"


@pytest.mark.parametrize("model", list(MODELS))
def test_freezing_keeps_the_first_blocks_and_trains_the_rest(model):
    size = 96 if model == "dcgan96" else 64
    _, D = build_models(model, 16, 4, 4, size)
    blocks = discriminator_blocks(D)
    assert len(blocks) >= 4 and all(any(p.numel() for m in b for p in m.parameters()) for b in blocks)
    frozen = freeze_discriminator(D, 2)
    assert frozen == sum(p.numel() for b in blocks[:2] for m in b for p in m.parameters()) > 0
    before = [p.detach().clone() for p in D.parameters()]
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=1e-2)
    D(torch.randn(4, 3, size, size)).mean().backward()
    opt.step()
    first = {id(p) for b in blocks[:2] for m in b for p in m.parameters()}
    for p, b in zip(D.parameters(), before, strict=True):
        if id(p) in first:
            assert torch.equal(p, b)
    assert any(not torch.equal(p, b) for p, b in zip(D.parameters(), before, strict=True) if id(p) not in first)


@pytest.mark.parametrize("model", ["anime64", "dcgan", "gan-linear"])  # the BatchNorm Ds
def test_frozen_blocks_give_each_image_the_checkpoints_features_while_training(model):
    """FreezeD keeps D's first blocks as the checkpoint's function of an image: during training
    (D in train mode), for any batch, their output is what the checkpoint's D computes for that
    image on its own (eval mode), and stays so after steps that teach the rest of D other images.
    A frozen BatchNorm that normalised by each batch (or let its statistics drift) would not."""
    _, D = build_models(model, 16, 4, 4, 64)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():   # a "pre-trained" D: BatchNorm statistics of its own images
        for _ in range(20):
            D(torch.rand(16, 3, 64, 64, generator=g) * 2 - 1)
    checkpoint = copy.deepcopy(D).eval()
    n = 2
    freeze_discriminator(D, n)
    D.train()
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):      # a new style: darker, flatter images than the checkpoint's
        D(torch.rand(8, 3, 64, 64, generator=g) * 0.5 - 0.8).mean().backward()
        opt.step()
        opt.zero_grad()

    def frozen_features(net, x):
        for m in [m for b in discriminator_blocks(net)[:n] for m in b]:
            x = m(x)
        return x

    probe = torch.rand(6, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        expect = frozen_features(checkpoint, probe.clone())
        assert torch.allclose(frozen_features(D, probe.clone()), expect, atol=1e-5)
        assert torch.allclose(frozen_features(D, probe[:2].clone()), expect[:2], atol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(D.state_dict().values(), checkpoint.state_dict().values(),
                                                    strict=True))


def test_freeze_and_adaptive_settings_are_checked_in_words():
    with pytest.raises(ConfigError, match="has 4 blocks; freeze at most 4"):
        validate(preset_config("finetune-small", freeze_d=5))
    with pytest.raises(ConfigError, match="--diffaug"):
        validate(preset_config("finetune-small", ada_target=0.6, diffaug=""))
    with pytest.raises(ConfigError, match="--ada-target is a probability"):
        validate(preset_config("finetune-small", ada_target=1.5))
    validate(preset_config("finetune-small"))


def test_adaptive_probability_applies_ops_that_often_and_moves_by_the_sign_of_d():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    assert torch.equal(diff_augment(x, "color,translation", g, torch.tensor(0.0)), x)
    changed = (diff_augment(x, "color", g, torch.tensor(0.5)) != x).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 0.7
    assert (diff_augment(x, "color", g, torch.tensor(1.0)) != x).flatten(1).any(1).all()
    p = torch.tensor(0.0)
    for _ in range(10):   # D calls every real real (r_t = 1 > 0.6): p rises 64 / 1000 a step
        ada_adjust(p, torch.tensor(1.0), 0.6, 64, 1.0)
    assert p.item() == pytest.approx(0.64)
    for _ in range(20):   # D unsure (r_t = 0.2 < 0.6): p falls, never below 0
        ada_adjust(p, torch.tensor(0.2), 0.6, 64, 1.0)
    assert p.item() == 0.0


def test_the_step_reports_p_and_a_checkpoint_keeps_it():
    cfg = TrainConfig(model="anime64", ngf=4, ndf=4, z_dim=8, batch_size=8, diffaug="translation,cutout",
                      ada_target=0.6, ada_kimg=0.08)
    nets = build_nets(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    rows = [train_step(nets, cfg, torch.rand(8, 3, 64, 64) * 2 - 1, torch.randn(8, 8, generator=g), g, s)
            for s in range(3)]
    assert rows[0]["aug_p"].item() == 0.0
    for before, after in zip(rows, rows[1:], strict=False):  # 8 / 80 a step, up while D calls reals real
        r_t = before["real_sign"].item()
        assert -1 <= r_t <= 1
        expect = min(1.0, max(0.0, before["aug_p"].item() + (0.1 if r_t > 0.6 else -0.1)))
        assert abs(after["aug_p"].item() - expect) < 1e-6, (before, after)
    nets.aug_p.fill_(0.3)  # whatever p the run reached
    saved = nets.state()
    again = build_nets(cfg, torch.device("cpu"))
    again.load_state(saved)
    assert again.aug_p.item() == nets.aug_p.item() != 0.0


@pytest.mark.parametrize("ckpt", SHIPPED, ids=lambda p: p.stem)
def test_finetune_small_starts_from_every_shipped_checkpoint(ckpt, faces, tmp_path):
    """Two steps of the preset, with both levers on (the preset itself leaves them off: docs/recipes.md,
    "Your own characters"), from each shipped checkpoint, architecture taken from it; where the
    checkpoint holds D its first `freeze_d` blocks stay exactly the checkpoint's, and p is logged."""
    cfg = adopt_architecture(preset_config("finetune-small", data=str(faces), batch_size=8, max_steps=2, log_every=1,
                                           threads=1, compile="off", eval_kimg=0.0, init_from=str(ckpt),
                                           freeze_d=2, ada_target=0.6))
    assert train(cfg, tmp_path / "run", progress=False) == "finished"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["aug_p"] for r in rows if "aug_p" in r][:1] == [0.0] and len([r for r in rows if "aug_p" in r]) == 2
    base, last = load_checkpoint(ckpt), load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    if base.get("D") is None:   # nothing trained to keep: every block learns
        assert last["D"]["features.0.weight"].abs().sum() > 0
        return
    _, D = build_models(cfg.model, cfg.z_dim, cfg.ngf, cfg.ndf, cfg.img_size)
    blocks = discriminator_blocks(D)
    names = {id(p): k for k, p in D.named_parameters()}
    assert cfg.freeze_d > 0
    modules = {id(m): k for k, m in D.named_modules()}
    # everything a frozen block holds: weights and BatchNorm statistics alike
    frozen = [f"{modules[id(m)]}.{k}" for b in blocks[:cfg.freeze_d] for m in b for k in m.state_dict()]
    trained = [names[id(p)] for b in blocks[cfg.freeze_d:] for m in b for p in m.parameters()]
    assert frozen
    for k in frozen:
        assert torch.equal(last["D"][k].float(), base["D"][k].float()), k
    assert any(not torch.equal(last["D"][k], base["D"][k].float()) for k in trained)
