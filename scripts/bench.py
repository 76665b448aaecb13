"""Benchmark: where training time goes, and what the project's data pipeline buys.

    python scripts/bench.py [--json PATH] [--device cpu|cuda] [--quick] [--data PATH|ZIP|synthetic] [--repeats N]
    python scripts/bench.py --training-only --preset anime64 --width 32 --threads 1   # the README's step-speed table

One run, one machine, one recipe (`--preset`, default the classic `dcgan` at 64×64) and one batch size. It measures:

1. training images/s with the classic write-ups' input pipeline: torchvision ImageFolder over a folder of
   JPEGs (q95, 96×96), PIL decode and Python transforms per item, a DataLoader with as many workers as the machine has cores (as a user would set it);
2. training images/s with the project's pipeline, as the trainer does it (`animegan.step.real_batch`): the
   memory-mapped uint8 cache of `animegan.data.prepare`, sorted batch indices, `to_float`, and
   `ClassicAugment` on the whole batch on the device;
3. the ceiling: the batch already on the device, no augmentation; and the ratios 2/1 and 2/3;
4. training-step options (eager, channels_last, torch.compile, and fp32 beside bf16 autocast on CUDA and on
   CPUs with native bf16), with a loss check against eager;
5. generation latency (shipped checkpoints, or freshly built generators when none are shipped);
6. cache build and FID feature extraction images/s;
7. peak resident memory of a `python -m animegan train` process on the 30,000-image zip.

Training figures 1-4 are measured in `--repeats` rounds that visit every variant in turn (so a change in
the machine's load hits them all alike): per round, `--warmup` untimed steps (half as many after the first
round), then one window of `--steps` steps timed with time.perf_counter (and torch.cuda.synchronize on
CUDA); each figure is the median window. Nothing is written outside a temporary folder
except the JSON (default `<ANIMEGAN_HOME>/bench/bench-<device>.json`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from animegan import paths  # noqa: E402
from animegan.augment import ClassicAugment  # noqa: E402
from animegan.config import TrainConfig, preset_config  # noqa: E402
from animegan.data import iter_source_files, prepare, to_float  # noqa: E402
from animegan.devices import Dist, native_bf16  # noqa: E402
from animegan.metrics.fid import (  # noqa: E402
    feature_statistics,
    find_inception_weights,
    inception_features,
    load_inception,
)
from animegan.models import build_models, count_params  # noqa: E402
from animegan.step import StepOptions, TrainImages, build_nets, real_batch, step_generator, step_options, train_step  # noqa: E402

SHARED_ZIP = ROOT.parent / "shared" / "data" / "anime-faces-96.zip"
IMG_SIZE = 64
SEED = 0
EXPORT_SIDE, EXPORT_QUALITY = 96, 95
LOADER_WORKERS = os.cpu_count() or 2  # the classic pipeline's DataLoader: one worker per core
FIRST_RTOL, FIRST_RTOL_BF16 = 1e-3, 3e-2  # step options: first-step losses this close to eager's (fp32 / bf16)
MEAN_RTOL = 0.10                          # and the mean losses over the run this close
DEFAULT_MIN_GAIN = 1.10               # the project switches its default only for >= 10 % and matching


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- settings ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from animegan.step import COMPILE_COST_FILE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="where to write the figures (default <ANIMEGAN_HOME>/bench/bench-<device>.json)")
    ap.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is one, else cpu")
    ap.add_argument("--training-only", action="store_true", help="figures 1-4 only (no generation, FID features, memory)")
    ap.add_argument("--budget-s", type=float, default=0.0, help="start no further round of the training figures after this many seconds")
    ap.add_argument("--quick", action="store_true", help="about a minute: fewer steps and repeats, small subset")
    ap.add_argument("--tiny", action="store_true", help="seconds, for tests: width 8, batch 8, 1 step, no compile/memory")
    ap.add_argument("--data", help=f"folder, .zip or 'synthetic' (default {SHARED_ZIP} when present, else synthetic; "
                    "--tiny: synthetic)")
    ap.add_argument("--repeats", type=int, help="timed windows per figure (default 3; --quick 2; --tiny 1)")
    ap.add_argument("--steps", type=int, help="steps per timed window (CPU: 6, --quick 2; CUDA: 50, --quick 20; --tiny 1)")
    ap.add_argument("--warmup", type=int, help="untimed steps first (CPU: 2, --quick 1; CUDA: 10, --quick 5; --tiny 1)")
    ap.add_argument("--batch", type=int, help="batch size (default 64 on CPU, 128 on CUDA)")
    ap.add_argument("--width", type=int, help="ngf = ndf (default 64)")
    ap.add_argument("--preset", default="classic-dcgan",
                    help="the recipe of the timed step (default classic-dcgan: dcgan, bce; anime64: the project's, with lazy R1)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--fid-n", type=int, help="images through Inception (default 100; --quick 20; --tiny 2)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="measure the torch.compile step option (default on; off in --quick and --tiny: compiling takes minutes on a CPU)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory training subprocess")
    ap.add_argument("--compile-cost", nargs="?", const=str(COMPILE_COST_FILE), default=None, metavar="PATH",
                    help="also write what torch.compile cost and gave (the file compile=\"auto\" decides by; default "
                         f"{COMPILE_COST_FILE.relative_to(ROOT)}); needs the torch.compile figure (a full run, or --compile)")
    a = ap.parse_args(argv)
    mode = "tiny" if a.tiny else ("quick" if a.quick else "full")
    pick = lambda given, full, quick, tiny: given if given is not None else {"full": full, "quick": quick, "tiny": tiny}[mode]  # noqa: E731
    a.mode = mode
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was asked for, but no CUDA GPU is visible here")
    cuda = a.device == "cuda"  # a GPU step takes milliseconds: longer windows there
    a.repeats = max(1, pick(a.repeats, 3, 2, 1))
    a.steps = max(1, pick(a.steps, 50 if cuda else 6, 20 if cuda else 2, 1))
    a.warmup = max(1, pick(a.warmup, 10 if cuda else 2, 5 if cuda else 1, 1))
    a.batch = pick(a.batch, 128 if cuda else 64, 128 if cuda else 64, 8)
    a.width = pick(a.width, 64, 64, 8)
    a.fid_n = pick(a.fid_n, 100, 20, 2)
    a.gen_n = 8 if mode == "tiny" else 64
    a.gen_widths = (8, 16) if mode == "tiny" else (32, 64)
    a.gen_warm = 2 if mode == "tiny" else 5
    a.synth_n = 24 if mode == "tiny" else 256
    a.compile_skip = None if (a.compile if a.compile is not None else mode == "full") else (
        "--no-compile" if a.compile is False else f"not measured in --{mode} (compiling takes minutes on a CPU; --compile forces it)")
    a.memory_skip = "--no-memory" if a.no_memory else (None if mode == "full" else f"not measured in --{mode}")
    a.data = a.data or (str(SHARED_ZIP) if SHARED_ZIP.exists() and mode != "tiny" else "synthetic")
    a.json = Path(a.json) if a.json else paths.home() / "bench" / f"bench-{a.device}.json"
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    return a


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return {"device": str(device), "name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the training step: the trainer's own (animegan.step), dcgan, bce loss, one D step per G step -------

@dataclass
class Variant:
    name: str
    channels_last: bool
    compile: bool
    amp: bool

    @property
    def options(self) -> StepOptions:
        return StepOptions(compile=self.compile, channels_last=self.channels_last, amp=self.amp)


def default_variant(device: torch.device) -> Variant:
    """The step the trainer runs here by default (`step.step_options`: channels_last and bf16 autocast on
    CUDA, plain on the CPU) without torch.compile: the pipelines (1, 2) are timed on the same eager step as
    the ceiling (3), so they differ by the input pipeline alone; compiling is a step option (4)."""
    o = step_options(TrainConfig(compile="off"), device, total_steps=0)
    return Variant("project default", o.channels_last, o.compile, o.amp)


class Trainer:
    """G and D of --preset (classic-dcgan: dcgan, Adam as the write-ups had it) at --width, built and
    stepped by the trainer's own code."""

    def __init__(self, args: argparse.Namespace, device: torch.device, variant: Variant):
        model = {"model": "dcgan"} if args.preset == "classic-dcgan" else {}
        self.cfg = preset_config(args.preset, **model, ngf=args.width, ndf=args.width,
                                 batch_size=args.batch, img_size=IMG_SIZE, seed=SEED)
        self.device, self.variant = device, variant
        self.nets = build_nets(self.cfg, device, Dist(), variant.options)
        self.n_steps = 0

    def noise(self, step: int) -> torch.Generator:
        """Per-step randomness (augmentation, then z): the trainer's stream of (seed, step, rank 0)."""
        return step_generator(SEED, step, 0, self.device)

    def step(self, real: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainer's own step (animegan.step.train_step), so the benchmark cannot drift from it.
        The losses stay on the device (as in the trainer): read after the timed window."""
        z = torch.randn(real.shape[0], self.cfg.z_dim, device=self.device, generator=g)
        row = train_step(self.nets, self.cfg, real.contiguous(memory_format=self.variant.options.memory_format), z, g,
                         self.n_steps)
        self.n_steps += 1
        return row["loss_D"], row.get("loss_G", torch.full((), float("nan")))


# -- timing: contenders, measured in rounds ---------------------------------------------------------------

class Contender:
    """One way of training (a step option, or an input pipeline feeding the default step).

    Each round: `start()` (the classic pipeline starts a fresh DataLoader iterator there, as each of its epochs
    did), warm-up steps (untimed), one timed window of `steps` steps, `stop()`. The rounds visit every
    contender in turn, so a change in the machine's load hits them all alike; a figure is the median window.
    Losses of every step are kept for the comparison with eager."""

    def __init__(self, name: str, trainer: Trainer, next_batch: Callable[[int, torch.Generator], torch.Tensor],
                 start: Callable[[], None] = lambda: None, stop: Callable[[], None] = lambda: None, may_fail: bool = False):
        self.name, self.trainer, self.next_batch, self.start, self.stop = name, trainer, next_batch, start, stop
        self.may_fail, self.error = may_fail, None
        self.step_no, self.losses, self.windows, self.warmups, self.peak_mb = 0, [], [], [], 0.0

    def _run(self, n: int) -> None:
        for _ in range(n):
            g = self.trainer.noise(self.step_no)
            self.losses.append(self.trainer.step(self.next_batch(self.step_no, g), g))
            self.step_no += 1

    def round(self, warmup: int, steps: int, batch: int) -> None:
        if self.error:
            return
        dev = self.trainer.device
        try:
            self.start()
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t = time.perf_counter()
            self._run(warmup)
            sync(dev)
            self.warmups.append(time.perf_counter() - t)
            t = time.perf_counter()
            self._run(steps)
            sync(dev)
            self.windows.append(steps * batch / (time.perf_counter() - t))
            if dev.type == "cuda":
                self.peak_mb = max(self.peak_mb, torch.cuda.max_memory_allocated(dev) / 2 ** 20)
        except Exception as e:  # torch.compile without a working compiler, for one
            if not self.may_fail:
                raise
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            self.error = f"{type(e).__name__}: {msg}"
        finally:
            self.stop()

    def figures(self, batch: int) -> dict[str, Any]:
        if self.error:
            return {"unavailable": self.error}
        med = statistics.median(self.windows)
        losses = [(float(d), float(g)) for d, g in self.losses]
        return {"images_per_s": med, "windows_images_per_s": self.windows, "step_s": batch / med,
                "first_warmup_s": self.warmups[0], "warmup_s": self.warmups, "losses": losses,
                **({"peak_gpu_mb": round(self.peak_mb, 1)} if self.trainer.device.type == "cuda" else {})}


def run_rounds(args: argparse.Namespace, contenders: list[Contender]) -> None:
    """`repeats` rounds; the first warms up `warmup` steps (first calls, compiling), later ones half that.
    Every other round goes backwards, so no contender always runs right after the same one."""
    t0 = time.time()
    for r in range(args.repeats):
        if r > 0 and args.budget_s and time.time() - t0 > args.budget_s:
            log(f"budget of {args.budget_s:g} s spent after {r} round(s): no more rounds")
            break
        warmup = args.warmup if r == 0 else max(1, args.warmup // 2)
        for c in (contenders if r % 2 == 0 else contenders[::-1]):
            log(f"round {r + 1}/{args.repeats}: {c.name} ({warmup} warm-up + {args.steps} timed steps)")
            c.round(warmup, args.steps, args.batch)


# -- benchmark data ----------------------------------------------------------------------------------

def jpeg_bytes(im: Image.Image) -> bytes:
    im = im.convert("RGB")
    if im.size != (EXPORT_SIDE, EXPORT_SIDE):
        im = im.resize((EXPORT_SIDE, EXPORT_SIDE), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=EXPORT_QUALITY)
    return buf.getvalue()


def source_jpegs(args: argparse.Namespace, n: int, work: Path) -> list[bytes]:
    """n images of the benchmark's source as JPEG q95 96×96 (a seeded random sample of a folder or zip;
    for 'synthetic', a few hundred rendered faces, repeated under new names to reach n)."""
    if args.data.strip() == "synthetic":
        from animegan.synth import write_synthetic
        out = write_synthetic(work / "synthetic", n=min(n, args.synth_n), workers=1 if args.mode == "tiny" else None)
        faces = [jpeg_bytes(Image.open(p)) for p in sorted((out / "images").glob("*.png"))]
        return [faces[i % len(faces)] for i in range(n)]
    files = list(iter_source_files(args.data))
    pick = sorted(random.Random(SEED).sample(range(len(files)), min(n, len(files))))
    return [jpeg_bytes(Image.open(io.BytesIO(files[i][2]()))) for i in pick]


def export_jpeg_folder(args: argparse.Namespace, n: int, work: Path) -> Path:
    """ImageFolder layout: root/faces/00000.jpg ..."""
    root = work / "jpeg-folder"
    (root / "faces").mkdir(parents=True, exist_ok=True)
    for i, b in enumerate(source_jpegs(args, n, work)):
        (root / "faces" / f"{i:05d}.jpg").write_bytes(b)
    return root


def images_needed(args: argparse.Namespace) -> int:
    """Enough for one round of the classic loader (warm-up + window) inside one epoch, plus two batches."""
    return (args.warmup + args.steps + 2) * args.batch


def measure_cache_build(source: str, label: str, cache_root: Path):
    log(f"cache build: prepare({label}) into a fresh cache folder")
    t = time.perf_counter()
    data = prepare(source, IMG_SIZE, cache_root=cache_root)
    sec = time.perf_counter() - t
    fig = {"source": label, "images": data.decoded, "usable": len(data), "seconds": sec,
           "images_per_s": data.decoded / sec, "cache_mb": data.cache_path.stat().st_size / 1e6}
    return data, fig


# -- 1-3: the three pipelines ---------------------------------------------------------------------

def classic_loader(folder: Path, batch: int):
    """The classic write-ups' pipeline, as it was written."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize(IMG_SIZE), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3),
                    T.RandomHorizontalFlip(), T.ColorJitter(brightness=0.2)])
    ds = ImageFolder(str(folder), transform=tf)
    return DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=LOADER_WORKERS,
                      generator=torch.Generator().manual_seed(SEED))


