"""Data sources: a folder of images, a .zip of images, or the built-in synthetic set.

* a folder, searched recursively for ``IMAGE_EXTS`` (case-insensitive). Hidden files and
  folders (name starting with ``.``) and ``__MACOSX`` folders are ignored, like every file
  with another extension (counted as "other", not reported as bad);
* a ``.zip`` archive, read in place (nothing is extracted to disk) through ``zipread``, with its
  limits: an archive with too many entries or too many bytes of images is refused with a
  DataError; a member that cannot be read safely (too large, compressed like a zip bomb,
  encrypted, a nested archive, an unsafe path...) is listed with ``Entry.refused`` set, never
  read, and reported by ``prepare`` with that reason; every read is bounded;
* ``config.SYNTHETIC`` (``"synthetic"``): the built-in set. When it is not on disk yet,
  ``animegan.synth.write_synthetic(paths.synthetic_dir(), n)`` renders it (only when asked
  to: ``resolve(..., render=True)``, as ``prepare`` does); then it is a folder source
  (``synthetic_dir()/images``).

A source's fingerprint hashes its listing, never image data: folders the relative file list,
sizes and mtimes; zips the member names, sizes and CRCs from the central directory.
"""
from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import paths
from ..config import SYNTHETIC, AnimeganError
from . import zipread

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class DataError(AnimeganError, ValueError):
    """A clear, user-facing message (missing path, empty folder, nothing usable, not a zip...)."""


@dataclass
class Entry:
    name: str      # relative posix name
    size: int
    stamp: int     # mtime_ns (folder) or CRC (zip)
    key: Any       # folder: the name; zip: index in infolist()
    refused: str = ""   # zip: why the member is not read (one of zipread.REFUSALS); "" = read it


@dataclass
class Source:
    given: str
    kind: str      # "folder" | "zip"
    path: Path
    label: str     # for cache file names and messages


def is_image_name(name: str) -> bool:
    """The file name ends in one of ``IMAGE_EXTS`` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTS)


def is_hidden(parts: list[str]) -> bool:
    """A path (as components) that sources never look at: a component starting with ``.``
    (hidden files and folders) or ``__MACOSX`` (macOS resource forks in zips)."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


class Progress:
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


# --------------------------------------------------------------------------- resolving


def is_synthetic(source: str | Path) -> bool:
    return isinstance(source, (str, Path)) and str(source).strip() == SYNTHETIC


def synthetic_folder() -> Path:
    """Where the images of the rendered synthetic set are (or will be)."""
    root = paths.synthetic_dir()
    return root / "images" if (root / "images").is_dir() else root


def _render_synthetic(synthetic_n: int | None, progress: Any) -> None:
    from .. import synth  # lazy: only needed for the synthetic source

    root = paths.synthetic_dir()
    n = synthetic_n if synthetic_n is not None else synth.DEFAULT_N
    if synth.is_complete(root, n):
        return
    bar = Progress(progress, n, "Rendering synthetic set") if progress else None
    try:
        synth.write_synthetic(paths.ensure(root), n, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def resolve(source: str | Path, *, synthetic_n: int | None = None, render: bool = False,
            progress: Any = False) -> Source:
    """The source as a folder or a zip. ``render``: render the synthetic set when it is not on
    disk (at ``synthetic_n`` faces, default ``synth.DEFAULT_N``). Raises DataError."""
    if source is None or str(source).strip() == "":
        raise DataError("No data source given. Use a folder of images, a .zip of images, "
                        f"or '{SYNTHETIC}' for the built-in set.")
    if is_synthetic(source):
        if render:
            _render_synthetic(synthetic_n, progress)
        folder = synthetic_folder()
        if not folder.is_dir():
            raise DataError(f"The synthetic set is not rendered yet (looked in {paths.synthetic_dir()}). "
                            f"Prepare the '{SYNTHETIC}' source once (e.g. train or import it) to "
                            "render it.")
        return Source(str(source), "folder", folder.resolve(), SYNTHETIC)
    p = Path(source).expanduser()
    if not p.exists():
        raise DataError(f"Data source not found: {p}. Point to a folder of images (searched "
                        f"recursively for {', '.join(IMAGE_EXTS)}), a .zip of images, or use "
                        f"'{SYNTHETIC}' for the built-in set.")
    p = p.resolve()
    if p.is_dir():
        return Source(str(source), "folder", p, p.name or "root")
    if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
        return Source(str(source), "zip", p, p.stem)  # validated when listed (_list_zip)
    raise DataError(f"{p} is a file, not a folder or a .zip archive. Point to the folder that "
                    "holds the images, or to a .zip of them.")


# --------------------------------------------------------------------------- listing


def _list_folder(root: Path) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    other = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden([d]))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fn in sorted(filenames):
            if is_hidden([fn]):
                continue
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}"
            if not is_image_name(fn):
                other += 1
                continue
            try:
                st = os.stat(os.path.join(dirpath, fn))
            except OSError:
                st = None
            if st is not None and not stat.S_ISREG(st.st_mode):
                continue
            entries.append(Entry(rel, st.st_size if st else 0, st.st_mtime_ns if st else 0, rel))
    entries.sort(key=lambda e: e.name)
    return entries, other


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError, NotImplementedError)


def _bad_zip(path: Path, e: BaseException) -> DataError:
    return DataError(f"{path} is not a readable zip archive ({zipread.zip_problem(e)}). Re-create or "
                     "re-download it, or unpack it and point to the folder instead.")


