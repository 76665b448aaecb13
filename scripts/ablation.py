"""The recipe ablation: every arm trained for the same wall-clock budget (or the same number of
images) on the same data, then a table of what each reached.

    python scripts/ablation.py run --data ../shared/data/anime-faces-96.zip --out ~/animegan-runs/ablation
    python scripts/ablation.py run ... --arms base,sn --minutes 40 --tag long    # the second round
    python scripts/ablation.py report --out ~/animegan-runs/ablation             # markdown table
    python scripts/ablation.py plots --out ~/animegan-runs/ablation --docs docs/ablation   # curves + grids for docs
    python scripts/ablation.py report --out ~/animegan-runs/ablation-r2 --minutes 40 --also beta0=~/animegan-runs/long64-beta0
    python scripts/ablation.py run --arms fp32,fp32-s1,bf16 --kimg 64 --eval-kimg 16 --eval-n 2000 --out ~/animegan-runs/bf16

Rounds 1 and 2: each arm is the pre-ablation `anime64` recipe (BASE) at width 32 with a few fields
changed. Round 3 and the fp32-vs-bf16 check: each arm is today's `anime64` preset (BASE3) with a
few fields changed. An arm whose run already
finished is skipped, so the script can be restarted after an interruption (an unfinished arm is
started again from scratch: a fair arm has one uninterrupted budget). SWD (n=1000, val split) is
evaluated every --eval-kimg thousand images (n = --eval-n), so curves compare by images seen and by
wall time. `--kimg` gives every arm the same number of images instead of the same minutes.

`--cpu-minutes` gives every arm the same CPU time instead (round 3): the arm's process is stopped
(SIGTERM: it saves and ends) once its own CPU time reaches the budget, and its last checkpoint is
then measured once more on the val split (the `swd` verb, same n and seed as the evaluations).
On a machine shared with other work, an arm's images per CPU-second stay what they are on a
quiet one, where its images per wall-second do not: with one thread per arm, CPU minutes are
the fair budget. (Memory bandwidth and caches are still shared, so the column of images per
CPU-second is shown beside every arm.)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# name -> (what it tests, field overrides on the base[, the base: BASE unless given])
# The base is the `anime64` recipe as it was before the ablation (hinge, no R1, Adam betas 0.5/0.999),
# spelled out so that the arms reproduce after the preset took the winner's settings.
BASE = dict(preset="anime64", ngf=32, ndf=32, loss="hinge", r1_gamma=0.0, beta1=0.5, beta2=0.999,
            compile="off", threads=1)
# Round 3's base: today's anime64 preset (round 2's winner) as the preset spells it, one thread.
BASE3 = dict(preset="anime64", compile="off", threads=1)
ARMS: dict[str, tuple[str, dict]] = {
    "base": ("today's anime64: hinge, BatchNorm D + mbstd, translation, EMA 10 kimg, batch 64, lr 2e-4", {}),
    "sn": ("spectral-norm D instead of BatchNorm D", dict(model="anime64-sn")),
    "bce": ("non-saturating loss instead of hinge", dict(loss="bce")),
    "r1": ("R1 on reals, gamma 0.1, lazy every 16 steps (non-saturating loss)", dict(loss="bce", r1_gamma=0.1)),
    "ct": ("DiffAugment color,translation", dict(diffaug="color,translation")),
    "ctc": ("DiffAugment color,translation,cutout", dict(diffaug="color,translation,cutout")),
    "w48": ("width 48 (ngf = ndf = 48)", dict(ngf=48, ndf=48)),
    "b32": ("batch 32", dict(batch_size=32)),
    "ttur": ("faster D (TTUR): lr_D 4e-4, lr_G 1e-4", dict(lr_d=4e-4, lr_g=1e-4)),
    "beta0": ("Adam betas (0, 0.99) as in SNGAN/StyleGAN", dict(beta1=0.0, beta2=0.99)),
    "beta0-b32": ("Adam betas (0, 0.99) and batch 32 together", dict(beta1=0.0, beta2=0.99, batch_size=32)),
    "beta0-r1": ("Adam betas (0, 0.99) with R1 (gamma 0.1, lazy every 16 steps, non-saturating loss)",
                 dict(beta1=0.0, beta2=0.99, loss="bce", r1_gamma=0.1)),
    "ema1": ("EMA half-life 1 kimg instead of 10", dict(ema_kimg=1.0)),
    "sn-r1": ("spectral-norm D with R1 and the non-saturating loss", dict(model="anime64-sn", loss="bce", r1_gamma=0.1)),
    # fp32 against bf16 autocast on the CPU: the same recipe, equal images (--kimg); two fp32 seeds give the noise
    "fp32": ("anime64 in fp32, seed 0", dict(amp="off"), BASE3),
    "fp32-s1": ("anime64 in fp32, seed 1", dict(amp="off", seed=1), BASE3),
    "bf16": ("anime64 in bf16 autocast, seed 0", dict(amp="bf16"), BASE3),
    "bf16-s1": ("anime64 in bf16 autocast, seed 1", dict(amp="bf16", seed=1), BASE3),
    # Round 3: capacity and architecture per CPU-minute (--cpu-minutes 60, --eval-n 2000), on BASE3 (fp32 on
    # the CPU: docs/recipes.md, "bf16 autocast on the CPU"). The first three ran with amp="bf16" and
    # channels_last="on" (docs/recipes.md keeps their numbers).
    "r3-w32": ("today's anime64 (width 32)", dict(), BASE3),
    "r3-w48": ("width 48", dict(ngf=48, ndf=48), BASE3),
    "r3-w64": ("width 64", dict(ngf=64, ndf=64), BASE3),
    "r3-resnet": ("residual G and D without normalisation, relativistic pairing loss, R1 + R2 (gamma 0.2) (R3GAN)",
                  dict(model="resnet", loss="rpgan", r1_gamma=0.2, r2_gamma=0.2), BASE3),
    "r3-sle": ("skip-layer excitation in G (FastGAN), width 32", dict(model="anime64-sle"), BASE3),
}


def _flags(fields: dict) -> list[str]:
    out = []
    for k, v in fields.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def arm_fields(name: str, data: str, minutes: float, kimg: float, eval_kimg: float, eval_n: int) -> dict:
    """The train flags of arm `name`: its base, its overrides, the budget (minutes, or kimg as max_steps)."""
    what, over, *base = ARMS[name]
    fields = {**(base[0] if base else BASE), **over}
    budget = {"minutes": minutes} if not kimg else {"max_steps": -(-int(kimg * 1000) // fields.get("batch_size", 64))}
    return {**fields, **budget, "eval_kimg": eval_kimg, "eval_n": eval_n, "eval_every": 0, "epochs": 1000, "data": data}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _train_on_cpu_budget(cmd: list[str], log, seconds: float, trace: Path, spent: float = 0.0) -> int:
    """Run the trainer; SIGTERM it once its CPU time, plus `spent` before it (a resumed arm),
    reaches `seconds`. Every few seconds a line (wall time, CPU seconds) is appended to `trace`, so
    evaluations can be placed on the CPU-time axis."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    stopped = False
    with open(trace, "a") as f:
        while proc.poll() is None:
            try:
                used = spent + cpu_seconds(proc.pid)
            except (OSError, IndexError, ValueError):
                break
            f.write(json.dumps({"time": time.time(), "cpu_s": used}) + "\n")
            f.flush()
            if used >= seconds and not stopped:
                proc.send_signal(signal.SIGTERM)
                stopped = True
            time.sleep(5)
    return proc.wait()


