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

from .cli_common import DATA_HELP, UserError
from .cli_common import load_for_verb as _load
from .config import DIRECTION_METHODS


def _user_error(msg: str) -> Exception:
    return UserError(msg)


def cmd_directions(a: argparse.Namespace) -> int:
    from .explore import directions
    from .generate import latents
    names_given = _parse_names(a.name)
    if names_given and a.method == "both":
        raise _user_error("--name names directions of one method: give --method sefa or --method ganspace")
    lg = _load(a)
    key = directions.checkpoint_hash(a.checkpoint)
    for method in directions.METHODS if a.method == "both" else (a.method,):
        for k, name in names_given.items():
            directions.save_name(key, method, k, name)
        dirs = directions.find(lg.G, method, a.k)
        names = directions.load_names(key, method)
        z = latents(a.seed, range(a.index, a.index + a.faces), lg.G.z_dim)
        out = Path(a.out) if a.method != "both" else Path(a.out).with_stem(f"{Path(a.out).stem}-{method}")
        out.parent.mkdir(parents=True, exist_ok=True)
        directions.strips_image(lg.G, dirs, z, truncation=a.truncation).save(out)
        faces = f"index {a.index}" if a.faces == 1 else f"indices {a.index}..{a.index + a.faces - 1}, a row each"
        print(f"{method}: {len(dirs)} directions of faces (seed {a.seed}, {faces}), strengths "
              f"{', '.join(f'{s:+g}' for s in directions.STRIP_STEPS)} left to right -> {out}")
        for i, d in enumerate(dirs.vectors):
            change = f"  change {directions.change_per_step(lg.G, d):6.2f} /unit step" if a.measure else ""
            print(f"  {i:3d}{change}  {names.get(i, '')}")
        if a.measure:
            print(f"  random unit directions: change {directions.random_change(lg.G):.2f} /unit step "
                  f"(mean absolute pixel change 0-255 of {directions.MEASURE_N} faces at ±1)")
    return 0


def _parse_names(items: Sequence[str] | None) -> dict[int, str]:
    out = {}
    for e in items or ():
        k, sep, v = e.partition("=")
        if not sep or not k.strip().isdigit():
            raise _user_error(f"--name {e!r}: write DIRECTION=NAME, e.g. --name 0='hair colour'")
        out[int(k)] = v
    return out


def cmd_invert(a: argparse.Namespace) -> int:
    import numpy as np

    from .checkpoint import no_discriminator_reason
    from .explore.invert import invert, load_face, side_by_side
    lg = _load(a, with_d=True)
    path = Path(a.image)
    if not path.is_file():
        raise _user_error(f"no image file at {path}")
    target = load_face(path.read_bytes(), lg.config.img_size, path.name)
    if lg.D is None:
        print(f"note: {no_discriminator_reason(lg, 'The feature term of the loss')} Using pixels and the "
              f"Laplacian pyramid only.", file=sys.stderr)
    inv = invert(lg.G, target, D=lg.D, restarts=a.restarts, steps=a.steps, seed=a.seed, device=a.device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(inv.target, inv.image).save(out)
    np.save(out.with_suffix(".npy"), inv.z.numpy())
    print(f"wrote {out} (left: the image as loaded, right: its projection) and the latent {out.with_suffix('.npy')} "
          f"({inv.restarts} restarts x {inv.steps} steps, {inv.seconds:.1f} s"
          f"{', discriminator features' if inv.used_discriminator else ''})")
    print(f"MAE {inv.mae:.2f}")
    return 0


def _explore_data(a: argparse.Namespace, lg):
    from .metrics.evaluation import checkpoint_data
    return checkpoint_data(lg.config, a.data, progress=True)


def cmd_nearest(a: argparse.Namespace) -> int:
    import torch

    from . import generate as gen
    from .checkpoint import no_discriminator_reason
    from .explore.memorisation import SPACE_LABELS, nearest_training_faces
    from .images import save_grid
    lg = _load(a, with_d=True)
    data = _explore_data(a, lg)
    face = gen.generate(lg.G, a.seed, 1, start=a.index, truncation=a.truncation).images[0]
    if lg.D is None:
        print(f"note: {no_discriminator_reason(lg, 'The feature-space search')} Pixels only.", file=sys.stderr)
    found = nearest_training_faces(face, data, k=a.k, D=lg.D)
    rows = []
    for space, nb in found.items():
        rows.append(torch.cat([face[None], nb.images]))
        print(f"{SPACE_LABELS[space]}:")
        for d, name in zip(nb.distances, nb.names, strict=True):
            print(f"  {d:8.3f}  {name}")
    save_grid(torch.cat(rows), a.out, cols=a.k + 1, scale=2)
    print(f"wrote {a.out}: each row the face (seed {a.seed}, index {a.index}) then its {a.k} nearest training faces "
          f"({', then '.join(found)})")
    return 0


def cmd_memorisation(a: argparse.Namespace) -> int:
    from .checkpoint import no_discriminator_reason
    from .explore.memorisation import memorisation_score
    lg = _load(a, with_d=True)
    data = _explore_data(a, lg)
    if lg.D is None:
        print(f"note: {no_discriminator_reason(lg, 'The feature-space score')} Pixels only.", file=sys.stderr)
    r = memorisation_score(lg.G, data, n=a.n, n_reference=a.n_reference, seed=a.seed, D=lg.D, device=a.device)
    print(json.dumps(r.to_dict()) if a.json else r.summary())
    return 0



def add_verbs(sub: Any, ckpt_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The exploring verbs' parsers, added to the CLI's subparsers (called by cli.build_parser)."""
    p = sub.add_parser("directions", help="latent directions (SeFa / GANSpace) as strips, one per direction")
    ckpt_args(p)
    p.add_argument("--k", type=int, default=10, help="number of directions")
    p.add_argument("--method", choices=(*DIRECTION_METHODS, "both"), default="sefa")
    p.add_argument("--seed", type=int, default=0, help="the face shown: (seed, index)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--faces", type=int, default=1, help="faces per direction (indices index, index+1, ...)")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--measure", action="store_true", help="print each direction's mean pixel change per unit step")
    p.add_argument("--name", action="append", metavar="K=NAME", help="name direction K (kept in the home folder)")
    p.add_argument("--out", required=True, help="a .png: one row per direction, strengths -3..+3")
    p.set_defaults(fn=cmd_directions)

    p = sub.add_parser("invert", help="project an image into the generator: the latent whose face is closest")
    ckpt_args(p)
    p.add_argument("--image", required=True, help="any image file; centre-cropped and resized like the training data")
    p.add_argument("--restarts", type=int, default=4)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--seed", type=int, default=0, help="random seed of the starting candidates")
    p.add_argument("--out", required=True, help="side-by-side .png; the latent goes beside it as .npy")
    p.set_defaults(fn=cmd_invert)

    p = sub.add_parser("nearest", help="a generated face's nearest training faces (memorisation check)")
    ckpt_args(p)
    p.add_argument("--data", required=True, help=DATA_HELP + " (the training data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_nearest)

    p = sub.add_parser("memorisation", help="share of generated faces closer to a training face than new real faces are")
    ckpt_args(p)
    p.add_argument("--data", required=True, help=DATA_HELP + " (the training data; its val split is the reference)")
    p.add_argument("--n", type=int, default=500, help="generated faces")
    p.add_argument("--n-reference", type=int, default=500, help="held-out real faces (val split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_memorisation)
