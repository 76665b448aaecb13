"""Data sources: a folder of images, a .zip of images, or the built-in synthetic set.

A source is prepared once: every image file is read and decoded a single time, checked,
converted to RGB, center-cropped to a square and resized (LANCZOS) to the training size. The
result is a uint8 array ``N x 3 x S x S`` (channels first) stored in a ``.npy`` cache file and
opened memory-mapped, so the second ``prepare`` of the same source decodes nothing.

Sources
    * a folder, searched recursively for ``IMAGE_EXTS`` (case-insensitive). Hidden files and
      folders (name starting with ``.``) and ``__MACOSX`` folders are ignored, like every file
      with another extension (counted in ``DataReport.ignored_other``, not reported as bad);
    * a ``.zip`` archive, read in place with :mod:`zipfile` (nothing is extracted to disk);
    * ``"synthetic"``: the built-in set. When it is not on disk yet,
      ``animegan.synth.write_synthetic(paths.synthetic_dir(), n)`` renders it; then it is a
      folder source (``synthetic_dir()/images``).

What cannot be used is skipped and reported (``DataReport``), never a crash and never silently:
``"empty file"``, ``"corrupt or truncated"``, ``"not an image"``, ``"too small"`` (under
``MIN_SIDE`` px on either side), ``"too large (decompression bomb)"`` (more pixels than
``PIL.Image.MAX_IMAGE_PIXELS``, checked from the header before any pixel is decoded) and
``"unreadable"`` (the file could not be read at all: permissions, encrypted zip member...).
Exact duplicate files (same bytes, blake2b) are kept once and reported as (kept, duplicate)
pairs; ``usable`` counts the images kept, so ``usable + len(duplicates) + skipped == total``.

Cache
    One cache slot per source path and size: ``<cache_root>/<name>-<hash of path>-<S>px.npy``
    plus a ``.json`` meta file next to it (fingerprint, size, count, names, report, splits and
    a checksum). The cache is used only when the meta's fingerprint of the source (folders: the
    relative file list, sizes and mtimes; zips: member names, sizes and CRCs from the central
    directory, no data read) matches, and the ``.npy`` passes a cheap integrity check: its byte
    size and array shape match the meta, and a blake2b of sampled chunks matches. For files up
    to 4 MiB the whole file is hashed; for larger ones the first, middle and last MiB plus 32
    evenly spaced 64 KiB blocks (hashing all of a 400 MB cache on every open would cost
    seconds). Anything else (changed source, truncated, garbage, wrong shape, wrong checksum,
    missing meta) rebuilds it. Files are written under a temporary name, fsynced and moved in
    place with ``os.replace``; the meta is removed before a rebuild and written last, so a
    killed build never leaves a cache that looks valid.

Splits
    ``val`` and ``test`` images are held out deterministically: each name is ranked by
    ``blake2b(seed, name)``; the first ones go to validation, the next to test. Same names and
    seed give the same split (and adding a file barely moves the others); another seed gives
    another split. Sizes are scaled down for small sources: ``min(val, N // 10)`` (so at least
    1 each when ``N >= 10`` and a nonzero size is asked), and 0 when ``N < 10``.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import re
import secrets
import stat
import struct
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from . import paths
from .rundir import write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "IMAGE_EXTS",
    "MAX_SIZE",
    "MIN_SIDE",
    "REASONS",
    "DataError",
    "DataReport",
    "ImageRejected",
    "PreparedData",
    "cache_usage",
    "clear_caches",
    "describe_source",
    "fingerprint",
    "iter_source_files",
    "load_image_bytes",
    "make_splits",
    "prepare",
    "split_sizes",
    "to_float",
    "to_uint8",
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MIN_SIDE = 32
MAX_SIZE = 256
SYNTHETIC = "synthetic"

EMPTY = "empty file"
CORRUPT = "corrupt or truncated"
NOT_IMAGE = "not an image"
TOO_SMALL = "too small"
TOO_LARGE = "too large (decompression bomb)"
UNREADABLE = "unreadable"
REASONS = (EMPTY, CORRUPT, NOT_IMAGE, TOO_SMALL, TOO_LARGE, UNREADABLE)

CACHE_FORMAT = "animegan-data-cache"
CACHE_VERSION = 1          # bump when decoding/preprocessing changes: old caches are rebuilt
CHUNK = 256                # images per worker task
POOL_MIN = 1000            # sources smaller than this are decoded in-process
_HEADER_LEN = 128          # fixed .npy header size (v1.0, 64-byte aligned)
_MiB = 1 << 20
_MAGIC = (b"\x89PNG", b"\xff\xd8", b"BM", b"RIFF", b"GIF8", b"II*\x00", b"MM\x00*")


class DataError(Exception):
    """A clear, user-facing message (missing path, empty folder, nothing usable, not a zip...)."""


class ImageRejected(DataError):
    """One image that cannot be used; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, name: str = "", detail: str = ""):
        self.reason = reason
        self.name = name
        self.detail = detail
        msg = f"{name or 'image'}: {reason}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


