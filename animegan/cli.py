"""Train, evaluate and explore anime-face GANs from the command line.

The verbs: prepare, synth, train, generate, interpolate, export, fid, swd, realism, runs, clean, info,
timelapse,
and the exploring ones (in cli_explore.py): directions, invert, nearest, memorisation.

    python -m animegan train --preset anime64 --data PATH|ZIP|synthetic --epochs N --name NAME
    torchrun --nproc_per_node=2 -m animegan train ...

`train` has one flag per TrainConfig field (`--lr-g`, `--n-critic`, ...), generated from the
dataclass, so every preset field is overridable and the flags never drift from the config.
Errors a user can cause print one clear line and exit 2; no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import paths
from .cli_common import DATA_HELP, UserError
from .cli_common import load_for_verb as _load
from .config import (
    COMPARABLE_N,
    DIRECTION_METHODS,
    LIVE_STATES,
    METRICS,
    PRESET_ALIASES,
    PRESETS,
    SPLITS,
    SWITCHES,
    TrainConfig,
    flag_name,
    preset_config,
)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, named by `config.flag_name` (the job starter builds its
    argv with `config.to_flags`, the same mapping)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "preset":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kw: dict[str, Any] = dict(dest=f"cfg_{f.name}", default=None, help=f"(default {default!r})")
        if f.name == "compile":  # `--compile` alone means on
            p.add_argument(flag_name(f.name), nargs="?", const="on", choices=SWITCHES, **kw)
        elif isinstance(default, bool):
            p.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, list):
            p.add_argument(flag_name(f.name), type=int, nargs="*", **kw)
        else:
            p.add_argument(flag_name(f.name), type=type(default), **kw)


def config_from_args(a: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    cfg = base if base is not None else preset_config(a.preset or "")
    over = {k[4:]: v for k, v in vars(a).items() if k.startswith("cfg_") and v is not None}
    return cfg.replace(**over)


def _progress_bar(desc: str):
    from tqdm import tqdm
    bar = None

    def cb(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="img")
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
    return cb


# -- verbs ---------------------------------------------------------------------------------------

def cmd_prepare(a: argparse.Namespace) -> int:
    from .data import prepare
    d = prepare(a.data, a.size, progress=True)
    print(d.report.summary())
    print(f"cache: {d.cache_path} ({'reused, nothing decoded' if d.from_cache else f'built, {d.decoded} images decoded'})")
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in d.splits.items()))
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    from .synth import write_synthetic
    out = write_synthetic(a.out, n=a.n, seed=a.seed, progress=_progress_bar("synth"))
    print(f"wrote {a.n} faces to {out}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from .rundir import Run, resolve_run, safe_run_name
    from .train import train
    if a.resume:
        run = resolve_run(a.resume)
        # A job started from the dashboard marks the run "starting" under its own pid before this
        # process reads the status: that pid is this process (or, under torchrun, its parent).
        # Under torchrun only rank 0 checks: the others may already see rank 0's own status.
        if os.environ.get("RANK", "0") == "0":
            run.check_resumable(own_pids=(os.getpid(), os.getppid()))
        cfg = config_from_args(a, TrainConfig.from_dict(run.config()))
        out = run.path
    else:
        cfg = config_from_args(a)
        if cfg.init_from:  # the architecture the user did not give comes from the checkpoint
            from .checkpoint import adopt_architecture
            cfg = adopt_architecture(cfg, {k[4:] for k, v in vars(a).items() if k.startswith("cfg_") and v is not None})
        out = Path(a.out) if a.out else paths.runs_dir() / safe_run_name(a.name or f"{cfg.preset or cfg.model}")
        if (out / "config.json").exists() and not a.overwrite:
            raise UserError(f"{out} already holds a run; --resume {out} continues it, --overwrite replaces it, "
                            f"or pick another --out / --name")
        if a.overwrite and out.exists():
            import shutil
            if Run(out).state in LIVE_STATES:
                raise UserError(f"{out} is still training; stop it before overwriting")
            shutil.rmtree(out)
    state = train(cfg, out, resume=bool(a.resume), progress=None if not a.no_progress else False)
    print(f"{out}: {state}")
    return 0 if state in ("finished", "stopped") else 3


def _parse_edits(edits: Sequence[str]) -> dict[int, float]:
    """["0=2.5", "3=-1"] -> {0: 2.5, 3: -1.0}; a direction given twice adds up."""
    out: dict[int, float] = {}
    for e in edits:
        k, sep, v = e.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(k)] = out.get(int(k), 0.0) + float(v)
        except ValueError:
            raise UserError(f"--edit {e!r}: write DIRECTION=STRENGTH, e.g. --edit 0=2.5 --edit 3=-1") from None
    return out


def cmd_generate(a: argparse.Namespace) -> int:
    from . import generate as gen
    from .checkpoint import no_discriminator_reason
    lg = _load(a, with_d=a.rerank > 1)
    if a.rerank > 1 and lg.D is None:
        raise UserError(no_discriminator_reason(lg, "Re-ranking"))
    shift = None
    if a.edit:
        from . import directions
        edits = _parse_edits(a.edit)
        dirs = directions.find(lg.G, a.directions, max(max(edits) + 1, 1))
        shift = directions.shift(dirs, edits)
    res = gen.generate(lg.G, a.seed, a.n, truncation=a.truncation, start=a.start, device=a.device,
                       D=lg.D, rerank=a.rerank, shift=shift)
    out = Path(a.out)
    fmt = a.format or gen.format_for_path(out)
    if fmt == "grid":
        gen.save_grid(res.images, out, cols=a.cols)
    elif fmt == "pngs":
        gen.save_pngs(res.images, out, a.seed, res.indices)
    else:
        out.write_bytes(gen.to_zip(res.images, a.seed, res.indices))
    print(f"wrote {len(res.indices)} faces (seed {a.seed}, indices {res.indices[0]}..{res.indices[-1]}) to {out}")
    return 0


def cmd_interpolate(a: argparse.Namespace) -> int:
    from . import generate as gen
    lg = _load(a)
    frames = gen.interpolate(lg.G, a.seed_a, a.seed_b, a.steps, index_a=a.index_a, index_b=a.index_b, device=a.device,
                             truncation=a.truncation)
    out = Path(a.out)
    if out.suffix.lower() == ".gif":
        gen.to_gif(frames, out, fps=a.fps, upscale=a.upscale)
    else:
        gen.save_grid(frames, out, cols=a.steps)
    print(f"wrote {a.steps} frames from seed {a.seed_a} to seed {a.seed_b} to {out}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .checkpoint import export_generator
    from .rundir import resolve_run
    src = Path(a.run)
    if not src.exists():
        src = resolve_run(a.run).path
    summary = None
    if a.eval:
        try:
            summary = json.loads(Path(a.eval).read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            raise UserError(f"--eval {a.eval}: not a metric result; write one with "
                            f"`python -m animegan swd --checkpoint ... --json > FILE`") from None
        if not isinstance(summary, dict) or not {"metric", "value", "n", "reference"} <= summary.keys():
            raise UserError(f"--eval {a.eval}: not a metric result (metric, value, n, reference); write one with "
                            f"`python -m animegan swd --checkpoint ... --json > FILE`")
    out = export_generator(src, a.out, eval_summary=summary, info={"hardware": a.hardware} if a.hardware else None)
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _metric(a: argparse.Namespace, metric: str) -> int:
    from .evaluation import checkpoint_data, evaluate_on_split
    from .metrics import load_inception
    weights = getattr(a, "inception_weights", None)
    if metric == "fid":
        load_inception(weights, a.device)  # no weights: say so before preparing any data (cached for below)
    lg = _load(a)
    data = checkpoint_data(lg.config, a.data, progress=True)
    r = evaluate_on_split(lg.G, data, a.split, metric=metric, n=a.n, seed=a.seed, device=a.device,
                          inception_weights=weights)
    if r.n < a.n:
        print(f"note: the {a.split} split has {r.n} images; used n={r.n}", file=sys.stderr)
    if a.record:
        from .rundir import record_eval
        record_eval(a.checkpoint, r.to_dict())
    if a.json:
        print(json.dumps(r.to_dict()))
    else:
        extra = "" if not r.levels else "  levels " + " ".join(f"{v:.2f}" for v in r.levels)
        caveat = "  (only comparable at the same n and reference)" if r.n < COMPARABLE_N else ""
        print(f"{metric.upper()} {r.value:.3f}  n={r.n} seed={r.seed} vs {r.reference}{extra}{caveat}")
    return 0


def cmd_realism(a: argparse.Namespace) -> int:
    """A small CNN trained to tell the checkpoint's faces from the split's real ones; its held-out
    accuracy (`realism.checkpoint_realism`). Data and n as `swd` picks them."""
    from tqdm import tqdm

    from .realism import checkpoint_realism
    bar = None

    def judge_progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="judge", unit="epoch")
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    r = checkpoint_realism(a.checkpoint, a.data, a.split, n=a.n, seed=a.seed, threads=a.threads, device=a.device,
                           data_progress=True, progress=judge_progress)
    if r.n < a.n:
        print(f"note: the {a.split} split has {r.n} images; used n={r.n}", file=sys.stderr)
    if a.json:
        print(json.dumps(r.to_dict()))
    else:
        print(f"REALISM {r.accuracy:.3f}  n={r.n} seed={r.seed} vs {r.reference}  (held-out accuracy of a judge "
              f"trained on {r.n_train}+{r.n_train} faces for {r.epochs} epochs, tested on {r.n_test}+{r.n_test} it never "
              f"saw; 0.5 = indistinguishable, 1.0 = always told apart)")
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from .rundir import list_runs
    runs = list_runs()
    if not runs:
        print(f"no runs yet in {paths.runs_dir()}")
    for r in runs:
        st = r.status()
        b = r.best_eval()
        best = f" best {b['metric']} {b['value']:.2f} (n={b['n']})" if b else ""
        print(f"{r.name:30s} {st.get('state', '?'):10s} epoch {st.get('epoch', 0)}/{st.get('epochs', '?')} "
              f"step {st.get('step', 0)}{best}")
    return 0


def cmd_clean(a: argparse.Namespace) -> int:
    from .data import clear_caches
    from .rundir import resolve_run
    if a.run:
        r = resolve_run(a.run)
        if not r.exists:
            raise UserError(f"no run {a.run}")
        r.delete()
        print(f"deleted run {r.path}")
    if a.caches:
        print(f"freed {clear_caches() / 1e6:.1f} MB of data caches")
    if not (a.run or a.caches):
        print("nothing to do: --caches clears data caches, --run NAME deletes a run")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    from .devices import device_summary
    info = device_summary()
    info["home"] = str(paths.home())
    print(json.dumps(info, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m animegan", description=__doc__.split("\n")[0])
    ap.add_argument("--home", help=f"folder for caches, runs and statistics (default {paths.DEFAULT_HOME}, or ${paths.ENV_HOME})")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("prepare", help="validate a data source, build its cache, print the report")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser("synth", help="write the built-in synthetic anime faces as a folder")
    p.add_argument("--n", type=int, default=10_000, help="number of faces")
    p.add_argument("--seed", type=int, default=0, help="random seed: face i is a function of (seed, i)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_synth)

    p = sub.add_parser("train", help="train a GAN into a run directory")
    p.add_argument("--preset", choices=[*PRESETS, *PRESET_ALIASES], metavar="PRESET",
                   help=f"a named recipe, one of: {', '.join(PRESETS)} (old names {', '.join(PRESET_ALIASES)} "
                        f"still work); flags override its fields")
    p.add_argument("--out", help="run directory (default: <home>/runs/<name>)")
    p.add_argument("--name", help="run name under <home>/runs")
    p.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    _add_config_flags(p)
    p.set_defaults(fn=cmd_train)

    def ckpt_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkpoint", required=True, help="an exported .pt or a run's checkpoint")
        p.add_argument("--device", default="cpu")

    p = sub.add_parser("generate", help="faces from a checkpoint, reproducible by seed")
    ckpt_args(p)
    p.add_argument("--seed", type=int, default=0, help="random seed: image i is a function of (seed, i)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--start", type=int, default=0, help="first index (image i is (seed, i))")
    p.add_argument("--truncation", type=float, default=1.0, help="1 = off; lower = closer to the average face")
    p.add_argument("--rerank", type=int, default=1, help="draw k×n, keep the n the discriminator rates highest")
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--edit", action="append", metavar="K=STRENGTH",
                   help="move every face along latent direction K (see the directions verb) by STRENGTH "
                        "(in standard deviations, about -3..3); repeatable")
    p.add_argument("--directions", choices=DIRECTION_METHODS, default="sefa", help="the method --edit's directions come from")
    p.add_argument("--format", choices=("grid", "pngs", "zip"),
                   help="default from --out: .zip a zip of PNGs, .png/.jpg/.webp one grid image, anything else a folder of PNGs")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("interpolate", help="frames (or a GIF) between two seeds")
    ckpt_args(p)
    p.add_argument("--seed-a", type=int, required=True, help="random seed of the first face")
    p.add_argument("--seed-b", type=int, required=True, help="random seed of the last face")
    p.add_argument("--index-a", type=int, default=0, help="index of the first face under --seed-a")
    p.add_argument("--index-b", type=int, default=0, help="index of the last face under --seed-b")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--upscale", type=int, default=2)
    p.add_argument("--truncation", type=float, default=1.0, help="1 = off; lower = closer to the average face")
    p.add_argument("--out", required=True, help=".gif for an animation, .png for a strip")
    p.set_defaults(fn=cmd_interpolate)

    p = sub.add_parser("export", help="a run's generator (EMA) as a small fp16 checkpoint")
    p.add_argument("run", help="run directory or name, or a checkpoint file")
    p.add_argument("--out", required=True)
    p.add_argument("--eval", metavar="FILE", help="the measurement the file carries as its own (the JSON line "
                   "`swd/fid --json` prints), instead of the run's best evaluation")
    p.add_argument("--hardware", metavar="TEXT", help="what it was trained on, in words, kept in the file")
    p.set_defaults(fn=cmd_export)

    for name in METRICS:
        p = sub.add_parser(name, help=f"{name.upper()} of a checkpoint against a data split")
        ckpt_args(p)
        p.add_argument("--data", required=True, help=DATA_HELP)
        p.add_argument("--split", default="val", choices=SPLITS)
        p.add_argument("--n", type=int, default=2000, help=f"images per side, capped at the split's size (below "
                                                            f"{COMPARABLE_N}, numbers compare only at the same n)")
        p.add_argument("--seed", type=int, default=0, help="random seed of the generated images (and of SWD's projections)")
        p.add_argument("--json", action="store_true")
        p.add_argument("--record", action="store_true", help="keep the result with the checkpoint (dashboard reads it)")
        if name == "fid":
            p.add_argument("--inception-weights", help="path to pt_inception-2015-12-05-6726825d.pth")
        p.set_defaults(fn=lambda a, m=name: _metric(a, m))

    p = sub.add_parser("realism", help="how often a small CNN tells a checkpoint's faces from real ones (0.5 = never)")
    ckpt_args(p)
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--n", type=int, default=2000, help="images per side, capped at the split's size; half of each "
                                                        "trains the judge, the other half is judged")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated images and of the judge")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the judge (the number is reproducible "
                                                          "at a fixed count)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_realism)

    from .cli_explore import add_verbs
    add_verbs(sub, ckpt_args)  # directions, invert, nearest, memorisation

    p = sub.add_parser("runs", help="list runs")
    p.set_defaults(fn=cmd_runs)
    p = sub.add_parser("clean", help="clear data caches or delete a run")
    p.add_argument("--caches", action="store_true")
    p.add_argument("--run")
    p.set_defaults(fn=cmd_clean)
    p = sub.add_parser("info", help="device, torch version, threads, home folder")
    p.set_defaults(fn=cmd_info)
    from . import timelapse
    timelapse.add_cli(sub)  # timelapse RUN --out t.gif
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.home:
        os.environ[paths.ENV_HOME] = str(Path(a.home).expanduser().resolve())
    from .checkpoint import CheckpointError
    from .data import DataError
    from .metrics import InceptionWeightsMissing
    from .train import TrainingError
    # ValueError covers config.ConfigError and rundir.ResumeError
    user_errors = (UserError, CheckpointError, DataError, TrainingError, InceptionWeightsMissing, ValueError)
    try:
        return a.fn(a)
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
