"""Training configuration: one dataclass holding every default, and presets as plain data.

A preset is a dict of overrides on top of `TrainConfig()`; the CLI and the dashboard override
any field by name. `config.json` in a run directory is `asdict(cfg)`, so a run can always be
rebuilt and rerun from it.

This module is also the one home of every list of choices (image sizes, metrics, run states, stop
reasons, collapse actions, DiffAugment ops...; the models, with the sizes each draws, are
`architectures.py`'s), of `validate()` (the checks of the settings alone, without torch; `preflight`
adds the data, the processes and the files, and is what every entry point calls), of the project's
error base (`AnimeganError`: what a user can cause) and `ConfigError` (naming its field), and of
the field <-> command-line flag mapping.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from .architectures import ARCHITECTURES, discriminator_block_count

# -- every choice, in one place ------------------------------------------------------------------
SYNTHETIC = "synthetic"                    # the data source name of the built-in set
IMAGE_SIZES = (32, 64, 96, 128)            # sizes the networks draw and the Dataset page offers
LOSSES = ("bce", "wgan-gp", "hinge", "rpgan")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("none", "step", "cosine")
METRICS = ("swd", "fid")
SPLITS = ("train", "val", "test")
COLLAPSE_ACTIONS = ("stop", "rollback", "warn")
SWITCHES = ("auto", "on", "off")           # compile, channels_last
AMP_MODES = ("auto", "bf16", "off")
STATES = ("starting", "running", "finished", "failed", "stopped", "collapsed", "dead")
LIVE_STATES = ("starting", "running")      # a process is (or should be) working on the run
UNKNOWN_STATE = "unknown"                  # a run without a readable status.json (yet)
# Why a run stops before its last step (status.json's `stop_reason`), first first: the trainer's stop
# decision is taken in this order. The state the run then ends in, by reason (None: its last step).
STOP_REASONS = ("signal", "collapse", "early_stop", "time_budget")
END_STATES = {"signal": "stopped", "collapse": "collapsed", "early_stop": "finished", "time_budget": "finished",
              None: "finished"}
ARCHITECTURE_FIELDS = ("model", "img_size", "z_dim", "ngf", "ndf")  # a checkpoint's weights fit only these
DIFFAUG_OPS = ("color", "translation", "cutout")  # DiffAugment's ops (augment.py), in a policy "color,translation"
DIRECTION_METHODS = ("sefa", "ganspace")   # latent directions: closed form (SeFa) or PCA of early activations
ROUGH_N = 1_000                            # an FID/SWD on fewer images is rough: a hint, not a number to rank by
COMPARABLE_N = 10_000                      # FID/SWD at smaller n compare only at the same n and reference


class AnimeganError(Exception):
    """An error a user can cause (settings, data, a run, a checkpoint, a job); its message says what is
    wrong and what to do. `cli.main` prints one as one line; anything else is a bug and keeps its
    traceback. Every error type of the project that a user can cause derives from it."""


class ConfigError(AnimeganError, ValueError):
    """A setting that makes training impossible; the message says what to change.

    `field`: the TrainConfig field it is about (None: no one field). The message names it as
    `{field}`, which each interface says in its own words: `str(e)` as the command-line flag
    (`--batch-size`), `e.render(name_of)` as `name_of(field)` (the Train page: the form's label)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.template = message
        self.field = field

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with its field named by `name_of`."""
        return self.template.replace("{field}", name_of(self.field)) if self.field else self.template

    def __str__(self) -> str:
        return self.render(flag_name)


@dataclass
class TrainConfig:
    # -- data
    data: str = "synthetic"          # folder, .zip, or "synthetic"
    img_size: int = 64
    val_size: int = 2000             # held out for evaluation (scaled down for small sources)
    test_size: int = 2000
    split_seed: int = 0
    # -- models (see animegan.architectures.ARCHITECTURES)
    model: str = "dcgan"
    ngf: int = 64
    ndf: int = 64
    z_dim: int = 100
    # -- loss: "bce" (non-saturating, optional one-sided label smoothing), "wgan-gp", "hinge",
    # "rpgan" (relativistic pairing, R3GAN: softplus of the paired real-minus-fake score difference)
    loss: str = "bce"
    real_label: float = 1.0          # 0.9 / 0.8 = one-sided label smoothing
    gp_lambda: float = 10.0
    # R1 (Mescheder et al., 2018): gamma/2 · E‖∇D(x_real)‖², lazily every r1_every steps
    # (scaled by r1_every, as stylegan2 does); 0 = off. Works with any loss.
    r1_gamma: float = 0.0
    r1_every: int = 16
    # R2 (Huang et al., 2024, R3GAN): gamma/2 · E‖∇D(x_fake)‖² on the fakes D saw, on R1's lazy
    # schedule (every r1_every steps, scaled by it); 0 = off. Works with any loss.
    r2_gamma: float = 0.0
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
    # -- augmentation of real images as in the classic write-ups (off = probability 0)
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
    # torch.compile of G and D: "auto" decides by step.compile_decision (CPU runs long enough, a C
    # compiler, compiling a small share of any --minutes budget); "on" / "off" force it (on CUDA it
    # is opt-in: not measured yet).
    compile: str = "auto"
    channels_last: str = "auto"      # auto (on for CUDA) | on | off
    amp: str = "auto"                # auto (bf16 on CUDA; fp32 on the CPU: docs/recipes.md) | bf16 | off
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
    # -- small data (fine-tuning on 50-1,000 images; docs/recipes.md, "Your own characters")
    # FreezeD (Mo et al., 2020): D's first freeze_d blocks (a block starts at each of its convolutions
    # that changes resolution or width: models.discriminator_blocks) keep the weights of the checkpoint
    # fine-tuned from. Only where D came from that checkpoint: from scratch, or from a checkpoint that
    # holds G alone, there is no trained D to keep and every block trains.
    freeze_d: int = 0
    # Adaptive augmentation (ADA, Karras et al., 2020): each DiffAugment op of --diffaug is applied to
    # an image with probability p (logged as aug_p); p moves by batch / (ada_kimg·1000) every step,
    # up while D's real outputs are mostly positive (r_t = E[sign D(x_real)] above ada_target: D is
    # overfitting), down otherwise. 0 = off (every op on every image, as DiffAugment does).
    ada_target: float = 0.0
    ada_kimg: float = 10.0           # thousands of images for p to move from 0 to 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Tolerates unknown keys (newer files) and missing ones (older files)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **kw: Any) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


# The classic write-ups' recipes, reproduced by name, and the project's own.
PRESETS: dict[str, dict[str, Any]] = {
    "classic-gan": dict(model="gan-linear", batch_size=64, lr_g=1e-4, lr_d=1e-4, z_dim=100,
                     loss="bce", opt_g="adam", opt_d="adam", epochs=20),
    "classic-dcgan": dict(model="dcgan", batch_size=128, lr_g=2e-4, lr_d=2e-4, z_dim=100,
                       loss="bce", epochs=80),
    "classic-wgangp": dict(model="wgan-gp", loss="wgan-gp", opt_g="rmsprop", opt_d="rmsprop",
                        batch_size=128, lr_g=2e-4, lr_d=2e-4, n_critic=5, epochs=80),
    "classic-dcgan96": dict(model="dcgan96", img_size=96, real_label=0.8, opt_g="adam", opt_d="sgd",
                         momentum=0.9, batch_size=128, lr_g=2e-4, lr_d=2e-4, epochs=80),
    # The project's recipe: DCGAN's fast-converging networks, a minibatch-stddev feature in D
    # (it sees sample diversity, fights collapse), the non-saturating loss with a lazy R1 penalty
    # on reals (gamma 0.1, every 16 steps), Adam betas (0, 0.99), translation DiffAugment on both
    # real and fake, flips, and an EMA generator with its own BatchNorm statistics. It evaluates
    # SWD every epoch so best.pt is the best by metric, not the last.
    # Chosen by the recipe ablation on the 2-core CPU at width 32 (docs/recipes.md). Round 1, 10 arms
    # x 10 min: betas (0, 0.99) 50.6 vs the old (0.5, 0.999) 68.2. Round 2, 40 min: with those
    # betas, R1 kept improving to the end (16.6 at 202k images) where hinge without it turned back
    # up after 80k (best 27.3, 41.5 at the end), and batch 32 was worse than 64 (best 40.4).
    # Wider networks are the GPU preset's.
    "anime64": dict(model="anime64", ngf=32, ndf=32, loss="bce", r1_gamma=0.1, r1_every=16, batch_size=64,
                    lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.99, ema_kimg=10.0, diffaug="translation",
                    aug_flip=0.5, epochs=60, eval_every=1, eval_n=1000),
    # The GPU recipe: the CPU winner's loss, R1 and betas with the networks twice as wide, batch 256
    # with a faster D (TTUR), colour and translation DiffAugment, and bookkeeping spaced for ~100
    # steps a second (an epoch of 26k faces passes in about a second on an H100): grids every 10
    # epochs, checkpoints every 50, SWD every 500k images. Meant to be run with a wall-clock budget
    # (`--minutes`). Not yet measured on a GPU: width, batch, TTUR and colour are guesses.
    "anime64-gpu": dict(model="anime64", ngf=64, ndf=64, loss="bce", r1_gamma=0.1, r1_every=16, batch_size=256,
                        lr_g=2e-4, lr_d=4e-4, beta1=0.0, beta2=0.99, ema_kimg=20.0, diffaug="color,translation", aug_flip=0.5,
                        epochs=10_000, eval_kimg=500.0, eval_n=1000, log_every=50, latest_every=500,
                        sample_every=10, checkpoint_every=50),
}
# The same recipe at 96 px, the size the classic write-ups trained at (the anime64 networks end in
# one 5x5 stride-3 layer there, 32 -> 96, as the write-ups' dcgan96 did).
PRESETS["anime96"] = {**PRESETS["anime64"], "img_size": 96}
# Fine-tuning a shipped checkpoint on a few images of your own (50-1,000): anime64's training with
# colour DiffAugment added to its translation (DiffAugment's policy, every op on every image), with
# bookkeeping spaced for a set whose epoch is a step or a few, meant to be given a budget
# (--minutes). Measured on 100 synthetic faces from anime64.pt (docs/recipes.md, "Your own
# characters"), SWD against 2,000 unseen faces at 10 CPU-minutes: this 43.2 against plain
# fine-tuning's 58.3 (memorisation 0.000 and 0.008; a copier 1.0); at 3 it is behind (71.3 against
# 63.6/64.3) and catches up after. The other levers are options, off here: --freeze-d 2 59.1 at 10
# (150.0 before frozen BatchNorm kept the checkpoint's statistics), --ada-target 0.9 89.9 at 3,
# lr 4e-4 69.7, batch 32 66.5. The architecture comes from the checkpoint given with --init-from
# (any shipped one).
PRESETS["finetune-small"] = {**PRESETS["anime64"], "diffaug": "color,translation", "epochs": 5000, "eval_every": 0,
                             "eval_kimg": 20.0, "sample_every": 50, "checkpoint_every": 500, "latest_every": 50}


# Names the presets had before "seed" came to mean a random seed only; accepted everywhere a
# preset is (old run directories and checkpoints record them).
PRESET_ALIASES: dict[str, str] = {"seed-gan": "classic-gan", "seed-dcgan": "classic-dcgan",
                                  "seed-wgangp": "classic-wgangp", "seed-dcgan96": "classic-dcgan96"}


def canonical_preset(name: str) -> str:
    """The preset's current name ('' stays ''); ConfigError for a name that is neither."""
    name = PRESET_ALIASES.get(name, name)
    if name and name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}", field="preset")
    return name


