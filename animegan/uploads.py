"""Uploaded zips of images, extracted safely into a folder that `animegan.data.prepare` reads.

    from animegan.uploads import extract_upload, list_extracted, read_report, UploadError
    dest = extract_upload(uploaded_file)  # into the home's uploads/, named after the file; checked
    report = read_report(dest)          # what was extracted, ignored and refused, and why
    choices = list_extracted()          # every usable upload, newest first

(`extract_zip(data, dest)` is the same extraction into any folder.)

An upload is untrusted input. It is opened, sorted and read by ``data.zipread``, the one zip
reader (a zip given to ``prepare`` by path goes through it too), with its limits
(``MAX_MEMBERS``, ``MAX_TOTAL_BYTES``, ``MAX_MEMBER_BYTES``, ``MAX_RATIO``: the same constants,
re-exported here). The rules:

* nothing is ever written outside ``dest``: backslashes count as separators, drive letters
  (``C:``) and leading ``/`` are dropped (the member lands inside ``dest``), a member with a
  ``..`` component is refused (reported as "unsafe path"), symlinks and other special files
  (from the Unix mode in ``external_attr``) are never created, and files are opened with
  ``O_EXCL`` in folders this function made itself;
* the member count and the total uncompressed size of what would be extracted are checked
  against ``max_members`` / ``max_total`` from the central directory before anything is
  written (the archive is refused as a whole), and the total again while streaming;
* a member that cannot be extracted safely is not extracted and is reported with its reason,
  and the rest is extracted: over ``MAX_MEMBER_BYTES`` or inflating more than ``MAX_RATIO``
  times (a zip bomb; checked from the directory before reading, and again while streaming:
  the bytes actually read are counted, so a header that lies about a size gets no further
  than the caps), encrypted, an unsupported compression, damaged data;
* only files with an image extension (``data.IMAGE_EXTS``) are extracted; nested archives
  (.zip, .tar, .gz, .7z, .rar, ...) are not unpacked (reported), other files are counted and
  ignored, hidden files and ``__MACOSX`` (which ``prepare`` would ignore anyway) are dropped;
* extraction goes into a temporary folder next to ``dest`` that is renamed at the end: a
  failure (an ``UploadError``, a full disk, a kill) leaves no half-extracted ``dest``.
  An existing ``dest`` is replaced only when it is empty or an earlier upload (it holds
  ``REPORT_NAME``); any other existing path is refused, so a wrong ``dest`` never deletes
  someone's folder.

Images are only copied here; decoding and validation (empty, truncated, too small, bombs...)
happen in ``data.prepare`` exactly as for any other source; ``extract_upload`` only also refuses
an archive none of whose images decodes (before it replaces anything), so a rejected upload
never appears among the extracted ones; ``list_extracted`` sweeps what a killed extraction left.
The report of the extraction is kept in ``dest/REPORT_NAME`` (a hidden file: ``prepare``
ignores it) and read by ``read_report``.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import paths
from .config import AnimeganError
from .data import zipread
from .data.sources import IMAGE_EXTS, is_hidden, is_image_name
from .data.zipread import (  # the one set of limits and refusal reasons, re-exported
    DAMAGED,
    ENCRYPTED,
    FOLDER,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_TOTAL_BYTES,
    MEMBER_TOO_LARGE,
    NESTED,
    NESTED_EXTS,
    RATIO_MIN_BYTES,
    SPECIAL,
    SYMLINK,
    TOO_COMPRESSED,
    UNSAFE,
    UNSUPPORTED,
)

__all__ = ["MAX_MEMBERS", "MAX_MEMBER_BYTES", "MAX_RATIO", "MAX_TOTAL_BYTES", "NESTED_EXTS", "RATIO_MIN_BYTES",
           "REPORT_NAME", "ExtractReport", "UploadError", "extract_upload", "extract_zip", "list_extracted",
           "read_report", "safe_name",
           # reasons a member is not extracted (ExtractReport.skipped keys)
           "BAD_NAME", "DAMAGED", "DUPLICATE", "ENCRYPTED", "FOLDER", "MEMBER_TOO_LARGE", "NESTED", "SPECIAL",
           "SYMLINK", "TOO_COMPRESSED", "UNSAFE", "UNSUPPORTED"]

DISK_MARGIN = 64 << 20             # free space kept on the disk after extraction
REPORT_NAME = ".animegan-upload.json"
STALE_S = 3600                     # a temporary folder this old is left over from a killed extraction
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}

# Reasons a member was not extracted (keys of ExtractReport.skipped): those of the zip reader
# (UNSAFE, SYMLINK, SPECIAL, FOLDER, NESTED, ENCRYPTED, UNSUPPORTED, DAMAGED, MEMBER_TOO_LARGE,
# TOO_COMPRESSED, imported above), and two of extraction itself:
DUPLICATE = "duplicate name"
BAD_NAME = "name not usable here"


class UploadError(AnimeganError):
    """An upload that cannot be used; one user-facing message that says what to do."""


@dataclass
class ExtractReport:
    """What `extract_zip` did with each member of the archive."""

    source: str = ""
    members: int = 0                    # entries in the central directory (folders included)
    extracted: int = 0                  # image files written
    bytes: int = 0                      # bytes written
    ignored_other: int = 0              # files without an image extension (not extracted)
    hidden: int = 0                     # hidden files, __MACOSX (not extracted)
    normalised: int = 0                 # names rewritten to stay inside dest (absolute, drive letter, backslashes)
    skipped: dict[str, list[str]] = field(default_factory=dict)   # reason -> member names

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def skip(self, reason: str, name: str) -> None:
        self.skipped.setdefault(reason, []).append(name)

    def summary(self, max_names: int = 5) -> str:
        lines = [f"{self.source}: {self.extracted:,} image files extracted ({self.bytes / 1e6:.1f} MB) "
                 f"from {self.members:,} entries"]
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:max_names]) + (f", ... (+{len(names) - max_names:,} more)" if len(names) > max_names else "")
            lines.append(f"  not extracted, {reason}: {len(names):,} ({shown})")
        if self.ignored_other:
            lines.append(f"  ignored {self.ignored_other:,} files without an image extension ({', '.join(IMAGE_EXTS)})")
        if self.hidden:
            lines.append(f"  ignored {self.hidden:,} hidden files (names starting with '.', __MACOSX)")
        if self.normalised:
            lines.append(f"  {self.normalised:,} names made relative (absolute paths, drive letters or backslashes)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "members": self.members, "extracted": self.extracted, "bytes": self.bytes,
                "ignored_other": self.ignored_other, "hidden": self.hidden, "normalised": self.normalised,
                "skipped": {k: list(v) for k, v in self.skipped.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExtractReport:
        return cls(source=str(d.get("source", "")), members=int(d.get("members", 0)), extracted=int(d.get("extracted", 0)),
                   bytes=int(d.get("bytes", 0)), ignored_other=int(d.get("ignored_other", 0)), hidden=int(d.get("hidden", 0)),
                   normalised=int(d.get("normalised", 0)),
                   skipped={str(k): [str(n) for n in v] for k, v in (d.get("skipped") or {}).items()})


# --------------------------------------------------------------------------- names


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


# --------------------------------------------------------------------------- extraction


def _open_source(data: bytes | bytearray | BinaryIO | str | Path) -> tuple[Any, str, bool]:
    """-> (something zipfile can open, a label for messages, whether we opened it ourselves)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data)), "the upload", True
    if isinstance(data, (str, Path)):
        p = Path(data)
        if not p.is_file():
            raise UploadError(f"{p} not found (or not a file): upload a .zip of images")
        return p, p.name, False
    label = _label(getattr(data, "name", None))
    seekable = getattr(data, "seekable", None)
    if callable(seekable) and seekable():
        return data, label, False
    buf = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # a non-seekable stream: zipfile needs to seek
    shutil.copyfileobj(data, buf)
    buf.seek(0)
    return buf, label, True


