"""The `curate` verb: a small image set cleaned before training (animegan.data.curate).

    python -m animegan curate --data SRC --out CURATED.zip                      # duplicates dropped, one kept
    python -m animegan curate --data SRC --out C.zip --blur-below 40 --exclude args.png --exclude b.png
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
    verb = sub.add_parser("curate", help="find duplicates, blurred images and outliers; write the kept images as a new .zip")
    verb.add_argument("--data", required=True, help="folder of images or .zip to curate")
    verb.add_argument("--out", help="the curated .zip to write (the kept images and curation.json)")
    verb.add_argument("--size", type=int, default=64, choices=IMAGE_SIZES, help="the training size the scores are taken at")
    verb.add_argument("--hash-distance", type=int, default=HASH_DISTANCE,
                      help="near duplicates: perceptual hashes at most this many bits apart (of 64)")
    verb.add_argument("--keep-duplicates", action="store_true", help="keep every image of a duplicate group")
    verb.add_argument("--exclude", action="append", default=[], metavar="NAME", help="drop this image (repeatable)")
    verb.add_argument("--blur-below", type=float, help="drop every image less sharp than this (variance of the Laplacian)")
    verb.add_argument("--outlier-above", type=float, help="drop every image farther than this (about 1 is typical)")
    verb.add_argument("--decisions", help="a curated .zip or its curation.json: drop what it dropped again")
    verb.add_argument("--report", action="store_true", help="print the lists and write nothing")
    verb.add_argument("--json", action="store_true", help="print the analysis (and decisions) as JSON")
    verb.set_defaults(fn=cmd_curate)
    return verb


def cmd_curate(args: argparse.Namespace) -> int:
    from .data.curate import analyse, read_decisions, write_curated
    if not args.out and not args.report:
        raise UserError("give --out CURATED.zip to write the curated set, or --report to only see the lists")
    apply = read_decisions(args.decisions) if args.decisions else None
    curation = analyse(args.data, args.size, hash_distance=args.hash_distance)
    decisions = curation.decide(exclude=args.exclude, sharpness_below=args.blur_below, outlier_above=args.outlier_above,
                                keep_duplicates=args.keep_duplicates, apply=apply)
    if args.json:
        print(json.dumps({"analysis": curation.to_dict(), "kept": decisions.kept, "dropped": decisions.dropped}, indent=1))
    else:
        print(_summary(curation, decisions))
    if args.out and not args.report:
        out = write_curated(curation, decisions, args.out)
        if not args.json:
            print(f"wrote {out}: {len(decisions.kept)} images kept, {len(decisions.dropped)} dropped (decisions in curation.json)")
    return 0


def _summary(curation, decisions) -> str:
    lines = [f"{curation.source}: {len(curation.names)} images at {curation.size} px"
             + (f", {len(curation.unreadable)} unreadable (left out)" if curation.unreadable else "")]
    lines.append(f"duplicate groups: {len(curation.duplicates)} (hash distance ≤ {curation.hash_distance} of 64 bits)")
    for g in curation.duplicates[:SHOWN]:
        lines.append(f"  {g.kind}: keep {g.keep}; " + ", ".join(f"{n} ({g.distance[n]})" for n in g.drop))
    lines.append("least sharp (variance of the Laplacian):")
    lines += [f"  {s.score:10.1f}  {s.name}" for s in curation.sharpness[:SHOWN]]
    lines.append("farthest from the rest (PCA of the pixels; about 1 is typical):")
    lines += [f"  {s.score:10.2f}  {s.name}" for s in curation.outliers[:SHOWN]]
    by_reason: dict[str, int] = {}
    for reason in decisions.dropped.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    lines.append(f"kept {len(decisions.kept)}, dropped {len(decisions.dropped)}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) + ")" if by_reason else ""))
    return "\n".join(lines)
