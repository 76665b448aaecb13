"""A shipped checkpoint's model-card figures and numbers, measured from the file itself.

    python scripts/model_card.py checkpoints/anime64.pt --data ../shared/data/anime-faces-96.zip --out docs/cards

writes, next to each other in --out:
  NAME-curve.png   SWD against images seen, from the evaluation curve the checkpoint carries,
                   with the real-vs-real floor drawn in: the checkpoint's test split against its
                   val split at the curve's n, measured here when --data is given
  NAME-grid.png    64 faces of fixed seed 0 (the same faces `generate --seed 0 --n 64` draws)
and prints the card's facts as markdown: recipe, images seen, training time, the curve's points,
SWD on the test split (the split nothing was selected on) and the real-vs-real floor beside it, and
the realism judge's held-out accuracy on the same split and n (`animegan.metrics.realism`: how often a small
CNN tells its faces from real ones; 0.5 = never) with two real sets' accuracy beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from animegan import curves, generate, images
from animegan.checkpoint import load_checkpoint, load_generator
from animegan.config import TrainConfig, preset_base
from animegan.metrics import realism
from animegan.metrics.evaluation import checkpoint_data, evaluate_on_split
from animegan.metrics.swd import swd
from animegan.plots import line_plot


def recipe_changes(cfg: TrainConfig) -> dict:
    """The fields where this checkpoint's config differs from its preset's (data and paths aside)."""
    base = preset_base(cfg).to_dict()
    skip = {"data", "init_from", "preset", "device", "threads", "compile"}
    return {k: v for k, v in cfg.to_dict().items() if k not in skip and base.get(k) != v}


def write_figures(ck_path: Path, out: Path, floor: float | None, floor_label: str = "real vs real"
                  ) -> tuple[Path | None, Path]:
    """NAME-curve.png (None when the checkpoint carries no curve) and NAME-grid.png."""
    name = ck_path.stem
    out.mkdir(parents=True, exist_ok=True)
    series = curves.curve_series(load_checkpoint(ck_path).get(curves.CURVE_KEY))
    curve_png = None
    if series:
        lines = {f"{name} · n={n:,}" + (f" · {split}" if split else ""): ([x / 1000 for x in xs], ys)
                 for (n, split), (xs, ys) in series.items()}
        curve_png = line_plot(lines, f"{name}: SWD x1e3 against images seen", "thousands of images seen",
                              "SWD x1e3", out / f"{name}-curve.png", floor=floor, floor_label=floor_label, log_y=True)
    G = load_generator(ck_path).G
    grid_png = images.save_grid(generate.generate(G, 0, 64).images, out / f"{name}-grid.png", cols=8)
    return curve_png, grid_png


def real_floor(data, n: int) -> float:
    """SWD between two sets of real faces the checkpoint never trained on: its test split against
    its val split, n each (seed 0). What a perfect generator would score at this n."""
    n = min(n, len(data.split_images("test")), len(data.split_images("val")))
    return swd(data.split_images("test")[:n], data.split_images("val")[:n], seed=0).value


def real_realism_floor(data, n: int) -> float:
    """The realism judge on two sets of real faces the checkpoint never trained on: its test split
    against its val split, n each (seed 0). About 0.5: what a perfect generator would score."""
    n = min(n, len(data.split_images("test")), len(data.split_images("val")))
    return realism.realism_accuracy(data.split_images("test")[:n], data.split_images("val")[:n], seed=0).accuracy


def card_facts(ck_path: Path, data: str | None, n: int) -> str:
    """The card's numbers as markdown lines, each measured here from the file."""
    ck = load_checkpoint(ck_path)
    cfg = TrainConfig.from_dict(ck.get("config", {}))
    info = ck.get("info") or {}
    step = int(ck.get("step", 0))
    lines = [f"- **Recipe**: `--preset {cfg.preset or '(none)'}`"
             + "".join(f" `--{k.replace('_', '-')} {v}`" for k, v in recipe_changes(cfg).items()),
             f"- **Trained**: {step:,} steps × batch {cfg.batch_size} = {step * cfg.batch_size / 1000:,.0f}k images seen"
             + (f", {info['train_seconds'] / 3600:.2f} h of training on {info.get('device', '?')}"
                if info.get("train_seconds") else "")]
    pts = curves.curve_points(ck.get(curves.CURVE_KEY))
    if pts:
        lines.append("- **SWD curve** (kimg: value): " + " · ".join(f"{p['kimg']:.0f}: {p['value']:.1f}" for p in pts))
    if data:
        loaded = load_generator(ck_path)
        prepared = checkpoint_data(loaded.config, data)
        swd_test = evaluate_on_split(loaded.G, prepared, "test", metric="swd", n=n, seed=0)
        lines.append(f"- **SWD on the test split**: **{swd_test.value:.1f}** (n={swd_test.n}, seed 0; levels fine→coarse "
                     + " / ".join(f"{v:.1f}" for v in swd_test.levels or []) + "; "
                     f"`python -m animegan swd --checkpoint {ck_path} --data {data} --split test --n {n}`); "
                     f"two real sets, its test split vs its val split at the same n: {real_floor(prepared, swd_test.n):.1f}")
        judge = realism.realism_on_split(loaded.G, prepared, "test", n=n, seed=0)
        lines.append(f"- **Realism judge on the test split**: **{judge.accuracy:.4f}** held-out accuracy of a small CNN "
                     f"telling its faces from real ones (0.5 = never, 1.0 = always; n={judge.n} per side, seed 0, "
                     f"{judge.epochs} epochs; `python -m animegan realism --checkpoint {ck_path} --data {data} --split test "
                     f"--n {n}`); two real sets, its test split vs its val split at the same n: "
                     f"{real_realism_floor(prepared, judge.n):.4f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", help="the data it was trained on, to measure SWD and realism on its test split "
                                   "(omit to skip)")
    parser.add_argument("--n", type=int, default=2000, help="faces compared for the test-split SWD and realism")
    parser.add_argument("--out", type=Path, default=Path("docs/cards"))
    parser.add_argument("--floor", type=float, help="the real-vs-real SWD to draw (default: measured with --data, "
                                                "test vs val split at the curve's n; none without --data)")
    args = parser.parse_args()
    if not args.checkpoint.exists():
        print(f"no such checkpoint: {args.checkpoint}", file=sys.stderr)
        return 2
    floor, label = args.floor, "real vs real"
    pts = curves.curve_points(load_checkpoint(args.checkpoint).get(curves.CURVE_KEY))
    if floor is None and args.data and pts:
        loaded = load_generator(args.checkpoint)
        n = max(p["n"] for p in pts) or args.n
        floor, label = round(real_floor(checkpoint_data(loaded.config, args.data), n), 1), f"real vs real, test vs val, n={n:,}"
    curve_png, grid_png = write_figures(args.checkpoint, args.out, floor or None, label)
    print(f"wrote {grid_png}" + (f" and {curve_png}" if curve_png else " (the checkpoint carries no curve)"))
    print(card_facts(args.checkpoint, args.data, args.n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
