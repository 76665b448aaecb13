"""Devices and processes: which device to train on, and the few collectives of data parallelism.

One process trains on one device. Under torchrun (WORLD_SIZE > 1) every process is one rank:
`init_distributed` joins the process group (nccl on CUDA, gloo on the CPU), each rank reads its
share of every global batch, and the trainer averages gradients with `average_gradients` after
every backward pass (an all-reduce, as stylegan2-ada does instead of wrapping in DDP; that keeps
the gradient penalty's double backward simple). Only rank 0 (`Dist.main`) writes files.
`StopRequested` turns SIGTERM / Ctrl-C into a flag the training loop checks after each step.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

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
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible here; use --device cpu or auto")
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

@dataclass
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not torchdist.is_initialized():
        torchdist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def close_distributed(dist: Dist) -> None:
    if dist.world > 1 and torchdist.is_initialized():
        torchdist.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torchdist.barrier()


def average_gradients(module: nn.Module, dist: Dist) -> None:
    """Every rank's gradients become their mean over the ranks (one flat all-reduce)."""
    if dist.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torchdist.all_reduce(flat)
    flat /= dist.world
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def broadcast_module(module: nn.Module, dist: Dist) -> None:
    """Rank 0's parameters and buffers, everywhere."""
    if dist.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            torchdist.broadcast(t.data, 0)


def any_rank(flags: list[bool], dist: Dist) -> list[bool]:
    """Each flag, true when it is true on any rank: ranks that take part in the same collectives
    must agree on stopping."""
    t = torch.tensor([float(f) for f in flags])
    if dist.world > 1:
        if torchdist.get_backend() == "nccl":  # NCCL reduces device tensors only
            t = t.to(torch.device("cuda", dist.local_rank))
        torchdist.all_reduce(t, op=torchdist.ReduceOp.MAX)
        t = t.cpu()
    return [bool(v > 0) for v in t]


def max_param_diff(modules: list[nn.Module], dist: Dist, device: torch.device) -> float:
    """The largest difference of any parameter between any rank and rank 0 (0.0 when data
    parallelism kept them identical, as it must). A collective: every rank calls it."""
    diff = torch.zeros(())
    for p in (p for m in modules for p in m.parameters()):
        ref = p.detach().clone()
        torchdist.broadcast(ref, 0)
        diff = torch.maximum(diff, (p.detach() - ref).abs().max().cpu())
    diff = diff.to(device)
    torchdist.all_reduce(diff, op=torchdist.ReduceOp.MAX)
    return float(diff)


class StopRequested:
    """SIGTERM / Ctrl-C: finish the step, save, exit cleanly."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequested":
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
