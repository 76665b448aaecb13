"""Zip archives read with limits: the one road every zip takes, however it arrives.

A zip of images reaches the package two ways: given by path (``prepare``, ``train --data`` and
the Dataset page's path box read it in place through ``sources``), or uploaded (``uploads``
extracts it into a folder). Both open, sort and read members here, so the same limits hold:

* the whole archive: at most ``MAX_MEMBERS`` entries (read from the end record before the
  directory is parsed, then counted again) and at most ``MAX_TOTAL_BYTES`` of images once
  unpacked (summed from the directory before anything is read). Past either, the archive is
  refused as a whole: ``ZipLimitError``, whose message names the limit (the caller adds what
  to do);
* each member, from the directory alone (``examine``): links, special files, folder entries
  with an image name, unsafe paths (``..``, absolute), nested archives, encryption, unknown
  compression, a declared size over ``MAX_MEMBER_BYTES`` or a declared compression ratio over
  ``MAX_RATIO`` are refused with one of ``REFUSALS`` (reported by name; the rest of the zip is
  used);
* each member, while it is read (``iter_member``, ``read_member``): bytes are counted chunk by
  chunk (``CHUNK``) and reading stops as soon as the count passes the per-member cap, the ratio
  cap or the size the header declared. A header that lies cannot make a read larger than the
  caps: Python's zipfile happens to stop at the declared size (and then fails the CRC check),
  but nothing here relies on that.

The limits are read when a function runs (``None`` arguments mean the module's constants), so
a test may lower them with monkeypatch.
"""
from __future__ import annotations

import lzma
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import AnimeganError

# --------------------------------------------------------------------------- the limits
#
# What a real data set looks like, to choose limits it never meets: the project's set is 30,000
# JPEGs of 96x96 px (~3 KB each, ~90 MB zipped); a large personal set of 1,000 PNGs of 512 px is
# ~0.3-1 MB an image (< 1 GB in all); images are already compressed, so they deflate ~1-1.2x.
# A zip bomb is the opposite: few members, each declaring (or inflating to) gigabytes of zeros.

# Entries in the central directory (folders and other files included). 16x the project's set;
# parsed, a directory costs ~530 bytes an entry (measured: 53 MB for 100,000), so this bounds
# the listing at ~270 MB whatever the archive claims.
MAX_MEMBERS = 500_000
# Images once unpacked, summed over the members that would be read. 8x a 1,000-image 512 px
# set; reading 8 GB of images is minutes of decoding, not an exhausted machine (a zip read in
# place never holds more than one member per worker in memory; an upload is also checked
# against the free disk space).
MAX_TOTAL_BYTES = 8_000_000_000
# One member, unpacked: a 512 px PNG is under 1 MB and a 4000x4000 photo ~20-40 MB; the images
# are cut down to at most 256 px anyway. A worker holds at most this much (plus one chunk).
MAX_MEMBER_BYTES = 64_000_000
# Unpacked / compressed size of one member, checked for members over RATIO_MIN_BYTES: JPEG, PNG
# and WEBP do not deflate (~1x), an uncompressed BMP of a face a few times; deflate cannot do
# better than ~1,030x, which is what a member of zeros gets.
MAX_RATIO = 200
RATIO_MIN_BYTES = 1 << 20          # small flat files (a one-colour 40 px BMP) compress well: allowed
CHUNK = 1 << 20                    # bytes inflated at a time while a member is read

NESTED_EXTS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz", ".tbz2", ".xz", ".txz", ".7z", ".rar", ".zst",
               ".lz", ".lzma", ".z", ".cab", ".jar", ".apk", ".iso", ".dmg")
SUPPORTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def human(n: float) -> str:
    """A byte count for people: "64.0 MB", "8.0 GB"."""
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


# Why a member is not read (the keys of the reports that list it; in the user's words, with
# what to do). The numbers are the default limits.
MEMBER_TOO_LARGE = (f"too large once unpacked (over {human(MAX_MEMBER_BYTES)}: a zip bomb, or an image far "
                    "larger than training needs; shrink it or take it out)")
TOO_COMPRESSED = f"compressed more than {MAX_RATIO}x (a zip bomb: take it out of the zip)"
DAMAGED = "damaged in the zip (its data does not match its header: re-create the zip)"
ENCRYPTED = "encrypted (zip it again without a password)"
UNSUPPORTED = "compressed with a method that cannot be read (zip it again with standard compression)"
UNSAFE = "unsafe path (a '..' or absolute name: zip the folder again from inside it)"
NESTED = "nested archive (not opened: unpack it and add its images)"
FOLDER = "folder entry with an image name (a folder, not a file)"
SYMLINK = "symlink (never followed)"
SPECIAL = "special file (not a regular file)"
REFUSALS = (MEMBER_TOO_LARGE, TOO_COMPRESSED, DAMAGED, ENCRYPTED, UNSUPPORTED, UNSAFE, NESTED, FOLDER,
            SYMLINK, SPECIAL)


