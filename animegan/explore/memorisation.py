"""Memorisation check: does the generator draw faces it was trained on?

Two spaces to compare faces in:
- "pixels": both images area-resized to 32×32; distance = root-mean-square difference of the
  3,072 values on the 0–255 scale (0: the same picture at 32 px);
- "discriminator" (where the checkpoint carries D): D's last feature map
  (`anatomy.discriminator_features`, average-pooled to 2×2, unit length); distance = 1 − cosine.
  D was trained on exactly these faces, so it is the network most likely to notice a copy.

`nearest_training_faces(face, data)`: a face's k nearest training faces in each space.

`memorisation_score(G, data)`: one number per space, for model cards and comparisons.
  1. Reference: for n_reference held-out real faces (the val split, never trained on), the
     distance to their nearest training face. The threshold τ is the 5th percentile of these:
     only 1 in 20 real faces the generator never saw is that close to a training face.
  2. For n generated faces (images 0..n-1 of `seed`), the distance to their nearest training face.
  3. score = the share of generated faces at distance ≤ τ.
  A generator that reproduces training faces scores ≈ 1. One that draws new faces, as close to
  the training set as held-out real faces are, scores ≈ 0.05 (by construction of τ); a value
  clearly above 0.05 means generated faces sit closer to training faces than new real faces do.
  Far below 0.05: generated faces are farther from every training face than real faces are
  (blurry or off-distribution), which says nothing about copying.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data import PreparedData, to_float
from ..data.sources import DataError
from ..generate import _eval_mode, _weights_version, image_batches
from .anatomy import discriminator_features, discriminator_trunk

PIXEL_SIDE = 32
D_POOL = 2
PERCENTILE = 5.0
SPACES = ("pixels", "discriminator")
SPACE_LABELS = {"pixels": "pixels at 32 px (RMS difference, 0–255)",
                "discriminator": "discriminator features (1 − cosine)"}
CHUNK = 2048
_INDEXES: OrderedDict = OrderedDict()   # the last few training-set indexes (building one reads every image)
_KEEP = 3


# --------------------------------------------------------------------------- spaces


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, S, S) → float32 (N, 3·32·32): area-resized, rounded to whole 0–255 values
    (so the training index can hold them as uint8 and a copy is at distance 0)."""
    x = images.float()
    if x.shape[-1] != PIXEL_SIDE:
        x = F.interpolate(x, size=(PIXEL_SIDE, PIXEL_SIDE), mode="area").round()
    return x.flatten(1)