def classic_contender(args, device, folder: Path) -> Contender:
    """1: ImageFolder of JPEGs, PIL + torchvision transforms per item, one worker per core; the default step."""
    loader, state = classic_loader(folder, args.batch), {}

    def start() -> None:
        state["it"] = iter(loader)

    def stop() -> None:
        state.pop("it", None)  # its workers shut down with the iterator

    return Contender("classic pipeline", Trainer(args, device, default_variant(device)),
                     lambda step, g: next(state["it"])[0].to(device, non_blocking=True), start, stop)


def project_contender(args, device, data) -> Contender:
    """2: the trainer's batches (`step.real_batch`): a per-epoch permutation of the train split, sorted indices into the memmap,
    to_float and ClassicAugment on the device; the default step."""
    train_idx = data.splits["train"]
    per_epoch = len(train_idx) // args.batch
    if per_epoch == 0:
        raise SystemExit(f"the train split has {len(train_idx)} images, fewer than one batch of {args.batch}")
    aug = ClassicAugment(flip=0.5, brightness=0.5)
    cfg = preset_config("classic-dcgan", batch_size=args.batch, seed=SEED)

    train = TrainImages(data.images, train_idx, device)  # on CUDA the whole split on the device, as the trainer does

    def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
        return real_batch(train, cfg, step, per_epoch, Dist(), aug, g)

    return Contender("project pipeline", Trainer(args, device, default_variant(device)), next_batch)