def _too_big(path: Path, e: zipread.ZipLimitError) -> DataError:
    return DataError(f"{e}. Nothing was read. Split it into smaller zips, or, if it really holds that many "
                     f"images, unpack it and point to the folder instead.")


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip at ``path``, opened through ``zipread`` (its entry count checked); DataError
    saying what is wrong otherwise."""
    try:
        return zipread.open_zip(path, path.name)
    except zipread.ZipLimitError as e:
        raise _too_big(path, e) from None
    except _ZIP_ERRORS as e:
        raise _bad_zip(path, e) from None


def examine_member(info: zipfile.ZipInfo) -> zipread.Member:
    """One member of a zip read in place, sorted by ``zipread.examine`` with the sources' name
    rules; absolute names are refused (they are not file names inside the zip here)."""
    return zipread.examine(info, is_image=is_image_name, is_hidden=is_hidden)


def zip_entries(zf: zipfile.ZipFile, label: str) -> tuple[list[Entry], int]:
    """The entries of an open zip as ``list_entries`` gives them (refused members included, with
    their reason) and the count of other files; ``zipread.ZipLimitError`` (naming ``label``) when
    its images would unpack to more than ``zipread.MAX_TOTAL_BYTES``."""
    entries: list[Entry] = []
    other = 0
    total = 0
    for i, info in enumerate(zf.infolist()):
        m = examine_member(info)
        if m.kind in ("folder", "hidden"):
            continue
        if m.kind == "other":
            other += 1
            continue
        if not m.reason:
            total += zipread.declared_size(info)
        entries.append(Entry(info.filename, info.file_size, info.CRC, i, m.reason))
    zipread.check_total(label, total)
    entries.sort(key=lambda e: (e.name, e.key))
    return entries, other


def _list_zip(path: Path) -> tuple[list[Entry], int]:
    with open_zip(path) as zf:
        try:
            return zip_entries(zf, path.name)
        except zipread.ZipLimitError as e:
            raise _too_big(path, e) from None


def list_entries(src: Source) -> tuple[list[Entry], int]:
    """(image-extension entries sorted by name, count of other files ignored). For a zip the
    entries include the members ``zipread`` refuses (``Entry.refused`` says why; nested
    archives, links... whatever their extension), so they can be reported."""
    return _list_folder(src.path) if src.kind == "folder" else _list_zip(src.path)


def fingerprint_entries(kind: str, entries: list[Entry]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{kind}\n".encode())
    for e in entries:
        h.update(f"{e.name}\0{e.size}\0{e.stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def fingerprint(source: str | Path) -> str:
    """Fingerprint of a source's listing: folders hash relative names, sizes and mtimes; zips
    member names, sizes and CRCs (no image data is read). ``"synthetic"`` must be rendered."""
    src = resolve(source)
    entries, _ = list_entries(src)
    return fingerprint_entries(src.kind, entries)


def describe_source(source: str | Path) -> str:
    """One line for people: "synthetic set (10,000 faces)", "folder /x (123 files)", ..."""
    if is_synthetic(source):
        folder = synthetic_folder()
        n = len(_list_folder(folder)[0]) if folder.is_dir() else 0
        if n:
            return f"synthetic set ({n:,} faces)"
        from .. import synth

        return f"synthetic set ({synth.DEFAULT_N:,} faces, rendered on first use)"
    src = resolve(source)
    entries, _ = list_entries(src)
    if src.kind == "zip":
        return f"zip {src.path} ({len(entries):,} members)"
    return f"folder {src.path} ({len(entries):,} files)"


# --------------------------------------------------------------------------- reading members


class MemberReader:
    """Reads members of one source by ``Entry.key`` (a folder's relative name, a zip's index in
    ``infolist()``), through one open ZipFile for a zip, every read bounded by ``zipread``.
    Errors: the file system's, DataError when the zip cannot be opened, and
    ``zipread.MemberRefused`` (its ``reason`` one of ``zipread.REFUSALS``) for a member that is
    not read (the decoder turns them into reasons)."""

    def __init__(self, kind: str, path: str | Path):
        self.root = Path(path)
        self.zf = open_zip(self.root) if kind == "zip" else None
        self.infos = self.zf.infolist() if self.zf is not None else None

    def read(self, key: Any) -> bytes:
        if self.zf is not None:
            return zipread.read_member(self.zf, self.infos[key])
        return (self.root / key).read_bytes()

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()

    def __enter__(self) -> MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_source_files(source: str | Path) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    """(relative name, size in bytes, read) for every image-extension file, sorted by name
    (the members of a zip that ``zipread`` refuses are left out: they are never read).
    ``read()`` returns the file's bytes; for a zip it reads through one shared ZipFile (kept
    open by the closures; closed when they are collected), bounded by ``zipread``."""
    src = resolve(source)
    entries, _ = list_entries(src)
    reader = MemberReader(src.kind, src.path)
    for e in entries:
        if not e.refused:
            yield e.name, e.size, (lambda k=e.key: reader.read(k))


def read_member(source: str | Path, name: str) -> bytes:
    """The bytes of one file of a source, by its relative name (as in ``PreparedData.names``).
    Raises DataError when the source or the file cannot be read (or the name points outside);
    a zip member is read through ``zipread`` (the same limits as ``prepare``)."""
    src = resolve(source)
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise DataError(f"{name!r} is not a file name inside {src.path}.")
    if src.kind == "folder":
        try:
            return (src.path / name).read_bytes()
        except OSError as e:  # missing, permissions, a folder
            raise DataError(f"{name} cannot be read from {src.path} ({e.strerror or 'input/output error'}).") from None
    with open_zip(src.path) as zf:
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise DataError(f"{name} cannot be read from {src.path} (no such file in the zip).") from None
        try:
            return zipread.read_member(zf, info)
        except zipread.MemberRefused as e:
            raise DataError(f"{name} cannot be read from {src.path}: {e.reason}.") from None
        except OSError as e:
            raise DataError(f"{name} cannot be read from {src.path} ({e.strerror or 'input/output error'}).") from None