class ZipLimitError(AnimeganError):
    """A whole archive refused by a limit (``limit``: "members" or "total"). The message says
    which limit and by how much; callers add what to do on their road (prepare, upload)."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit


class MemberRefused(Exception):
    """One member not read; ``reason`` is one of ``REFUSALS``."""

    def __init__(self, reason: str, name: str = ""):
        super().__init__(f"{name}: {reason}" if name else reason)
        self.reason = reason
        self.name = name


# --------------------------------------------------------------------------- the archive


def declared_entries(fp: Any) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile parses the
    directory (a directory of millions of entries is refused without building them all).
    ``fp``: a path or a seekable binary file. None when the record cannot be read."""
    try:
        if isinstance(fp, (str, Path)):
            with open(fp, "rb") as f:
                end = zipfile._EndRecData(f)  # noqa: SLF001  (stable since Python 2; the fallback is infolist())
        else:
            pos = fp.tell()
            try:
                end = zipfile._EndRecData(fp)  # noqa: SLF001
            finally:
                fp.seek(pos)
        return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else None  # noqa: SLF001
    except Exception:  # noqa: BLE001  # any doubt: count from infolist() instead
        return None


def _too_many(label: str, n: int, limit: int) -> ZipLimitError:
    return ZipLimitError(f"{label} has {n:,} entries, more than the {limit:,} allowed", "members")


def open_zip(file: Any, label: str | None = None, *, max_members: int | None = None) -> zipfile.ZipFile:
    """A ZipFile of ``file`` (a path or a seekable binary file) whose entry count is within
    ``max_members`` (default ``MAX_MEMBERS``), checked from the end record before the directory
    is parsed and again after. Raises ZipLimitError, and zipfile's own errors for what is not a
    readable zip (``zip_problem`` says them in words)."""
    limit = MAX_MEMBERS if max_members is None else max_members
    label = label or (Path(file).name if isinstance(file, (str, Path)) else "the zip")
    n = declared_entries(file)
    if n is not None and n > limit:
        raise _too_many(label, n, limit)
    zf = zipfile.ZipFile(file)
    if len(zf.infolist()) > limit:
        zf.close()
        raise _too_many(label, len(zf.infolist()), limit)
    return zf


def check_total(label: str, total: int, max_total: int | None = None) -> None:
    """ZipLimitError when ``total`` bytes of images (declared, unpacked) pass ``max_total``
    (default ``MAX_TOTAL_BYTES``)."""
    limit = MAX_TOTAL_BYTES if max_total is None else max_total
    if total > limit:
        raise ZipLimitError(f"{label} would unpack to more than {human(limit)} of images (the limit; zip bomb?)",
                            "total")


def zip_problem(e: BaseException) -> str:
    """What zipfile found wrong with an archive, in words (its own messages name its internals)."""
    if isinstance(e, zipfile.LargeZipFile):
        return "it needs ZIP64 support"
    if isinstance(e, NotImplementedError):
        return "it uses a zip feature that is not supported"
    if isinstance(e, OSError) and not isinstance(e, zipfile.BadZipFile):
        return f"it cannot be read: {e.strerror or 'input/output error'}"
    text = str(e).lower()
    if "not a zip file" in text or isinstance(e, EOFError):
        return "no zip directory found: not a zip, or cut short"
    return "its zip directory cannot be read"


# --------------------------------------------------------------------------- one member


def declared_size(info: zipfile.ZipInfo) -> int:
    """The unpacked size the central directory declares (what the caps are checked against
    before reading; reading counts the real bytes)."""
    return int(info.file_size)


def file_type(info: zipfile.ZipInfo) -> int:
    """The Unix file type bits of a member (0 when the archiver stored none)."""
    return stat.S_IFMT(info.external_attr >> 16)


def member_parts(name: str) -> tuple[list[str] | None, bool, bool]:
    """A member name as path components -> (components, or None when the name is unsafe: a
    ``..`` component, a NUL, nothing left; whether it was rewritten: backslashes, a drive
    letter or a leading ``/``; whether it was absolute: a drive letter or a leading ``/``)."""
    if "\x00" in name:
        return None, False, False
    s = name.replace("\\", "/")
    rewritten = s != name
    absolute = False
    if len(s) >= 2 and s[1] == ":" and s[0].isascii() and s[0].isalpha():
        s, rewritten, absolute = s[2:], True, True
    if s.startswith("/"):
        rewritten, absolute = True, True
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None, rewritten, absolute
    return parts, rewritten, absolute