def ceiling_batch(args, device, data) -> torch.Tensor:
    """3 (and the step options): one batch, already on the device, no augmentation."""
    return to_float(torch.from_numpy(np.array(data.images[:args.batch]))).to(device)


# -- 4: training-step options --------------------------------------------------------------------------

def step_variants(device: torch.device, with_compile: bool) -> list[Variant]:
    base = default_variant(device)
    out = [Variant("eager", False, False, base.amp), Variant("channels_last", True, False, base.amp)]
    if base.amp:  # bf16 autocast is the default on CUDA: the same step in fp32 beside it
        out.append(Variant("fp32", base.channels_last, False, False))
    elif native_bf16(device):  # a CPU with native bf16 (AVX512-BF16/AMX): fp32 by default, bf16 beside it
        out += [Variant("bf16", False, False, True), Variant("bf16 + channels_last", True, False, True)]
    if with_compile:
        out.append(Variant("torch.compile", base.channels_last, True, base.amp))
        if base.amp or native_bf16(device):
            out.append(Variant("torch.compile fp32" if base.amp else "torch.compile bf16", base.channels_last, True, not base.amp))
    return out


def option_contenders(args, device, real: torch.Tensor, with_compile: bool) -> list[Contender]:
    return [Contender(v.name, Trainer(args, device, v), lambda step, g: real, may_fail=v.compile)
            for v in step_variants(device, with_compile)]


