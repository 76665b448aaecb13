"""Where the tool writes: one home folder for caches, runs, statistics, the synthetic set,
evaluation results, uploads and job logs, each named by one function here.

Default `~/.animegan`; `ANIMEGAN_HOME` (or the CLI's `--home`, which sets it) overrides.
Nothing is written inside the installed package or the current directory by surprise.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "ANIMEGAN_HOME"
DEFAULT_HOME = Path("~/.animegan")
REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CHECKPOINTS = REPO_ROOT / "checkpoints"


def home() -> Path:
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser()


def cache_dir() -> Path:
    """Decoded uint8 image caches, keyed by source fingerprint and size."""
    return home() / "cache"


def runs_dir() -> Path:
    return home() / "runs"


def stats_dir() -> Path:
    """Real-set FID statistics (.npz)."""
    return home() / "stats"


def synthetic_dir() -> Path:
    """The built-in synthetic set, rendered on first use."""
    return home() / "synthetic"


def evals_dir() -> Path:
    """Metric results of checkpoints that belong to no run (a run keeps its own evals.jsonl)."""
    return home() / "evals"


def uploads_dir() -> Path:
    """Data sets and checkpoints uploaded through the dashboard."""
    return home() / "uploads"


def logs_dir() -> Path:
    """Console logs of background evaluation jobs (a training job logs into its run directory)."""
    return home() / "logs"


def ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
