"""Where the tool writes: one home folder for caches, runs, statistics and the synthetic set.

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


def ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