def losses_match(ref: list[tuple[float, float]], got: list[tuple[float, float]], first_rtol: float) -> dict[str, Any]:
    """Does an option train like eager? Two checks on (loss_D, loss_G) from the same seed and batch:
    - the first step computes the same function: every loss within `first_rtol` (relative) of eager's;
    - the run trains the same: over all steps, the mean of each loss within MEAN_RTOL of eager's.
    Later steps are not compared one by one: a GAN amplifies rounding differences (another summation
    order) within a few steps, so per-step losses drift apart for any change of kernels."""
    n = min(len(ref), len(got))
    if n == 0 or len(ref) != len(got):
        return {"losses_match_eager": False, "steps_compared": n, "why": "different step counts"}
    rel = lambda a, b: abs(a - b) / max(abs(b), 1e-6)  # noqa: E731
    first = max(rel(a, b) for a, b in zip(got[0], ref[0], strict=True))
    means = [rel(statistics.fmean(o[k] for o in got), statistics.fmean(r[k] for r in ref)) for k in (0, 1)]
    worst = max(abs(a - b) for r, o in zip(ref, got, strict=True) for a, b in zip(r, o, strict=True))
    return {"losses_match_eager": first <= first_rtol and max(means) <= MEAN_RTOL, "steps_compared": n,
            "first_step_rel_diff": first, "mean_loss_rel_diff": max(means), "max_abs_step_diff": worst}