def preset_config(name: str = "", **overrides: Any) -> TrainConfig:
    name = canonical_preset(name)
    cfg = TrainConfig(**PRESETS.get(name, {}), preset=name)
    return cfg.replace(**overrides) if overrides else cfg


def preset_base(cfg: TrainConfig) -> TrainConfig:
    """What `--preset cfg.preset` alone gives (TrainConfig() without a known preset)."""
    name = PRESET_ALIASES.get(cfg.preset, cfg.preset)
    return preset_config(name) if name in PRESETS else TrainConfig()


# (field, bound, how the message says it): validate()'s checks of numbers, one field each.
_LOWER_BOUNDS = (
    ("batch_size", 2, "at least 2, as BatchNorm needs a batch"), ("epochs", 1, "at least 1"),
    ("max_steps", 0, "0 (no limit) or more"), ("z_dim", 1, "at least 1"), ("ngf", 1, "at least 1"),
    ("ndf", 1, "at least 1"), ("lr_g", 0, "more than 0"), ("lr_d", 0, "more than 0"), ("n_critic", 1, "at least 1"),
    ("r1_gamma", 0, "0 (off) or more"), ("r1_every", 1, "at least 1"), ("r2_gamma", 0, "0 (off) or more"),
    ("minutes", 0, "0 (no budget) or more"), ("eval_kimg", 0, "0 (off) or more"), ("eval_every", 0, "0 (off) or more"),
    ("patience", 0, "0 (off) or more"), ("ema_kimg", 0, "0 (off) or more"), ("ema_rampup", 0, "0 (off) or more"),
    ("eval_n", 2, "at least 2 images"), ("val_size", 0, "0 or more"), ("test_size", 0, "0 or more"),
    ("log_every", 1, "at least 1"), ("latest_every", 1, "at least 1"), ("sample_every", 1, "at least 1"),
    ("checkpoint_every", 1, "at least 1"), ("freeze_d", 0, "0 (off) or more"), ("ada_kimg", 0, "more than 0"),
)


