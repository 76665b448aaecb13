"""The small-data measurement of `finetune-small` (docs/recipes.md, "Your own characters"): every
arm fine-tunes a shipped checkpoint on the same few images for the same CPU time, then is
measured against held-out faces (SWD over all of them) and for copying (memorisation score).

    python -m animegan synth --n 100 --seed 5 --out ~/animegan-runs/ft-small/synth100
    python -m animegan synth --n 2000 --seed 6 --out ~/animegan-runs/ft-small/synth2000-ref
    python scripts/finetune_small.py run --arms plain --cpu-minutes 10    # and --arms small, at the same time
    python scripts/finetune_small.py measure --arms base,copier,plain,small
    python scripts/finetune_small.py report --arms base,copier,plain,small   # a table, and the faces sheet
    python scripts/finetune_small.py run --arms plain-f2 --cpu-minutes 10 --continue-from ~/animegan-runs/ft-small/screen3

(--data, --reference and --out default to those paths: ~/animegan-runs/ft-small/synth100,
synth2000-ref and ft10.)

One thread per arm; each arm is stopped (SIGTERM: it saves and ends) once its own CPU time
reaches the budget (scripts/ablation.py's `_train_on_cpu_budget`). Bookkeeping that would eat the
budget on 80 training images (one step per epoch) is spaced out in every arm alike: no evaluation
during training, grids and epoch checkpoints every 100 epochs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import _flags, _train_on_cpu_budget  # noqa: E402

# Every arm: one thread, eager, the same bookkeeping (see the module docstring).
COMMON = dict(threads=1, compile="off", eval_every=0, eval_kimg=0.0, sample_every=100, checkpoint_every=100,
              latest_every=200, keep_last=1, epochs=100_000)
FIRST_SMALL = dict(preset="anime64", freeze_d=2, diffaug="color,translation,cutout", ada_target=0.6, ada_kimg=10.0,
                   ema_kimg=1.0)
# name -> (what it is, train fields)
ARMS: dict[str, tuple[str, dict]] = {
    "plain": ("plain fine-tuning: today's anime64 preset with --init-from", dict(preset="anime64")),
    "preset": ("the finetune-small preset as it is now", dict(preset="finetune-small")),
    # The first finetune-small settings (the preset is plain fine-tuning since: docs/recipes.md).
    "small": ("the first finetune-small: freeze 2, color,translation,cutout with ADA 0.6, EMA 1 kimg", FIRST_SMALL),
    "small-f3": ("the first finetune-small with D's first three blocks frozen", {**FIRST_SMALL, "freeze_d": 3}),
    "small-nocolor": ("the first finetune-small without the colour op", {**FIRST_SMALL, "diffaug": "translation,cutout"}),
    # One lever at a time on top of plain (screen 2026-12-03, 3 CPU-minutes).
    "plain-f2": ("plain with D's first two blocks frozen", dict(preset="anime64", freeze_d=2)),
    "plain-ada9": ("plain with adaptive translation, target 0.9", dict(preset="anime64", ada_target=0.9)),
    "plain-lr4": ("plain with G and D learning rates 4e-4", dict(preset="anime64", lr_g=4e-4, lr_d=4e-4)),
    "plain-b32": ("plain with batch 32 (twice the steps per CPU-minute)", dict(preset="anime64", batch_size=32)),
    "plain-f1": ("plain with D's first block (its first conv, no BatchNorm) frozen", dict(preset="anime64", freeze_d=1)),
    "plain-color": ("plain with colour DiffAugment too (color,translation on every image)",
                    dict(preset="anime64", diffaug="color,translation")),
    "plain-lrd1": ("plain with D's learning rate 1e-4 (G's 2e-4)", dict(preset="anime64", lr_d=1e-4)),
    "plain-lrg1": ("plain with G's learning rate 1e-4 (D's 2e-4)", dict(preset="anime64", lr_g=1e-4)),
    # The bar every fine-tuning clears: the same preset trained from random weights.
    "scratch": ("from scratch: the anime64 preset, no --init-from", dict(preset="anime64", init_from=None)),
}


def run_arm(name: str, data: str, base: str, out: Path, cpu_minutes: float, extra: dict | None = None) -> Path:
    what, fields = ARMS[name]
    run = out / name
    fields = {**COMMON, "init_from": base, **fields, **(extra or {}), "data": data}
    fields = {k: v for k, v in fields.items() if v is not None}
    cmd = [sys.executable, "-m", "animegan", "train", *_flags(fields), "--out", str(run), "--overwrite", "--no-progress"]
    trace = out / f"{name}.cpu.jsonl"
    trace.unlink(missing_ok=True)
    print(f"{name}: {' '.join(cmd)}", flush=True)
    t = time.time()
    with open(out / f"{name}.out", "w") as f:
        rc = _train_on_cpu_budget(cmd, f, cpu_minutes * 60, trace)
    print(f"{name}: exit {rc} after {time.time() - t:.0f} s", flush=True)
    return run


def continue_arm(name: str, src: Path, out: Path, cpu_minutes: float) -> Path:
    """An arm measured at a shorter budget under `src`, copied to `out` and resumed from its
    last.pt until its CPU time (the time spent under `src` counted) reaches `cpu_minutes`: a
    3-minute screen becomes the first 3 minutes of a 10-minute run (the resumed process pays
    its start-up, a few CPU-seconds, a second time)."""
    import shutil
    run, trace = out / name, out / f"{name}.cpu.jsonl"
    shutil.copytree(src / name, run)
    shutil.copy(src / f"{name}.cpu.jsonl", trace)
    rows = [json.loads(x) for x in trace.read_text().splitlines() if x.strip()]
    spent = rows[-1]["cpu_s"] if rows else 0.0
    cmd = [sys.executable, "-m", "animegan", "train", "--resume", str(run), "--no-progress"]
    print(f"{name}: {spent:.0f} CPU-s spent under {src}; {' '.join(cmd)}", flush=True)
    t = time.time()
    with open(out / f"{name}.out", "a") as f:
        rc = _train_on_cpu_budget(cmd, f, cpu_minutes * 60, trace, spent)
    print(f"{name}: exit {rc} after {time.time() - t:.0f} s", flush=True)
    return run


def _fakes(ckpt: str, n: int, seed: int = 0):
    import torch

    from animegan.checkpoint import load_generator
    from animegan.generate import image_batches
    return torch.cat(list(image_batches(load_generator(ckpt, "cpu").G, n, seed)))


def measure(fakes, data: str, reference: str, n_mem: int = 500) -> dict:
    """SWD of `fakes` (uint8, 2,000) against every image of `reference`, and the memorisation score
    in pixel space: the share of the first n_mem fakes closer to a training face of `data` than
    all but 5 % of n_mem held-out faces of `reference` are (memorisation.py's score, with a
    reference of 500 unseen faces of the same style instead of the 10 a 100-image val split holds)."""
    import numpy as np
    import torch

    from animegan.data import prepare
    from animegan.explore.memorisation import PERCENTILE, _embed, build_index, nearest
    from animegan.metrics.swd import swd

    ref = torch.from_numpy(np.asarray(prepare(reference, fakes.shape[-1], val=0, test=0).images))
    r = swd(fakes[: len(ref)], ref[: len(fakes)], seed=0)
    train = prepare(data, fakes.shape[-1])   # the arms' own split: 80 train, 10 val, 10 test
    index = build_index(train, "pixels")
    held_out = nearest(index, _embed("pixels", ref[:n_mem], None), 1)[0][:, 0].numpy()
    gen = nearest(index, _embed("pixels", fakes[:n_mem], None), 1)[0][:, 0].numpy()
    tau = float(np.percentile(held_out, PERCENTILE))
    return {"swd": round(r.value, 2), "swd_n": r.n, "memorisation": round(float(np.mean(gen <= tau)), 3),
            "tau": round(tau, 2), "median_nearest": round(float(np.median(gen)), 2)}


def measure_all(names: list[str], out: Path, data: str, reference: str, base: str, n: int = 2000) -> None:
    """One JSON per row under `out`: the base checkpoint as it ships, a copier (the training faces
    themselves, repeated), and each arm's last checkpoint."""
    import numpy as np
    import torch

    from animegan.data import prepare
    rows = {}
    for name in names:
        if name == "base":
            fakes = _fakes(base, n)
        elif name == "copier":
            d = prepare(data, 64)
            train = torch.from_numpy(np.asarray(d.images[d.splits["train"]]))
            fakes = train[torch.arange(n) % len(train)]
        else:
            fakes = _fakes(str(out / name / "checkpoints" / "last.pt"), n)
        res = measure(fakes, data, reference)
        if name not in ("base", "copier"):
            status = json.loads((out / name / "status.json").read_text())
            cfg = json.loads((out / name / "config.json").read_text())
            trace = [json.loads(x) for x in (out / f"{name}.cpu.jsonl").read_text().splitlines() if x.strip()]
            res.update(step=status.get("step"), kimg=status.get("step", 0) * cfg["batch_size"] / 1000,
                       cpu_minutes=round(trace[-1]["cpu_s"] / 60, 2) if trace else None)
        rows[name] = res
        (out / f"{name}.measured.json").write_text(json.dumps(res, indent=1))
        print(name, json.dumps(res), flush=True)


