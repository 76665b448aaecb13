"""Latent directions: what the generator learned to vary, as sliders.

Two methods, both deterministic for given weights, both giving k orthonormal directions in z
(unit vectors, strongest first):

- "sefa" (Shen & Zhou, CVPR 2021), closed form: the first layer after z computes A·z
  (`anatomy.first_linear`); the directions that change its output the most are the top
  eigenvectors of AᵀA. Under a second, no sampling.
- "ganspace" (Härkönen et al., 2020): the PCA of the first block's activations over
  `GANSPACE_SAMPLES` latents of a fixed stream, each component mapped back to z by least
  squares (the z that best predicts a sample's coordinate on that component), then made
  orthonormal in order (Gram–Schmidt).

A face is edited by adding Σ strength_k · direction_k to its latent (`shift`). A strength is in
units of the prior's standard deviation: a latent's coordinate along any unit direction is
N(0, 1), so ±3 is as far as the training latents ever went.

`change_per_step` measures what a direction does: the mean absolute pixel change (0–255) when
the latent moves one unit along it, averaged over faces and over both signs; `random_change`
is the same for random unit directions, for scale.

Names a person gives directions live in the home folder, `<home>/directions/<sha256 of the
checkpoint file>.json` ({method: {index: name}}), never beside the checkpoint: the same
weights get the same names wherever the file is, and a shipped file is never written to.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .. import paths
from ..config import DIRECTION_METHODS as METHODS
from ..config import ConfigError
from ..generate import latents, render
from ..images import to_grid, upscale
from ..models import split_generator
from .anatomy import first_linear

GANSPACE_SAMPLES = 4096
GANSPACE_SEED = 1
GANSPACE_MIN_K = 20  # components computed whatever k is asked, so the first ones never depend on k
DEFAULT_K = 10
STRIP_STEPS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
MAX_STRENGTH = 3.0
MEASURE_N = 64      # faces per change_per_step measurement
MEASURE_SEED = 0


@dataclass(frozen=True)
class Directions:
    method: str
    vectors: torch.Tensor        # (k, z_dim) float32, orthonormal rows, strongest first
    strength: list[float]        # eigenvalue (sefa) or explained variance share (ganspace) per row

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def _fix_signs(v: torch.Tensor) -> torch.Tensor:
    """Each row's largest-magnitude entry positive: eigenvectors come with an arbitrary sign."""
    idx = v.abs().argmax(dim=1)
    sign = torch.sign(v.gather(1, idx[:, None]))
    return v * torch.where(sign == 0, torch.ones_like(sign), sign)


def _check_k(k: int, z_dim: int) -> int:
    k = int(k)
    if not 1 <= k <= z_dim:
        raise ConfigError(f"the number of directions must be from 1 to the latent size {z_dim} (it is {k})")
    return k


def sefa(G: nn.Module, k: int = 10) -> Directions:
    """The top-k eigenvectors of AᵀA of the first layer (closed form)."""
    A = first_linear(G)
    k = _check_k(k, A.shape[1])
    vals, vecs = torch.linalg.eigh(A.T @ A)                 # ascending
    top = vecs[:, -k:].flip(1).T                            # (k, z_dim), strongest first
    return Directions("sefa", _fix_signs(top).float(), vals[-k:].flip(0).tolist())


