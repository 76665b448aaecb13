"""Processes on this machine, read from /proc: is a pid alive (a zombie is not), is it still the
process that had it (its start time), and which processes run below one (torchrun's workers).

The job starter (`jobs`) uses them to tell its job from a reused pid and to stop a job's whole
process tree; `rundir.RunStatus` to tell a run whose trainer is gone; `devices` to name a lost rank.
"""
from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is dead for our purposes.
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def proc_start_time(pid: int | None) -> int | None:
    """Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            text = f.read()
    except OSError:
        return None
    try:
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def descendants(pid: int) -> list[tuple[int, int | None]]:
    """(pid, start time) of every process below `pid` (children, theirs...), found through /proc:
    what a signal to its process group misses when they lead sessions of their own (torchrun's
    workers). [] where there is no /proc."""
    procs: dict[int, tuple[int, int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            procs[int(d.name)] = (int(f[1]), int(f[19]))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [int(pid)]
    while todo:
        above = todo.pop()
        below = [(c, start) for c, (parent, start) in procs.items() if parent == above]
        out += below
        todo += [c for c, _ in below]
    return out


def kill_processes(procs: list[tuple[int, int | None]], sig: int) -> None:
    """Signal each (pid, start time) that is still that very process (not a reused pid)."""
    for pid, start in procs:
        if pid_alive(pid) and proc_start_time(pid) == start:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
