"""Training data: a folder of images, a .zip of images, or the built-in synthetic set, prepared once.

``prepare(source, size)`` reads and decodes every image file of a source a single time, checks
it, converts it to RGB, center-crops it to a square and resizes it (LANCZOS) to the training
size. The result is a uint8 array ``N x 3 x S x S`` (channels first) stored in a ``.npy`` cache
file and opened memory-mapped, so the second ``prepare`` of the same source decodes nothing.

The parts, each with its own module:

* ``sources``: what a source is (folder, zip, ``"synthetic"``), its listing, fingerprint and
  members (``describe_source``, ``fingerprint``, ``iter_source_files``, ``read_member``);
* ``zipread``: every zip is opened, sorted and read there, with its limits (entries, bytes
  unpacked, per member, compression ratio); what it refuses is reported like a bad image;
* ``decode``: one image, checked and converted (``load_image_bytes``, the ``REASONS`` an image
  is skipped for), and the worker pool that decodes a whole source;
* ``cache``: the memory-mapped cache files, their integrity check, ``find_cache`` (the cache
  of a source without building it), ``cache_usage`` and ``clear_caches``;
* here: ``prepare``, its ``DataReport`` and ``PreparedData``, the splits, and the uint8 <->
  float conversions of batches (``to_float``, ``to_uint8``).

What cannot be used is skipped and reported (``DataReport``), never a crash and never silently;
that includes the members of a zip that ``zipread`` refuses to read (a zip bomb's member, a
nested archive, an unsafe path, an encrypted member...), by name and reason, while the rest of
the zip is used. A zip over the whole-archive limits is refused with a DataError.
Exact duplicate files (same bytes, blake2b) are kept once and reported as (kept, duplicate)
pairs; ``usable`` counts the images kept, so ``usable + len(duplicates) + skipped == total``.

Splits
    ``val`` and ``test`` images are held out deterministically: each name is ranked by
    ``blake2b(seed, name)``; the first ones go to validation, the next to test. Same names and
    seed give the same split (and adding a file barely moves the others); another seed gives
    another split. Sizes are scaled down for small sources: ``min(val, N // 10)`` (so at least
    1 each when ``N >= 10`` and a nonzero size is asked), and 0 when ``N < 10``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import IMAGE_SIZES, SYNTHETIC
from ..rundir import write_json_atomic
from .cache import (
    CacheWriter,
    cache_files,
    cache_usage,
    clear_caches,
    find_cache,
    open_cache,
    remove_slot,
    replaced_slots,
    write_meta,
)
from .decode import (
    MIN_SIDE,
    REASONS,
    ImageRejected,
    decode_chunks,
    describe_member,
    load_image_bytes,
    reason_order,
)
from .sources import (
    IMAGE_EXTS,
    DataError,
    Entry,
    Progress,
    Source,
    describe_source,
    fingerprint,
    fingerprint_entries,
    is_synthetic,
    iter_source_files,
    list_entries,
    read_member,
    resolve,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "check_source",
    "IMAGE_EXTS",
    "MAX_SIZE",
    "MIN_SIDE",
    "REASONS",
    "SYNTHETIC",
    "DataError",
    "DataReport",
    "ImageRejected",
    "PreparedData",
    "cache_usage",
    "clear_caches",
    "describe_member",
    "describe_source",
    "find_cache",
    "fingerprint",
    "iter_source_files",
    "load_image_bytes",
    "make_splits",
    "prepare",
    "read_member",
    "split_sizes",
    "to_float",
    "to_uint8",
]

# The largest size prepare builds a cache at, in px: a bound on the cache's size (N x 3 x S x S
# bytes), not a list of sizes the networks draw (config.IMAGE_SIZES). Any size from MIN_SIDE to
# MAX_SIZE can be prepared (48 for a quick look, say).
MAX_SIZE = 256


# --------------------------------------------------------------------------- report


@dataclass
class DataReport:
    """What preparing a source found. ``total`` counts files with an image extension, plus the
    members of a zip refused whatever their extension (nested archives, links...);
    ``usable`` the images kept (duplicates once), so
    ``usable + len(duplicates) + sum(len(v) for v in skipped.values()) == total``.
    ``converted`` counts conversions: grayscale, grayscale+alpha, palette, rgba, cmyk, 16-bit,
    other (modes like YCbCr/LAB/F), rotated (EXIF), cropped (non-square), upscaled (smaller than
    the training size); alpha is composited on white."""

    total: int = 0
    usable: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)
    ignored_other: int = 0          # files without an image extension (not looked at)

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def summary(self, max_names: int = 5) -> str:
        def names(lst: list[str]) -> str:
            shown = ", ".join(lst[:max_names])
            more = len(lst) - max_names
            return shown + (f", ... (+{more:,} more)" if more > 0 else "")

        lines = [
            (f"{self.total:,} image files looked at: {self.usable:,} usable, "
             f"{len(self.duplicates):,} exact duplicates (kept once), {self.n_skipped:,} skipped.")
        ]
        for reason in sorted(self.skipped, key=reason_order):
            lst = self.skipped[reason]
            if lst:
                lines.append(f"  skipped, {reason}: {len(lst):,} ({names(lst)})")
        if self.duplicates:
            pairs = [f"{b} = {a}" for a, b in self.duplicates]
            lines.append(f"  duplicates: {len(self.duplicates):,} ({names(pairs)})")
        if self.converted:
            conv = ", ".join(f"{k} {v:,}" for k, v in sorted(self.converted.items()))
            lines.append(f"  converted: {conv}")
        if self.ignored_other:
            lines.append(f"  ignored {self.ignored_other:,} files without an image extension")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "usable": self.usable,
            "skipped": {k: list(v) for k, v in self.skipped.items()},
            "duplicates": [list(p) for p in self.duplicates],
            "converted": dict(self.converted),
            "ignored_other": self.ignored_other,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DataReport:
        return cls(
            total=int(d.get("total", 0)),
            usable=int(d.get("usable", 0)),
            skipped={str(k): [str(n) for n in v] for k, v in d.get("skipped", {}).items()},
            duplicates=[(str(a), str(b)) for a, b in d.get("duplicates", [])],
            converted={str(k): int(v) for k, v in d.get("converted", {}).items()},
            ignored_other=int(d.get("ignored_other", 0)),
        )


@dataclass
class PreparedData:
    source: str                     # as given ("synthetic", a path)
    size: int
    images: np.ndarray              # uint8 memmap N x 3 x S x S
    names: list[str]
    splits: dict[str, np.ndarray]   # "train" / "val" / "test" -> sorted int64 indices
    report: DataReport
    fingerprint: str
    cache_path: Path
    from_cache: bool
    decoded: int                    # files read and decoded in this call (0 from cache)
    rebuilt_because: str | None = None   # why an existing cache was not used (None: none existed)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def split_images(self, name: str) -> np.ndarray:
        """``images[splits[name]]`` as an in-memory copy (fancy indexing of the memmap). Fine for
        val/test; for "train" of a large set prefer indexing ``images`` batch by batch."""
        return np.asarray(self.images[self.splits[name]])


# --------------------------------------------------------------------------- splits


def split_sizes(n: int, val: int = 2000, test: int = 2000) -> tuple[int, int]:
    """Held-out sizes for ``n`` images: ``min(val, n // 10)`` each, 0 when ``n < 10``."""
    if val < 0 or test < 0:
        raise DataError(f"Validation and test sizes must be >= 0 (got {val}, {test}).")
    if n < 10:
        return 0, 0
    return min(val, n // 10), min(test, n // 10)


def _splits(n: int, val: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """The three splits of ``n`` images from the held-out indices: train is everything else."""
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    mask[test] = False
    return {"train": np.flatnonzero(mask).astype(np.int64), "val": np.sort(val), "test": np.sort(test)}


def make_splits(names: list[str], val: int = 2000, test: int = 2000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic train/val/test split by name and seed (sorted int64 indices)."""
    n = len(names)
    nv, nt = split_sizes(n, val, test)
    salt = f"{int(seed)}\0".encode()
    keys = [hashlib.blake2b(salt + nm.encode("utf-8", "surrogateescape"), digest_size=8).digest()
            for nm in names]
    order = np.asarray(sorted(range(n), key=lambda i: (keys[i], i)), dtype=np.int64)
    return _splits(n, order[:nv], order[nv:nv + nt])


def _splits_from_meta(meta: dict, n: int, val: int, test: int, seed: int) -> dict[str, np.ndarray] | None:
    """The splits a cache's meta kept for these settings (None: other settings, or damaged)."""
    s = meta.get("splits") or {}
    if s.get("val_size") != val or s.get("test_size") != test or s.get("seed") != seed:
        return None
    v = np.asarray(s.get("val", []), dtype=np.int64)
    t = np.asarray(s.get("test", []), dtype=np.int64)
    if (v.size and (v.min() < 0 or v.max() >= n)) or (t.size and (t.min() < 0 or t.max() >= n)):
        return None
    return _splits(n, v, t)


def _splits_meta(splits: dict[str, np.ndarray], val: int, test: int, seed: int) -> dict:
    return {"val_size": val, "test_size": test, "seed": seed,
            "val": splits["val"].tolist(), "test": splits["test"].tolist()}


# --------------------------------------------------------------------------- prepare


def _check_size(size: int) -> int:
    try:
        s = int(size)
    except (TypeError, ValueError):
        raise DataError(f"Image size must be a whole number of pixels (got {size!r}).") from None
    if s != size or not MIN_SIDE <= s <= MAX_SIZE:
        raise DataError(f"Image size must be between {MIN_SIDE} and {MAX_SIZE} px (the networks "
                        f"draw {', '.join(map(str, IMAGE_SIZES))}); got {size!r}.")
    return s


def _where(src: Source) -> str:
    return f"{'zip' if src.kind == 'zip' else 'folder'} {src.path}"


def _no_images(src: Source, other: int) -> DataError:
    extra = f" ({other:,} other files ignored)" if other else ""
    return DataError(f"No images in {_where(src)}: no file ending in {', '.join(IMAGE_EXTS)} was found"
                     f"{' (searched recursively)' if src.kind == 'folder' else ''}{extra}. "
                     "Put the images there, or point to the folder or zip that holds them.")


def check_source(source: str | Path) -> str:
    """A source that training can use: the built-in set's name, or the absolute path of a folder
    or .zip that holds at least one image file (nothing is decoded). DataError saying what is
    wrong otherwise. The job starter calls it before launching, so a bad source never starts a run."""
    source = str(source).strip()
    if is_synthetic(source):
        return SYNTHETIC
    src = resolve(source)
    entries, other = list_entries(src)
    if not entries:
        raise _no_images(src, other)
    return str(src.path)


def _decode_into(out: CacheWriter, src: Source, entries: list[Entry], report: DataReport,
                 workers: int | None, bar: Progress) -> list[str]:
    """Decode every entry into ``out``, filling ``report``; -> the names of the images kept.
    Entries the zip reader refused are reported with their reason and never read."""
    names: list[str] = []
    seen: dict[bytes, str] = {}
    for e in entries:
        if e.refused:
            report.skipped.setdefault(e.refused, []).append(e.name)
    readable = [e for e in entries if not e.refused]
    done = len(entries) - len(readable)
    pos = 0
    items = [(e.key, e.name) for e in readable]
    for chunk in decode_chunks(src.kind, str(src.path), items, out.size, workers):
        for (status, row, digest, tags), e in zip(chunk, readable[pos:pos + len(chunk)], strict=True):
            if status != "ok":
                report.skipped.setdefault(status, []).append(e.name)
            elif digest in seen:
                report.duplicates.append((seen[digest], e.name))
            else:
                seen[digest] = e.name
                names.append(e.name)
                out.add(row)
                for t in tags:
                    report.converted[t] = report.converted.get(t, 0) + 1
        pos += len(chunk)
        bar.update(done + pos)
    report.usable = len(names)
    if not names:
        raise DataError(f"None of the {len(entries):,} image files in {_where(src)} could be "
                        f"used.\n{report.summary()}\nFix or replace them, or point to "
                        "another source.")
    return names


def prepare(source: str | Path, size: int = 64, *, val: int = 2000, test: int = 2000,
            split_seed: int = 0, progress: bool | Callable[[int, int], Any] = False,
            synthetic_n: int | None = None, cache_root: Path | str | None = None,
            workers: int | None = None) -> PreparedData:
    """Decode a source once into a memory-mapped uint8 cache (N x 3 x size x size) and split it.

    ``progress``: True for a tqdm bar, or a ``progress(done, total)`` callable.
    ``synthetic_n``: the number of faces of the synthetic set (rendered when it is not on disk
    at that number; default ``synth.DEFAULT_N``).
    ``workers``: decoding processes for large sources (default: the usable CPU cores).
    Raises DataError for a missing path, a folder/zip without images, a broken zip, a zip over
    ``zipread``'s whole-archive limits (entries, bytes unpacked), or when no image is usable."""
    size = _check_size(size)
    split_sizes(0, val, test)  # validates val/test
    src = resolve(source, synthetic_n=synthetic_n, render=True, progress=progress)
    entries, other = list_entries(src)
    if not entries:
        raise _no_images(src, other)
    fp = fingerprint_entries(src.kind, entries)
    npy, meta_path = cache_files(src, size, cache_root, fingerprint=fp)

    meta, images, why = open_cache(npy, meta_path, fp, size)
    if why is None and meta is None:
        replaced = replaced_slots(src, size, fp, cache_root)
        if replaced:
            why = "source changed"
            for old in replaced:
                remove_slot(old)
    if meta is not None and images is not None:
        names = [str(n) for n in meta["names"]]
        splits = _splits_from_meta(meta, len(names), val, test, split_seed)
        if splits is None:
            splits = make_splits(names, val, test, split_seed)
            meta["splits"] = _splits_meta(splits, val, test, split_seed)
            try:
                write_json_atomic(meta_path, meta)
            except OSError:
                pass  # a read-only cache still works; the split is recomputed next time
        return PreparedData(str(source), size, images, names, splits,
                            DataReport.from_dict(meta["report"]), fp, npy, True, 0)

    report = DataReport(total=len(entries), ignored_other=other)
    with CacheWriter(npy, meta_path, size) as out:
        bar = Progress(progress, len(entries), f"Decoding {src.label}")
        try:
            names = _decode_into(out, src, entries, report, workers, bar)
        finally:
            bar.close()
        out.commit()
    splits = make_splits(names, val, test, split_seed)
    write_meta(meta_path, npy, source=str(source), src=src, fp=fp, size=size, names=names,
               report=report.to_dict(), splits=_splits_meta(splits, val, test, split_seed))
    images = np.load(npy, mmap_mode="r", allow_pickle=False)
    decoded = sum(1 for e in entries if not e.refused)  # a refused zip member is never read
    return PreparedData(str(source), size, images, names, splits, report, fp, npy, False, decoded,
                        rebuilt_because=why)


# --------------------------------------------------------------------------- tensors


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    import torch

    return torch.as_tensor(batch).to(torch.float32).div(127.5).sub(1.0)


def to_uint8(batch: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (rounded, clamped; NaN -> 127/128 midpoint)."""
    import torch

    x = torch.nan_to_num(batch.detach().float(), nan=0.0, posinf=1.0, neginf=-1.0)
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