def _top_scores(h: torch.Tensor, k: int, seed: int, iters: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k left singular vectors of h (n, F) and their squared singular values, by subspace
    iteration from a fixed random start (deterministic; exact to ~1e-6 for the leading ones)."""
    q_cols = min(k + 12, min(h.shape))
    omega = torch.randn(h.shape[1], q_cols, generator=torch.Generator().manual_seed(seed + 1), dtype=h.dtype)
    q = torch.linalg.qr(h @ omega).Q
    for _ in range(iters):
        q = torch.linalg.qr(h @ (h.T @ q)).Q
    small_u, sv, _ = torch.linalg.svd(q.T @ h, full_matrices=False)
    return (q @ small_u)[:, :k], sv[:k] ** 2


@torch.no_grad()
def ganspace(G: nn.Module, k: int = 10, n: int = GANSPACE_SAMPLES, seed: int = GANSPACE_SEED) -> Directions:
    """PCA of the first block's activations over n latents, mapped back to z, orthonormalised."""
    split = split_generator(G)
    if split is None:
        raise ConfigError(f"GANSpace needs a generator whose first layer it knows (DCGAN or linear); this one is a {type(G).__name__}: use SeFa")
    k = _check_k(k, int(G.z_dim))
    want, k = k, min(max(k, GANSPACE_MIN_K), int(G.z_dim))  # always as many: direction i is the same for every k
    z = torch.randn(n, int(G.z_dim), generator=torch.Generator().manual_seed(seed))
    dev = next(G.parameters()).device
    was = G.training
    G.eval()
    try:
        h = torch.cat([split.head(c.to(dev)).flatten(1).cpu() for c in z.split(1024)])
    finally:
        G.train(was)
    h -= h.mean(0, keepdim=True)
    u, vals = _top_scores(h, k, seed)                        # (n, k) unit score vectors, variances
    # least squares z ≈ U·x with orthogonal score columns: column j is zᵀ u_j (up to scale)
    back = (z.T @ u).double().T                             # (k, z_dim)
    q = torch.linalg.qr(back.T).Q.T                          # Gram–Schmidt in order, (k, z_dim)
    share = (vals / (h * h).sum()).tolist()
    return Directions("ganspace", _fix_signs(q[:want]).float(), share[:want])


def find(G: nn.Module, method: str = "sefa", k: int = 10) -> Directions:
    if method == "sefa":
        return sefa(G, k)
    if method == "ganspace":
        return ganspace(G, k)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def shift(dirs: Directions, strengths: dict[int, float]) -> torch.Tensor:
    """Σ strength_k · direction_k: (z_dim,) float32, to add to a latent."""
    out = torch.zeros(dirs.vectors.shape[1])
    for i, s in strengths.items():
        if not 0 <= int(i) < len(dirs):
            raise ValueError(f"direction {i} does not exist: there are {len(dirs)} (0..{len(dirs) - 1})")
        out += float(s) * dirs.vectors[int(i)]
    return out


def strip(G: nn.Module, z: torch.Tensor, direction: torch.Tensor, steps: tuple[float, ...] = STRIP_STEPS,
          truncation: float = 1.0, base: torch.Tensor | None = None) -> torch.Tensor:
    """The face of latent z (z_dim,) moved along one direction by each of `steps`:
    uint8 (len(steps), 3, S, S). `base` (z_dim,) is an edit already applied (other sliders)."""
    z0 = z + (base if base is not None else 0)
    zs = torch.stack([z0 + s * direction for s in steps])
    return render(G, zs, truncation=truncation)


def strips_image(G: nn.Module, dirs: Directions, z: torch.Tensor, truncation: float = 1.0, scale: int = 2) -> Image.Image:
    """One row per direction, columns −3 … +3: a PIL grid. With several latents z (F, z_dim),
    each direction gets F rows (one per face) before the next direction's."""
    zs = z.reshape(-1, z.shape[-1])
    rows = torch.cat([strip(G, zi, d, truncation=truncation) for d in dirs.vectors for zi in zs])
    return upscale(to_grid(rows, cols=len(STRIP_STEPS)), scale)


@torch.no_grad()
def change_per_step(G: nn.Module, direction: torch.Tensor, n: int = MEASURE_N, seed: int = MEASURE_SEED) -> float:
    """Mean absolute pixel change (0–255) of n faces when the latent moves ±1 along `direction`."""
    z = latents(seed, range(n), int(G.z_dim))
    x0 = render(G, z).float()
    d = direction.float()
    return float(sum((render(G, z + s * d).float() - x0).abs().mean() for s in (-1.0, 1.0)) / 2)


def random_change(G: nn.Module, count: int = 5, n: int = MEASURE_N, seed: int = MEASURE_SEED) -> float:
    """`change_per_step` averaged over `count` random unit directions (fixed stream): the scale a
    found direction should beat."""
    g = torch.Generator().manual_seed(seed + 7)
    vals = []
    for _ in range(count):
        d = torch.randn(int(G.z_dim), generator=g)
        vals.append(change_per_step(G, d / d.norm(), n, seed))
    return sum(vals) / len(vals)


# --------------------------------------------------------------------------- names


def checkpoint_hash(path: str | Path) -> str:
    """sha256 of the checkpoint file's bytes: the key its direction names are kept under."""
    from ..comparison import content_hash
    return content_hash(path)


def names_dir() -> Path:
    return paths.home() / "directions"


def _names_file(ckpt_hash: str) -> Path:
    if len(ckpt_hash) != 64 or any(c not in "0123456789abcdef" for c in ckpt_hash):
        raise ValueError("a checkpoint hash is 64 lowercase hex digits")
    return names_dir() / f"{ckpt_hash}.json"


def load_names(ckpt_hash: str, method: str) -> dict[int, str]:
    """{direction index: name} given so far for this checkpoint and method ({} when none)."""
    try:
        data = json.loads(_names_file(ckpt_hash).read_text())
        return {int(i): str(v) for i, v in (data.get(method) or {}).items() if str(v).strip()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_name(ckpt_hash: str, method: str, index: int, name: str) -> Path:
    """Name direction `index` of `method` for this checkpoint ("" removes the name)."""
    from ..rundir import write_json_atomic

    f = _names_file(ckpt_hash)
    try:
        data = json.loads(f.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    entry = {str(i): v for i, v in (data.get(method) or {}).items()}
    name = " ".join(str(name).split())[:60]
    if name:
        entry[str(int(index))] = name
    else:
        entry.pop(str(int(index)), None)
    data[method] = entry
    paths.ensure(f.parent)
    write_json_atomic(f, data)
    return f


def label(index: int, names: dict[int, str]) -> str:
    """"3: hair colour" or "3" for an unnamed direction."""
    return f"{index}: {names[index]}" if names.get(index) else str(index)
