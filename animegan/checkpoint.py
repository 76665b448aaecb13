"""Versioned checkpoints: safe to load, safe to write, readable after upgrades.

Two kinds share one format:
- "train": everything to resume (G, D, EMA, optimizers, schedulers, step, epoch);
- "generator": what `export` ships: the generator (EMA weights where present) and the
  discriminator, both fp16, its config and its evaluation summary. The discriminator (~1 MB)
  is what re-ranking, inversion's feature loss and the memorisation check's feature space
  need; exports made before it was included (the shipped checkpoints) still load, with `D`
  None, and those features say so (`no_discriminator_reason`).
Both hold only tensors and plain values, so every load uses `torch.load(weights_only=True)`;
a file carrying pickled code is refused and its payload never runs.
Writes go to a temp file that is renamed, so a kill never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ARCHITECTURE_FIELDS, AnimeganError, TrainConfig
from .models import build_models, count_params, recalibrate_bn

FORMAT = "animegan-checkpoint"
VERSION = 1
# Older versions upgrade in place on load: MIGRATIONS[v] turns a v dict into a v+1 dict.
MIGRATIONS: dict[int, Any] = {}


class CheckpointError(AnimeganError):
    """A checkpoint cannot be used; the message says why and what to do."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(obj: dict[str, Any], path: str | Path, make_folder: bool = True) -> Path:
    """Write `obj` to `path` atomically: a temp file in the same folder, renamed once complete, so a
    kill or a full disk leaves the file there before as it was, and no temp file stays behind.
    A failed write is an OSError (a full disk: errno ENOSPC), whatever torch wraps it in.
    make_folder=False: a missing folder is FileNotFoundError, not made."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "version": VERSION, **obj}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error(e)
        if cause is not None and cause is not e:  # torch.save reports a failed write as a RuntimeError
            raise OSError(cause.errno, cause.strerror, str(path)) from e
        raise
    return path


def _os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind an exception (itself, or what it was raised from or during), if any."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (weights_only) and upgrade old versions; CheckpointError on anything unusable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pick a .pt file (or a run's checkpoints/last.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): it was not written completely; use another checkpoint")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"{path.name} cannot be read: {e.strerror or e}") from None
    # torch.save writes a zip (PK\3\4); the legacy format is a pickle (protocol opcode 0x80).
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        looks = "is empty" if not head else (f'starts with the text "{head.decode("ascii")}"' if all(32 <= b < 127 for b in head)
                                             else "starts with bytes " + " ".join(f"{b:02x}" for b in head))
        raise CheckpointError(f"{path.name} is not a checkpoint written by animegan (it {looks}; checkpoints are "
                              f"zip files): pick a .pt written by animegan train or export")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path.name} was refused: it contains pickled Python objects, not only tensors and plain values, "
            f"so loading it could run code. Nothing in it was executed. Use checkpoints made by animegan "
            f"(train or export), or export it again where it came from.") from None
    except Exception:  # noqa: BLE001  # damaged data makes torch/the unpickler raise anything (KeyError, IndexError, ...)
        raise CheckpointError(f"{path.name} is not a readable checkpoint: it is damaged, cut short or another kind "
                              f"of file. Use another checkpoint, or copy this one again from where it came from.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a PyTorch file but not an animegan checkpoint (no '{FORMAT}' header)")
    v = obj.get("version")
    if not isinstance(v, int) or v > VERSION:
        raise CheckpointError(
            f"{path.name} has checkpoint format version {v}, newer than this animegan understands ({VERSION}); "
            f"upgrade animegan to load it")
    while v < VERSION:
        if v not in MIGRATIONS:
            raise CheckpointError(f"{path.name} has format version {v}, which this animegan can no longer read")
        obj = MIGRATIONS[v](obj)
        v = obj["version"] = v + 1
    return obj


@dataclass
class LoadedGenerator:
    G: nn.Module
    D: nn.Module | None
    config: TrainConfig
    path: Path
    kind: str                       # "train" or "generator"
    step: int = 0
    epoch: int = 0
    ema: bool = False
    eval: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> int:
        return count_params(self.G)


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path.name}: the {what} weights do not fit the architecture in its config "
            f"({str(e).splitlines()[0][:200]}); the file is damaged or was edited") from None


def load_generator(path: str | Path, device: str | torch.device = "cpu", with_discriminator: bool = False) -> LoadedGenerator:
    """A ready-to-sample generator (eval mode, float32) from an exported or a training checkpoint.

    From a training checkpoint the EMA weights are used where present, as export does.
    """
    path = Path(path)
    ck = load_checkpoint(path)
    cfg_dict = ck.get("config", {})
    if not isinstance(cfg_dict, dict):
        raise CheckpointError(f"{path.name}: its config is not a dictionary; the file is damaged or was edited")
    try:
        cfg = TrainConfig.from_dict(cfg_dict)
        G, D = build_models(cfg.model, cfg.z_dim, cfg.ngf, cfg.ndf, cfg.img_size)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path.name}: its config cannot be built: {e}") from None
    kind = ck.get("kind", "train")
    ema = "G_ema" in ck and ck["G_ema"] is not None
    state = ck["G_ema"] if ema else ck.get("G")
    if state is None:
        raise CheckpointError(f"{path.name} holds no generator weights")
    for what, sd in (("generator", state), ("discriminator", ck.get("D") if with_discriminator else None)):
        if sd is not None and not (isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())):
            raise CheckpointError(f"{path.name}: its {what} weights are not a state dict of tensors; "
                                  f"the file is damaged or was edited")
    _load_state(G, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, "generator", path)
    if kind == "train":
        # Exports carry statistics for their own weights; training checkpoints get them here.
        recalibrate_bn(G, torch.device("cpu"))
    has_d = with_discriminator and ck.get("D") is not None
    if has_d:
        _load_state(D, {k: v.float() if v.is_floating_point() else v for k, v in ck["D"].items()}, "discriminator", path)
        D = D.to(device).eval()
    return LoadedGenerator(G=G.to(device).eval(), D=D if has_d else None, config=cfg, path=path, kind=kind,
                           step=int(ck.get("step", 0)), epoch=int(ck.get("epoch", 0)), ema=ema,
                           eval=dict(ck.get("eval") or {}), info=dict(ck.get("info") or {}))


def no_discriminator_reason(loaded: LoadedGenerator, feature: str) -> str:
    """One sentence for a feature that needs the discriminator when `loaded.D` is None."""
    if loaded.kind == "generator":
        return (f"{feature} needs the discriminator, and {loaded.path.name} was exported without it (exports "
                f"made before they carried D, such as the shipped checkpoints). Export the run again "
                f"(`python -m animegan export RUN --out FILE.pt`) or use a training checkpoint.")
    return f"{feature} needs the discriminator, and {loaded.path.name} holds none."


def export_source(src: str | Path) -> Path:
    """The checkpoint file an export of `src` reads: `src` itself, or for a run directory its
    best.pt if evaluated, else last.pt."""
    src = Path(src)
    if src.is_dir():
        ck_dir = src / "checkpoints"
        src = next((p for p in (ck_dir / "best.pt", ck_dir / "last.pt") if p.exists()), None)
        if src is None:
            raise CheckpointError(f"{ck_dir} has no best.pt or last.pt yet: train (or resume) the run first")
    return src


def export_generator(src: str | Path, out: str | Path, eval_summary: dict[str, Any] | None = None,
                     info: dict[str, Any] | None = None, recorded: list[dict[str, Any]] | None = None) -> Path:
    """The generator (EMA where present) and the discriminator, fp16, with config and
    evaluation summary.

    `src` is a run directory (its best.pt if evaluated, else last.pt) or a checkpoint file.
    """
    src = export_source(src)
    ck = load_checkpoint(src)
    if ck.get("G_ema") is None and ck.get("G") is None:
        raise CheckpointError(f"{src.name} holds no generator weights")
    G = load_generator(src).G  # the sampling weights, BatchNorm statistics recalibrated
    def fp16(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}

    half = fp16(G.state_dict())
    d_state = ck.get("D")
    if d_state is not None and not (isinstance(d_state, dict) and all(isinstance(v, torch.Tensor) for v in d_state.values())):
        raise CheckpointError(f"{src.name}: its discriminator weights are not a state dict of tensors; "
                              f"the file is damaged or was edited")
    info = {**(ck.get("info") or {}), **(info or {}), "source_checkpoint": str(src), "step": int(ck.get("step", 0)),
            "epoch": int(ck.get("epoch", 0))}
    return save_checkpoint({"kind": "generator", "config": ck.get("config", {}), "G_ema": half if ck.get("G_ema") else None,
                            "G": None if ck.get("G_ema") else half, "D": fp16(d_state) if d_state is not None else None,
                            "eval": eval_summary or _eval_of(ck, recorded or []), "curve": ck.get("curve") or [],
                            "info": info, "step": int(ck.get("step", 0)), "epoch": int(ck.get("epoch", 0))}, out)


def _eval_of(ck: dict[str, Any], recorded: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation that describes exactly these weights: the newest of `recorded` (results
    recorded for this file by `swd/fid --record`), else one the trainer made at this checkpoint's step."""
    if recorded:
        return recorded[-1]
    ev = ck.get("eval") or {}
    return ev if ev.get("step") == ck.get("step") else {}