def run_arm(name: str, data: str, out: Path, minutes: float, eval_kimg: float, kimg: float = 0.0, eval_n: int = 1000,
            cpu_minutes: float = 0.0) -> Path:
    run = out / name
    status, final = run / "status.json", out / f"{name}.final.json"
    if (status.exists() and json.loads(status.read_text()).get("state") == "finished") or final.exists():
        print(f"{name}: finished before, skipped", flush=True)
        return run
    fields = arm_fields(name, data, 0.0 if cpu_minutes else minutes, kimg, eval_kimg, eval_n)
    cmd = [sys.executable, "-m", "animegan", "train", *_flags(fields), "--out", str(run), "--overwrite", "--no-progress"]
    trace, spent = out / f"{name}.cpu.jsonl", 0.0
    if cpu_minutes and (run / "checkpoints" / "last.pt").exists() and trace.exists():
        # An interrupted arm (the machine or session ended): resume it from last.pt with the CPU time
        # spent up to that checkpoint; the work after it is lost and its trace lines dropped.
        saved = (run / "checkpoints" / "last.pt").stat().st_mtime
        kept = [r for r in _rows(trace) if r["time"] <= saved]
        spent = kept[-1]["cpu_s"] if kept else 0.0
        trace.write_text("".join(json.dumps(r) + "\n" for r in kept))
        cmd = [sys.executable, "-m", "animegan", "train", "--resume", str(run), "--no-progress"]
    elif trace.exists():
        trace.unlink()
    print(f"{name}: {' '.join(cmd)}" + (f" ({spent / 60:.1f} CPU-minutes spent before)" if spent else ""), flush=True)
    t = time.time()
    with open(out / f"{name}.out", "a" if spent else "w") as f:
        if cpu_minutes:
            rc = _train_on_cpu_budget(cmd, f, cpu_minutes * 60, trace, spent)
        else:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    print(f"{name}: exit {rc} after {time.time() - t:.0f} s", flush=True)
    ck = run / "checkpoints" / "last.pt"
    if cpu_minutes and rc == 0 and ck.exists():  # the budget's end, measured as the evaluations are
        r = subprocess.run([sys.executable, "-m", "animegan", "swd", "--checkpoint", str(ck), "--data", data, "--split", "val",
                            "--n", str(eval_n), "--seed", "0", "--json"], capture_output=True, text=True)
        if r.returncode == 0:
            step = json.loads(status.read_text()).get("step", 0)
            final.write_text(json.dumps({**json.loads(r.stdout), "step": step,
                                         "kimg": step * fields.get("batch_size", 64) / 1000, "time": time.time()}))
    if rc == 0 and ck.exists():
        grid = out / "grids" / f"{name}.png"
        grid.parent.mkdir(exist_ok=True)
        subprocess.call([sys.executable, "-m", "animegan", "generate", "--checkpoint", str(ck), "--seed", "0",
                         "--n", "64", "--out", str(grid)])
    return run


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _arms(out: Path, also: dict[str, Path], minutes: float):
    """(name, what, run dir, SWD evals, images/s readings, kimg seen, start time, CPU seconds or None)
    per arm that ran,
    then per `also` run (a longer run of the same recipe, e.g. the long run), cut at `minutes`
    after its start so it compares with arms of that budget."""
    runs = [(name, what, out / name, None) for name, (what, *_) in ARMS.items()]
    runs += [(name, f"the first {minutes:g} min of {path.name}", path, minutes * 60) for name, path in also.items()]
    for name, what, run, cut in runs:
        if not (run / "status.json").exists():
            continue
        st = json.loads((run / "status.json").read_text())
        batch = json.loads((run / "config.json").read_text())["batch_size"]
        evals = [e for e in _rows(run / "evals.jsonl") if e.get("metric") == "swd"]
        metrics = [m for m in _rows(run / "metrics.jsonl") if "images_per_s" in m]
        t0 = st.get("first_started", st.get("started", evals[0]["time"] if evals else 0))
        if cut is not None:  # the budget's end, with a minute's grace for the evaluation at that point
            evals = [e for e in evals if e["time"] - t0 <= cut + 60]
            metrics = [m for m in metrics if m["time"] - t0 <= cut]
        step = metrics[-1]["step"] if cut is not None and metrics else st.get("step", 0)
        final = out / f"{name}.final.json"
        if cut is None and final.exists():  # a --cpu-minutes arm: its last checkpoint, measured after the stop
            evals.append(json.loads(final.read_text()))
        trace = _rows(out / f"{name}.cpu.jsonl")
        for e in evals:  # where each evaluation falls on the arm's own CPU-time axis
            before = [r["cpu_s"] for r in trace if r["time"] <= e["time"]]
            if trace:
                e["cpu_min"] = (before[-1] if before else 0.0) / 60
        cpu_s = trace[-1]["cpu_s"] if trace else None
        yield name, what, run, evals, [m["images_per_s"] for m in metrics], step * batch / 1000, t0, cpu_s


