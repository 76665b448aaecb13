"""Evaluate a generator on a split of a prepared data set with a metric.

The one home of how an evaluation names what it was measured against (`reference_label`) and
where real-set statistics are cached (`stats_key`). The trainer (evaluations during training),
the CLI (`swd`, `fid`) and background jobs all call `evaluate_on_split`, on the data as the
checkpoint split it (`checkpoint_data`), so the same checkpoint
measured by any of them gets the same label and the same number.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from . import metrics
from .config import TrainConfig
from .data import PreparedData, prepare
from .data.sources import DataError
from .metrics import MetricResult


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
    size; DataError below 2). FID raises `metrics.InceptionWeightsMissing` without weights."""
    real = data.split_images(split)
    n = min(int(n), len(real))
    if n < 2:
        raise DataError(f"the {split} split has {len(real)} images; at least 2 are needed to evaluate")
    return metrics.evaluate(G, real[:n], metric=metric, n=n, seed=seed, device=device,
                            reference=reference_label(data.source, data.fingerprint, data.size, split),
                            stats_key=stats_key(data.fingerprint, data.size, split),
                            inception_weights=inception_weights)