def check_compatible(ck: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """For fine-tuning and resuming: refuse a checkpoint of another architecture or size, naming what differs."""
    other = TrainConfig.from_dict(ck.get("config", {}))
    diff = [f"{k}: checkpoint {getattr(other, k)} vs this run {getattr(cfg, k)}" for k in ARCHITECTURE_FIELDS
            if getattr(other, k) != getattr(cfg, k)]
    if diff:
        raise CheckpointError(f"{path.name} cannot start this run; settings differ: " + "; ".join(diff)
                              + ". Use the checkpoint's settings (or start from scratch).")


def adopt_architecture(cfg: TrainConfig, given: set[str] | frozenset[str] = frozenset()) -> TrainConfig:
    """Fine-tuning from cfg.init_from: the architecture fields the user did not give (`given`)
    are taken from the checkpoint; given ones that contradict it are refused with the list of
    differences (CheckpointError). The CLI and the Train page both call this."""
    if not cfg.init_from:
        return cfg
    path = Path(cfg.init_from).expanduser()
    other = TrainConfig.from_dict(load_checkpoint(path).get("config", {}))
    clash = [f"{k}: checkpoint {getattr(other, k)} vs given {getattr(cfg, k)}" for k in ARCHITECTURE_FIELDS
             if k in given and getattr(other, k) != getattr(cfg, k)]
    if clash:
        raise CheckpointError(f"{path.name} cannot start this run; settings differ: " + "; ".join(clash)
                              + ". Leave those settings out to use the checkpoint's, or start from scratch.")
    return cfg.replace(**{k: getattr(other, k) for k in ARCHITECTURE_FIELDS if k not in given})
