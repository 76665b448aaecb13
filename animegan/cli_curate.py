"""The `curate` verb: a small image set cleaned before training (animegan.data.curate).

    python -m animegan curate --data SRC --out CURATED.zip                      # duplicates dropped, one kept
    python -m animegan curate --data SRC --out C.zip --blur-below 40 --exclude a.png --exclude b.png
    python -m animegan curate --data SRC --report                                # the lists alone, nothing written
    python -m animegan curate --data SRC --out C2.zip --decisions C.zip          # the same curation again
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_common import UserError

SHOWN = 10  # entries of each list printed


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The verb's parser, added to the CLI's subparsers (cli.build_parser calls this)."""
    from .config import IMAGE_SIZES
    from .data.curate import HASH_DISTANCE
    p = sub.add_parser("curate", help="find duplicates, blurred images and outliers; write the kept images as a new .zip")
    p.add_argument("--data", required=True, help="folder of images or .zip to curate")
    p.add_argument("--out", help="the curated .zip to write (the kept images and curation.json)")
    p.add_argument("--size", type=int, default=64, choices=IMAGE_SIZES, help="the training size the scores are taken at")
    p.add_argument("--hash-distance", type=int, default=HASH_DISTANCE,
                   help="near duplicates: perceptual hashes at most this many bits apart (of 64)")
    p.add_argument("--keep-duplicates", action="store_true", help="keep every image of a duplicate group")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="drop this image (repeatable)")
    p.add_argument("--blur-below", type=float, help="drop every image less sharp than this (variance of the Laplacian)")
    p.add_argument("--outlier-above", type=float, help="drop every image farther than this (about 1 is typical)")
    p.add_argument("--decisions", help="a curated .zip or its curation.json: drop what it dropped again")
    p.add_argument("--report", action="store_true", help="print the lists and write nothing")
    p.add_argument("--json", action="store_true", help="print the analysis (and decisions) as JSON")
    p.set_defaults(fn=cmd_curate)
    return p


def cmd_curate(a: argparse.Namespace) -> int:
    from .data.curate import analyse, read_decisions, write_curated
    if not a.out and not a.report:
        raise UserError("give --out CURATED.zip to write the curated set, or --report to only see the lists")
    apply = read_decisions(a.decisions) if a.decisions else None
    cur = analyse(a.data, a.size, hash_distance=a.hash_distance)
    dec = cur.decide(exclude=a.exclude, sharpness_below=a.blur_below, outlier_above=a.outlier_above,
                     keep_duplicates=a.keep_duplicates, apply=apply)
    if a.json:
        print(json.dumps({"analysis": cur.to_dict(), "kept": dec.kept, "dropped": dec.dropped}, indent=1))
    else:
        print(_summary(cur, dec))
    if a.out and not a.report:
        out = write_curated(cur, dec, a.out)
        if not a.json:
            print(f"wrote {out}: {len(dec.kept)} images kept, {len(dec.dropped)} dropped (decisions in curation.json)")
    return 0


def _summary(cur, dec) -> str:
    lines = [f"{cur.source}: {len(cur.names)} images at {cur.size} px"
             + (f", {len(cur.unreadable)} unreadable (left out)" if cur.unreadable else "")]
    lines.append(f"duplicate groups: {len(cur.duplicates)} (hash distance ≤ {cur.hash_distance} of 64 bits)")
    for g in cur.duplicates[:SHOWN]:
        lines.append(f"  {g.kind}: keep {g.keep}; " + ", ".join(f"{n} ({g.distance[n]})" for n in g.drop))
    lines.append("least sharp (variance of the Laplacian):")
    lines += [f"  {s.score:10.1f}  {s.name}" for s in cur.sharpness[:SHOWN]]
    lines.append("farthest from the rest (PCA of the pixels; about 1 is typical):")
    lines += [f"  {s.score:10.2f}  {s.name}" for s in cur.outliers[:SHOWN]]
    by_reason: dict[str, int] = {}
    for r in dec.dropped.values():
        by_reason[r] = by_reason.get(r, 0) + 1
    lines.append(f"kept {len(dec.kept)}, dropped {len(dec.dropped)}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) + ")" if by_reason else ""))
    return "\n".join(lines)