def _training_faces(data: str, n: int):
    import numpy as np
    import torch

    from animegan.data import prepare
    d = prepare(data, 64)
    return torch.from_numpy(np.asarray(d.images[d.splits["train"]][:n]))


def faces_sheet(names: list[str], out: Path, data: str, base: str, sheet: Path, n: int = 16) -> Path:
    """One labelled band per row: the first n training faces, then faces 0..n-1 of seed 0 of the
    base checkpoint and of each arm's last checkpoint (the faces `measure` scored first)."""
    from PIL import Image, ImageDraw, ImageFont

    from animegan.images import to_grid
    bands = [("training", _training_faces(data, n))]
    for name in names:
        ckpt = base if name == "base" else str(out / name / "checkpoints" / "last.pt")
        bands.append((name, _fakes(ckpt, n)))
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:   # Pillow < 10.1
        font = ImageFont.load_default()
    grids = [to_grid(faces, cols=8) for _, faces in bands]
    label_h = 20
    width = max(g.width for g in grids)
    img = Image.new("RGB", (width, sum(g.height + label_h for g in grids)), "white")
    draw, y = ImageDraw.Draw(img), 0
    for (label, _), g in zip(bands, grids, strict=True):
        draw.text((4, y + 3), label, fill="black", font=font)
        img.paste(g, (0, y + label_h))
        y += g.height + label_h
    sheet.parent.mkdir(parents=True, exist_ok=True)
    img.save(sheet, quality=90)
    return sheet


