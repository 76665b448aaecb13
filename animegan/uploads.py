"""What a person brings to the dashboard: a zip of images (a data source) or a checkpoint.

    from animegan.uploads import save_upload, list_uploads, UploadError
    kept = save_upload(uploaded_file)   # the zip itself, in the home's uploads/, named after the file
    choices = list_uploads()            # every upload, newest first

An uploaded zip is kept as the zip it is and read in place, like a zip given to ``prepare`` by
path: through ``data.zipread``, the one zip reader, with its limits (member count, total size
of the images, each member's size and compression ratio, checked before anything is read;
every read bounded). Nothing is unpacked, so nothing can land outside the uploads folder. A
member the reader refuses (a ``..`` or absolute name, a link, a nested archive, a zip bomb,
encrypted, damaged...) is never read; ``data.prepare``'s report names it with its reason, as it
does for any zip.

``save_upload`` checks the zip before it keeps it, and refuses it (``UploadError``, nothing
kept, an earlier upload of the same name left as it was) when it is not a zip, has too many
entries, would unpack to too many bytes, holds no image file, or holds no image that decodes.
The upload is written to a temporary file beside its final name and renamed into place, so a
failure or a kill never leaves half an upload.

Uploads of earlier versions were extracted into folders (holding ``LEGACY_REPORT``): they stay
sources, listed with the zips.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from . import paths
from .config import AnimeganError
from .data import zipread
from .data.sources import IMAGE_EXTS, MemberReader, zip_entries

LEGACY_REPORT = ".animegan-upload.json"   # in a folder an earlier version extracted an upload to
STALE_S = 3600                            # a temporary file this old is left over from a killed upload
TEMP_SUFFIXES = (".uploading", ".extracting", ".old")   # ours, and those of earlier versions' extraction
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError)


class UploadError(AnimeganError):
    """An upload that cannot be used; one user-facing message that says what to do."""


def safe_name(name: str) -> str:
    """An upload's file name as one safe path component.

    Only the last component of a path (either separator) is kept; runs of anything but
    letters (any script), digits, '.', '_' and '-' become '-'; no leading dot (nothing hidden),
    no '..', at most 100 bytes (UTF-8), Windows device names prefixed with '_'; never empty
    ("upload")."""
    s = unicodedata.normalize("NFC", str(name or "")).replace("\\", "/").split("/")[-1]
    s = re.sub(r"[^\w.-]+", "-", s)
    s = re.sub(r"-*\.[-.]*", ".", s).strip(".-_")    # no '..', no '-.' / '.-' leftovers
    while len(s.encode("utf-8")) > 100:
        s = s[:-1]
    s = s.rstrip(".-_")
    if s.split(".")[0].upper() in _WINDOWS_RESERVED:
        s = "_" + s
    return s or "upload"


# --------------------------------------------------------------------------- zips of images


def save_upload(file: BinaryIO | bytes | str | Path, root: str | Path | None = None, name: str | None = None) -> Path:
    """An uploaded zip (bytes, a file object such as Streamlit's UploadedFile, or a path), checked
    and kept as ``<root>/<safe name>.zip`` (root: the home's uploads/); returns that path, a source
    for ``data.prepare``. An earlier upload of the same name is replaced only by a usable one.
    UploadError (nothing kept) otherwise."""
    root = paths.ensure(Path(root) if root else paths.uploads_dir())
    name = name or getattr(file, "name", None) or (Path(file).name if isinstance(file, (str, Path)) else "upload")
    label = Path(str(name)).name or "the upload"
    stem = safe_name(name)
    stem = stem[:-4] if stem.lower().endswith(".zip") and len(stem) > 4 else stem
    dest = root / f"{stem}.zip"
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{stem}.", suffix=".uploading")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(file, out, label)
        except OSError as e:
            raise UploadError(f"could not write {label} under {root} ({e.strerror or e}); nothing was kept") from None
        _check(tmp, label)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy(file: Any, out: BinaryIO, label: str) -> None:
    if isinstance(file, (bytes, bytearray, memoryview)):
        out.write(file)
        return
    if isinstance(file, (str, Path)):
        if not Path(file).is_file():
            raise UploadError(f"{file} not found (or not a file): upload a .zip of images")
        with open(file, "rb") as f:
            shutil.copyfileobj(f, out)
        return
    seekable = getattr(file, "seekable", None)
    if callable(seekable) and seekable():
        file.seek(0)
    shutil.copyfileobj(file, out)


def _check(path: Path, label: str) -> None:
    """UploadError unless the zip at ``path`` opens within the reader's limits and at least one
    of its images decodes (usually the first one does: cheap)."""
    from .data.decode import MIN_SIDE, ImageRejected, load_image_bytes

    try:
        zf = zipread.open_zip(path, label)
    except zipread.ZipLimitError as e:
        raise UploadError(f"{e}: split it into smaller zips") from None
    except _ZIP_ERRORS as e:
        raise UploadError(f"{label} is not a zip archive, or it is damaged ({zipread.zip_problem(e)}). Upload a "
                          f".zip of images ({', '.join(IMAGE_EXTS)}), or re-create it") from None
    with zf:
        try:
            entries, other = zip_entries(zf, label)
        except zipread.ZipLimitError as e:
            raise UploadError(f"{e}: upload a smaller zip. Nothing was kept") from None
    images = [e for e in entries if not e.refused]
    if not images:
        refused: dict[str, list[str]] = {}
        for e in entries:
            refused.setdefault(e.refused, []).append(e.name)
        lines = "".join(f"\n  refused, {reason}: {', '.join(names[:5])}" for reason, names in refused.items())
        raise UploadError(f"{label} holds no image files ({', '.join(IMAGE_EXTS)}): {other:,} other "
                          f"file{'' if other == 1 else 's'} ignored"
                          + (f"; {len(entries):,} refused" if entries else "")
                          + f". Zip the folder of images and upload that{lines}")
    reasons: dict[str, int] = {}
    with MemberReader("zip", path) as reader:
        for e in images:
            try:
                load_image_bytes(reader.read(e.key), e.name)
                return
            except zipread.MemberRefused as r:   # over a cap, damaged, encrypted...
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
            except ImageRejected as r:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
    why = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
    raise UploadError(f"{label}: none of its {len(images):,} image files can be used ({why}). Nothing was kept; "
                      f"upload a zip of working images ({', '.join(IMAGE_EXTS)}, at least {MIN_SIDE} px a side)")


def list_uploads(root: str | Path | None = None) -> list[Path]:
    """The uploads under the home's uploads/ (or ``root``), newest first: the kept zips, and the
    folders earlier versions extracted uploads to. What a killed upload left behind (older than
    STALE_S) is removed on the way."""
    root = Path(root) if root else paths.uploads_dir()
    if not root.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    now = time.time()
    for p in root.iterdir():
        try:
            if p.is_symlink():
                continue
            if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIXES):
                if now - p.stat().st_mtime > STALE_S and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                elif now - p.stat().st_mtime > STALE_S:
                    p.unlink(missing_ok=True)
                continue
            if p.is_file() and p.suffix.lower() == ".zip":
                found.append((p.stat().st_mtime, p))
            elif p.is_dir() and (p / LEGACY_REPORT).is_file():
                found.append(((p / LEGACY_REPORT).stat().st_mtime, p))
        except OSError:
            continue
    return [p for _, p in sorted(found, key=lambda t: (-t[0], t[1].name))]


# --------------------------------------------------------------------------- checkpoints


def checkpoint_upload_name(name: str) -> str:
    """A checkpoint a person brought (an upload's file name, possibly with a path) as one safe
    file name ending in .pt: `safe_name` plus the suffix.
    "../evil name.pt" -> "evil-name.pt"; "weights" -> "weights.pt"."""
    safe = safe_name(name)
    return safe if safe.lower().endswith(".pt") else safe + ".pt"


def save_checkpoint_upload(name: str, data: bytes, folder: str | Path | None = None) -> Path:
    """Write an uploaded checkpoint's bytes to `folder` (default: the home folder's uploads/) under
    `checkpoint_upload_name(name)`; returns the path. Nothing is loaded: `checkpoint.load_generator`
    validates it (weights only) afterwards."""
    dest = paths.ensure(Path(folder) if folder is not None else paths.uploads_dir()) / checkpoint_upload_name(name)
    dest.write_bytes(data)
    return dest
