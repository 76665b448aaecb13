"""Devices and processes: which device to train on, and the few collectives of data parallelism.

One process trains on one device. Under torchrun (WORLD_SIZE > 1) every process is one rank:
`init_distributed` joins the process group (nccl on CUDA, gloo on the CPU), each rank reads its
share of every global batch, and the trainer averages gradients with `average_gradients` after
every backward pass (an all-reduce, as stylegan2-ada does instead of wrapping in DDP; that keeps
the gradient penalty's double backward simple). Only rank 0 (`Dist.main`) writes files.
(A request to stop, SIGTERM / Ctrl-C or torchrun's death, is `signals.StopRequested`.)

A rank that is gone (killed, crashed) or stops answering fails the others' next collective: at
once when its connection closes, else after `COLLECTIVE_TIMEOUT_S` (gloo); every collective here
then raises `RankLost`, whose message names that rank. Waits for rank 0's own work (preparing the
data, an evaluation, the end of the run) go through a second group with a longer timeout.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as torchdist
from torch import nn

from .config import ConfigError


def available_devices() -> list[str]:
    """Devices that exist here: cpu, mps, cuda:0..N-1."""
    out = ["cpu"]
    if _mps_available():
        out.append("mps")
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return out


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(pref: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: this rank's CUDA GPU, else Apple's GPU, else the CPU; otherwise the device named
    (`cuda` alone means this rank's GPU). ConfigError when CUDA is asked for and absent."""
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(pref)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("{field} cuda was asked for, but no CUDA GPU is visible here; use cpu or auto", field="device")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def native_bf16(device: torch.device) -> bool:
    """Does `device` run bf16 faster than fp32? CUDA GPUs (Ampere and later run it natively; older
    ones emulate it, still correctly), and CPUs with AVX512-BF16 or AMX, where oneDNN runs bf16
    convolutions natively (README: step speed). Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume no native bf16
        return False


def device_summary() -> dict[str, Any]:
    """The device `auto` picks, its name, torch's version and threads, and every device here."""
    d = pick_device()
    name = torch.cuda.get_device_name(d) if d.type == "cuda" else ("Apple GPU (MPS)" if d.type == "mps" else "CPU")
    return {"device": str(d), "name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "available": available_devices()}


# -- torchrun ------------------------------------------------------------------------------------

COLLECTIVE_TIMEOUT_S = 120.0   # gloo: a rank silent this long in a training step's collective is lost
COLLECTIVE_TIMEOUT_ENV = "ANIMEGAN_COLLECTIVE_TIMEOUT"  # seconds; overrides COLLECTIVE_TIMEOUT_S
MAIN_WORK_TIMEOUT_S = 6 * 3600.0  # waits for rank 0's own work (a CPU FID of 10k images: about an hour)


class RankLost(RuntimeError):
    """Another training process is gone or stopped answering; the message names it."""


@dataclass
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    procs: tuple[tuple[str, int], ...] = ()  # (host, pid) of every rank: to name a lost one
    timeout: float = 0.0                     # seconds of the training step's collectives (0: torch's own)
    patient: Any = None   # the process group of waits for rank 0's own work (None: the default group)

    @property
    def main(self) -> bool:
        return self.rank == 0


def collective_timeout() -> float:
    """COLLECTIVE_TIMEOUT_S, or the seconds that ANIMEGAN_COLLECTIVE_TIMEOUT sets."""
    value = os.environ.get(COLLECTIVE_TIMEOUT_ENV, "").strip()
    try:
        return float(value) if value and float(value) > 0 else COLLECTIVE_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"{COLLECTIVE_TIMEOUT_ENV} must be a number of seconds, not {value!r}") from None


def launched_processes() -> int:
    """How many training processes were launched together (torchrun's WORLD_SIZE; 1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_pref: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; one process otherwise. On gloo (the CPU) every
    collective times out after `collective_timeout()` seconds; NCCL keeps torch's own timeout."""
    world = launched_processes()
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    backend, timeout = "nccl" if use_cuda else "gloo", collective_timeout()
    if not torchdist.is_initialized():
        torchdist.init_process_group(backend, timeout=timedelta(seconds=timeout) if backend == "gloo" else None)
    gloo = torchdist.get_backend() == "gloo"
    patient = torchdist.new_group(timeout=timedelta(seconds=MAIN_WORK_TIMEOUT_S)) if gloo else None
    procs: list[Any] = [None] * world
    torchdist.all_gather_object(procs, (socket.gethostname(), os.getpid()))
    return Dist(rank, world, local, tuple(tuple(p) for p in procs), timeout if gloo else 0.0, patient)