def refusal_before_reading(info: zipfile.ZipInfo, *, max_member: int | None = None,
                           max_ratio: float | None = None) -> str | None:
    """Why a member's data is not read, from its directory entry alone (None: it may be read):
    encryption, an unknown compression method, a declared size over ``max_member`` (default
    ``MAX_MEMBER_BYTES``) or a declared ratio over ``max_ratio`` (default ``MAX_RATIO``)."""
    cap = MAX_MEMBER_BYTES if max_member is None else max_member
    ratio = MAX_RATIO if max_ratio is None else max_ratio
    if info.flag_bits & 0x1:
        return ENCRYPTED
    if info.compress_type not in SUPPORTED_METHODS:
        return UNSUPPORTED
    size = declared_size(info)
    if size > cap:
        return MEMBER_TOO_LARGE
    if size > RATIO_MIN_BYTES and size > ratio * max(int(info.compress_size), 1):
        return TOO_COMPRESSED
    return None


@dataclass(frozen=True)
class Member:
    """What ``examine`` decided about one directory entry. ``kind``: "image" (to be read),
    "refused" (``reason`` says why; report it), "other" (no image extension: counted, not
    read), "hidden" (names sources never look at) or "folder" (a plain folder entry)."""

    kind: str
    reason: str = ""
    parts: tuple[str, ...] = ()
    rewritten: bool = False


def examine(info: zipfile.ZipInfo, *, is_image: Callable[[str], bool], is_hidden: Callable[[list[str]], bool],
            allow_absolute: bool = False, max_member: int | None = None,
            max_ratio: float | None = None) -> Member:
    """Sort one directory entry, in the order every road uses: links and special files, folder
    entries, unsafe paths, hidden names, nested archives, other files, then the data checks of
    an image (``refusal_before_reading``). ``allow_absolute``: an absolute name (leading ``/``,
    drive letter) is made relative instead of refused (an extraction puts it inside its folder;
    a zip read in place refuses it, like ``sources.read_member``). ``is_image`` / ``is_hidden``:
    the sources' own name rules."""
    name = info.filename
    ftype = file_type(info)
    if ftype == stat.S_IFLNK:
        return Member("refused", SYMLINK)
    if info.is_dir() or ftype == stat.S_IFDIR:
        return Member("refused", FOLDER) if is_image(name.rstrip("/\\")) else Member("folder")
    if ftype not in (0, stat.S_IFREG):
        return Member("refused", SPECIAL)
    parts, rewritten, absolute = member_parts(name)
    if parts is None or (absolute and not allow_absolute):
        return Member("refused", UNSAFE)
    if is_hidden(parts):
        return Member("hidden")
    low = parts[-1].lower()
    if low.endswith(NESTED_EXTS):
        return Member("refused", NESTED)
    if not is_image(low):
        return Member("other")
    problem = refusal_before_reading(info, max_member=max_member, max_ratio=max_ratio)
    if problem is not None:
        return Member("refused", problem)
    return Member("image", parts=tuple(parts), rewritten=rewritten)


def iter_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, max_member: int | None = None,
                max_ratio: float | None = None) -> Iterator[bytes]:
    """The unpacked bytes of one member, ``CHUNK`` at a time. Checked before reading
    (``refusal_before_reading``) and while reading: once the bytes read pass ``max_member``,
    ``max_ratio`` times the compressed size (over ``RATIO_MIN_BYTES``) or the declared size,
    reading stops. Raises MemberRefused (damaged data, encryption, unsupported method
    included); OSError (the zip file cannot be read at all) passes through."""
    cap = MAX_MEMBER_BYTES if max_member is None else max_member
    ratio = MAX_RATIO if max_ratio is None else max_ratio
    name = info.filename
    problem = refusal_before_reading(info, max_member=cap, max_ratio=ratio)
    if problem is not None:
        raise MemberRefused(problem, name)
    declared = declared_size(info)
    ratio_cap = ratio * max(int(info.compress_size), 1)
    n = 0
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    return
                n += len(chunk)
                if n > cap:
                    raise MemberRefused(MEMBER_TOO_LARGE, name)
                if n > RATIO_MIN_BYTES and n > ratio_cap:
                    raise MemberRefused(TOO_COMPRESSED, name)
                if n > declared:
                    raise MemberRefused(DAMAGED, name)
                yield chunk
    except MemberRefused:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, zlib.error, lzma.LZMAError):  # bad CRC, broken stream, cut short
        raise MemberRefused(DAMAGED, name) from None
    except RuntimeError:  # a password is needed (encryption not flagged in the directory)
        raise MemberRefused(ENCRYPTED, name) from None
    except NotImplementedError:
        raise MemberRefused(UNSUPPORTED, name) from None


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, max_member: int | None = None,
                max_ratio: float | None = None) -> bytes:
    """The bytes of one member, read by ``iter_member`` (at most the caps are ever held)."""
    chunks = list(iter_member(zf, info, max_member=max_member, max_ratio=max_ratio))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
