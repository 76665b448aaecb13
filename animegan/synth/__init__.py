"""The built-in synthetic anime-face set: procedurally drawn faces, written as a folder.

So that the whole tool works on a machine with no data and no network, the package draws its
own cartoon anime avatars (``face``: ``render_face(seed, index)``, a pure function of its
arguments) and writes a set of them as ``images/*.png`` with ``labels.csv`` and ``meta.json``
(``write_synthetic``); the serial and the parallel writers give byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import os
import re
import warnings
from pathlib import Path
from typing import Callable

from PIL import Image, PngImagePlugin  # noqa: F401  (PNG plugin imported up front for forked workers)

from ..workers import cpu_count, pool_context
from .face import (
    BACKGROUNDS,
    EXPRESSIONS,
    EYE_COLORS,
    HAIR_COLORS,
    HAIR_STYLES,
    LABEL_FIELDS,
    SKIN_TONES,
    SYNTH_SIZE,
    VERSION,
    render_face,
)

__all__ = [
    "HAIR_COLORS",
    "EYE_COLORS",
    "SKIN_TONES",
    "BACKGROUNDS",
    "HAIR_STYLES",
    "EXPRESSIONS",
    "LABEL_FIELDS",
    "SYNTH_SIZE",
    "DEFAULT_N",
    "VERSION",
    "render_face",
    "write_synthetic",
    "is_complete",
    "rendered_n",
    "grid",
]

DEFAULT_N = 10_000
CSV_FIELDS = ("index", "file") + LABEL_FIELDS


# ----------------------------------------------------------------------------- the set on disk
def _file_name(index: int) -> str:
    return f"images/{index:05d}.png"


def _render_and_save(args: tuple[str, int, int]) -> tuple[int, dict]:
    out_dir, seed, index = args
    img, labels = render_face(seed, index)
    # Written in place: the folder only counts as complete once meta.json is written, last.
    img.save(os.path.join(out_dir, _file_name(index)), format="PNG", compress_level=1)
    return index, labels


def write_synthetic(
    out_dir: str | Path,
    n: int = DEFAULT_N,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Write n faces as out_dir/images/{index:05d}.png, out_dir/labels.csv and out_dir/meta.json.

    meta.json ({"n", "seed", "size", "version"}) is removed first and written last, so a
    folder with a meta.json is complete. `progress(done, total)` is called now and then
    (and at the end). `workers`: None picks one process per usable CPU core for large n (and one
    for small n); 1 renders in this process. Output is identical whatever the worker count.
    """
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta_path.unlink(missing_ok=True)
    n, seed = int(n), int(seed)

    # Drop stale images from an earlier, larger set so images/ holds exactly this set.
    pat = re.compile(r"^(\d{5,})\.png$")
    for f in images.iterdir():
        mt = pat.match(f.name)
        if mt and int(mt.group(1)) >= n:
            f.unlink(missing_ok=True)

    if workers is None:
        workers = cpu_count() if n >= 256 else 1
    workers = max(1, min(int(workers), max(1, n)))
    if mp.current_process().daemon:  # daemonic processes may not start a Pool of their own
        workers = 1

    step = max(1, n // 200)
    rows: list[dict | None] = [None] * n
    jobs = ((str(out), seed, i) for i in range(n))

    def _note(done: int) -> None:
        if progress is not None and (done % step == 0 or done == n):
            progress(done, n)

    if workers == 1:
        for done, job in enumerate(jobs, 1):
            i, labels = _render_and_save(job)
            rows[i] = labels
            _note(done)
    else:
        chunk = max(1, min(64, n // (workers * 8) or 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded process: workers only use Pillow
            pool = pool_context().Pool(workers)
        try:
            for done, (i, labels) in enumerate(pool.imap_unordered(_render_and_save, jobs, chunksize=chunk), 1):
                rows[i] = labels
                _note(done)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    if n == 0 and progress is not None:
        progress(0, 0)

    tmp = out / "labels.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
        wr.writeheader()
        for i, labels in enumerate(rows):
            assert labels is not None
            wr.writerow({"index": i, "file": _file_name(i), **labels})
    os.replace(tmp, out / "labels.csv")

    meta = {"n": n, "seed": seed, "size": SYNTH_SIZE, "version": VERSION}
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, meta_path)
    return out


def _read_meta(out: Path) -> dict | None:
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_complete(out_dir: str | Path, n: int = DEFAULT_N, seed: int = 0) -> bool:
    """True when out_dir holds a finished set of this n and seed (at the current size and version)."""
    out = Path(out_dir)
    meta = _read_meta(out)
    if meta is None:
        return False
    ok = (
        meta.get("n") == int(n)
        and meta.get("seed") == int(seed)
        and meta.get("size") == SYNTH_SIZE
        and meta.get("version") == VERSION
    )
    return bool(ok and (out / "labels.csv").is_file() and (n == 0 or (out / _file_name(int(n) - 1)).is_file()))


def rendered_n(out_dir: str | Path, seed: int = 0) -> int | None:
    """The number of faces of the finished set of this seed in out_dir (so preparing it renders
    nothing), or None when there is none (nothing there, unfinished, another seed or version)."""
    meta = _read_meta(Path(out_dir))
    try:
        n = int(meta["n"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return n if n > 0 and is_complete(out_dir, n, seed) else None


def grid(n: int = 64, seed: int = 0, cols: int = 8) -> Image.Image:
    """A contact sheet of faces 0..n-1 of set `seed`, `cols` per row, 96 px each, no gaps."""
    n, cols = int(n), max(1, int(cols))
    rows = max(1, math.ceil(n / cols))
    sheet = Image.new("RGB", (cols * SYNTH_SIZE, rows * SYNTH_SIZE), (255, 255, 255))
    for i in range(n):
        img, _ = render_face(seed, i)
        sheet.paste(img, ((i % cols) * SYNTH_SIZE, (i // cols) * SYNTH_SIZE))
    return sheet