def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """a's speed over b's: the median of the per-round ratios (a and b ran minutes apart in each round,
    so drifting load cancels better than in a ratio of the two medians)."""
    return statistics.median(x / y for x, y in zip(a["windows_images_per_s"], b["windows_images_per_s"], strict=True))


def step_options_summary(contenders: list[Contender], args, device, compile_skip: str | None) -> dict[str, Any]:
    out = {c.name: c.figures(args.batch) for c in contenders}
    if compile_skip is not None:
        out["torch.compile"] = {"skipped": compile_skip}
    eager = out["eager"]
    first_rtol = FIRST_RTOL_BF16 if default_variant(device).amp else FIRST_RTOL
    ran = {k: f for k, f in out.items() if "images_per_s" in f}
    for v, f in zip(step_variants(device, compile_skip is None), contenders, strict=True):
        if f.name in ran:
            ran[f.name].update(channels_last=v.channels_last, compile=v.compile, bf16_autocast=v.amp,
                               speedup_vs_eager=ratio(ran[f.name], eager),
                               **losses_match(eager["losses"], ran[f.name]["losses"], FIRST_RTOL_BF16 if v.amp else first_rtol))
    fastest = max(ran, key=lambda k: ran[k]["speedup_vs_eager"])
    gain = ran[fastest]["speedup_vs_eager"]
    qualifies = fastest != "eager" and gain >= DEFAULT_MIN_GAIN and ran[fastest]["losses_match_eager"]
    if fastest == "eager":
        verdict = "eager is fastest: keep it"
    elif qualifies:
        verdict = f"{fastest} is fastest ({gain:.2f}× eager) with matching losses: ≥10 % faster, worth making the default"
    else:
        verdict = f"{fastest} is fastest ({gain:.2f}× eager), but not ≥10 % faster with matching losses: keep the default"
    return {"variants": out, "fastest": fastest, "fastest_speedup_vs_eager": gain, "default_change_warranted": qualifies,
            "verdict": verdict, "loss_check": {"first_step_rtol": first_rtol, "mean_rtol": MEAN_RTOL}}


def ceiling_name(device: torch.device) -> str:
    """The step option that is the project default on this device (so the ceiling's step)."""
    base = default_variant(device)
    return next(v.name for v in step_variants(device, False) if v.channels_last == base.channels_last)


# -- 5: generation ------------------------------------------------------------------------------------

def bench_generation(args, device) -> dict[str, Any]:
    from animegan.checkpoint import load_generator
    from animegan.generate import generate
    shipped = sorted(paths.SHIPPED_CHECKPOINTS.glob("*.pt"))
    note = f"{len(shipped)} shipped checkpoint(s)" if shipped else "no shipped checkpoints"
    jobs: list[tuple[str, Callable[[], torch.nn.Module]]] = []
    for p in shipped:
        jobs.append((p.name, lambda p=p: load_generator(p, device=device).G))
    if not shipped:
        for w in args.gen_widths:
            jobs.append((f"fresh dcgan ngf {w}", lambda w=w: build_models("dcgan", 100, w, w, IMG_SIZE, seed=SEED)[0].to(device).eval()))
    rows = []
    for name, load in jobs:
        log(f"generation latency: {name}, {args.gen_n} faces")
        sync(device)
        t = time.perf_counter()
        G = load()
        generate(G, 0, args.gen_n, device=device)
        sync(device)
        cold = time.perf_counter() - t
        warm = []
        for i in range(args.gen_warm):
            t = time.perf_counter()
            generate(G, i + 1, args.gen_n, device=device)
            sync(device)
            warm.append(time.perf_counter() - t)
        rows.append({"model": name, "params": count_params(G), "faces": args.gen_n, "cold_s": cold,
                     "warm_median_s": statistics.median(warm), "warm_s": warm,
                     "warm_images_per_s": args.gen_n / statistics.median(warm)})
    return {"note": note, "models": rows}


# -- 6: FID features ----------------------------------------------------------------------------------

