"""The decoded cache: one uint8 ``N x 3 x S x S`` ``.npy`` per source and size, opened memory-mapped.

One cache slot per source content and size: ``<cache_root>/<kind>-<fingerprint>-<S>px.npy`` plus a
``.json`` meta file next to it (fingerprint, size, count, names, report, splits and a checksum). The
fingerprint is the source's listing (a zip's member names, sizes and CRCs; a folder's names, sizes
and mtimes), so the same zip at two paths shares one slot: decoded and stored once.
The cache is used only when the meta's fingerprint of the source (see ``sources``) matches,
and the ``.npy`` passes a cheap integrity check: its byte size and array shape match the meta,
and a blake2b of sampled chunks matches. For files up to 4 MiB the whole file is hashed; for
larger ones the first, middle and last MiB plus 32 evenly spaced 64 KiB blocks (hashing all of
a 400 MB cache on every open would cost seconds). Anything else (changed source, truncated,
garbage, wrong shape, wrong checksum, missing meta) rebuilds it. Files are written under a
temporary name, fsynced and moved in place with ``os.replace``; the meta is removed before a
rebuild and written last, so a killed build never leaves a cache that looks valid.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import paths
from ..rundir import write_json_atomic
from .sources import DataError, Source, fingerprint_entries, list_entries, resolve

CACHE_FORMAT = "animegan-data-cache"
CACHE_VERSION = 1          # bump when decoding/preprocessing changes: old caches are rebuilt
_HEADER_LEN = 128          # fixed .npy header size (v1.0, 64-byte aligned)
_MiB = 1 << 20


def cache_files(src: Source, size: int, cache_root: Path | str | None = None,
                fingerprint: str | None = None) -> tuple[Path, Path]:
    """(the .npy, its .json meta) of the cache slot of a source's content at a size (nothing is
    created). ``fingerprint``: the source's, where the caller has listed it already."""
    root = Path(cache_root) if cache_root is not None else paths.cache_dir()
    if fingerprint is None:
        entries, _ = list_entries(src)
        fingerprint = fingerprint_entries(src.kind, entries)
    kind = re.sub(r"[^a-z]+", "", str(src.kind)) or "data"
    stem = f"{kind}-{fingerprint[:16]}-{size}px"
    return root / f"{stem}.npy", root / f"{stem}.json"


def replaced_slots(src: Source, size: int, fingerprint: str, cache_root: Path | str | None = None) -> list[Path]:
    """Meta files of caches made from this source path at this size before its content changed
    (another fingerprint): what a rebuild replaces."""
    root = Path(cache_root) if cache_root is not None else paths.cache_dir()
    out = []
    for entry in cache_usage(root):
        if (entry["meta_path"] is not None and entry["source_path"] == str(src.path) and entry["size"] == size
                and entry["fingerprint"] != fingerprint):
            out.append(entry["meta_path"])
    return out


def remove_slot(meta_path: Path) -> None:
    """Delete one cache (its meta first, so a half-removed cache never looks valid)."""
    meta_path.unlink(missing_ok=True)
    meta_path.with_suffix(".npy").unlink(missing_ok=True)


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


def _meta_problem(meta: Any, fp: str, size: int) -> str | None:
    """Why a meta file does not describe this source at this size (None: it does)."""
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        return "meta file not recognised"
    if meta.get("version") != CACHE_VERSION:
        return "cache from another version of the preprocessing"
    if meta.get("fingerprint") != fp:
        return "source changed"
    if meta.get("size") != size:
        return "size mismatch"
    if meta.get("max_image_pixels") != Image.MAX_IMAGE_PIXELS:
        return "decompression-bomb limit changed"
    return None


def open_cache(npy: Path, meta_path: Path, fp: str, size: int) -> tuple[dict | None, np.ndarray | None, str | None]:
    """-> (meta, images, None) when valid, else (None, None, why) (why None: no cache yet)."""
    if not meta_path.exists() and not npy.exists():
        return None, None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None, "meta file missing (interrupted build?)"
    except (OSError, ValueError) as e:
        return None, None, f"meta file unreadable ({e})"
    why = _meta_problem(meta, fp, size)
    if why is not None:
        return None, None, why
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


def find_cache(source: str | Path, size: int,
               cache_root: Path | str | None = None) -> tuple[np.ndarray, dict] | None:
    """The valid cache of a source at a size, without building anything: (uint8 memmap
    ``N x 3 x size x size``, its meta dict), or None when there is none (never prepared,
    source changed, damaged cache, or a source that cannot be listed now). Lists the source
    (no image is read) and checks the cache as ``prepare`` does; renders nothing."""
    try:
        src = resolve(source)
        entries, _ = list_entries(src)
    except DataError:
        return None
    if not entries:
        return None
    fp = fingerprint_entries(src.kind, entries)
    npy, meta_path = cache_files(src, size, cache_root, fingerprint=fp)
    meta, images, _ = open_cache(npy, meta_path, fp, size)
    return (images, meta) if meta is not None and images is not None else None


class CacheWriter:
    """Writes a new cache file row by row under a temporary name; ``commit()`` writes the final
    header, fsyncs and moves it in place. The meta file is removed first, so from then on the
    old cache can never look valid; leaving the ``with`` block without ``commit()`` removes
    the temporary file."""

    def __init__(self, npy: Path, meta_path: Path, size: int):
        paths.ensure(npy.parent)
        meta_path.unlink(missing_ok=True)
        self.npy, self.size, self.count = npy, size, 0
        self.tmp = npy.parent / f".{npy.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        self.f = open(self.tmp, "wb")
        self.f.write(_npy_header((0, 3, size, size)))

    def add(self, row: bytes) -> None:
        self.f.write(row)
        self.count += 1

    def commit(self) -> None:
        self.f.seek(0)
        self.f.write(_npy_header((self.count, 3, self.size, self.size)))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.npy)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def write_meta(meta_path: Path, npy: Path, *, source: str, src: Source, fp: str, size: int,
               names: list[str], report: dict, splits: dict) -> None:
    """Write the meta file of a committed cache (last: it makes the cache valid)."""
    write_json_atomic(meta_path, {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "source": source,
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
        "report": report,
        "splits": splits,
    })


# --------------------------------------------------------------------------- housekeeping


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
