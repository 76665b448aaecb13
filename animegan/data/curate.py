"""Curation of a small image set before training: duplicates, blurred images, outliers.

`analyse(source)` reads a folder or a .zip through the project's readers (`prepare`: the one
decoder, the zip limits of `zipread`) and returns plain data, each list sorted with its score, for
a gallery or a command line:

* **duplicate groups**: files with the same bytes ("exact") or the same picture re-saved, resized or
  slightly changed ("near"): a 64-bit perceptual hash (pHash: the signs of the lowest 8×8 DCT
  frequencies of the 32×32 greyscale image against their median, as the `imagehash` library
  computes it, in a few lines of numpy and scipy rather than one more dependency), grouped when
  two hashes differ in at most `hash_distance` of 64 bits. Each group keeps its sharpest image.
* **sharpness**: the variance of the Laplacian of the greyscale image at the training size
  (`size`), least sharp first. A blurred or flat, low-detail image scores low; the blur that
  matters is the blur at the size the networks see.
* **outliers**: distance from the rest in a PCA of the pixels (32×32, colour), farthest first:
  sqrt of the mean of (each of the first k component coefficients² / the median of its squares,
  and the residual² / the set's median residual²), so a typical image scores about 1. Pixels and not a
  shipped checkpoint's discriminator features: a shipped D knows only the faces it was trained on,
  so a set in a new style (the reason to fine-tune) would be far from it as a whole; the PCA is of
  the set itself, works at any size and without a checkpoint, and an image that takes a component
  for itself (unlike every other) still scores high through that component's whitening.

`Curation.decide(...)` turns choices into `Decisions` (what is kept, what is dropped and why): with
no choices it keeps one image of each duplicate group and drops nothing else; the caller can
exclude picked names and everything past a sharpness or outlier threshold. `write_curated` writes
the kept files (their original bytes, under their names) and `DECISIONS_FILE` (JSON) into a new
.zip, a source Train can use; `read_decisions` reads that file back so the same curation can be
re-applied (`decide(apply=...)`).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from .sources import DataError, iter_source_files

DECISIONS_FILE = "curation.json"   # beside the kept images in the curated zip
FORMAT = "animegan-curation"
VERSION = 1
HASH_DISTANCE = 6                  # bits of 64: near duplicates (a re-save, a resize, a slight edit)
OUTLIER_SIDE = 32                  # the PCA reads the images at this size
OUTLIER_COMPONENTS = 16            # at most; and at most a quarter of the images
CHI2_1_MEDIAN = 0.4549             # the median of a squared standard normal: median(c²) / this = c's variance
# Why an image is dropped: the one list of reasons (the decisions file and the page use these words).
REASONS = ("duplicate", "picked", "blurred", "outlier", "as before")


@dataclass
class Scored:
    name: str
    score: float


@dataclass
class DuplicateGroup:
    keep: str                      # the sharpest of the group (the first by name on a tie)
    drop: list[str]                # the others, nearest first
    kind: str                      # "exact": the same bytes, every one; "near": the same picture
    distance: dict[str, int]       # each member's hash distance (bits of 64) to `keep`


@dataclass
class Decisions:
    kept: list[str]
    dropped: dict[str, str]        # name -> one of REASONS
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Curation:
    source: str
    size: int
    names: list[str]                                            # the readable images (exact copies last)
    unreadable: dict[str, str]                                  # name -> why it cannot be used
    duplicates: list[DuplicateGroup]                            # largest group first
    sharpness: list[Scored]                                     # least sharp first
    outliers: list[Scored]                                      # farthest first
    hash_distance: int = HASH_DISTANCE
    hashes: dict[str, str] = field(default_factory=dict)        # name -> pHash, 16 hex digits

    def decide(self, *, exclude: list[str] | tuple[str, ...] = (), sharpness_below: float | None = None,
               outlier_above: float | None = None, keep_duplicates: bool = False,
               apply: dict[str, Any] | None = None) -> Decisions:
        """What to keep. By default one image of each duplicate group, nothing else dropped;
        `exclude`: names picked by hand; `sharpness_below` / `outlier_above`: everything past the
        threshold; `apply`: a decisions file read back (`read_decisions`): its drops again, by name.
        Raises DataError for an excluded name that is not an image of the source."""
        unknown = [n for n in exclude if n not in set(self.names)]
        if unknown:
            raise DataError(f"not an image of {self.source}: {', '.join(unknown[:5])}"
                            f"{' ...' if len(unknown) > 5 else ''}; give names as the report lists them")
        dropped: dict[str, str] = {}
        if apply is not None:
            dropped.update({n: "as before" for n in apply.get("dropped", {}) if n in set(self.names)})
        if not keep_duplicates:
            for g in self.duplicates:
                for n in g.drop:
                    dropped.setdefault(n, "duplicate")
        for n in exclude:
            dropped.setdefault(n, "picked")
        if sharpness_below is not None:
            for s in self.sharpness:
                if s.score < sharpness_below:
                    dropped.setdefault(s.name, "blurred")
        if outlier_above is not None:
            for s in self.outliers:
                if s.score > outlier_above:
                    dropped.setdefault(s.name, "outlier")
        kept = [n for n in self.names if n not in dropped]
        settings = {"size": self.size, "hash_distance": self.hash_distance, "exclude": list(exclude),
                    "sharpness_below": sharpness_below, "outlier_above": outlier_above,
                    "keep_duplicates": keep_duplicates, "applied": apply is not None}
        return Decisions(kept, dict(sorted(dropped.items())), settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- scores ----------------------------------------------------------------------------------------

def _grey(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, S, S) -> float32 (N, S, S) luma (ITU-R 601), 0-255."""
    x = images.astype(np.float32)
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def _resize(images: np.ndarray, side: int) -> np.ndarray:
    """float (N, C, S, S) or (N, S, S) -> side × side, area average (S a multiple of side) or bilinear."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    squeeze = x.dim() == 3
    x = x.unsqueeze(1) if squeeze else x
    s = x.shape[-1]
    x = F.interpolate(x, size=(side, side), mode="area" if s % side == 0 else "bilinear",
                      **({} if s % side == 0 else {"align_corners": False}))
    return (x.squeeze(1) if squeeze else x).numpy()


def phash(images: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes (uint64, one per image) of uint8 (N, 3, S, S) images: greyscale at
    32×32, 2-D DCT, the 8×8 lowest frequencies against their median (imagehash.phash's recipe)."""
    from scipy.fft import dct
    g = _resize(_grey(images), 32)
    low = dct(dct(g, axis=1, norm="ortho"), axis=2, norm="ortho")[:, :8, :8].reshape(len(g), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1, bitorder="big").view(">u8").reshape(-1).astype(np.uint64)


