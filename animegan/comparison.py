"""Measuring several checkpoints the same way, and saying when two numbers are comparable.

The one answer to "are these two metric values comparable?" (`differences`): the same metric, the
same n, the same split of the same data (by its fingerprint, not its path) at the same size. A
`Measure` is one way of measuring (metric, data, split, n, seed) applied to every checkpoint; its
results are kept by the checkpoint's *content* (`content_hash`), so a copy of a checkpoint, or the
same file opened from another folder, is not measured twice.

    m = Measure(metric="swd", data="faces.zip", split="test", n=2000)
    found = recorded(path, m, img_size)          # a result measured this way, or None
    ...                                          # jobs.start_eval(path, m.metric, m.data, m.n, m.split, m.seed)
    record(path, result)                         # keep what the job printed, by content
    differences(a, b)                            # ["64 px against 96 px", ...]: [] when comparable
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .config import METRICS, SPLITS
from .rundir import append_jsonl, evals_for_checkpoint, read_jsonl

REALISM = "realism"      # the realism judge's records (held-out accuracy) carry this metric name
STORE_NAME = "by-content.jsonl"
_REFERENCE = re.compile(r"^(?P<split>\w+) split of (?P<source>.+) \((?P<fp>[0-9a-f]{8})\) @(?P<size>\d+)px$")
_HASHES: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class Measure:
    """How every selected checkpoint is measured: the same metric, data, split, n and seed."""
    metric: str = "swd"
    data: str = "synthetic"
    split: str = "test"
    n: int = 2000
    seed: int = 0

    def problem(self) -> str | None:
        """What is wrong with these settings, in words (None: nothing)."""
        if self.metric not in METRICS:
            return f"metric {self.metric!r}: choose one of {', '.join(METRICS)}"
        if self.split not in SPLITS:
            return f"split {self.split!r}: choose one of {', '.join(SPLITS)}"
        if int(self.n) < 2:
            return f"n = {self.n}: at least 2 images are needed"
        if not str(self.data).strip():
            return "no reference data: give a folder, a .zip or 'synthetic'"
        return None


def parse_reference(reference: str) -> dict[str, Any] | None:
    """"test split of faces.zip (83d3dc1d) @64px" -> {split, source, fingerprint, size}; None if
    the text is not such a label."""
    m = _REFERENCE.match(str(reference or "").strip())
    if m is None:
        return None
    return {"split": m["split"], "source": m["source"], "fingerprint": m["fp"], "size": int(m["size"])}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Why two measured values cannot be compared, in words ([] when they can): another metric,
    another n, another split, other data (by fingerprint, wherever it lies), another size."""
    out: list[str] = []
    ma, mb = str(a.get("metric", "?")).upper(), str(b.get("metric", "?")).upper()
    if ma != mb:
        out.append(f"{ma} against {mb}")
    if int(a.get("n") or 0) != int(b.get("n") or 0):
        out.append(f"n={int(a.get('n') or 0):,} against n={int(b.get('n') or 0):,}")
    ra, rb = parse_reference(a.get("reference", "")), parse_reference(b.get("reference", ""))
    if ra is None or rb is None:
        if str(a.get("reference")) != str(b.get("reference")):
            out.append("an unrecorded reference")
        return out
    if ra["split"] != rb["split"]:
        out.append(f"{ra['split']} split against {rb['split']} split")
    if ra["fingerprint"] != rb["fingerprint"]:
        out.append(f"different data ({ra['fingerprint']} against {rb['fingerprint']})")
    if ra["size"] != rb["size"]:
        out.append(f"{ra['size']} px against {rb['size']} px")
    return out


def content_hash(path: str | Path) -> str:
    """sha256 of the file's bytes (remembered per path, size and mtime: a checkpoint is read once);
    also the key a checkpoint's direction names are kept under (`directions.checkpoint_hash`)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def store() -> Path:
    return paths.home() / "evals" / STORE_NAME


def record(path: str | Path, result: dict[str, Any], requested_n: int | None = None) -> None:
    """Keep a result measured for the checkpoint at `path`, by the checkpoint's content.
    `requested_n`: the n asked for, where the split held fewer images (the result says how many)."""
    out = store()
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"requested_n": int(requested_n)} if requested_n is not None else {}
    append_jsonl(out, {"content": content_hash(path), "checkpoint": str(Path(path).resolve()), **result, **extra})


def results_for(path: str | Path, embedded: list[dict[str, Any]] | tuple = ()) -> list[dict[str, Any]]:
    """Every result known for this checkpoint's content: what it carries (`embedded`), what was
    recorded for its file (`rundir.evals_for_checkpoint`) and for any file with the same bytes."""
    me = content_hash(path)
    rows = [dict(r) for r in embedded] + evals_for_checkpoint(path)
    rows += [r for r in read_jsonl(store()) if r.get("content") == me]
    for r in rows:
        if "value" not in r and "accuracy" in r:      # a realism judgement
            r.setdefault("metric", REALISM)
            r["value"] = r["accuracy"]
    return [r for r in rows if r.get("metric") is not None and isinstance(r.get("value"), (int, float))]


def matches(row: dict[str, Any], m: Measure, fingerprint: str, size: int, metric: str | None = None) -> bool:
    """Was `row` measured the way `m` measures a checkpoint of `size` px on data of `fingerprint`?"""
    ref = parse_reference(row.get("reference", ""))
    return (ref is not None and str(row.get("metric", "")).lower() == (metric or m.metric)
            and int(m.n) in (int(row.get("n") or 0), int(row.get("requested_n") or 0)) and ref["split"] == m.split
            and ref["fingerprint"] == fingerprint[:8] and ref["size"] == int(size)
            and int(row.get("seed") or 0) == int(m.seed))


def recorded(path: str | Path, m: Measure, fingerprint: str, size: int, embedded: list[dict[str, Any]] | tuple = (),
             metric: str | None = None) -> dict[str, Any] | None:
    """The newest result for this checkpoint measured as `m` (or with `metric`, e.g. REALISM, at
    m's split, n and data), or None: then it has to be measured."""
    found = [r for r in results_for(path, embedded) if matches(r, m, fingerprint, size, metric)]
    return found[-1] if found else None