def table(names: list[str], out: Path) -> str:
    """The measured rows of `names` under `out` as a markdown table."""
    lines = ["| arm | what | steps (images) | CPU-min | SWD vs 2,000 unseen (n=2000) | memorisation (pixels) | median distance to nearest training face |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        r = json.loads((out / f"{name}.measured.json").read_text())
        what = {"base": "the checkpoint as shipped", "copier": "the 80 training faces themselves"}.get(name) or ARMS[name][0]
        steps = f"{r['step']} ({r['kimg']:.1f}k)" if "step" in r else "–"
        lines.append(f"| {name} | {what} | {steps} | {r.get('cpu_minutes') or '–'} | {r['swd']} | {r['memorisation']:.3f} | {r['median_nearest']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("run", "measure", "report"),
                    help="measure and report: --arms may also name base and copier (report: base only in the sheet)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--data", default=str(Path.home() / "animegan-runs/ft-small/synth100"))
    ap.add_argument("--reference", default=str(Path.home() / "animegan-runs/ft-small/synth2000-ref"))
    ap.add_argument("--base", default="checkpoints/anime64.pt")
    ap.add_argument("--out", type=Path, default=Path.home() / "animegan-runs/ft-small/ft10")
    ap.add_argument("--cpu-minutes", type=float, default=10.0)
    ap.add_argument("--continue-from", type=Path, metavar="DIR",
                    help="run: copy each arm's run from DIR (a shorter budget) and resume it up to --cpu-minutes in all")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="run: a field for every arm given")
    ap.add_argument("--sheet", type=Path, default=Path("docs/finetune-small/faces.jpg"), help="report: the faces sheet")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    extra = {}
    for item in a.set:
        k, _, v = item.partition("=")
        extra[k] = v
    if a.what == "measure":
        measure_all(a.arms.split(","), a.out, str(Path(a.data).resolve()), str(Path(a.reference).resolve()), a.base)
        return 0
    if a.what == "report":
        names = a.arms.split(",")
        print(table(names, a.out))
        print(faces_sheet([x for x in names if x != "copier"], a.out, str(Path(a.data).resolve()), a.base, a.sheet))
        return 0
    for name in a.arms.split(","):
        if a.continue_from:
            continue_arm(name, a.continue_from, a.out, a.cpu_minutes)
            continue
        run_arm(name, str(Path(a.data).resolve()), str(Path(a.base).resolve()), a.out, a.cpu_minutes, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
