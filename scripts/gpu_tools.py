"""Helpers of the prepared GPU run (`scripts/gpu_run.sh`) and of its carry folder (`scripts/gpu_carry.sh`).

    python scripts/gpu_tools.py carry --data ZIP --out .carry [--budget-mib 64] [--max-train N] [--max-eval N]
    python scripts/gpu_tools.py setup --carry .carry [--rehearse]
    python scripts/gpu_tools.py summary --out DIR

`carry` re-encodes a data source at 64 px into `<out>/faces64.zip`, keeping every member's name, so the
project's splits (a function of the names: `animegan.data.make_splits`) come out the same on the GPU
machine: all validation and test faces go in (JPEG q95, they are what every number is measured
against) and as many training faces as fit the budget (JPEG q85; a subset when the whole set does
not fit, and it says so). As long as the carried set holds at least 10 × 2,000 faces, its val and
test splits are exactly the development machine's (they are the names with the smallest hashes).
`setup` installs what is missing on the machine from the carried wheels (`--no-index`), or, with
`--rehearse`, only checks that the carried wheels resolve for Python 3.12 without the network.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 2 ** 20
TRAIN_QUALITY, EVAL_QUALITY = 85, 95
# What `python -m animegan train/swd/export/generate` imports beyond torch and torchvision, by
# import name -> distribution name. numpy and pillow are requirements of torchvision itself, so a
# machine with torchvision has them; they are carried only when asked (--wheels numpy,pillow,tqdm).
RUNTIME_NEEDS = {"numpy": "numpy", "PIL": "pillow", "tqdm": "tqdm"}
DEFAULT_WHEELS = ("tqdm",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def repo_bytes() -> int:
    """What travels besides the carry folder: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sum((ROOT / p).stat().st_size for p in out.split("\0") if p and (ROOT / p).is_file())


def _jpeg(img_chw, quality: int) -> bytes:
    import numpy as np
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_chw.transpose(1, 2, 0))).save(b, "JPEG", quality=quality)
    return b.getvalue()


def download_wheels(names: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), *names]
    subprocess.run(cmd, check=True)


