"""Training configuration: one dataclass holding every default, and presets as plain data.

A preset is a dict of overrides on top of `TrainConfig()`; the CLI and the dashboard override
any field by name. `config.json` in a run directory is `asdict(cfg)`, so a run can always be
rebuilt and rerun from it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    # -- data
    data: str = "synthetic"          # folder, .zip, or "synthetic"
    img_size: int = 64
    val_size: int = 2000             # held out for evaluation (scaled down for small sources)
    test_size: int = 2000
    split_seed: int = 0
    # -- models (see animegan.models.MODELS)
    model: str = "dcgan"
    ngf: int = 64
    ndf: int = 64
    z_dim: int = 100
    # -- loss: "bce" (non-saturating, optional one-sided label smoothing), "wgan-gp", "hinge"
    loss: str = "bce"
    real_label: float = 1.0          # 0.9 / 0.8 = one-sided label smoothing
    gp_lambda: float = 10.0
    # R1 (Mescheder et al., 2018): gamma/2 · E‖∇D(x_real)‖², lazily every r1_every steps
    # (scaled by r1_every, as stylegan2 does); 0 = off. Works with any loss.
    r1_gamma: float = 0.0
    r1_every: int = 16
    # -- optimisation, per network
    opt_g: str = "adam"              # adam | sgd | rmsprop
    opt_d: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.0            # for SGD
    schedule: str = "none"           # none | step | cosine
    milestones: list[int] = field(default_factory=list)  # epochs, for "step"
    gamma: float = 0.1               # lr factor at each milestone
    n_critic: int = 1                # D updates per G update (each on a fresh real batch)
    batch_size: int = 128
    epochs: int = 20
    max_steps: int = 0               # 0 = no limit (smoke runs use a few)
    minutes: float = 0.0             # wall-clock budget of this process (0.5 = 30 s); 0 = none
    # -- augmentation of real images as in the seed work (off = probability 0)
    aug_flip: float = 0.0            # probability of a horizontal flip
    aug_brightness: float = 0.0      # probability of a brightness jitter
    aug_brightness_strength: float = 0.2   # factor drawn from [1-s, 1+s]
    diffaug: str = ""                # DiffAugment policy for D's inputs: "color,translation,cutout"
    # -- generator EMA; samples and exports use the averaged weights when on.
    # Measured in images, not steps (as stylegan2-ada does): the average's half-life is
    # ema_kimg thousand images, and at most ema_rampup × the images seen so far, so early
    # in a run (or on a slow CPU) the average does not lag hours behind the live weights.
    ema_kimg: float = 0.0            # 0 = off
    ema_rampup: float = 0.05
    # -- run control
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda | cuda:N | mps
    # torch.compile of G and D: "auto" turns it on for CPU runs of at least 500 steps where a C
    # compiler exists (measured 1.18× eager on a 2-core CPU, same losses; compiling costs ~40 s,
    # so short runs stay eager); "on" / "off" force it (on CUDA it is opt-in: not measured yet).
    compile: str = "auto"
    channels_last: str = "auto"      # auto (on for CUDA) | on | off
    amp: str = "auto"                # auto (bf16 on CUDA) | bf16 | off
    threads: int = 0                 # CPU threads (0 = torch default)
    log_every: int = 10              # steps between metrics.jsonl rows
    latest_every: int = 50           # steps between samples/latest.png
    sample_every: int = 1            # epochs between samples/epoch_NNNN.png
    checkpoint_every: int = 1        # epochs between epoch_NNNN.pt checkpoints
    checkpoint_minutes: float = 5.0  # time-based last.pt, bounds the loss on slow machines
    keep_last: int = 3               # epoch checkpoints kept (plus best.pt and last.pt)
    n_samples: int = 64              # fixed-noise grid size
    sample_seed: int = 1234          # the fixed noise of every grid
    # -- evaluation during training (animegan.metrics)
    eval_every: int = 0              # epochs; 0 = off
    eval_kimg: float = 0.0           # also every this many thousand images seen; 0 = off
    eval_n: int = 1000
    eval_metric: str = "swd"         # swd | fid; best.pt follows it
    patience: int = 0                # evaluations without improvement before stopping (0 = never)
    # -- collapse: "stop", "rollback" (last good checkpoint, lr halved) or "warn"
    collapse_action: str = "stop"
    collapse_spread: float = 0.08    # fixed-noise spread / real spread below this = collapse
    tensorboard: bool = False
    init_from: str = ""              # checkpoint to fine-tune from
    preset: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Tolerates unknown keys (newer files) and missing ones (older files)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **kw: Any) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


# The seed write-ups' recipes, reproduced by name, and the project's own.
PRESETS: dict[str, dict[str, Any]] = {
    "seed-gan": dict(model="gan-linear", batch_size=64, lr_g=1e-4, lr_d=1e-4, z_dim=100,
                     loss="bce", opt_g="adam", opt_d="adam", epochs=20),
    "seed-dcgan": dict(model="dcgan", batch_size=128, lr_g=2e-4, lr_d=2e-4, z_dim=100,
                       loss="bce", epochs=80),
    "seed-wgangp": dict(model="wgan-gp", loss="wgan-gp", opt_g="rmsprop", opt_d="rmsprop",
                        batch_size=128, lr_g=2e-4, lr_d=2e-4, n_critic=5, epochs=80),
    "seed-dcgan96": dict(model="dcgan96", img_size=96, real_label=0.8, opt_g="adam", opt_d="sgd",
                         momentum=0.9, batch_size=128, lr_g=2e-4, lr_d=2e-4, epochs=80),
    # The project's recipe: DCGAN's fast-converging networks, a minibatch-stddev feature in D
    # (it sees sample diversity, fights collapse), hinge loss, translation DiffAugment on both
    # real and fake, flips, and an EMA generator with its own BatchNorm statistics. It evaluates
    # SWD every epoch so best.pt is the best by metric, not the last.
    "anime64": dict(model="anime64", loss="hinge", batch_size=64, lr_g=2e-4, lr_d=2e-4,
                    beta1=0.5, beta2=0.999, ema_kimg=10.0, diffaug="translation",
                    aug_flip=0.5, epochs=60, eval_every=1, eval_n=1000),
}


def preset_config(name: str = "", **overrides: Any) -> TrainConfig:
    if name and name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    cfg = TrainConfig(**PRESETS.get(name, {}), preset=name)
    return cfg.replace(**overrides) if overrides else cfg