# --------------------------------------------------------------------------- report


@dataclass
class DataReport:
    """What preparing a source found. ``total`` counts files with an image extension;
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
        for reason in sorted(self.skipped, key=_reason_order):
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


def _reason_order(reason: str) -> tuple[int, str]:
    return (REASONS.index(reason) if reason in REASONS else len(REASONS), reason)


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


# --------------------------------------------------------------------------- decoding one image


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_MAGIC)


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def _to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Any Pillow mode -> RGB. Alpha/transparency is composited on white; 16-bit is scaled
    (round(v / 257)), not clipped."""
    mode = im.mode
    has_trns = "transparency" in im.info
    if mode == "RGB":
        return (_on_white(im), ["rgba"]) if has_trns else (im, [])
    if mode in ("1", "L"):
        return (_on_white(im), ["grayscale+alpha"]) if has_trns else (im.convert("RGB"), ["grayscale"])
    if mode in ("P", "PA"):
        if mode == "PA" or has_trns:
            return _on_white(im), ["palette"]
        return im.convert("RGB"), ["palette"]
    if mode in ("RGBA", "RGBa"):
        return _on_white(im), ["rgba"]
    if mode in ("LA", "La"):
        return _on_white(im), ["grayscale+alpha"]
    if mode == "CMYK":
        return im.convert("RGB"), ["cmyk"]
    if mode == "I" or mode.startswith("I;16"):
        a = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        g = ((a * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(g, "L").convert("RGB"), ["16-bit"]
    if mode == "F":
        return im.convert("L").convert("RGB"), ["other"]
    return im.convert("RGB"), ["other"]


def _center_crop(im: Image.Image) -> tuple[Image.Image, bool]:
    w, h = im.size
    if w == h:
        return im, False
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s)), True


def _decode(data: bytes, name: str = "", target: int | None = None) -> tuple[Image.Image, list[str]]:
    """Validate and convert one image: -> (square RGB image, conversion tags).

    With ``target`` a large JPEG may be decoded at a reduced scale (``draft``), keeping at least
    twice the target size. Raises ImageRejected."""
    if not data:
        raise ImageRejected(EMPTY, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageRejected(TOO_LARGE, name, str(e)) from None
    except Exception as e:  # noqa: BLE001  # UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        reason = CORRUPT if _looks_like_image(data) else NOT_IMAGE
        raise ImageRejected(reason, name, str(e)) from None
    # Header only so far: check the size before decoding any pixel.
    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise ImageRejected(TOO_LARGE, name, f"{w}x{h} = {w * h:,} pixels > {limit:,}")
    if min(w, h) < MIN_SIDE:
        raise ImageRejected(TOO_SMALL, name, f"{w}x{h}, under {MIN_SIDE} px")
    try:
        if target and im.format == "JPEG":
            k = 2 * target / min(w, h)
            if k <= 0.5:
                im.draft(im.mode, (math.ceil(w * k), math.ceil(h * k)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. palette transparency, EXIF warnings
            im.load()
            tags: list[str] = []
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001
                orientation = 1
            if orientation in (2, 3, 4, 5, 6, 7, 8):
                im = ImageOps.exif_transpose(im)
                tags.append("rotated (EXIF)")
            im, conv = _to_rgb(im)
    except Image.DecompressionBombError as e:
        raise ImageRejected(TOO_LARGE, name, str(e)) from None
    except Exception as e:  # noqa: BLE001  # truncated data, broken chunks, decoder errors
        raise ImageRejected(CORRUPT, name, str(e)) from None
    tags += conv
    im, cropped = _center_crop(im)
    if cropped:
        tags.append("cropped")
    return im, tags


def load_image_bytes(data: bytes, name: str = "") -> Image.Image:
    """Validate and convert one image (full resolution): -> RGB, center-cropped square.

    Raises ImageRejected (a DataError) whose ``reason`` is one of ``REASONS``."""
    return _decode(data, name)[0]


def _decode_row(data: bytes, name: str, size: int) -> tuple[bytes, list[str]]:
    im, tags = _decode(data, name, target=size)
    side = im.size[0]
    if side != size:
        if side < size:
            tags.append("upscaled")
        gap = 3.0 if side >= 3 * size else None
        im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=gap)
    arr = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).tobytes(), tags


# --------------------------------------------------------------------------- sources


@dataclass
class _Entry:
    name: str      # relative posix name
    size: int
    stamp: int     # mtime_ns (folder) or CRC (zip)
    key: Any       # folder: the name; zip: index in infolist()


@dataclass
class _Source:
    given: str
    kind: str      # "folder" | "zip"
    path: Path
    label: str     # for cache file names and messages


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)