def report(out: Path, also: dict[str, Path] | None = None, minutes: float = 0.0) -> str:
    lines = ["| arm | what | SWD ×1e3 at end | best SWD | kimg seen | img/s | img per CPU-s | evals (kimg: SWD) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, what, _, evals, speeds, kimg, _, cpu_s in _arms(out, also or {}, minutes):
        last = f"{evals[-1]['value']:.1f}" if evals else "–"
        best = f"{min(e['value'] for e in evals):.1f}" if evals else "–"
        speed = f"{sorted(speeds)[len(speeds) // 2]:.0f}" if speeds else "–"
        curve = ", ".join(f"{e.get('kimg', 0):.0f}: {e['value']:.1f}" for e in evals)
        per_cpu = f"{kimg * 1000 / cpu_s:.0f}" if cpu_s else "–"
        lines.append(f"| {name} | {what} | {last} | {best} | {kimg:.1f} | {speed} | {per_cpu} | {curve} |")
    return "\n".join(lines)


def plots(out: Path, docs: Path, also: dict[str, Path] | None = None, minutes: float = 0.0) -> None:
    """SWD against images seen and against wall time, one line per arm; the arms' grids copied."""
    from animegan.plots import line_plot
    by_kimg, by_min, grids, n, cpu_axis = {}, {}, {}, 1000, True
    for name, _, _, evals, _, _, t0, _ in _arms(out, also or {}, minutes):
        if not evals:
            continue
        n = evals[-1].get("n", n)
        cpu_axis = cpu_axis and all("cpu_min" in e for e in evals)
        by_kimg[name] = ([e.get("kimg", 0) for e in evals], [e["value"] for e in evals])
        by_min[name] = ([e.get("cpu_min", (e["time"] - t0) / 60) for e in evals], [e["value"] for e in evals])
        if (out / "grids" / f"{name}.png").exists():
            grids[name] = out / "grids" / f"{name}.png"
    line_plot(by_kimg, f"SWD x1e3 (n={n}, val split) vs images seen", "thousands of images seen", "SWD x1e3",
              docs / "swd-by-kimg.png", floor=6.5, log_y=True)
    clock = "CPU time of the arm's one thread" if cpu_axis and by_min else "wall time (this 2-core CPU, 1 thread)"
    line_plot(by_min, f"SWD x1e3 (n={n}, val split) vs {clock}", "minutes", "SWD x1e3", docs / "swd-by-minutes.png",
              floor=6.5, log_y=True)
    if grids:
        faces_sheet(grids, docs / "grids.jpg")
    print(f"wrote {docs}/swd-by-kimg.png, swd-by-minutes.png" + (f" and grids.jpg ({len(grids)} arms)" if grids else ""))


def faces_sheet(grids: dict[str, Path], out: Path, faces: int = 16, cols: int = 8) -> None:
    """The first `faces` faces of each arm's seed-0 grid (64 px faces, 2 px gaps, 8 a row), one
    labelled block per arm, as one JPEG."""
    from PIL import Image, ImageDraw
    cell, label_h = 66, 20
    rows = -(-faces // cols)
    sheet = Image.new("RGB", (cols * cell + 2, len(grids) * (label_h + rows * cell)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, path) in enumerate(grids.items()):
        top = i * (label_h + rows * cell)
        draw.text((4, top + 4), name, fill="black")
        grid = Image.open(path).convert("RGB")
        for k in range(faces):
            box = ((k % cols) * cell, (k // cols) * cell)
            sheet.paste(grid.crop((box[0], box[1], box[0] + cell, box[1] + cell)),
                        ((k % cols) * cell, top + label_h + (k // cols) * cell))
    sheet.save(out, quality=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("run", "report", "plots"))
    ap.add_argument("--docs", type=Path, default=Path("docs/ablation"))
    ap.add_argument("--data", default="../shared/data/anime-faces-96.zip")
    ap.add_argument("--out", type=Path, default=Path.home() / "animegan-runs" / "ablation")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--eval-kimg", type=float, default=4.0)
    ap.add_argument("--eval-n", type=int, default=1000, help="images per SWD evaluation (round 3: 2000)")
    ap.add_argument("--kimg", type=float, default=0.0, help="run: every arm sees this many thousand images (instead of --minutes)")
    ap.add_argument("--cpu-minutes", type=float, default=0.0, help="run: every arm gets this much CPU time (instead of --minutes)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=RUN",
                    help="report/plots: a longer run of one arm's recipe, cut at --minutes after its start")
    a = ap.parse_args()
    also = {}
    for item in a.also:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).expanduser().is_dir():
            ap.error(f"--also wants NAME=RUN_DIRECTORY, got {item!r}")
        also[name] = Path(path).expanduser()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "run":
        for name in a.arms.split(","):
            if name not in ARMS:
                ap.error(f"unknown arm {name!r}; choose from {', '.join(ARMS)}")
        for name in a.arms.split(","):
            run_arm(name, str(Path(a.data).resolve()) if a.data != "synthetic" else a.data, a.out, a.minutes, a.eval_kimg,
                    a.kimg, a.eval_n, a.cpu_minutes)
    if a.what == "plots":
        plots(a.out, a.docs, also, a.minutes)
        return 0
    print(report(a.out, also, a.minutes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