def _label(name: Any) -> str:
    return Path(str(name)).name if name else "the upload"


def _prepare_dest(dest: Path) -> None:
    """Refuse a dest that exists and is not ours to replace."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UploadError(f"{dest} exists and is not a folder: pick another name for the upload")
    if dest.is_dir() and not (dest / REPORT_NAME).exists() and any(dest.iterdir()):
        raise UploadError(f"{dest} already exists and is not an earlier upload: pick another name for the upload "
                          f"(nothing was replaced)")


@dataclass(frozen=True)
class _Limits:
    """The zip reader's limits for one extraction (None: zipread's constants, read now)."""

    members: int | None = None
    total: int | None = None
    member: int | None = None
    ratio: float | None = None

    @property
    def total_bytes(self) -> int:
        return zipread.MAX_TOTAL_BYTES if self.total is None else self.total


def _total_error(e: zipread.ZipLimitError) -> UploadError:
    return UploadError(f"{e}: upload a smaller zip. Nothing was extracted")


def extract_zip(data: bytes | BinaryIO | str | Path, dest: str | Path, *, max_members: int | None = None,
                max_total: int | None = None, max_ratio: float | None = None, max_member: int | None = None,
                require_usable: bool = False) -> Path:
    """Extract the image files of a zip (bytes, a file object such as Streamlit's UploadedFile,
    or a path) into folder ``dest`` and return it; ``read_report(dest)`` says what was left out.
    The limits default to the zip reader's (``MAX_MEMBERS``, ``MAX_TOTAL_BYTES``, ``MAX_RATIO``,
    ``MAX_MEMBER_BYTES``).

    Raises UploadError (nothing written) for: not a zip, too many members, too large
    uncompressed, no image files at all, a dest that is not ours to replace, a full disk; with
    ``require_usable``, also when none of the extracted images decodes (an earlier upload at
    ``dest`` is then kept as it was). A member over the per-member limits (a zip bomb's) is not
    extracted and is reported."""
    dest = Path(dest)
    limits = _Limits(max_members, max_total, max_member, max_ratio)
    src, label, own = _open_source(data)
    try:
        try:
            zf = zipread.open_zip(src, label, max_members=max_members)
        except zipread.ZipLimitError as e:
            raise UploadError(f"{e}: split it into smaller zips") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError) as e:
            raise UploadError(f"{label} is not a zip archive, or it is damaged ({zipread.zip_problem(e)}). Upload a "
                              f".zip of images ({', '.join(IMAGE_EXTS)}), or re-create it") from None
        with zf:
            return _extract(zf, label, dest, limits, require_usable)
    finally:
        if own and hasattr(src, "close"):
            src.close()


def _plan(zf: zipfile.ZipFile, label: str,
          limits: _Limits) -> tuple[list[tuple[zipfile.ZipInfo, list[str]]], ExtractReport]:
    """Decide from the central directory alone what to extract (``zipread.examine`` sorts each
    member); check the total cap."""
    infos = zf.infolist()
    rep = ExtractReport(source=label, members=len(infos))
    plan: list[tuple[zipfile.ZipInfo, list[str]]] = []
    seen: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        name = info.filename
        m = zipread.examine(info, is_image=is_image_name, is_hidden=is_hidden, allow_absolute=True,
                            max_member=limits.member, max_ratio=limits.ratio)
        if m.kind == "folder":
            continue
        if m.kind == "hidden":  # the names prepare never looks at
            rep.hidden += 1
            continue
        if m.kind == "other":
            rep.ignored_other += 1
            continue
        if m.kind == "refused":
            rep.skip(m.reason, name)
            continue
        if m.parts in seen:
            rep.skip(DUPLICATE, name)
            continue
        seen.add(m.parts)
        total += zipread.declared_size(info)
        try:
            zipread.check_total(label, total, limits.total)
        except zipread.ZipLimitError as e:
            raise _total_error(e) from None
        rep.normalised += int(m.rewritten)
        plan.append((info, list(m.parts)))
    if not plan:
        extra = f"; {rep.n_skipped:,} refused" if rep.n_skipped else ""
        other = f"{rep.ignored_other:,} other file{'' if rep.ignored_other == 1 else 's'} ignored"
        raise UploadError(f"{label} holds no image files ({', '.join(IMAGE_EXTS)}): {other}{extra}. Zip the folder "
                          f"of images and upload that"
                          + (f"\n{rep.summary()}" if rep.n_skipped else ""))
    return plan, rep


def _extract(zf: zipfile.ZipFile, label: str, dest: Path, limits: _Limits, require_usable: bool = False) -> Path:
    plan, rep = _plan(zf, label, limits)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _prepare_dest(dest)
    need = sum(zipread.declared_size(i) for i, _ in plan)
    try:
        free = shutil.disk_usage(dest.parent).free
    except OSError:
        free = None
    if free is not None and need + DISK_MARGIN > free:
        raise UploadError(f"not enough disk space for {label}: it unpacks to {need / 1e6:,.1f} MB and "
                          f"{free / 1e6:,.1f} MB are free at {dest.parent}. Free some space (clear data caches, "
                          f"delete old runs) and upload again")
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extracting"))
    try:
        total = 0
        made: set[Path] = {tmp}
        for info, parts in plan:
            written = _extract_member(zf, info, parts, tmp, made, rep, label, total, limits)
            if written is not None:
                total += written
        rep.bytes = total
        if rep.extracted == 0:
            raise UploadError(f"{label}: none of its image files could be extracted.\n{rep.summary()}")
        if require_usable:
            _check_usable(tmp, rep, label)
        with open(tmp / REPORT_NAME, "w", encoding="utf-8") as f:
            json.dump(rep.to_dict(), f, indent=1)
        _install(tmp, dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise UploadError(f"could not write the files of {label} under {dest.parent} "
                              f"({e.strerror or e}); nothing was kept") from None
        raise
    return dest


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: list[str], root: Path, made: set[Path],
                    rep: ExtractReport, label: str, total: int, limits: _Limits) -> int | None:
    """Stream one member to root/parts through ``zipread.iter_member`` (bounded); -> bytes
    written, or None when skipped (reported)."""
    name = info.filename
    parent = root
    try:
        for p in parts[:-1]:
            parent = parent / p
            if parent not in made:
                os.mkdir(parent)  # never follows anything: every folder here is one we made
                made.add(parent)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
            rep.skip(DUPLICATE if e.errno in (errno.EEXIST, errno.ENOTDIR) else BAD_NAME, name)
            return None
        raise
    target = parent / parts[-1]
    max_total = limits.total_bytes
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.ELOOP):
            rep.skip(DUPLICATE if e.errno in (errno.EEXIST, errno.EISDIR) else BAD_NAME, name)
            return None
        raise
    written = 0
    ok = False
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in zipread.iter_member(zf, info, max_member=limits.member, max_ratio=limits.ratio):
                    written += len(chunk)
                    if total + written > max_total:
                        raise UploadError(f"{label} unpacks to more than {zipread.human(max_total)} (the limit), "
                                          f"more than its headers declare: a damaged or crafted zip (zip bomb?). "
                                          f"Nothing was extracted")
                    out.write(chunk)
            except zipread.MemberRefused as e:  # over a cap, damaged, encrypted, unsupported method
                rep.skip(e.reason, name)
                return None
        ok = True
    finally:
        if not ok:
            try:
                os.unlink(target)
            except OSError:
                pass
    rep.extracted += 1
    return written


def _check_usable(root: Path, rep: ExtractReport, label: str) -> None:
    """UploadError when not one extracted image decodes (usually the first one does: cheap)."""
    from .data.decode import MIN_SIDE, ImageRejected, load_image_bytes
    reasons: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == REPORT_NAME:
            continue
        try:
            load_image_bytes(p.read_bytes(), p.name)
            return
        except ImageRejected as e:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
    why = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
    raise UploadError(f"{label}: none of its {rep.extracted:,} image files can be used ({why}). Nothing was kept; "
                      f"upload a zip of working images ({', '.join(IMAGE_EXTS)}, at least {MIN_SIDE} px a side)")


def extract_upload(file: BinaryIO | bytes | str | Path, root: str | Path | None = None, name: str | None = None) -> Path:
    """An uploaded zip, extracted and checked (at least one image decodes) into the home's
    uploads/ folder (or ``root``) under its safe name; returns the folder, ready for
    ``data.prepare``. An earlier upload of the same name is replaced only when this one is
    usable. UploadError (nothing kept) otherwise."""
    root = paths.ensure(Path(root) if root else paths.uploads_dir())
    name = name or getattr(file, "name", None) or (Path(file).name if isinstance(file, (str, Path)) else "upload")
    stem = safe_name(name)
    stem = stem[:-4] if stem.lower().endswith(".zip") and len(stem) > 4 else stem
    return extract_zip(file, root / stem, require_usable=True)


def list_extracted(root: str | Path | None = None) -> list[Path]:
    """The extracted uploads under the home's uploads/ (or ``root``), newest first: folders that
    hold an extraction report. Temporary folders a killed extraction left behind (older than
    STALE_S) are removed on the way."""
    root = Path(root) if root else paths.uploads_dir()
    if not root.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    now = time.time()
    for p in root.iterdir():
        try:
            if p.is_symlink() or not p.is_dir():
                continue
            if p.name.startswith(".") and p.name.endswith((".extracting", ".old")):
                if now - p.stat().st_mtime > STALE_S:
                    shutil.rmtree(p, ignore_errors=True)
                continue
            report = p / REPORT_NAME
            if report.is_file():
                found.append((report.stat().st_mtime, p))
        except OSError:
            continue
    return [p for _, p in sorted(found, key=lambda t: (-t[0], t[1].name))]


def _install(tmp: Path, dest: Path) -> None:
    """Move the finished extraction into place; an earlier upload at dest is replaced."""
    _prepare_dest(dest)  # again: something may have appeared meanwhile
    if dest.is_dir():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
        os.rmdir(old)
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def read_report(dest: str | Path) -> ExtractReport | None:
    """The report `extract_zip` kept with an extraction (None if there is none)."""
    try:
        d = json.loads((Path(dest) / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ExtractReport.from_dict(d) if isinstance(d, dict) else None


# ----------------------------------------------------------------------------- uploaded checkpoints


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