def validate(cfg: TrainConfig) -> None:
    """Every check that needs no data and no files: raises ConfigError naming the field and saying
    what to change. The rest of the checks before a run (data, processes, files) is `preflight`."""
    def need(ok: bool, field: str, msg: str) -> None:
        if not ok:
            raise ConfigError(msg, field=field)

    need(cfg.model in ARCHITECTURES, "model", f"unknown model {cfg.model!r}; choose one of: {', '.join(ARCHITECTURES)}")
    need(cfg.loss in LOSSES, "loss", f"unknown loss {cfg.loss!r}; choose one of: {', '.join(LOSSES)}")
    for name in ("opt_g", "opt_d"):
        need(getattr(cfg, name) in OPTIMIZERS, name,
             f"unknown optimizer {getattr(cfg, name)!r}; choose one of: {', '.join(OPTIMIZERS)}")
    need(cfg.schedule in SCHEDULES, "schedule", f"unknown schedule {cfg.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    need(cfg.img_size in IMAGE_SIZES, "img_size", f"image size {cfg.img_size} is not supported; choose one of: "
         f"{', '.join(map(str, IMAGE_SIZES))}")
    # Numbers, one field at a time: a message names only the field that is wrong, with the value given.
    for name, low, words in _LOWER_BOUNDS:
        value = getattr(cfg, name)
        need(value > low if words.startswith("more than") else value >= low, name,
             f"{{field}} must be {words} (it is {value:g})")
    for name in ("aug_flip", "aug_brightness", "ada_target"):
        need(0.0 <= getattr(cfg, name) <= 1, name, f"{{field}} is a probability: between 0 and 1 "
                                                   f"(it is {getattr(cfg, name):g})")
    need(cfg.collapse_action in COLLAPSE_ACTIONS, "collapse_action", f"{{field}} must be one of: {', '.join(COLLAPSE_ACTIONS)}")
    need(cfg.compile in (*SWITCHES, True, False), "compile", f"{{field}} must be one of: {', '.join(SWITCHES)}")
    need(cfg.channels_last in SWITCHES, "channels_last", f"{{field}} must be one of: {', '.join(SWITCHES)}")
    need(cfg.amp in AMP_MODES, "amp", f"{{field}} must be one of: {', '.join(AMP_MODES)}")
    need(cfg.eval_metric in METRICS, "eval_metric", f"{{field}} must be one of: {', '.join(METRICS)}")
    try:
        parse_policy(cfg.diffaug)
    except ValueError as e:
        raise ConfigError(str(e), field="diffaug") from None
    need(not (cfg.ada_target > 0 and not cfg.diffaug.strip()), "ada_target",
         "{field} adapts how often the --diffaug ops are applied: give a policy too "
         "(e.g. --diffaug color,translation,cutout) or set {field} to 0")
    try:
        blocks = discriminator_block_count(cfg.model, cfg.img_size)
    except ValueError as e:
        raise ConfigError(f"model {cfg.model} cannot draw {cfg.img_size}px images: {e}", field="img_size") from None
    need(cfg.freeze_d <= blocks, "freeze_d", f"{{field}} {cfg.freeze_d}: the {cfg.model} discriminator at {cfg.img_size} px "
         f"has {blocks} blocks; freeze at most {blocks}")


