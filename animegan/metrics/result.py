"""`MetricResult`: one measurement (FID or SWD), as runs and checkpoints keep it."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