def build_carry(data: str, out: Path, budget_mib: float, max_train: int | None, max_eval: int | None,
                wheels: list[str]) -> int:
    import numpy as np

    from animegan.data import prepare
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    if wheels:
        download_wheels(wheels, out / "wheels")
    wheel_bytes = sum(p.stat().st_size for p in (out / "wheels").glob("*.whl")) if (out / "wheels").exists() else 0
    if data == "synthetic":  # a few hundred built-in faces are enough for a rehearsal (the full set is 10,000)
        from animegan.synth import write_synthetic
        n = (max_train or 400) + (max_eval or 200)
        data = str(write_synthetic(out / "synthetic", n=n))
    d = prepare(data, 64, progress=True)
    eval_idx = np.concatenate([d.splits["val"], d.splits["test"]])
    if max_eval is not None:
        eval_idx = np.concatenate([d.splits["val"][:max_eval // 2], d.splits["test"][:max_eval // 2]])
    order = np.random.default_rng(0).permutation(d.splits["train"])
    if max_train is not None:
        order = order[:max_train]
    budget = int(budget_mib * MIB) - repo_bytes() - wheel_bytes - MIB  # 1 MiB for the zip directory and slack
    tmp = out / "faces64.zip.tmp"
    used, n_train = 0, 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for i in eval_idx:
            b = _jpeg(np.asarray(d.images[i]), EVAL_QUALITY)
            z.writestr(d.names[i], b)
            used += len(b) + 100
        for i in order:
            b = _jpeg(np.asarray(d.images[i]), TRAIN_QUALITY)
            if used + len(b) + 100 > budget:
                break
            z.writestr(d.names[i], b)
            used += len(b) + 100
            n_train += 1
    os.replace(tmp, out / "faces64.zip")
    n_all_train = len(d.splits["train"])
    total = repo_bytes() + wheel_bytes + (out / "faces64.zip").stat().st_size
    note = ("all training faces" if n_train == n_all_train else
            f"a SUBSET of the training faces: {n_train:,} of {n_all_train:,} (the budget is full at JPEG q{TRAIN_QUALITY})")
    print(f"carried: {len(eval_idx):,} val+test faces at JPEG q{EVAL_QUALITY}, {note}")
    if len(eval_idx) + n_train < 10 * len(d.splits["val"]):
        print(f"note: {len(eval_idx) + n_train:,} faces in all, fewer than 10 × the val size: the splits there will "
              f"be smaller than here")
    print(f"sizes: repository {repo_bytes() / MIB:.1f} MiB + wheels {wheel_bytes / MIB:.1f} MiB + faces "
          f"{(out / 'faces64.zip').stat().st_size / MIB:.1f} MiB = {total / MIB:.1f} MiB (limit {budget_mib:g} MiB)")
    return 0 if total <= budget_mib * MIB else 1


def setup(carry: Path, rehearse: bool) -> int:
    wheels = sorted((carry / "wheels").glob("*.whl")) if (carry / "wheels").exists() else []
    missing = [dist for mod, dist in RUNTIME_NEEDS.items() if importlib.util.find_spec(mod) is None]
    for mod in ("torch", "torchvision"):
        if importlib.util.find_spec(mod) is None:
            print(f"setup: {mod} is not installed here; this script needs a machine with torch and torchvision")
            return 1
    if rehearse:
        if not wheels:
            print("setup (rehearsal): no wheels carried; nothing to check")
            return 0
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--only-binary=:all:", "--no-deps",
               "--python-version", "3.12", "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
               "--find-links", str(carry / "wheels"), "--target", str(carry / "dry-run"), *[str(w) for w in wheels]]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print(f"setup (rehearsal): the carried wheels do not resolve for Python 3.12:\n{r.stdout}{r.stderr}")
            return 1
        print(f"setup (rehearsal): {len(wheels)} carried wheel(s) resolve for Python 3.12 without the network: "
              + ", ".join(w.name for w in wheels))
        return 0
    if not missing:
        print("setup: numpy, pillow and tqdm are already installed; nothing to install")
        return 0
    have = {w.name.split("-")[0].lower() for w in wheels}
    absent = [m for m in missing if m.lower() not in have]
    if absent:
        print(f"setup: {', '.join(absent)} missing here and not carried; run scripts/gpu_carry.sh --wheels "
              f"{','.join(missing)} on the development machine")
        return 1
    site = carry / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--target", str(site),
           *[str(w) for w in wheels if w.name.split("-")[0].lower() in {m.lower() for m in missing}]]
    subprocess.run(cmd, check=True)
    print(f"setup: installed {', '.join(missing)} into {site}")
    return 0


def summary(out: Path) -> int:
    """One line per file brought back, and the headline figures."""
    for p in sorted(out.iterdir()):
        print(f"  {p.name}: {p.stat().st_size / 1e6:.2f} MB")
    swd = out / "swd_test.json"
    if swd.exists():
        r = json.loads(swd.read_text())
        print(f"SWD (test split, n={r['n']}): {r['value']:.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("carry")
    c.add_argument("--data", required=True)
    c.add_argument("--out", type=Path, default=ROOT / ".carry")
    c.add_argument("--budget-mib", type=float, default=64.0)
    c.add_argument("--max-train", type=int)
    c.add_argument("--max-eval", type=int)
    c.add_argument("--wheels", default=",".join(DEFAULT_WHEELS), help="distributions to carry as wheels ('' for none)")
    s = sub.add_parser("setup")
    s.add_argument("--carry", type=Path, default=ROOT / ".carry")
    s.add_argument("--rehearse", action="store_true")
    m = sub.add_parser("summary")
    m.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if a.cmd == "carry":
        return build_carry(a.data, a.out, a.budget_mib, a.max_train, a.max_eval, [w for w in a.wheels.split(",") if w])
    if a.cmd == "setup":
        return setup(a.carry, a.rehearse)
    return summary(a.out)


if __name__ == "__main__":
    raise SystemExit(main())