def parse_policy(policy: str) -> list[str]:
    """A DiffAugment policy ("color,translation") as its ops, in order; ValueError naming an unknown op."""
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in ops if p not in DIFFAUG_OPS]
    if bad:
        raise ValueError(f"unknown DiffAugment op(s) {bad}; choose from {', '.join(DIFFAUG_OPS)}")
    return ops


# -- the one field <-> flag mapping (the CLI builds its parser from it, the job starter its argv) --

def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def to_flags(cfg: TrainConfig, base: TrainConfig | None = None) -> list[str]:
    """One flag per field of `cfg` that differs from `base` (default TrainConfig()); booleans as
    --x/--no-x, lists as several values, everything else as --x=value (safe for values starting
    with '-', and for empty strings). `train` parses them back to the same config."""
    base = base if base is not None else TrainConfig()
    out: list[str] = []
    for f in fields(TrainConfig):
        if f.name == "preset":
            continue
        v, b = getattr(cfg, f.name), getattr(base, f.name)
        if v == b and type(v) is type(b):
            continue
        if isinstance(v, bool):
            out.append(flag_name(f.name) if v else "--no-" + f.name.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            out += [flag_name(f.name), *[str(int(x)) for x in v]]
        elif isinstance(b, float):
            out.append(f"{flag_name(f.name)}={float(v)!r}")
        elif isinstance(b, int):
            out.append(f"{flag_name(f.name)}={int(v)}")
        else:
            out.append(f"{flag_name(f.name)}={v}")
    return out
