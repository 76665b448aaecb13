"""The package's worker processes: how many cores this process may use, and how pools start.
Used by data decoding (`animegan.data.decode`) and by the synthetic set's rendering (`animegan.synth`)."""
from __future__ import annotations

import multiprocessing as mp
import os


def cpu_count() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pool_context():
    """The multiprocessing context of the package's worker pools (decoding in ``animegan.data``,
    rendering in ``animegan.synth``): fork where available. Those workers only read files and use
    Pillow/numpy (no torch, no threads), and fork does not re-import the caller's ``__main__``
    as spawn/forkserver do (a script calling prepare() without an ``if __name__ ==
    "__main__"`` guard would otherwise start workers forever). Elsewhere the platform default."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else None)
