"""A request to stop a training process: SIGTERM / Ctrl-C, or (under torchrun) the launcher's death.

`StopRequested` turns them into a flag the training loop reads after each step; the loop then
finishes its step, saves checkpoints/last.pt and ends "stopped" (`jobs.stop_job` sends the SIGTERM).
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any

from .devices import launched_processes


class StopRequested:
    """SIGTERM / Ctrl-C: finish the step, save, exit cleanly.

    Under a launcher (torchrun: WORLD_SIZE > 1) the launcher's end asks the same: torchrun starts
    each rank in a session of its own, so when it is killed (SIGKILL, the OOM killer, a stop that
    had to kill) nothing else would end its ranks, which would train on as orphans. A rank sees it
    as its parent changing (`os.getppid()`, read with the flag after every step)."""

    def __init__(self) -> None:
        self._flag = False
        self._old: dict[int, Any] = {}
        self._parent = os.getppid() if launched_processes() > 1 else None

    @property
    def flag(self) -> bool:
        if not self._flag and self._parent is not None and os.getppid() != self._parent:
            self._flag = True
            print(f"rank {os.environ.get('RANK', '?')}: the launcher that started this process (pid {self._parent}) "
                  f"is gone; stopping as if asked to (last.pt is saved)", file=sys.stderr, flush=True)
        return self._flag

    def __enter__(self) -> "StopRequested":
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self._flag = True

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