def _hidden(parts: list[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


def _is_synthetic(source: str | Path) -> bool:
    return isinstance(source, (str, Path)) and str(source).strip() == SYNTHETIC


def _synthetic_folder() -> Path:
    root = paths.synthetic_dir()
    return root / "images" if (root / "images").is_dir() else root


def _resolve(source: str | Path, *, synthetic_n: int | None = None, render: bool = False,
             progress: Any = False) -> _Source:
    if source is None or str(source).strip() == "":
        raise DataError("No data source given. Use a folder of images, a .zip of images, "
                        "or 'synthetic' for the built-in set.")
    if _is_synthetic(source):
        root = paths.synthetic_dir()
        if render:
            from . import synth  # lazy: only needed for the synthetic source

            n = synthetic_n if synthetic_n is not None else synth.DEFAULT_N
            if not synth.is_complete(root, n):
                bar = _Progress(progress, n, "Rendering synthetic set") if progress else None
                try:
                    synth.write_synthetic(paths.ensure(root), n,
                                          progress=bar.update if bar is not None else None)
                finally:
                    if bar is not None:
                        bar.close()
        folder = _synthetic_folder()
        if not folder.is_dir():
            raise DataError(f"The synthetic set is not rendered yet (looked in {root}). "
                            "Prepare the 'synthetic' source once (e.g. train or import it) to "
                            "render it.")
        return _Source(str(source), "folder", folder.resolve(), SYNTHETIC)
    p = Path(source).expanduser()
    if not p.exists():
        raise DataError(f"Data source not found: {p}. Point to a folder of images (searched "
                        f"recursively for {', '.join(IMAGE_EXTS)}), a .zip of images, or use "
                        "'synthetic' for the built-in set.")
    p = p.resolve()
    if p.is_dir():
        return _Source(str(source), "folder", p, p.name or "root")
    if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
        return _Source(str(source), "zip", p, p.stem)  # validated when listed (_list_zip)
    raise DataError(f"{p} is a file, not a folder or a .zip archive. Point to the folder that "
                    "holds the images, or to a .zip of them.")


def _list_folder(root: Path) -> tuple[list[_Entry], int]:
    entries: list[_Entry] = []
    other = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _hidden([d]))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fn in sorted(filenames):
            if _hidden([fn]):
                continue
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}"
            if not _is_image_name(fn):
                other += 1
                continue
            try:
                st = os.stat(os.path.join(dirpath, fn))
            except OSError:
                st = None
            if st is not None and not stat.S_ISREG(st.st_mode):
                continue
            entries.append(_Entry(rel, st.st_size if st else 0, st.st_mtime_ns if st else 0, rel))
    entries.sort(key=lambda e: e.name)
    return entries, other


def _list_zip(path: Path) -> tuple[list[_Entry], int]:
    entries: list[_Entry] = []
    other = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable zip archive ({e}). Re-create or re-download "
                        "it, or unpack it and point to the folder instead.") from None
    for i, info in enumerate(infos):
        if info.is_dir():
            continue
        parts = info.filename.split("/")
        if _hidden(parts):
            continue
        if not _is_image_name(info.filename):
            other += 1
            continue
        entries.append(_Entry(info.filename, info.file_size, info.CRC, i))
    entries.sort(key=lambda e: (e.name, e.key))
    return entries, other


def _list(src: _Source) -> tuple[list[_Entry], int]:
    return _list_folder(src.path) if src.kind == "folder" else _list_zip(src.path)


