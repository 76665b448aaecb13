"""Train, evaluate and explore anime-face GANs from the command line.

The verbs: prepare, synth, train, generate, interpolate, export, fid, swd, realism, runs, clean, info,
timelapse,
the exploring ones (in cli_explore.py): directions, invert, nearest, memorisation,
and curate (in cli_curate.py).

    python -m animegan train --preset anime64 --data PATH|ZIP|synthetic --epochs N --name NAME
    torchrun --nproc_per_node=2 -m animegan train ...

`train` has one flag per TrainConfig field (`--lr-g`, `--n-critic`, ...), generated from the
dataclass, so every preset field is overridable and the flags never drift from the config.
Errors a user can cause (the project's own, `config.AnimeganError`) print one clear line and exit 2;
any other exception is a bug and keeps its traceback.
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
    METRICS,
    PRESET_ALIASES,
    PRESETS,
    SPLITS,
    SWITCHES,
    AnimeganError,
    TrainConfig,
    flag_name,
    preset_config,
)


def _add_config_flags(verb: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, named by `config.flag_name` (the job starter builds its
    argv with `config.to_flags`, the same mapping)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "preset":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kw: dict[str, Any] = dict(dest=f"cfg_{f.name}", default=None, help=f"(default {default!r})")
        if f.name == "compile":  # `--compile` alone means on
            verb.add_argument(flag_name(f.name), nargs="?", const="on", choices=SWITCHES, **kw)
        elif isinstance(default, bool):
            verb.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, list):
            verb.add_argument(flag_name(f.name), type=int, nargs="*", **kw)
        else:
            verb.add_argument(flag_name(f.name), type=type(default), **kw)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    cfg = base if base is not None else preset_config(args.preset or "")
    over = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
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

def cmd_prepare(args: argparse.Namespace) -> int:
    from .data import prepare
    d = prepare(args.data, args.size, progress=True)
    print(d.report.summary())
    print(f"cache: {d.cache_path} ({'reused, nothing decoded' if d.from_cache else f'built, {d.decoded} images decoded'})")
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in d.splits.items()))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import write_synthetic
    out = write_synthetic(args.out, n=args.n, seed=args.seed, progress=_progress_bar("synth"))
    print(f"wrote {args.n} faces to {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .devices import launched_processes
    from .preflight import preflight
    from .rundir import Run, resolve_run, safe_run_name
    from .train import train
    given = _config_file(args.config) if args.config else None  # the job starter's settings, complete
    if args.resume:
        run = resolve_run(args.resume)
        # Under torchrun only rank 0 checks: the others may already see rank 0's own status.
        base = given or (run.resume_config() if os.environ.get("RANK", "0") == "0" else
                         TrainConfig.from_dict(run.config()))
        cfg = config_from_args(args, base)
        out = run.path
    else:
        cfg = config_from_args(args, given)
        if cfg.init_from and given is None:  # the architecture the user did not give comes from the checkpoint
            from .checkpoint import adopt_architecture
            cfg = adopt_architecture(cfg, {k[4:] for k, v in vars(args).items() if k.startswith("cfg_") and v is not None})
        # The preflight (the trainer's own, repeated here): a refused setting leaves an existing run as it was.
        preflight(cfg, launched_processes(), data=False, require_fid=False)
        out = Path(args.out) if args.out else paths.runs_dir() / safe_run_name(args.name or f"{cfg.preset or cfg.model}")
        if (out / "config.json").exists() and not args.overwrite:
            raise UserError(f"{out} already holds a run; --resume {out} continues it, --overwrite replaces it, "
                            f"or pick another --out / --name")
        if args.overwrite and out.exists():
            import shutil
            if Run(out).status().live:
                raise UserError(f"{out} is still training; stop it before overwriting")
            shutil.rmtree(out)
    state = train(cfg, out, resume=bool(args.resume), progress=None if not args.no_progress else False)
    print(f"{out}: {state}")
    return 0 if state in ("finished", "stopped") else 3


def _config_file(path: str) -> TrainConfig:
    """--config FILE: a TrainConfig as JSON (a run's config.json; the job starter writes one per job)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--config {path}: not a readable settings file ({e.__class__.__name__}); give a run's "
                        f"config.json") from None
    if not isinstance(d, dict):
        raise UserError(f"--config {path}: not a settings file (a JSON object of TrainConfig fields)")
    return TrainConfig.from_dict(d)


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


