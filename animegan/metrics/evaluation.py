"""Evaluate a generator with a metric: against a set of real images (`evaluate`), or on a split
of a prepared data set (`evaluate_on_split`).

The one home of how an evaluation names what it was measured against (`reference_label`) and
where real-set statistics are cached (`stats_key`). The trainer (evaluations during training),
the CLI (`swd`, `fid`) and background jobs all call `evaluate_on_split`, on the data as the
checkpoint split it (`checkpoint_data`), so the same checkpoint
measured by any of them gets the same label and the same number.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import METRICS, TrainConfig
from ..data import PreparedData, prepare
from ..data.sources import DataError
from .fid import feature_statistics, fid, load_inception, real_statistics
from .result import MetricResult
from .swd import swd


def reference_label(source: str, fingerprint: str, size: int, split: str = "val") -> str:
    """`"val split of <source> (<fingerprint[:8]>) @64px"`: what a metric was measured against."""
    return f"{split} split of {source} ({fingerprint[:8]}) @{int(size)}px"


def stats_key(fingerprint: str, size: int, split: str) -> str:
    """The cache key of a split's real-set FID statistics."""
    return f"{fingerprint}_{int(size)}_{split}"


def checkpoint_data(cfg: TrainConfig, source: str | None = None,
                    progress: bool | Callable[[int, int], object] = False) -> PreparedData:
    """The source a checkpoint trained on (or `source`), prepared at its size and split as its
    training split it (val/test sizes and split seed from its config): its "val" and "test" are
    the faces it held out, its "train" what it saw."""
    return prepare(source or cfg.data, cfg.img_size, val=cfg.val_size, test=cfg.test_size,
                   split_seed=cfg.split_seed, progress=progress)


def evaluate_on_split(G: nn.Module, data, split: str, *, metric: str, n: int, seed: int = 0,
                      device: str | torch.device = "cpu", inception_weights: str | os.PathLike | None = None,
                      ) -> MetricResult:
    """`metric` of G against the first n images of `data`'s `split` (n capped at the split's
    size; DataError below 2). FID raises `fid.InceptionWeightsMissing` without weights."""
    real = data.split_images(split)
    n = min(int(n), len(real))
    if n < 2:
        raise DataError(f"the {split} split has {len(real)} images; at least 2 are needed to evaluate")
    return evaluate(G, real[:n], metric=metric, n=n, seed=seed, device=device,
                    reference=reference_label(data.source, data.fingerprint, data.size, split),
                    stats_key=stats_key(data.fingerprint, data.size, split),
                    inception_weights=inception_weights)


def evaluate(
    G: nn.Module,
    real_images: np.ndarray,
    *,
    metric: str,
    n: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    reference: str,
    stats_key: str | None = None,
    inception_weights: str | os.PathLike | None = None,
    truncation: float = 1.0,
    batch_size: int = 100,
) -> MetricResult:
    """Measure G against `real_images` (uint8 N×3×S×S, e.g. `data.split_images("val")`).

    Generated images are images 0..n-1 of `seed` (`generate.image_batches`), so they can be
    looked at. The real side is the first n real images (n is capped at the real set's size).
    "fid": raises `InceptionWeightsMissing` (and only that) when the weights are absent;
    `stats_key` caches the real statistics (`fid.real_statistics`).
    "swd": needs G.img_size == the real images' size.
    """
    from ..generate import image_batches

    metric = metric.lower()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n = min(int(n), len(real_images))
    if n < 2:
        raise ValueError(f"need at least 2 images to evaluate, got n={n}")
    if metric == "fid":
        model = load_inception(inception_weights, device)  # raise before generating anything
        if stats_key:
            mu, sigma = real_statistics(real_images, key=stats_key, n=n, model=model, device=device, batch_size=batch_size)
        else:
            mu, sigma, _ = feature_statistics(
                (np.asarray(real_images[b : min(b + batch_size, n)]) for b in range(0, n, batch_size)), model, device
            )
        fakes = image_batches(G, n, seed, batch_size=batch_size, device=device, truncation=truncation)
        value = fid(fakes, mu, sigma, model, device)
        return MetricResult(metric="fid", value=float(value), n=n, reference=reference, seed=int(seed))
    size = int(real_images.shape[-1])
    g_size = int(getattr(G, "img_size", size))
    if g_size != size:
        raise ValueError(f"SWD compares images of one size: generator draws {g_size}px, real images are {size}px")
    fake = torch.cat(list(image_batches(G, n, seed, batch_size=max(batch_size, 250), device=device, truncation=truncation)))
    real = torch.from_numpy(np.ascontiguousarray(real_images[:n]))
    return swd(fake, real, seed=seed, reference=reference)