def close_distributed(dist: Dist) -> None:
    if dist.world > 1 and torchdist.is_initialized():
        torchdist.destroy_process_group()


@contextmanager
def _collective(dist: Dist, patient: bool = False) -> Iterator[None]:
    """A collective of the ranks; its failure (gloo and NCCL raise RuntimeError: a connection
    closed by a rank that is gone, or no answer in time) becomes RankLost naming the lost rank."""
    try:
        yield
    except RuntimeError as e:
        raise RankLost(lost_rank_message(dist, MAIN_WORK_TIMEOUT_S if patient and dist.patient else dist.timeout)) from e


def lost_rank_message(dist: Dist, timeout: float) -> str:
    """Which rank was lost, in words: one whose process on this machine is gone (waited for a
    moment: a killed process closes its connections before it is gone), else the other ranks."""
    from .processes import pid_alive
    here = socket.gethostname()
    peers = [(r, pid) for r, (host, pid) in enumerate(dist.procs) if r != dist.rank and host == here]
    end = time.monotonic() + 2.0
    while not (gone := [(r, pid) for r, pid in peers if not pid_alive(pid)]) and time.monotonic() < end:
        time.sleep(0.1)
    after = "resume the run to continue from its last checkpoint (checkpoints/last.pt)"
    if gone:
        who = ", ".join(f"rank {r} (pid {pid})" for r, pid in gone)
        return (f"training process {who} of {dist.world} is gone: it crashed or was killed, so rank {dist.rank} "
                f"stopped too; {after}")
    others = ", ".join(str(r) for r in range(dist.world) if r != dist.rank)
    wait = f"within {timeout:g} s" if timeout else "in time"
    return (f"training process rank {others} of {dist.world} stopped answering (no reply {wait}), so rank "
            f"{dist.rank} stopped; {after}")


def barrier(dist: Dist) -> None:
    """Every rank waits here for the others (the long timeout: they wait for rank 0's own work)."""
    if dist.world > 1:
        with _collective(dist, patient=True):
            torchdist.barrier(group=dist.patient)


def average_gradients(module: nn.Module, dist: Dist) -> None:
    """Every rank's gradients become their mean over the ranks (one flat all-reduce)."""
    if dist.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    with _collective(dist):
        torchdist.all_reduce(flat)
    flat /= dist.world
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def broadcast_module(module: nn.Module, dist: Dist) -> None:
    """Rank 0's parameters and buffers, everywhere."""
    if dist.world > 1:
        with _collective(dist):
            for t in list(module.parameters()) + list(module.buffers()):
                torchdist.broadcast(t.data, 0)


def any_rank(flags: list[bool], dist: Dist, patient: bool = False) -> list[bool]:
    """Each flag, true when it is true on any rank: ranks that take part in the same collectives
    must agree on stopping. `patient`: the other ranks may wait here for rank 0's own work (an
    evaluation), so the long timeout applies."""
    t = torch.tensor([float(f) for f in flags])
    if dist.world > 1:
        group = dist.patient if patient else None
        if torchdist.get_backend(group) == "nccl":  # NCCL reduces device tensors only
            t = t.to(torch.device("cuda", dist.local_rank))
        with _collective(dist, patient):
            torchdist.all_reduce(t, op=torchdist.ReduceOp.MAX, group=group)
        t = t.cpu()
    return [bool(v > 0) for v in t]


def max_param_diff(modules: list[nn.Module], dist: Dist, device: torch.device) -> float:
    """The largest difference of any parameter between any rank and rank 0 (0.0 when data
    parallelism kept them identical, as it must). A collective: every rank calls it, at the end of
    a run (the long timeout: the others wait there for rank 0's last evaluation and checkpoint)."""
    diff = torch.zeros(())
    group = dist.patient
    with _collective(dist, patient=True):
        for p in (p for m in modules for p in m.parameters()):
            ref = p.detach().clone()
            torchdist.broadcast(ref, 0, group=group)
            diff = torch.maximum(diff, (p.detach() - ref).abs().max().cpu())
        diff = diff.to(device)
        torchdist.all_reduce(diff, op=torchdist.ReduceOp.MAX, group=group)
    return float(diff)