def cmd_generate(args: argparse.Namespace) -> int:
    from . import generate as gen
    from . import images
    from .checkpoint import no_discriminator_reason
    loaded = _load(args, with_d=args.rerank > 1)
    if args.rerank > 1 and loaded.D is None:
        raise UserError(no_discriminator_reason(loaded, "Re-ranking"))
    shift = None
    if args.edit:
        from .explore import directions
        edits = _parse_edits(args.edit)
        z_dim = loaded.config.z_dim
        if not all(0 <= k < z_dim for k in edits):
            raise UserError(f"--edit {', '.join(str(k) for k in edits if not 0 <= k < z_dim)}=...: this generator has "
                            f"{z_dim} latent directions, numbered 0 to {z_dim - 1}")
        dirs = directions.find(loaded.G, args.directions, max(max(edits) + 1, 1))
        shift = directions.shift(dirs, edits)
    res = gen.generate(loaded.G, args.seed, args.n, truncation=args.truncation, start=args.start, device=args.device,
                       D=loaded.D, rerank=args.rerank, shift=shift)
    out = Path(args.out)
    fmt = args.format or images.format_for_path(out)
    if fmt == "grid":
        images.save_grid(res.images, out, cols=args.cols)
    elif fmt == "pngs":
        images.save_pngs(res.images, out, args.seed, res.indices)
    else:
        out.write_bytes(images.to_zip(res.images, args.seed, res.indices))
    print(f"wrote {len(res.indices)} faces (seed {args.seed}, indices {res.indices[0]}..{res.indices[-1]}) to {out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from . import generate as gen
    from . import images
    loaded = _load(args)
    frames = gen.interpolate(loaded.G, args.seed_a, args.seed_b, args.steps, index_a=args.index_a, index_b=args.index_b, device=args.device,
                             truncation=args.truncation)
    out = Path(args.out)
    if out.suffix.lower() == ".gif":
        images.to_gif(frames, out, fps=args.fps, upscale=args.upscale)
    else:
        images.save_grid(frames, out, cols=args.steps)
    print(f"wrote {args.steps} frames from seed {args.seed_a} to seed {args.seed_b} to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import export_generator, export_source
    from .rundir import evals_for_checkpoint, resolve_run
    src = Path(args.run)
    if not src.exists():
        src = resolve_run(args.run).path
    summary = None
    if args.eval:
        try:
            summary = json.loads(Path(args.eval).read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            raise UserError(f"--eval {args.eval}: not a metric result; write one with "
                            f"`python -m animegan swd --checkpoint ... --json > FILE`") from None
        if not isinstance(summary, dict) or not {"metric", "value", "n", "reference"} <= summary.keys():
            raise UserError(f"--eval {args.eval}: not a metric result (metric, value, n, reference); write one with "
                            f"`python -m animegan swd --checkpoint ... --json > FILE`")
    src = export_source(src)
    out = export_generator(src, args.out, eval_summary=summary, info={"hardware": args.hardware} if args.hardware else None,
                           recorded=evals_for_checkpoint(src))
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _metric(args: argparse.Namespace, metric: str) -> int:
    from .metrics.evaluation import checkpoint_data, evaluate_on_split
    from .metrics.fid import load_inception
    weights = getattr(args, "inception_weights", None)
    if metric == "fid":
        load_inception(weights, args.device)  # no weights: say so before preparing any data (cached for below)
    loaded = _load(args)
    data = checkpoint_data(loaded.config, args.data, progress=True)
    r = evaluate_on_split(loaded.G, data, args.split, metric=metric, n=args.n, seed=args.seed, device=args.device,
                          inception_weights=weights)
    if r.n < args.n:
        print(f"note: the {args.split} split has {r.n} images; used n={r.n}", file=sys.stderr)
    if args.record:
        from .rundir import record_eval
        record_eval(args.checkpoint, r.to_dict())
    if args.json:
        print(json.dumps(r.to_dict()))
    else:
        extra = "" if not r.levels else "  levels " + " ".join(f"{v:.2f}" for v in r.levels)
        caveat = "  (only comparable at the same n and reference)" if r.n < COMPARABLE_N else ""
        print(f"{metric.upper()} {r.value:.3f}  n={r.n} seed={r.seed} vs {r.reference}{extra}{caveat}")
    return 0


def cmd_realism(args: argparse.Namespace) -> int:
    """A small CNN trained to tell the checkpoint's faces from the split's real ones; its held-out
    accuracy (`realism.checkpoint_realism`). Data and n as `swd` picks them."""
    from tqdm import tqdm

    from .metrics.realism import checkpoint_realism
    bar = None

    def judge_progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="judge", unit="epoch")
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    r = checkpoint_realism(args.checkpoint, args.data, args.split, n=args.n, seed=args.seed, threads=args.threads, device=args.device,
                           data_progress=True, progress=judge_progress)
    if r.n < args.n:
        print(f"note: the {args.split} split has {r.n} images; used n={r.n}", file=sys.stderr)
    if args.record:
        from .comparison import REALISM
        from .rundir import record_eval
        record_eval(args.checkpoint, {"metric": REALISM, "value": r.accuracy, **r.to_dict()})
    if args.json:
        print(json.dumps(r.to_dict()))
    else:
        print(f"REALISM {r.accuracy:.3f}  n={r.n} seed={r.seed} vs {r.reference}  (held-out accuracy of a judge "
              f"trained on {r.n_train}+{r.n_train} faces for {r.epochs} epochs, tested on {r.n_test}+{r.n_test} it never "
              f"saw; 0.5 = indistinguishable, 1.0 = always told apart)")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .jobs import current_job
    from .rundir import list_runs
    runs = list_runs()
    if not runs:
        print(f"no runs yet in {paths.runs_dir()}")
    job = current_job() if runs else None
    for r in runs:
        status = r.status(job)
        b = r.best_eval()
        best = f" best {b['metric']} {b['value']:.2f} (n={b['n']})" if b else ""
        print(f"{r.name:30s} {status.state:10s} epoch {status.epoch}/{status.epochs or '?'} step {status.step}{best}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from .data import clear_caches
    from .rundir import resolve_run
    if args.run:
        r = resolve_run(args.run)
        if not r.exists:
            raise UserError(f"no run {args.run}")
        r.delete()
        print(f"deleted run {r.path}")
    if args.caches:
        print(f"freed {clear_caches() / 1e6:.1f} MB of data caches")
    if not (args.run or args.caches):
        print("nothing to do: --caches clears data caches, --run NAME deletes a run")
    return 0


def cmd_timelapse(args: argparse.Namespace) -> int:
    """A run's epoch grids as an animated GIF (`timelapse.write_gif`)."""
    from . import timelapse
    from .rundir import resolve_run
    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise UserError(f"{out.name}: only .gif is written (MP4 needs ffmpeg or PyAV, which are not installed "
                        f"with animegan)")
    run = resolve_run(args.run)
    if not run.exists:
        raise UserError(f"no run {args.run!r} (looked for {run.path / 'config.json'})")
    if args.fps <= 0 or args.max_side < 16:
        raise UserError("--fps must be > 0 and --max-side at least 16")
    if not run.grids():
        raise UserError(f"run {run.name} has no epoch grids yet (samples/epoch_NNNN.png is written at the end "
                        f"of each epoch)")
    n = timelapse.write_gif(run, out, fps=args.fps, max_side=args.max_side)
    print(f"wrote {out}: {n} epoch(s) of run {run.name} at {args.fps:g} fps")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .devices import device_summary
    info = device_summary()
    info["home"] = str(paths.home())
    print(json.dumps(info, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m animegan", description=__doc__.split("\n")[0])
    ap.add_argument("--home", help=f"folder for caches, runs and statistics (default {paths.DEFAULT_HOME}, or ${paths.ENV_HOME})")
    sub = ap.add_subparsers(dest="cmd", required=True)

    verb = sub.add_parser("prepare", help="validate a data source, build its cache, print the report")
    verb.add_argument("--data", required=True, help=DATA_HELP)
    verb.add_argument("--size", type=int, default=64, help="image side in pixels")
    verb.set_defaults(fn=cmd_prepare)

    verb = sub.add_parser("synth", help="write the built-in synthetic anime faces as a folder")
    verb.add_argument("--n", type=int, default=10_000, help="number of faces")
    verb.add_argument("--seed", type=int, default=0, help="random seed: face i is a function of (seed, i)")
    verb.add_argument("--out", required=True)
    verb.set_defaults(fn=cmd_synth)

    verb = sub.add_parser("train", help="train a GAN into a run directory")
    verb.add_argument("--preset", choices=[*PRESETS, *PRESET_ALIASES], metavar="PRESET",
                   help=f"a named recipe, one of: {', '.join(PRESETS)} (old names {', '.join(PRESET_ALIASES)} "
                        f"still work); flags override its fields")
    verb.add_argument("--out", help="run directory (default: <home>/runs/<name>)")
    verb.add_argument("--name", help="run name under <home>/runs")
    verb.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    verb.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    verb.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    verb.add_argument("--config", metavar="FILE", help="settings from a JSON file (a run's config.json) instead of "
                                                    "--preset; flags override its fields")
    _add_config_flags(verb)
    verb.set_defaults(fn=cmd_train)

    def ckpt_args(verb: argparse.ArgumentParser) -> None:
        verb.add_argument("--checkpoint", required=True, help="an exported .pt or a run's checkpoint")
        verb.add_argument("--device", default="cpu")

    verb = sub.add_parser("generate", help="faces from a checkpoint, reproducible by seed")
    ckpt_args(verb)
    verb.add_argument("--seed", type=int, default=0, help="random seed: image i is a function of (seed, i)")
    verb.add_argument("--n", type=int, default=64)
    verb.add_argument("--start", type=int, default=0, help="first index (image i is (seed, i))")
    verb.add_argument("--truncation", type=float, default=1.0, help="1 = off; lower = closer to the average face")
    verb.add_argument("--rerank", type=int, default=1, help="draw k×n, keep the n the discriminator rates highest")
    verb.add_argument("--cols", type=int, default=8)
    verb.add_argument("--edit", action="append", metavar="K=STRENGTH",
                   help="move every face along latent direction K (see the directions verb) by STRENGTH "
                        "(in standard deviations, about -3..3); repeatable")
    verb.add_argument("--directions", choices=DIRECTION_METHODS, default="sefa", help="the method --edit's directions come from")
    verb.add_argument("--format", choices=("grid", "pngs", "zip"),
                   help="default from --out: .zip a zip of PNGs, .png/.jpg/.webp one grid image, anything else a folder of PNGs")
    verb.add_argument("--out", required=True)
    verb.set_defaults(fn=cmd_generate)

    verb = sub.add_parser("interpolate", help="frames (or a GIF) between two seeds")
    ckpt_args(verb)
    verb.add_argument("--seed-a", type=int, required=True, help="random seed of the first face")
    verb.add_argument("--seed-b", type=int, required=True, help="random seed of the last face")
    verb.add_argument("--index-a", type=int, default=0, help="index of the first face under --seed-a")
    verb.add_argument("--index-b", type=int, default=0, help="index of the last face under --seed-b")
    verb.add_argument("--steps", type=int, default=16)
    verb.add_argument("--fps", type=int, default=12)
    verb.add_argument("--upscale", type=int, default=2)
    verb.add_argument("--truncation", type=float, default=1.0, help="1 = off; lower = closer to the average face")
    verb.add_argument("--out", required=True, help=".gif for an animation, .png for a strip")
    verb.set_defaults(fn=cmd_interpolate)

    verb = sub.add_parser("export", help="a run's generator (EMA) as a small fp16 checkpoint")
    verb.add_argument("run", help="run directory or name, or a checkpoint file")
    verb.add_argument("--out", required=True)
    verb.add_argument("--eval", metavar="FILE", help="the measurement the file carries as its own (the JSON line "
                   "`swd/fid --json` prints), instead of the run's best evaluation")
    verb.add_argument("--hardware", metavar="TEXT", help="what it was trained on, in words, kept in the file")
    verb.set_defaults(fn=cmd_export)

    for name in METRICS:
        verb = sub.add_parser(name, help=f"{name.upper()} of a checkpoint against a data split")
        ckpt_args(verb)
        verb.add_argument("--data", required=True, help=DATA_HELP)
        verb.add_argument("--split", default="val", choices=SPLITS)
        verb.add_argument("--n", type=int, default=2000, help=f"images per side, capped at the split's size (below "
                                                            f"{COMPARABLE_N}, numbers compare only at the same n)")
        verb.add_argument("--seed", type=int, default=0, help="random seed of the generated images (and of SWD's projections)")
        verb.add_argument("--json", action="store_true")
        verb.add_argument("--record", action="store_true", help="keep the result with the checkpoint (dashboard reads it)")
        if name == "fid":
            verb.add_argument("--inception-weights", help="path to pt_inception-2015-12-05-6726825d.pth")
        verb.set_defaults(fn=lambda args, m=name: _metric(args, m))

    verb = sub.add_parser("realism", help="how often a small CNN tells a checkpoint's faces from real ones (0.5 = never)")
    ckpt_args(verb)
    verb.add_argument("--data", required=True, help=DATA_HELP)
    verb.add_argument("--split", default="val", choices=SPLITS)
    verb.add_argument("--n", type=int, default=2000, help="images per side, capped at the split's size; half of each "
                                                        "trains the judge, the other half is judged")
    verb.add_argument("--seed", type=int, default=0, help="random seed of the generated images and of the judge")
    verb.add_argument("--record", action="store_true", help="keep the result with the checkpoint (Compare shows it)")
    verb.add_argument("--threads", type=int, default=1, help="CPU threads of the judge (the number is reproducible "
                                                          "at a fixed count)")
    verb.add_argument("--json", action="store_true")
    verb.set_defaults(fn=cmd_realism)

    from .cli_curate import add_parser as add_curate_parser
    from .cli_explore import add_verbs
    add_verbs(sub, ckpt_args)  # directions, invert, nearest, memorisation
    add_curate_parser(sub)

    verb = sub.add_parser("runs", help="list runs")
    verb.set_defaults(fn=cmd_runs)
    verb = sub.add_parser("clean", help="clear data caches or delete a run")
    verb.add_argument("--caches", action="store_true")
    verb.add_argument("--run")
    verb.set_defaults(fn=cmd_clean)
    verb = sub.add_parser("info", help="device, torch version, threads, home folder")
    verb.set_defaults(fn=cmd_info)
    verb = sub.add_parser("timelapse", help="a run's epoch grids as an animated GIF")
    verb.add_argument("run", help="run name (under the home folder's runs/) or run directory")
    verb.add_argument("--out", required=True, help="the GIF to write (.gif)")
    verb.add_argument("--fps", type=float, default=4.0, help="epochs per second (default 4)")
    verb.add_argument("--max-side", type=int, default=800, help="frames wider than this are shrunk (default 800 px)")
    verb.set_defaults(fn=cmd_timelapse)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.home:
        os.environ[paths.ENV_HOME] = str(Path(args.home).expanduser().resolve())
    # A user's mistake is one of the project's own errors (AnimeganError: settings, runs, jobs, the
    # command line); these three are too, until they derive from it. Anything else is a bug: its
    # traceback stays.
    user_errors = (AnimeganError,)
    try:
        return args.fn(args)
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
