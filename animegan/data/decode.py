"""Decoding and validation of one image, and the worker pool that decodes a whole source.

Every image file is read and decoded a single time, checked, converted to RGB, center-cropped
to a square and resized (LANCZOS) to the training size, as one row of uint8 ``3 x S x S``.

What cannot be used is rejected with one of ``REASONS``, never a crash: ``"empty file"``,
``"corrupt or truncated"``, ``"not an image"``, ``"too small"`` (under ``MIN_SIDE`` px on
either side), ``"too large (decompression bomb)"`` (more pixels than
``PIL.Image.MAX_IMAGE_PIXELS``, checked from the header before any pixel is decoded) and
``"unreadable"`` (the file could not be read at all: permissions, a vanished file...).
A zip member that ``zipread`` does not read (too large, compressed like a zip bomb, damaged in
the zip, encrypted, a nested archive, an unsafe path...) is rejected with its reason from
``zipread.REFUSALS``, which ``REASONS`` lists after the image reasons.
"""
from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..workers import cpu_count, pool_context
from . import zipread
from .sources import DataError, MemberReader, read_member

# The smallest side of a usable source image, in px: a rule of validation (smaller images are
# "too small"), not one of the sizes the networks draw (those are config.IMAGE_SIZES).
MIN_SIDE = 32

EMPTY = "empty file"
CORRUPT = "corrupt or truncated"
NOT_IMAGE = "not an image"
TOO_SMALL = "too small"
TOO_LARGE = "too large (decompression bomb)"
UNREADABLE = "unreadable"
REASONS = (EMPTY, CORRUPT, NOT_IMAGE, TOO_SMALL, TOO_LARGE, UNREADABLE, *zipread.REFUSALS)

CHUNK = 256                # images per worker task
POOL_MIN = 1000            # sources smaller than this are decoded in-process
_MAGIC = (b"\x89PNG", b"\xff\xd8", b"BM", b"RIFF", b"GIF8", b"II*\x00", b"MM\x00*")


class ImageRejected(DataError):
    """One image that cannot be used; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, name: str = "", detail: str = ""):
        self.reason = reason
        self.name = name
        self.detail = detail
        msg = f"{name or 'image'}: {reason}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


def reason_order(reason: str) -> tuple[int, str]:
    """Sort key: the reasons in ``REASONS`` order, unknown ones after them."""
    return (REASONS.index(reason) if reason in REASONS else len(REASONS), reason)


# --------------------------------------------------------------------------- one image


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


def _open_checked(data: bytes, name: str) -> Image.Image:
    """Open the header only and check the size before any pixel is decoded."""
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
    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise ImageRejected(TOO_LARGE, name, f"{w}x{h} = {w * h:,} pixels > {limit:,}")
    if min(w, h) < MIN_SIDE:
        raise ImageRejected(TOO_SMALL, name, f"{w}x{h}, under {MIN_SIDE} px")
    return im


def _decode(data: bytes, name: str = "", target: int | None = None) -> tuple[Image.Image, list[str]]:
    """Validate and convert one image: -> (square RGB image, conversion tags).

    With ``target`` a large JPEG may be decoded at a reduced scale (``draft``), keeping at least
    twice the target size. Raises ImageRejected."""
    im = _open_checked(data, name)
    w, h = im.size
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


def describe_member(source: str, name: str) -> str | None:
    """One line about one file of a source as it is now: "120×80 px, RGB, PNG, 4,321 bytes",
    "4,321 bytes (not readable now)" when Pillow cannot open it, None when it cannot be read."""
    try:
        data = read_member(source, name)
    except DataError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb warning: only the header is read here
            with Image.open(io.BytesIO(data)) as im:
                return f"{im.width}×{im.height} px, {im.mode}, {im.format}, {len(data):,} bytes"
    except Exception:  # noqa: BLE001  # whatever a damaged or foreign file provokes
        return f"{len(data):,} bytes (not readable now)"


def decode_row(data: bytes, name: str, size: int) -> tuple[bytes, list[str]]:
    """One image -> (uint8 ``3 x size x size`` row bytes, conversion tags). Raises ImageRejected."""
    im, tags = _decode(data, name, target=size)
    side = im.size[0]
    if side != size:
        if side < size:
            tags.append("upscaled")
        gap = 3.0 if side >= 3 * size else None
        im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=gap)
    arr = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).tobytes(), tags


# --------------------------------------------------------------------------- a whole source

_WORKER: _Decoder | None = None


class _Decoder:
    """Reads and decodes entries of one source; one per worker process (or in-process)."""

    def __init__(self, kind: str, path: str, size: int):
        self.size = size
        self.reader = MemberReader(kind, path)

    def close(self) -> None:
        self.reader.close()

    def one(self, key: Any, name: str) -> tuple[str, bytes | None, bytes | None, list[str]]:
        """-> (status "ok" or a reason, row bytes, blake2b digest of the file, tags)."""
        try:
            data = self.reader.read(key)
        except zipread.MemberRefused as e:   # too large, a zip bomb, damaged in the zip, encrypted...
            return e.reason, None, None, []
        except Exception:  # noqa: BLE001  # permissions, vanished file, ...
            return UNREADABLE, None, None, []
        if not data:
            return EMPTY, None, None, []
        digest = hashlib.blake2b(data, digest_size=16).digest()
        try:
            row, tags = decode_row(data, name, self.size)
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


def decode_chunks(kind: str, path: str, items: list[tuple[Any, str]], size: int,
                  workers: int | None) -> Iterator[list[tuple]]:
    """Decode ``items`` ((key, name) of entries) of one source: results of ``_Decoder.one`` in
    order, chunk by chunk (``CHUNK`` items); a process pool for large sources (``POOL_MIN``)."""
    tasks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    n_workers = cpu_count() if workers is None else max(1, int(workers))
    n_workers = min(n_workers, len(tasks))
    if n_workers > 1 and len(items) >= POOL_MIN:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded process
            pool = pool_context().Pool(n_workers, initializer=_init_worker,
                                       initargs=(kind, path, size, Image.MAX_IMAGE_PIXELS))
        try:
            yield from pool.imap(_work, tasks)
            pool.close()
        except BaseException:  # includes GeneratorExit when the consumer stops early
            pool.terminate()
            raise
        finally:
            pool.join()
        return
    dec = _Decoder(kind, path, size)
    try:
        for t in tasks:
            yield dec.chunk(t)
    finally:
        dec.close()