def bench_fid_features(args, device, data, work: Path) -> dict[str, Any]:
    found = find_inception_weights()
    if found is not None:
        path, weights = found, f"real weights ({found.name})"
    else:
        sys.path.insert(0, str(ROOT / "tests"))  # the test stand-in for the weights (tests/fid_fakes.py)
        from fid_fakes import random_inception_state_dict
        path = work / "random_fid_inception.pth"
        torch.save(random_inception_state_dict(), path)
        weights = "random weights (real ones absent; same network, same compute)"
    log(f"FID features: pytorch-fid InceptionV3, {weights}, {args.fid_n} images")
    model = load_inception(path, device=device)
    images = np.array(data.images[:max(args.fid_n, 2)])  # a copy: the memmap is read-only
    inception_features(model, images[:1], device)  # warm-up
    batch = 100
    sync(device)
    t = time.perf_counter()
    feature_statistics((images[b:b + batch] for b in range(0, len(images), batch)), model, device)
    sync(device)
    sec = time.perf_counter() - t
    return {"weights": weights, "images": len(images), "seconds": sec, "images_per_s": len(images) / sec,
            "batch": batch}


# -- 7: peak memory of a training process ---------------------------------------------------------------

# A small parent for the training process. A child's ru_maxrss starts from the RSS of the process that
# forked it (Linux carries the old memory's high-water mark across exec), so measured straight from this
# big benchmark process it would report our own size; from a fresh small interpreter it reports its own.
RSS_WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def bench_memory(args, device, home: Path, cache_mb: float | None) -> dict[str, Any]:
    """`python -m animegan train` on the zip, 20 steps, with the cache already built in `home`; peak RSS
    as the kernel accounts it for that process (getrusage(RUSAGE_CHILDREN) in its parent, after wait)."""
    if args.memory_skip:
        return {"skipped": args.memory_skip}
    if not Path(args.data).is_file() or Path(args.data).suffix.lower() != ".zip":
        return {"skipped": f"needs the 30,000-image zip ({SHARED_ZIP}); --data is {args.data}"}
    run = home / "runs" / "bench-memory"
    cmd = [sys.executable, "-m", "animegan", "train", "--data", str(args.data), "--out", str(run), "--max-steps", "20",
           "--model", "dcgan", "--batch-size", str(args.batch), "--ngf", str(args.width), "--ndf", str(args.width),
           "--aug-flip", "0.5", "--aug-brightness", "0.5", "--device", device.type, "--no-progress"]
    log("peak memory: " + " ".join(cmd[1:]))
    env = {**os.environ, paths.ENV_HOME: str(home)}
    t = time.perf_counter()
    peak, err = peak_rss_mb(cmd, env)
    sec = time.perf_counter() - t
    if peak is None:
        return {"skipped": f"training subprocess failed: {err}"}
    baseline, _ = peak_rss_mb([sys.executable, "-c", "import torch, torchvision, animegan.train, animegan.data"], env)
    return {"peak_rss_mb": peak, "seconds": sec, "steps": 20, "command": " ".join(cmd[1:]), "cache_mb": cache_mb,
            "images": 30_000, "import_only_rss_mb": baseline,
            "how": "getrusage(RUSAGE_CHILDREN).ru_maxrss in a small parent process"}


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float | None, str]:
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], cwd=str(ROOT), env=env, capture_output=True, text=True)
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("peak_rss_kib ")]
    if proc.returncode != 0 or not peak:
        return None, f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-400:]}"
    return int(peak[-1]) * (1 if sys.platform == "darwin" else 1024) / 1e6, ""  # Linux counts KiB, macOS bytes


# -- output ------------------------------------------------------------------------------------------------

