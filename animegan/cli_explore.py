"""The exploring verbs of `python -m animegan`: what a generator learned.

    python -m animegan directions --checkpoint CKPT --k 10 --out dirs.png      # a strip per latent direction
    python -m animegan generate ... --edit K=STRENGTH                          # (in cli.py) steer faces
    python -m animegan invert --checkpoint CKPT --image face.png --out inverted.png   # bring your own face
    python -m animegan nearest --checkpoint CKPT --data SRC --seed S --index I --out nn.png
    python -m animegan memorisation --checkpoint CKPT --data SRC --n 500

Each verb is one call into the package (directions, invert, memorisation); errors a user can
cause raise cli_common.UserError (or the package's own), which `cli.main` prints as one line.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cli_common import DATA_HELP, UserError, load_for_verb
from .config import DIRECTION_METHODS


def cmd_directions(args: argparse.Namespace) -> int:
    from .explore import directions
    from .generate import latents
    names_given = _parse_names(args.name)
    if names_given and args.method == "both":
        raise UserError("--name names directions of one method: give --method sefa or --method ganspace")
    loaded = load_for_verb(args)
    key = directions.checkpoint_hash(args.checkpoint)
    for method in directions.METHODS if args.method == "both" else (args.method,):
        for k, name in names_given.items():
            directions.save_name(key, method, k, name)
        dirs = directions.find(loaded.G, method, args.k)
        names = directions.load_names(key, method)
        z = latents(args.seed, range(args.index, args.index + args.faces), loaded.G.z_dim)
        out = Path(args.out) if args.method != "both" else Path(args.out).with_stem(f"{Path(args.out).stem}-{method}")
        out.parent.mkdir(parents=True, exist_ok=True)
        directions.strips_image(loaded.G, dirs, z, truncation=args.truncation).save(out)
        faces = f"index {args.index}" if args.faces == 1 else f"indices {args.index}..{args.index + args.faces - 1}, a row each"
        print(f"{method}: {len(dirs)} directions of faces (seed {args.seed}, {faces}), strengths "
              f"{', '.join(f'{s:+g}' for s in directions.STRIP_STEPS)} left to right -> {out}")
        for i, direction in enumerate(dirs.vectors):
            change = f"  change {directions.change_per_step(loaded.G, direction):6.2f} /unit step" if args.measure else ""
            print(f"  {i:3d}{change}  {names.get(i, '')}")
        if args.measure:
            print(f"  random unit directions: change {directions.random_change(loaded.G):.2f} /unit step "
                  f"(mean absolute pixel change 0-255 of {directions.MEASURE_N} faces at ±1)")
    return 0


def _parse_names(items: Sequence[str] | None) -> dict[int, str]:
    out = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k.strip().isdigit():
            raise UserError(f"--name {item!r}: write DIRECTION=NAME, e.g. --name 0='hair colour'")
        out[int(k)] = v
    return out


def cmd_invert(args: argparse.Namespace) -> int:
    import numpy as np

    from .checkpoint import no_discriminator_reason
    from .explore.invert import invert, load_face, side_by_side
    loaded = load_for_verb(args, with_d=True)
    path = Path(args.image)
    if not path.is_file():
        raise UserError(f"no image file at {path}")
    target = load_face(path.read_bytes(), loaded.config.img_size, path.name)
    if loaded.D is None:
        print(f"note: {no_discriminator_reason(loaded, 'The feature term of the loss')} Using pixels and the "
              f"Laplacian pyramid only.", file=sys.stderr)
    inv = invert(loaded.G, target, D=loaded.D, restarts=args.restarts, steps=args.steps, seed=args.seed, device=args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(inv.target, inv.image).save(out)
    np.save(out.with_suffix(".npy"), inv.z.numpy())
    print(f"wrote {out} (left: the image as loaded, right: its projection) and the latent {out.with_suffix('.npy')} "
          f"({inv.restarts} restarts x {inv.steps} steps, {inv.seconds:.1f} s"
          f"{', discriminator features' if inv.used_discriminator else ''})")
    print(f"MAE {inv.mae:.2f}")
    return 0


def _explore_data(args: argparse.Namespace, loaded):
    from .metrics.evaluation import checkpoint_data
    return checkpoint_data(loaded.config, args.data, progress=True)


def cmd_nearest(args: argparse.Namespace) -> int:
    import torch

    from . import generate as gen
    from .checkpoint import no_discriminator_reason
    from .explore.memorisation import SPACE_LABELS, nearest_training_faces
    from .images import save_grid
    loaded = load_for_verb(args, with_d=True)
    data = _explore_data(args, loaded)
    face = gen.generate(loaded.G, args.seed, 1, start=args.index, truncation=args.truncation).images[0]
    if loaded.D is None:
        print(f"note: {no_discriminator_reason(loaded, 'The feature-space search')} Pixels only.", file=sys.stderr)
    found = nearest_training_faces(face, data, k=args.k, D=loaded.D)
    rows = []
    for space, neighbours in found.items():
        rows.append(torch.cat([face[None], neighbours.images]))
        print(f"{SPACE_LABELS[space]}:")
        for distance, name in zip(neighbours.distances, neighbours.names, strict=True):
            print(f"  {distance:8.3f}  {name}")
    save_grid(torch.cat(rows), args.out, cols=args.k + 1, scale=2)
    print(f"wrote {args.out}: each row the face (seed {args.seed}, index {args.index}) then its {args.k} nearest training faces "
          f"({', then '.join(found)})")
    return 0


def cmd_memorisation(args: argparse.Namespace) -> int:
    from .checkpoint import no_discriminator_reason
    from .explore.memorisation import memorisation_score
    loaded = load_for_verb(args, with_d=True)
    data = _explore_data(args, loaded)
    if loaded.D is None:
        print(f"note: {no_discriminator_reason(loaded, 'The feature-space score')} Pixels only.", file=sys.stderr)
    score = memorisation_score(loaded.G, data, n=args.n, n_reference=args.n_reference, seed=args.seed, D=loaded.D, device=args.device)
    print(json.dumps(score.to_dict()) if args.json else score.summary())
    return 0



def add_verbs(sub: Any, ckpt_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The exploring verbs' parsers, added to the CLI's subparsers (called by cli.build_parser)."""
    verb = sub.add_parser("directions", help="latent directions (SeFa / GANSpace) as strips, one per direction")
    ckpt_args(verb)
    verb.add_argument("--k", type=int, default=10, help="number of directions")
    verb.add_argument("--method", choices=(*DIRECTION_METHODS, "both"), default="sefa")
    verb.add_argument("--seed", type=int, default=0, help="the face shown: (seed, index)")
    verb.add_argument("--index", type=int, default=0)
    verb.add_argument("--faces", type=int, default=1, help="faces per direction (indices index, index+1, ...)")
    verb.add_argument("--truncation", type=float, default=1.0)
    verb.add_argument("--measure", action="store_true", help="print each direction's mean pixel change per unit step")
    verb.add_argument("--name", action="append", metavar="K=NAME", help="name direction K (kept in the home folder)")
    verb.add_argument("--out", required=True, help="a .png: one row per direction, strengths -3..+3")
    verb.set_defaults(fn=cmd_directions)

    verb = sub.add_parser("invert", help="project an image into the generator: the latent whose face is closest")
    ckpt_args(verb)
    verb.add_argument("--image", required=True, help="any image file; centre-cropped and resized like the training data")
    verb.add_argument("--restarts", type=int, default=4)
    verb.add_argument("--steps", type=int, default=250)
    verb.add_argument("--seed", type=int, default=0, help="random seed of the starting candidates")
    verb.add_argument("--out", required=True, help="side-by-side .png; the latent goes beside it as .npy")
    verb.set_defaults(fn=cmd_invert)

    verb = sub.add_parser("nearest", help="a generated face's nearest training faces (memorisation check)")
    ckpt_args(verb)
    verb.add_argument("--data", required=True, help=DATA_HELP + " (the training data)")
    verb.add_argument("--seed", type=int, default=0)
    verb.add_argument("--index", type=int, default=0)
    verb.add_argument("--truncation", type=float, default=1.0)
    verb.add_argument("--k", type=int, default=5)
    verb.add_argument("--out", required=True)
    verb.set_defaults(fn=cmd_nearest)

    verb = sub.add_parser("memorisation", help="share of generated faces closer to a training face than new real faces are")
    ckpt_args(verb)
    verb.add_argument("--data", required=True, help=DATA_HELP + " (the training data; its val split is the reference)")
    verb.add_argument("--n", type=int, default=500, help="generated faces")
    verb.add_argument("--n-reference", type=int, default=500, help="held-out real faces (val split)")
    verb.add_argument("--seed", type=int, default=0)
    verb.add_argument("--json", action="store_true")
    verb.set_defaults(fn=cmd_memorisation)