def _fingerprint_entries(kind: str, entries: list[_Entry]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{kind}\n".encode())
    for e in entries:
        h.update(f"{e.name}\0{e.size}\0{e.stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def fingerprint(source: str | Path) -> str:
    """Fingerprint of a source's listing: folders hash relative names, sizes and mtimes; zips
    member names, sizes and CRCs (no image data is read). ``"synthetic"`` must be rendered."""
    src = _resolve(source)
    entries, _ = _list(src)
    return _fingerprint_entries(src.kind, entries)


def describe_source(source: str | Path) -> str:
    """One line for people: "synthetic set (10,000 faces)", "folder /x (123 files)", ..."""
    if _is_synthetic(source):
        folder = _synthetic_folder()
        n = len(_list_folder(folder)[0]) if folder.is_dir() else 0
        if n:
            return f"synthetic set ({n:,} faces)"
        try:
            from . import synth

            default = synth.DEFAULT_N
        except Exception:  # noqa: BLE001  # pragma: no cover - synth is part of the package
            default = 10_000
        return f"synthetic set ({default:,} faces, rendered on first use)"
    src = _resolve(source)
    entries, _ = _list(src)
    if src.kind == "zip":
        return f"zip {src.path} ({len(entries):,} members)"
    return f"folder {src.path} ({len(entries):,} files)"


def iter_source_files(source: str | Path) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    """(relative name, size in bytes, read) for every image-extension file, sorted by name.
    ``read()`` returns the file's bytes; for a zip it reads through one shared ZipFile."""
    src = _resolve(source)
    entries, _ = _list(src)
    if src.kind == "folder":
        root = src.path
        for e in entries:
            yield e.name, e.size, (lambda n=e.name: (root / n).read_bytes())
    else:
        zf = zipfile.ZipFile(src.path)  # kept open by the closures; closed when collected
        infos = zf.infolist()
        for e in entries:
            yield e.name, e.size, (lambda i=e.key: zf.read(infos[i]))


# --------------------------------------------------------------------------- batch decoding

_WORKER: _Decoder | None = None


class _Decoder:
    """Reads and decodes entries of one source; one per worker process (or in-process)."""

    def __init__(self, kind: str, path: str, size: int):
        self.kind, self.size = kind, size
        self.root = Path(path)
        self.zf = zipfile.ZipFile(path) if kind == "zip" else None
        self.infos = self.zf.infolist() if self.zf else None

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()

    def read(self, key: Any) -> bytes:
        if self.zf is not None:
            return self.zf.read(self.infos[key])
        return (self.root / key).read_bytes()

    def one(self, key: Any, name: str) -> tuple[str, bytes | None, bytes | None, list[str]]:
        """-> (status "ok" or a reason, row bytes, blake2b digest of the file, tags)."""
        try:
            data = self.read(key)
        except zipfile.BadZipFile:   # bad CRC / broken local header: the data is damaged
            return CORRUPT, None, None, []
        except Exception:  # noqa: BLE001  # permissions, vanished file, encrypted member, ...
            return UNREADABLE, None, None, []
        if not data:
            return EMPTY, None, None, []
        digest = hashlib.blake2b(data, digest_size=16).digest()
        try:
            row, tags = _decode_row(data, name, self.size)
        except ImageRejected as e:
            return e.reason, None, digest, []
        except Exception:  # noqa: BLE001  # anything a broken file can provoke in a decoder
            return CORRUPT, None, digest, []
        return "ok", row, digest, tags

    def chunk(self, items: list[tuple[Any, str]]) -> list[tuple]:
        return [self.one(key, name) for key, name in items]


def _init_worker(kind: str, path: str, size: int, max_pixels: int | None) -> None:
    global _WORKER
    Image.MAX_IMAGE_PIXELS = max_pixels
    _WORKER = _Decoder(kind, path, size)


def _work(items: list[tuple[Any, str]]) -> list[tuple]:
    assert _WORKER is not None
    return _WORKER.chunk(items)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _pool_context():
    """fork where available: workers only read files and use Pillow/numpy (no torch, no
    threads), and fork does not re-import the caller's ``__main__`` as spawn/forkserver do
    (a script calling prepare() without an ``if __name__ == "__main__"`` guard would otherwise
    start workers forever). Elsewhere the platform default."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else None)


def _decode_chunks(src: _Source, entries: list[_Entry], size: int,
                   workers: int | None) -> Iterator[list[tuple]]:
    """Results in source order, chunk by chunk: a process Pool for large sources."""
    tasks = [[(e.key, e.name) for e in entries[i:i + CHUNK]] for i in range(0, len(entries), CHUNK)]
    n_workers = _cpu_count() if workers is None else max(1, int(workers))
    n_workers = min(n_workers, len(tasks))
    if n_workers > 1 and len(entries) >= POOL_MIN:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded process
            pool = _pool_context().Pool(n_workers, initializer=_init_worker,
                                        initargs=(src.kind, str(src.path), size, Image.MAX_IMAGE_PIXELS))
        try:
            yield from pool.imap(_work, tasks)
            pool.close()
        except BaseException:  # includes GeneratorExit when the consumer stops early
            pool.terminate()
            raise
        finally:
            pool.join()
        return
    dec = _Decoder(src.kind, str(src.path), size)
    try:
        for t in tasks:
            yield dec.chunk(t)
    finally:
        dec.close()


# --------------------------------------------------------------------------- splits


def split_sizes(n: int, val: int = 2000, test: int = 2000) -> tuple[int, int]:
    """Held-out sizes for ``n`` images: ``min(val, n // 10)`` each, 0 when ``n < 10``."""
    if val < 0 or test < 0:
        raise DataError(f"Validation and test sizes must be >= 0 (got {val}, {test}).")
    if n < 10:
        return 0, 0
    return min(val, n // 10), min(test, n // 10)


def make_splits(names: list[str], val: int = 2000, test: int = 2000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic train/val/test split by name and seed (sorted int64 indices)."""
    n = len(names)
    nv, nt = split_sizes(n, val, test)
    salt = f"{int(seed)}\0".encode()
    keys = [hashlib.blake2b(salt + nm.encode("utf-8", "surrogateescape"), digest_size=8).digest()
            for nm in names]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    v = np.sort(np.asarray(order[:nv], dtype=np.int64))
    t = np.sort(np.asarray(order[nv:nv + nt], dtype=np.int64))
    mask = np.ones(n, dtype=bool)
    mask[v] = False
    mask[t] = False
    return {"train": np.flatnonzero(mask).astype(np.int64), "val": v, "test": t}


# --------------------------------------------------------------------------- cache files


def _cache_root(cache_root: Path | str | None) -> Path:
    return paths.ensure(Path(cache_root) if cache_root is not None else paths.cache_dir())


def _cache_stem(src: _Source, size: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", src.label).strip("._") or "data"
    h = hashlib.blake2b(str(src.path).encode("utf-8", "surrogateescape"), digest_size=5).hexdigest()
    return f"{slug[:40]}-{h}-{size}px"


def _npy_header(shape: tuple[int, ...]) -> bytes:
    dims = ", ".join(map(str, shape))
    d = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({dims}), }}"
    body_len = _HEADER_LEN - 10
    if len(d) + 1 > body_len:  # pragma: no cover - needs > 10^80 images
        raise ValueError("shape too large for the fixed header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body_len) + (d.ljust(body_len - 1) + "\n").encode("latin1")


def _sampled_checksum(path: Path) -> str:
    """blake2b of the file size and sampled chunks (whole file up to 4 MiB; otherwise
    first/middle/last MiB and 32 evenly spaced 64 KiB blocks)."""
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= 4 * _MiB:
            h.update(f.read())
        else:
            spans = [(0, _MiB), (size // 2 - _MiB // 2, _MiB), (size - _MiB, _MiB)]
            step = size // 33
            spans += [(step * k, 64 * 1024) for k in range(1, 33)]
            for off, n in spans:
                f.seek(off)
                h.update(f.read(n))
    return h.hexdigest()


def _open_cache(npy: Path, meta_path: Path, fp: str, size: int) -> tuple[dict | None, np.ndarray | None, str | None]:
    """-> (meta, images, None) when valid, else (None, None, why) (why None: no cache yet)."""
    if not meta_path.exists() and not npy.exists():
        return None, None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None, "meta file missing (interrupted build?)"
    except (OSError, ValueError) as e:
        return None, None, f"meta file unreadable ({e})"
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        return None, None, "meta file not recognised"
    if meta.get("version") != CACHE_VERSION:
        return None, None, "cache from another version of the preprocessing"
    if meta.get("fingerprint") != fp:
        return None, None, "source changed"
    if meta.get("size") != size:
        return None, None, "size mismatch"
    if meta.get("max_image_pixels") != Image.MAX_IMAGE_PIXELS:
        return None, None, "decompression-bomb limit changed"
    try:
        count = int(meta["count"])
        if len(meta["names"]) != count:
            return None, None, "meta names do not match the count"
        if npy.stat().st_size != meta["npy_bytes"]:
            return None, None, "cache file has the wrong size (truncated?)"
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
        if images.dtype != np.uint8 or images.shape != (count, 3, size, size):
            return None, None, f"cache array has the wrong shape {images.shape}"
        if _sampled_checksum(npy) != meta["checksum"]["value"]:
            return None, None, "cache checksum mismatch (damaged file)"
    except FileNotFoundError:
        return None, None, "cache file missing"
    except Exception as e:  # noqa: BLE001
        return None, None, f"cache file unreadable ({type(e).__name__}: {e})"
    return meta, images, None


def _splits_from_meta(meta: dict, names: list[str], val: int, test: int, seed: int) -> dict[str, np.ndarray] | None:
    s = meta.get("splits") or {}
    if s.get("val_size") != val or s.get("test_size") != test or s.get("seed") != seed:
        return None
    n = len(names)
    v = np.asarray(s.get("val", []), dtype=np.int64)
    t = np.asarray(s.get("test", []), dtype=np.int64)
    if (v.size and (v.min() < 0 or v.max() >= n)) or (t.size and (t.min() < 0 or t.max() >= n)):
        return None
    mask = np.ones(n, dtype=bool)
    mask[v] = False
    mask[t] = False
    return {"train": np.flatnonzero(mask).astype(np.int64), "val": np.sort(v), "test": np.sort(t)}


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
        raise DataError(f"Image size must be between {MIN_SIDE} and {MAX_SIZE} px "
                        f"(64 by default, 96 supported); got {size!r}.")
    return s


class _Progress:
    """A tqdm bar (progress=True) and/or a progress(done, total) callable."""

    def __init__(self, progress: Any, total: int, desc: str):
        self.cb = progress if callable(progress) else None
        self.bar = None
        self.total = total
        self.done = 0
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)
        if self.cb:
            self.cb(0, total)

    def update(self, done: int, total: int | None = None) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done
        if self.cb:
            self.cb(done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def prepare(source: str | Path, size: int = 64, *, val: int = 2000, test: int = 2000,
            split_seed: int = 0, progress: bool | Callable[[int, int], Any] = False,
            synthetic_n: int | None = None, cache_root: Path | str | None = None,
            workers: int | None = None) -> PreparedData:
    """Decode a source once into a memory-mapped uint8 cache (N x 3 x size x size) and split it.

    ``progress``: True for a tqdm bar, or a ``progress(done, total)`` callable.
    ``workers``: decoding processes for large sources (default: the usable CPU cores).
    Raises DataError for a missing path, a folder/zip without images, a broken zip, or when
    no image is usable."""
    size = _check_size(size)
    split_sizes(0, val, test)  # validates val/test
    src = _resolve(source, synthetic_n=synthetic_n, render=True, progress=progress)
    entries, other = _list(src)
    where = f"{'zip' if src.kind == 'zip' else 'folder'} {src.path}"
    if not entries:
        extra = f" ({other:,} other files ignored)" if other else ""
        raise DataError(f"No images in {where}: no file ending in {', '.join(IMAGE_EXTS)} was found"
                        f"{' (searched recursively)' if src.kind == 'folder' else ''}{extra}. "
                        "Put the images there, or point to the folder or zip that holds them.")
    fp = _fingerprint_entries(src.kind, entries)
    root = _cache_root(cache_root)
    stem = _cache_stem(src, size)
    npy, meta_path = root / f"{stem}.npy", root / f"{stem}.json"

    meta, images, why = _open_cache(npy, meta_path, fp, size)
    if meta is not None and images is not None:
        names = [str(n) for n in meta["names"]]
        splits = _splits_from_meta(meta, names, val, test, split_seed)
        if splits is None:
            splits = make_splits(names, val, test, split_seed)
            meta["splits"] = _splits_meta(splits, val, test, split_seed)
            try:
                write_json_atomic(meta_path, meta)
            except OSError:
                pass  # a read-only cache still works; the split is recomputed next time
        return PreparedData(str(source), size, images, names, splits,
                            DataReport.from_dict(meta["report"]), fp, npy, True, 0)

    meta_path.unlink(missing_ok=True)  # from here on the old cache can never look valid
    report = DataReport(total=len(entries), ignored_other=other)
    names: list[str] = []
    seen: dict[bytes, str] = {}
    decoded = 0
    tmp = root / f".{stem}.npy.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    bar = _Progress(progress, len(entries), f"Decoding {src.label}")
    try:
        with open(tmp, "wb") as f:
            f.write(_npy_header((0, 3, size, size)))
            pos = 0
            for chunk in _decode_chunks(src, entries, size, workers):
                for (status, row, digest, tags), e in zip(chunk, entries[pos:pos + len(chunk)], strict=True):
                    if status != "ok":
                        report.skipped.setdefault(status, []).append(e.name)
                    elif digest in seen:
                        report.duplicates.append((seen[digest], e.name))
                    else:
                        seen[digest] = e.name
                        names.append(e.name)
                        f.write(row)
                        for t in tags:
                            report.converted[t] = report.converted.get(t, 0) + 1
                pos += len(chunk)
                decoded += len(chunk)
                bar.update(pos)
            report.usable = len(names)
            if not names:
                raise DataError(f"None of the {len(entries):,} image files in {where} could be "
                                f"used.\n{report.summary()}\nFix or replace them, or point to "
                                "another source.")
            f.seek(0)
            f.write(_npy_header((len(names), 3, size, size)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, npy)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)

    splits = make_splits(names, val, test, split_seed)
    meta = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "source": str(source),
        "source_path": str(src.path),
        "kind": src.kind,
        "fingerprint": fp,
        "size": size,
        "count": len(names),
        "shape": [len(names), 3, size, size],
        "npy_bytes": npy.stat().st_size,
        "checksum": {"algo": "blake2b-sampled-v1", "value": _sampled_checksum(npy)},
        "max_image_pixels": Image.MAX_IMAGE_PIXELS,
        "created": time.time(),
        "names": names,
        "report": report.to_dict(),
        "splits": _splits_meta(splits, val, test, split_seed),
    }
    write_json_atomic(meta_path, meta)
    images = np.load(npy, mmap_mode="r", allow_pickle=False)
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


# --------------------------------------------------------------------------- cache housekeeping


def _is_tmp(p: Path) -> bool:
    return p.name.startswith(".") and ".tmp-" in p.name


def cache_usage(cache_root: Path | str | None = None) -> list[dict]:
    """One entry per cache: source, size, count, bytes (npy + meta), path, meta_path,
    fingerprint, created, complete. Leftovers (npy without meta, temporary files of an
    interrupted build) are listed with ``complete=False``."""
    root = Path(cache_root) if cache_root is not None else paths.cache_dir()
    if not root.is_dir():
        return []
    out: list[dict] = []
    claimed: set[Path] = set()
    for mp_ in sorted(root.glob("*.json")):
        try:
            meta = json.loads(mp_.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            continue
        npy = mp_.with_suffix(".npy")
        nbytes = mp_.stat().st_size + (npy.stat().st_size if npy.exists() else 0)
        claimed.update({mp_, npy})
        out.append({"source": meta.get("source", "?"), "source_path": meta.get("source_path"),
                    "size": meta.get("size"), "count": meta.get("count"), "bytes": nbytes,
                    "path": npy, "meta_path": mp_, "fingerprint": meta.get("fingerprint"),
                    "created": meta.get("created"), "complete": npy.exists()})
    for p in sorted(root.iterdir()):
        if p in claimed or not p.is_file():
            continue
        if p.suffix == ".npy" or _is_tmp(p):
            out.append({"source": "(incomplete)", "source_path": None, "size": None,
                        "count": None, "bytes": p.stat().st_size, "path": p, "meta_path": None,
                        "fingerprint": None, "created": p.stat().st_mtime, "complete": False})
    return out


def clear_caches(cache_root: Path | str | None = None) -> int:
    """Delete every cache listed by ``cache_usage`` (only files this module writes);
    returns the bytes freed."""
    freed = 0
    for entry in cache_usage(cache_root):
        for p in (entry["path"], entry["meta_path"]):
            if p is None:
                continue
            try:
                n = p.stat().st_size
                p.unlink()
                freed += n
            except FileNotFoundError:
                pass
    return freed
