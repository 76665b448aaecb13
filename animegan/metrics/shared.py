"""What FID and SWD share: `MetricResult` (one measurement, as runs and checkpoints keep it)
and `uint8_batch` (the image sets both metrics read)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class MetricResult:
    """One measurement. `value` is FID, or SWD ×1e3 averaged over pyramid levels; `levels`
    are SWD's per-level values ×1e3 from the finest (full resolution) to the coarsest."""

    metric: str
    value: float
    n: int
    reference: str
    seed: int
    levels: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MetricResult":
        return cls(**{k: d[k] for k in ("metric", "value", "n", "reference", "seed") if k in d},
                   levels=d.get("levels"))



def uint8_batch(images: Any) -> torch.Tensor:
    """uint8 images (N, 3, H, W), a tensor or an array (read-only memory maps are copied), as a tensor."""
    if not isinstance(images, torch.Tensor):
        a = np.ascontiguousarray(images)
        images = torch.from_numpy(a if a.flags.writeable else a.copy())  # read-only memory maps: torch wants writable
    t = images
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {t.dtype}")
    if t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got {tuple(t.shape)}")
    return t