def hash_distances(hashes: np.ndarray, chunk: int = 1024) -> Callable[[int], np.ndarray]:
    """A function i -> the Hamming distances (bits) of hash i to every hash; chunked by the caller."""
    def row(i: int) -> np.ndarray:
        return np.bitwise_count(np.bitwise_xor(hashes, hashes[i])).astype(np.int64)
    return row


def sharpness(images: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian (3×3, 4-neighbour) of each image's greyscale, inner pixels: low =
    blurred or flat."""
    g = _grey(images)
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4 * g[:, 1:-1, 1:-1]
    return lap.reshape(len(g), -1).var(axis=1)


def outlier_scores(images: np.ndarray, components: int = OUTLIER_COMPONENTS) -> np.ndarray:
    """Whitened distance from the set in a PCA of the pixels (32×32 colour): about 1 for a typical
    image, larger the more unlike the rest (see the module docstring)."""
    n = len(images)
    if n < 3:
        return np.ones(n, dtype=np.float64)
    x = _resize(images.astype(np.float32), OUTLIER_SIDE).reshape(n, -1).astype(np.float64)
    x -= x.mean(axis=0)
    k = max(1, min(components, n // 4, n - 1))
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    coef = u[:, :k] * s[:k]                               # (n, k)
    resid = ((x - coef @ vt[:k]) ** 2).sum(axis=1)
    # Robust scales (the median, not the mean, of the squares): an outlier does not widen the
    # yardstick it is measured by, in the components or the residual.
    var = np.maximum(np.median(coef ** 2, axis=0) / CHI2_1_MEDIAN, 1e-12)
    typical = max(float(np.median(resid)), 1e-12)
    return np.sqrt(((coef ** 2 / var).sum(axis=1) + resid / typical) / (k + 1))


def _groups(hashes: np.ndarray, max_distance: int) -> list[list[int]]:
    """Groups (two or more) of images within `max_distance` bits of the group's first image. Not
    chained: were A near B and B near C enough to group A with C, a set of similar faces would melt
    into one group and lose most of its images as "duplicates"."""
    n = len(hashes)
    group_of = np.full(n, -1)
    row = hash_distances(hashes)
    groups: list[list[int]] = []
    for i in range(n):
        if group_of[i] >= 0:
            continue
        near = [int(j) for j in np.nonzero(row(i)[i + 1:] <= max_distance)[0] + i + 1 if group_of[j] < 0]
        if near:
            group_of[[i, *near]] = len(groups)
            groups.append([i, *near])
    return groups


# -- the analysis ----------------------------------------------------------------------------------

def analyse(source: str | Path, size: int = 64, *, hash_distance: int = HASH_DISTANCE,
            progress: bool | Callable[[int, int], Any] = False, synthetic_n: int | None = None) -> Curation:
    """Every score of every readable image of `source` (a folder or a .zip) at `size` px.
    `synthetic_n`: for the synthetic set, its number of faces on disk (as `prepare` takes it: else
    the default number is rendered). Raises DataError for a source that cannot be read or holds no
    usable image."""
    from . import prepare
    if not 0 <= hash_distance <= 64:
        raise DataError(f"the duplicate distance is in bits of a 64-bit hash: between 0 and 64 (it is {hash_distance})")
    data = prepare(source, size, val=0, test=0, progress=progress, synthetic_n=synthetic_n)
    # prepare keeps one copy of files with the same bytes (report.duplicates: (first, copy)); the
    # copies join the analysis with their first's pixels, so they land in its group at distance 0.
    index = {n: i for i, n in enumerate(data.names)}
    copies = [(first, copy) for first, copy in data.report.duplicates if first in index]
    names = [*data.names, *(copy for _, copy in copies)]
    images = np.asarray(data.images)
    if copies:
        images = np.concatenate([images, images[[index[first] for first, _ in copies]]])
    unreadable = {name: reason for reason, items in data.report.skipped.items() for name in items}
    digests = _file_digests(source, set(names))
    hashes = phash(images)
    sharp = sharpness(images)
    far = outlier_scores(images)

    groups = []
    for members in _groups(hashes, hash_distance):
        keep = max(members, key=lambda i: (sharp[i], -i))   # sharpest; the first by name on a tie
        dist = {names[i]: int(np.bitwise_count(hashes[i] ^ hashes[keep])) for i in members}
        drop = sorted((names[i] for i in members if i != keep), key=lambda n: (dist[n], n))
        exact = len({digests.get(names[i]) for i in members}) == 1 and digests.get(names[keep]) is not None
        groups.append(DuplicateGroup(names[keep], drop, "exact" if exact else "near", dict(sorted(dist.items()))))
    groups.sort(key=lambda g: (-len(g.drop), g.keep))
    return Curation(
        source=str(source), size=size, names=names, unreadable=unreadable, duplicates=groups,
        sharpness=sorted((Scored(n, round(float(v), 3)) for n, v in zip(names, sharp, strict=True)),
                         key=lambda s: (s.score, s.name)),
        outliers=sorted((Scored(n, round(float(v), 4)) for n, v in zip(names, far, strict=True)),
                        key=lambda s: (-s.score, s.name)),
        hash_distance=hash_distance, hashes={n: f"{int(h):016x}" for n, h in zip(names, hashes, strict=True)})


def _file_digests(source: str | Path, names: set[str]) -> dict[str, str]:
    """sha256 of each named file's bytes, read through the source's reader (zip limits included)."""
    out = {}
    for name, _, read in iter_source_files(source):
        if name in names:
            out[name] = hashlib.sha256(read()).hexdigest()
    return out


# -- the curated source ----------------------------------------------------------------------------

def write_curated(curation: Curation, decisions: Decisions, out: str | Path) -> Path:
    """A .zip of the kept images (their original bytes, under their names) and DECISIONS_FILE;
    written beside `out` and renamed into place, so a failed write leaves no half zip."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".zip":
        raise DataError(f"the curated set is written as a .zip: give a name ending in .zip (not {out.name})")
    if out.resolve() == Path(curation.source).expanduser().resolve():
        raise DataError(f"{out} is the source itself; write the curated set to a new .zip")
    if not out.parent.is_dir():
        raise DataError(f"the folder {out.parent} does not exist; create it or write the zip elsewhere")
    kept = set(decisions.kept)
    record = {"format": FORMAT, "version": VERSION, "source": curation.source, **decisions.settings,
              "kept": decisions.kept, "dropped": decisions.dropped,
              "duplicates": [asdict(g) for g in curation.duplicates],
              "scores": {s.name: {"sharpness": s.score} for s in curation.sharpness}}
    for s in curation.outliers:
        record["scores"][s.name]["outlier"] = s.score
    for n, h in curation.hashes.items():
        record["scores"][n]["phash"] = h
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            written = 0
            for name, _, read in iter_source_files(curation.source):
                if name in kept:
                    zf.writestr(zipfile.ZipInfo(str(PurePosixPath(name)), date_time=(1980, 1, 1, 0, 0, 0)), read(),
                                compress_type=zipfile.ZIP_STORED)
                    written += 1
            zf.writestr(DECISIONS_FILE, json.dumps(record, indent=1), compress_type=zipfile.ZIP_DEFLATED)
        if written != len(kept):
            raise DataError(f"{len(kept) - written} kept images could not be read again from {curation.source}; "
                            "was it changed meanwhile? Run curate again")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def read_decisions(path: str | Path) -> dict[str, Any]:
    """A decisions file: the JSON itself, or a curated .zip holding DECISIONS_FILE. DataError when it is neither."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"no decisions file at {path}; give a curated .zip or its {DECISIONS_FILE}")
    try:
        if zipfile.is_zipfile(path):
            from . import zipread
            with zipread.open_zip(path) as zf:
                try:
                    text = zipread.read_member(zf, zf.getinfo(DECISIONS_FILE)).decode("utf-8")
                except KeyError:
                    raise DataError(f"{path.name} holds no {DECISIONS_FILE}: it was not written by curate") from None
        else:
            text = path.read_text(encoding="utf-8")
        d = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile):
        raise DataError(f"{path.name} is not a decisions file written by curate") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("dropped"), dict):
        raise DataError(f"{path.name} is not a decisions file written by curate")
    return d


def is_curated(source: str | Path) -> bool:
    """Whether `source` is a .zip written by write_curated (it holds DECISIONS_FILE)."""
    path = Path(str(source)).expanduser()
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return DECISIONS_FILE in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