def fmt(x: Any, digits: int = 3) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, float):
        return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, Any, str, Any, str]]:
    """(section, measure, value, unit, ratio, note) for every figure in the results."""
    tr, so, rows = r["training"], r["step_options"], []
    rows += [("training", f"1 classic pipeline: JPEG folder, {LOADER_WORKERS} workers", tr["classic_pipeline"]["images_per_s"], "img/s", None,
              f"{r['settings']['classic_folder_images']} JPEGs q95 96px"),
             ("training", "2 project pipeline: memmap + ClassicAugment", tr["project_pipeline"]["images_per_s"], "img/s", None,
              tr["project_pipeline"]["cache"]),
             ("training", "3 ceiling: batch on device, no aug", tr["ceiling"]["images_per_s"], "img/s", None,
              f"= step option '{tr['ceiling']['variant']}'"),
             ("training", "ratio 2/1 (project vs classic)", None, "", tr["ratio"]["project_vs_classic"], ""),
             ("training", "ratio 2/3 (project vs ceiling)", None, "", tr["ratio"]["project_vs_ceiling"], "")]
    for name, f in so["variants"].items():
        if "images_per_s" in f and "why" in f:
            rows.append(("step option", name, f["images_per_s"], "img/s", f["speedup_vs_eager"], f"losses not compared: {f['why']}"))
        elif "images_per_s" in f:
            note = (f"losses {'match' if f['losses_match_eager'] else 'DIFFER'}: step 1 {f['first_step_rel_diff']:.0e}, "
                    f"mean of {f['steps_compared']} steps {f['mean_loss_rel_diff']:.1%} (rel.); first warm-up {f['first_warmup_s']:.0f}s")
            rows.append(("step option", name, f["images_per_s"], "img/s", f["speedup_vs_eager"], note))
        else:
            why = f"skipped: {f['skipped']}" if "skipped" in f else f"unavailable: {f['unavailable']}"
            rows.append(("step option", name, None, "", None, why))
    rows.append(("step option", "verdict", None, "", None, so["verdict"]))
    gen = r["generation"]
    for m in gen.get("models", []):
        rows.append(("generation", f"{m['model']}: cold (load + {m['faces']})", m["cold_s"], "s", None, gen["note"]))
        rows.append(("generation", f"{m['model']}: warm median", m["warm_median_s"], "s", None,
                     f"{m['warm_images_per_s']:.0f} faces/s"))
    cb, fid, mem = r["cache_build"], r["fid_features"], r["memory"]
    rows.append(("cache build", f"prepare({cb['source']})", cb["images_per_s"], "img/s", None,
                 f"{cb['images']:,} images in {cb['seconds']:.1f}s, {cb['cache_mb']:.0f} MB"))
    if "images_per_s" in fid:
        rows.append(("FID features", "InceptionV3 pool3", fid["images_per_s"], "img/s", None, f"{fid['images']} images, {fid['weights']}"))
    if "peak_rss_mb" in mem:
        rows.append(("memory", "peak RSS, train 20 steps on 30k zip", mem["peak_rss_mb"], "MB", None,
                     f"cache file {mem['cache_mb']:.0f} MB (memory-mapped); importing torch + animegan alone "
                     f"{mem['import_only_rss_mb']:.0f} MB"))
    else:
        rows.append(("memory", "peak RSS of a training process", None, "", None, f"skipped: {mem['skipped']}"))
    return rows


def print_table(r: dict[str, Any]) -> None:
    d, s = r["device"], r["settings"]
    print(f"device {d['device']} ({d['name']}), torch {d['torch']}, {d['threads']} threads; load average "
          f"{r['load_average']['start']} at start, {r['load_average']['end']} at end")
    print(f"preset {s.get('preset', 'classic-dcgan')} {IMG_SIZE}x{IMG_SIZE} ngf=ndf={s['width']}, batch {s['batch']}, data {s['data']} ({s['mode']}); "
          f"value: median of {s['repeats']} rounds of {s['steps']} timed steps (after {s['warmup']} warm-up); "
          f"ratio: median of the per-round ratios")
    head = ("section", "measure", "value", "unit", "ratio", "note")
    body = [(a, b, fmt(c), u, "" if q is None else f"{q:.2f}", n) for a, b, c, u, q, n in table_rows(r)]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(5)]
    for row in [head, *body]:
        cells = [str(row[i]).rjust(widths[i]) if i in (2, 4) else str(row[i]).ljust(widths[i]) for i in range(5)]
        print("  ".join(cells + [row[5]]).rstrip())


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


# -- main -------------------------------------------------------------------------------------------------

@contextmanager
def fresh_inductor_cache(folder: Path):
    """torch keeps compiled kernels on disk between runs; an empty cache times a first compile."""
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