@torch.no_grad()
def d_features(D: nn.Module, images: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (N, 3, S, S) → float32 (N, F) unit vectors of D's features (D in eval mode)."""
    trunk = discriminator_trunk(D)
    with _eval_mode(D):
        return torch.cat([discriminator_features(D, to_float(c).to(device), trunk, pool=D_POOL).float().cpu()
                          for c in images.split(256)])


def _embed(space: str, images: torch.Tensor, D: nn.Module | None) -> torch.Tensor:
    if space == "pixels":
        return pixel_features(images)
    if D is None:
        raise ValueError("the discriminator space needs a discriminator")
    return d_features(D, images)


def _distances(space: str, q: torch.Tensor, t: torch.Tensor, t_sq: torch.Tensor) -> torch.Tensor:
    """(Nq, Nt) distances between query features q and training features t."""
    dots = q @ t.T
    if space == "pixels":
        d2 = (q * q).sum(1, keepdim=True) + t_sq[None] - 2 * dots
        return (d2.clamp_min(0) / q.shape[1]).sqrt()
    return (1 - dots).clamp_min(0)


# --------------------------------------------------------------------------- the training set


@dataclass
class TrainIndex:
    """Every training face of a prepared source, embedded in one space."""

    space: str
    features: torch.Tensor          # (M, F): float32 (discriminator) or uint8 0–255 (pixels, 4x smaller)
    sq: torch.Tensor                # (M,) squared norms (pixels)
    rows: np.ndarray                # (M,) indices into data.images (the train split)

    def chunks(self):
        for b in range(0, len(self.rows), CHUNK):
            yield b, self.features[b : b + CHUNK].float(), self.sq[b : b + CHUNK]


def build_index(data: PreparedData, space: str = "pixels", D: nn.Module | None = None,
                progress: Callable[[int, int], None] | None = None) -> TrainIndex:
    """The training split of `data` embedded in `space` (kept for the last few sources)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    rows = np.asarray(data.splits["train"], dtype=np.int64)
    key = (str(data.cache_path), data.fingerprint, len(rows), space,
           None if space == "pixels" or D is None else (id(D), _weights_version(D)))
    if key in _INDEXES:
        _INDEXES.move_to_end(key)
        return _INDEXES[key]
    parts = []
    for b in range(0, len(rows), CHUNK):
        f = _embed(space, torch.from_numpy(np.asarray(data.images[rows[b : b + CHUNK]])), D)
        parts.append(f.to(torch.uint8) if space == "pixels" else f)
        if progress is not None:
            progress(min(b + CHUNK, len(rows)), len(rows))
    feats = torch.cat(parts) if parts else torch.empty(0, 1)
    sq = (feats.float() ** 2).sum(1) if space == "pixels" else torch.zeros(len(feats))
    index = TrainIndex(space, feats, sq, rows)
    _INDEXES[key] = index
    while len(_INDEXES) > _KEEP:
        _INDEXES.popitem(last=False)
    return index


def _exact(space: str, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Distances in float64 between queries q (Nq, 1, F) and their candidates t (Nq, c, F)."""
    if space == "pixels":
        return ((q - t) ** 2).mean(-1).sqrt()
    return (1 - (q * t).sum(-1)).clamp_min(0)


def nearest(index: TrainIndex, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """For query features (Nq, F): the k smallest distances (Nq, k) and their data rows (Nq, k), nearest first.

    A float32 matrix product finds the closest few candidates fast; their distances are then
    computed again exactly (float64, from the differences), so a copy is at distance 0."""
    k = max(1, min(int(k), len(index.rows)))
    c = min(k + 8, len(index.rows))
    best_d = torch.full((len(queries), 0), float("inf"))
    best_i = torch.empty((len(queries), 0), dtype=torch.long)
    for start, t, t_sq in index.chunks():
        vals, idx = torch.topk(_distances(index.space, queries, t, t_sq), min(c, len(t)), dim=1, largest=False)
        best_d, best_i = torch.cat([best_d, vals], 1), torch.cat([best_i, idx + start], 1)
        order = torch.argsort(best_d, dim=1, stable=True)[:, :c]
        best_d, best_i = best_d.gather(1, order), best_i.gather(1, order)
    out_d, out_i = [], []
    for b in range(0, len(queries), 128):
        q, cand = queries[b : b + 128].double()[:, None], best_i[b : b + 128]
        exact = _exact(index.space, q, index.features[cand.flatten()].double().view(len(cand), cand.shape[1], -1))
        order = torch.argsort(exact, dim=1, stable=True)[:, :k]
        out_d.append(exact.gather(1, order).float())
        out_i.append(cand.gather(1, order))
    rows = torch.cat(out_i) if out_i else best_i[:, :k]
    return (torch.cat(out_d) if out_d else best_d[:, :k]), torch.from_numpy(index.rows)[rows]


# --------------------------------------------------------------------------- one face


@dataclass
class Neighbours:
    space: str
    distances: list[float]
    rows: list[int]                 # indices into data.images
    names: list[str]
    images: torch.Tensor            # uint8 (k, 3, S, S)


def nearest_training_faces(face: torch.Tensor, data: PreparedData, k: int = 5, D: nn.Module | None = None,
                           progress: Callable[[int, int], None] | None = None) -> dict[str, Neighbours]:
    """A face's (uint8 (3, S, S)) k nearest training faces, per space (discriminator only with D)."""
    out = {}
    for space in SPACES if D is not None else SPACES[:1]:
        index = build_index(data, space, D, progress)
        dist, rows = nearest(index, _embed(space, face[None], D), k)
        r = rows[0].tolist()
        out[space] = Neighbours(space, dist[0].tolist(), r, [data.names[i] for i in r],
                                torch.from_numpy(np.asarray(data.images[np.asarray(r, dtype=np.int64)])))
    return out


# --------------------------------------------------------------------------- the summary score


@dataclass
class SpaceScore:
    space: str
    share: float                    # generated faces at distance <= threshold
    threshold: float                # the percentile of held-out real faces' nearest distances
    generated: np.ndarray           # nearest-training distance of each generated face
    reference: np.ndarray           # nearest-training distance of each held-out real face

    def to_dict(self) -> dict:
        return {"space": self.space, "share": self.share, "threshold": self.threshold, "n": len(self.generated),
                "n_reference": len(self.reference), "median_generated": float(np.median(self.generated)),
                "median_reference": float(np.median(self.reference))}


@dataclass
class MemorisationScore:
    n: int
    n_reference: int
    seed: int
    percentile: float
    spaces: dict[str, SpaceScore] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{s.space} {s.share:.3f} (threshold {s.threshold:.3g})" for s in self.spaces.values()]
        return ("memorisation score: " + "; ".join(parts) + f"  [n={self.n} generated (seed {self.seed}) vs "
                f"{self.n_reference} held-out real faces' {self.percentile:g}th percentile; ≈{self.percentile / 100:.2f} "
                f"= as close as new real faces, 1 = copies]")

    def to_dict(self) -> dict:
        return {"n": self.n, "n_reference": self.n_reference, "seed": self.seed, "percentile": self.percentile,
                "spaces": {k: v.to_dict() for k, v in self.spaces.items()}}


def memorisation_score(G: nn.Module, data: PreparedData, *, n: int = 500, n_reference: int = 500, seed: int = 0,
                       D: nn.Module | None = None, percentile: float = PERCENTILE, device: str | torch.device = "cpu",
                       progress: Callable[[int, int], None] | None = None) -> MemorisationScore:
    """The share of n generated faces closer to a training face than all but `percentile` % of
    held-out real faces are (module docstring). Pixel space always; discriminator space with D.
    `data` is the checkpoint's own source and split (`evaluation.checkpoint_data`); its val split is the reference."""
    val = np.asarray(data.splits.get("val", []), dtype=np.int64)[: int(n_reference)]
    if len(val) == 0:
        raise DataError("the memorisation score needs held-out real faces, and this source's val split is empty "
                         "(sources of fewer than 10 images have none)")
    if int(n) < 1:
        raise ConfigError(f"the number of generated faces must be 1 or more (it is {n})")
    fakes = torch.cat(list(image_batches(G, int(n), seed, device=device)))
    real = torch.from_numpy(np.asarray(data.images[val]))
    out = MemorisationScore(int(n), len(val), int(seed), float(percentile))
    for space in SPACES if D is not None else SPACES[:1]:
        index = build_index(data, space, D, progress)
        ref = nearest(index, _embed(space, real, D), 1)[0][:, 0].numpy()
        gen = nearest(index, _embed(space, fakes, D), 1)[0][:, 0].numpy()
        thr = float(np.percentile(ref, percentile))
        out.spaces[space] = SpaceScore(space, float(np.mean(gen <= thr)), thr, gen, ref)
    return out