def bench_training(args, device: torch.device, folder: Path, data, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figures 1-4 in the same rounds: the step options (eager is the CPU ceiling), then both pipelines."""
    with_compile = args.compile_skip is None
    options = option_contenders(args, device, ceiling_batch(args, device, data), with_compile)
    classic, project = classic_contender(args, device, folder), project_contender(args, device, data)
    with fresh_inductor_cache(work / "inductor-cache") if with_compile else nullcontext():
        run_rounds(args, options + [classic, project])
    summary = step_options_summary(options, args, device, args.compile_skip)
    ceil_name = ceiling_name(device)
    ceil, classic_fig, proj_fig = summary["variants"][ceil_name], classic.figures(args.batch), project.figures(args.batch)

    training = {"classic_pipeline": classic_fig, "project_pipeline": proj_fig,
                "ceiling": {"variant": ceil_name, **{k: ceil[k] for k in ("images_per_s", "windows_images_per_s", "step_s")}},
                "ratio": {"project_vs_classic": ratio(proj_fig, classic_fig), "project_vs_ceiling": ratio(proj_fig, ceil),
                          "how": "median of per-round ratios",
                          "of_medians": {"project_vs_classic": proj_fig["images_per_s"] / classic_fig["images_per_s"],
                                         "project_vs_ceiling": proj_fig["images_per_s"] / ceil["images_per_s"]}}}
    return training, summary



def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    started, load0 = time.time(), load_average()
    info = device_info(device)
    log(f"device {info['device']} ({info['name']}), torch {info['torch']}, {info['threads']} threads; data {args.data}")
    with tempfile.TemporaryDirectory(prefix="animegan-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"  # a fresh ANIMEGAN_HOME for the cache and the memory subprocess
        n_classic = images_needed(args)
        log(f"exporting {n_classic} images as JPEG q{EXPORT_QUALITY} {EXPORT_SIDE}x{EXPORT_SIDE} for the classic pipeline")
        folder = export_jpeg_folder(args, n_classic, work)
        full_zip = args.mode == "full" and Path(args.data).is_file()
        full_folder = args.mode == "full" and Path(args.data).is_dir()
        if full_zip or full_folder:
            data, cache = measure_cache_build(args.data, Path(args.data).name, home / "cache")
        else:
            data, cache = measure_cache_build(str(folder), f"{n_classic}-image JPEG subset folder", home / "cache")

        training, options = bench_training(args, device, folder, data, work)
        training["project_pipeline"]["cache"] = (f"cache of {cache['source']}: {len(data):,} images, "
                                                 f"train split {len(data.splits['train']):,}")
        skip = {"skipped": "--training-only"}
        generation = skip if args.training_only else bench_generation(args, device)
        fid = skip if args.training_only else bench_fid_features(args, device, data, work)
        memory = skip if args.training_only else bench_memory(args, device, home, cache["cache_mb"] if full_zip else None)

    settings = {"mode": args.mode, "data": args.data, "preset": args.preset, "img_size": IMG_SIZE, "width": args.width,
                "threads": torch.get_num_threads(),
                "batch": args.batch, "repeats": args.repeats, "steps": args.steps, "warmup": args.warmup,
                "classic_folder_images": n_classic, "classic_transforms": "Resize(64), ToTensor, Normalize(0.5,0.5), "
                f"RandomHorizontalFlip, ColorJitter(brightness=0.2); DataLoader(num_workers={LOADER_WORKERS}, shuffle, drop_last)",
                "project_augment": "ClassicAugment(flip=0.5, brightness=0.5)", "project_default_step": vars(default_variant(device)),
                "fid_n": args.fid_n, "generation_faces": args.gen_n}
    return {"benchmark": "scripts/bench.py", "time": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "wall_s": time.time() - started, "device": info, "load_average": {"start": load0, "end": load_average()},
            "settings": settings, "training": training, "step_options": options, "generation": generation,
            "cache_build": cache, "fid_features": fid, "memory": memory}


def compile_cost(r: dict[str, Any]) -> dict[str, Any] | None:
    """What torch.compile cost and gave in this run, as animegan/compile_cost.json holds it (step.py
    reads it: compile="auto" decides by it); None when the compiled step was not measured.
    compile_seconds: the compiled step's first warm-up less the eager one's (same steps, empty
    inductor cache); compile_speedup: its images/s over eager's, median of per-round ratios."""
    from animegan.step import COMPILE_COST
    variants = r["step_options"]["variants"]
    compiled, eager = variants.get("torch.compile", {}), variants["eager"]
    if "speedup_vs_eager" not in compiled:
        return None
    d, s = r["device"], r["settings"]
    return {"what": COMPILE_COST["what"],
            "device": f"{d['device']}: {d['name']}, torch {d['torch']}, {d['threads']} threads",
            "setting": f"{s['preset']} {s['img_size']}x{s['img_size']}, ngf=ndf={s['width']}, batch {s['batch']}; "
                       "the trainer's own step",
            "compile_seconds": round(compiled["first_warmup_s"] - eager["first_warmup_s"], 1),
            "compile_speedup": round(compiled["speedup_vs_eager"], 3),
            "measured": f"scripts/bench.py at {r['time']}: {s['warmup']} warm-up steps, {s['repeats']} rounds of "
                        f"{s['steps']} timed steps",
            "load_average": r["load_average"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_benchmark(args)
    print_table(results)
    write_json(args.json, results)
    print(f"JSON: {args.json}")
    if args.compile_cost:
        cost = compile_cost(results)
        if cost is None:
            why = results["step_options"]["variants"].get("torch.compile", {})
            print(f"--compile-cost: not written, torch.compile was not measured "
                  f"({why.get('skipped') or why.get('unavailable') or 'no figure'})")
            return 1
        write_json(Path(args.compile_cost), cost)
        print(f"compile cost: {cost['compile_seconds']} s, ×{cost['compile_speedup']} -> {args.compile_cost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
