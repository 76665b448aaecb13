"""Hostile zips, however they arrive (prepare / train --data / the Dataset page read a zip in place;
an upload is kept as the zip it is and read in place too): one reader with limits, what it refuses reported by name and reason,
the rest of the zip used. Every hostile zip is built here, in tmp_path."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegan.data import DataError, check_source, describe_member, find_cache, prepare, read_member, zipread
from animegan.uploads import save_upload

ROOT = Path(__file__).resolve().parent.parent
N_FACES = 20
GiB = 1 << 30
MiB = 1 << 20

# --------------------------------------------------------------------------- helpers


def face(i: int, side: int = 48, fmt: str = "PNG") -> bytes:
    """A distinct image (noise: no two are duplicates)."""
    a = np.random.default_rng(7000 + i).integers(0, 256, (side, side, 3), dtype=np.uint8)
    b = io.BytesIO()
    Image.fromarray(a, "RGB").save(b, fmt)
    return b.getvalue()


def faces_zip(path: Path, extra=(), n: int = N_FACES) -> Path:
    """n faces as faces/face_NN.png, then ``extra``: (name or ZipInfo, bytes) or (name, callable(zf))."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"faces/face_{i:02d}.png", face(i))
        for name, data in extra:
            if callable(data):
                data(zf, name)
            else:
                zf.writestr(name, data)
    return path


def zeros(nbytes: int):
    """Writes a member of ``nbytes`` zeros, deflated, 1 MiB at a time (the test stays small)."""
    def write(zf: zipfile.ZipFile, name: str) -> None:
        zi = zipfile.ZipInfo(name)
        zi.compress_type = zipfile.ZIP_DEFLATED   # a bare ZipInfo would be stored, not deflated
        chunk = bytes(MiB)
        with zf.open(zi, "w", force_zip64=nbytes >= 2**31 - 1) as w:
            for _ in range(nbytes // MiB):
                w.write(chunk)
    return write


def patch_member(path: Path, name: str, *, usize: int | None = None, flags_or: int = 0) -> None:
    """Rewrite a member's declared uncompressed size and/or flag bits in its central-directory
    entry and its local header, in place (what a crafted zip does)."""
    buf = bytearray(path.read_bytes())
    raw = name.encode()
    i = patched = 0
    while (cd := buf.find(b"PK\x01\x02", i)) >= 0:
        n = struct.unpack_from("<H", buf, cd + 28)[0]
        if bytes(buf[cd + 46:cd + 46 + n]) == raw:
            local = struct.unpack_from("<I", buf, cd + 42)[0]
            assert bytes(buf[local:local + 4]) == b"PK\x03\x04"
            for at_flags, at_usize in ((cd + 8, cd + 24), (local + 6, local + 22)):
                if usize is not None:
                    struct.pack_into("<I", buf, at_usize, usize)
                struct.pack_into("<H", buf, at_flags, struct.unpack_from("<H", buf, at_flags)[0] | flags_or)
            patched += 1
        i = cd + 4
    assert patched == 1, f"member {name} not found"
    path.write_bytes(bytes(buf))


def face_names(n: int = N_FACES) -> list[str]:
    return [f"faces/face_{i:02d}.png" for i in range(n)]


def assert_user_words(text: str) -> None:
    """No library internals in what a user reads."""
    for bad in ("BadZipFile", "Error:", "Exception", "Traceback", "ZipInfo", "zipfile", "b'", "\\x"):
        assert bad not in text, (bad, text)


# --------------------------------------------------------------------------- a zip bomb member


def _prepare_peak_mb(z: Path, home: Path) -> tuple[float, str]:
    """Run `python -m animegan prepare --data z --size 64` with ANIMEGAN_HOME=home in a wrapper
    process that reports the peak RSS of its only child -> (peak MB, prepare's stdout)."""
    env = {**os.environ, "ANIMEGAN_HOME": str(home), "PYTHONPATH": str(ROOT)}
    wrap = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    cmd = [sys.executable, "-c", wrap, sys.executable, "-m", "animegan", "prepare", "--data", str(z), "--size", "64"]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out, _, peak = r.stdout.rpartition("PEAK_RSS_KB")
    return int(peak.split()[0]) / 1024, out  # Linux: kilobytes


def test_a_huge_member_is_refused_by_name_and_prepare_stays_small(tmp_path):
    """The issue's zip, smaller: faces beside 1 GiB of zeros named like an image (~1 MB on disk).
    `python -m animegan prepare` uses the faces, names the member and its reason, and its peak
    memory stays under 1 GB, no more than without the member (before: the whole member was
    read, ~2.8 GB)."""
    z = faces_zip(tmp_path / "bomb.zip", [("faces/big.png", zeros(GiB))])
    assert z.stat().st_size < 8 * MiB
    with zipfile.ZipFile(z) as zf:
        assert zf.getinfo("faces/big.png").file_size == GiB
    home = tmp_path / "home"
    peak_mb, out = _prepare_peak_mb(z, home)
    assert f"{N_FACES + 1} image files looked at: {N_FACES} usable" in out, out
    assert f"skipped, {zipread.MEMBER_TOO_LARGE}: 1 (faces/big.png)" in out, out
    assert "zip bomb" in out
    assert_user_words(out)
    # The same prepare without the member: most of a prepare's memory is the CLI's imports
    # (torch alone is ~850 MB resident), so the member must add next to nothing.
    base_mb, _ = _prepare_peak_mb(faces_zip(tmp_path / "faces.zip"), tmp_path / "home2")
    print(f"prepare of {N_FACES} faces + a 1 GiB member: peak RSS {peak_mb:,.0f} MB ({base_mb:,.0f} MB without it)")
    assert peak_mb < 1000 and peak_mb < base_mb + 100, f"peak RSS {peak_mb:,.0f} MB, {base_mb:,.0f} MB without it"
    # the images kept (from the cache prepare built)
    d = prepare(z, 64, cache_root=home / "cache")
    assert d.from_cache and d.names == face_names() and d.images.shape == (N_FACES, 3, 64, 64)
    assert d.report.skipped == {zipread.MEMBER_TOO_LARGE: ["faces/big.png"]}


def test_a_member_compressed_like_a_bomb_is_refused_before_reading(tmp_path):
    # under the per-member cap, but ~1,000x compressed: nothing of it is inflated
    z = faces_zip(tmp_path / "ratio.zip", [("faces/flat.bmp", zeros(8 * MiB))])
    d = prepare(z, 32, val=0, test=0)
    assert d.report.skipped == {zipread.TOO_COMPRESSED: ["faces/flat.bmp"]}
    assert d.names == face_names()
    assert_user_words(d.report.summary())
    with pytest.raises(DataError) as e:  # the Dataset page's look at one file: the same refusal
        read_member(z, "faces/flat.bmp")
    assert "zip bomb" in str(e.value)
    assert_user_words(str(e.value))
    assert describe_member(str(z), "faces/flat.bmp") is None


# --------------------------------------------------------------------------- a lying header


def test_a_header_that_lies_about_its_size_is_reported_and_the_read_stays_bounded(tmp_path):
    """A member whose headers declare 1,000 bytes but whose data inflates to 256 MiB."""
    z = faces_zip(tmp_path / "liar.zip", [("faces/liar.png", zeros(256 * MiB))])
    patch_member(z, "faces/liar.png", usize=1000)
    # What Python's zipfile does with it: it believes the header (so would a cap checked only
    # against the header: 1,000 bytes pass), inflates up to the declared size, then fails the
    # CRC check; it does not read past the size (the reader's own bound is tested below).
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("faces/liar.png")
        assert info.file_size == 1000 and info.compress_size > 200_000
        with pytest.raises(zipfile.BadZipFile, match="CRC"):  # 1,000 bytes inflated, then the CRC fails
            zf.read(info)
    tracemalloc.start()
    try:
        d = prepare(z, 32, val=0, test=0, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.report.skipped == {zipread.DAMAGED: ["faces/liar.png"]}
    assert d.names == face_names()
    assert "re-create the zip" in d.report.summary()
    assert_user_words(d.report.summary())
    assert peak < 64 * MiB, f"{peak / MiB:.0f} MiB"


@pytest.mark.parametrize("payload, reason", [("random", "MEMBER_TOO_LARGE"), ("zeros", "TOO_COMPRESSED")])
def test_the_bounded_read_stops_at_the_caps_whatever_the_header_says(tmp_path, monkeypatch, payload, reason):
    """The read itself is bounded: with every check of the directory believed (as if the
    header lied well), reading stops once the bytes read pass the per-member cap (random
    data) or the ratio cap (zeros), and only about that much is ever held."""
    if payload == "random":
        data = np.random.default_rng(0).integers(0, 256, 12 * MiB, dtype=np.uint8).tobytes()
        extra = [("faces/big.png", data)]
    else:
        extra = [("faces/big.png", zeros(256 * MiB))]
    z = faces_zip(tmp_path / f"{payload}.zip", extra)
    del extra
    if payload == "random":
        monkeypatch.setattr(zipread, "MAX_MEMBER_BYTES", 2 * MiB)
    monkeypatch.setattr(zipread, "refusal_before_reading", lambda info, **kw: None)  # believe every header
    tracemalloc.start()
    try:
        d = prepare(z, 32, val=0, test=0, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.report.skipped == {getattr(zipread, reason): ["faces/big.png"]}
    assert d.names == face_names()
    # random: stops after the 2 MiB cap; zeros: after 200x the ~250 KB compressed (~50 MB)
    assert peak < (8 * MiB if payload == "random" else 80 * MiB), f"{peak / MiB:.0f} MiB"


# --------------------------------------------------------------------------- whole-archive limits


def test_too_many_members_refuses_the_whole_zip_with_a_clear_message(tmp_path, monkeypatch):
    z = faces_zip(tmp_path / "many.zip", [(f"tiny/{i:03d}.txt", b"x") for i in range(40)])  # 60 entries
    monkeypatch.setattr(zipread, "MAX_MEMBERS", 59)
    for road in (lambda: prepare(z, 32), lambda: check_source(z)):   # prepare; train --data / the job starter
        with pytest.raises(DataError) as e:
            road()
        msg = str(e.value)
        assert "many.zip has 60 entries, more than the 59 allowed" in msg, msg
        assert "Split it into smaller zips" in msg and "unpack it and point to the folder" in msg
        assert_user_words(msg)
    assert find_cache(z, 32) is None                                  # the Dataset page's look-up: nothing
    # counted from the parsed directory when the end record cannot be read
    monkeypatch.setattr(zipread, "declared_entries", lambda fp: None)
    with pytest.raises(DataError, match="60 entries, more than the 59 allowed"):
        prepare(z, 32)
    monkeypatch.setattr(zipread, "MAX_MEMBERS", 60)
    assert prepare(z, 32, val=0, test=0).names == face_names()


def test_too_many_bytes_refuses_the_whole_zip_with_a_clear_message(tmp_path, monkeypatch):
    z = faces_zip(tmp_path / "heavy.zip")
    total = sum(len(face(i)) for i in range(N_FACES))
    monkeypatch.setattr(zipread, "MAX_TOTAL_BYTES", total - 1)
    with pytest.raises(DataError) as e:
        prepare(z, 32)
    msg = str(e.value)
    assert "heavy.zip would unpack to more than" in msg and "of images (the limit; zip bomb?)" in msg, msg
    assert "Split it into smaller zips" in msg
    assert_user_words(msg)
    monkeypatch.setattr(zipread, "MAX_TOTAL_BYTES", total)
    assert len(prepare(z, 32, val=0, test=0)) == N_FACES


# --------------------------------------------------------------------------- members that are not read


def test_nested_zips_unsafe_paths_folders_and_encrypted_members_are_reported_by_name(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("more/face.png", face(99))
    extra = [
        ("faces/more.zip", inner.getvalue()),          # a zip inside the zip: not opened
        ("../escape.png", face(100)),                   # a path that climbs out
        ("faces/../../escape2.png", face(101)),
        ("/abs/face.png", face(102)),                   # an absolute path
        ("faces/odd.png/", b""),                        # a folder entry named like an image
        ("faces/", b""),                                # a plain folder entry: not reported
        ("faces/secret.png", face(103)),                # encrypted (flag patched below)
        ("faces/notes.txt", b"not looked at"),          # other files: counted, not reported
    ]
    z = faces_zip(tmp_path / "odd.zip", extra)
    patch_member(z, "faces/secret.png", flags_or=0x1)
    expected = {
        zipread.NESTED: ["faces/more.zip"],
        zipread.UNSAFE: ["../escape.png", "/abs/face.png", "faces/../../escape2.png"],
        zipread.FOLDER: ["faces/odd.png/"],
        zipread.ENCRYPTED: ["faces/secret.png"],
    }
    d = prepare(z, 32, val=0, test=0)
    r = d.report
    assert {k: sorted(v) for k, v in r.skipped.items()} == {k: sorted(v) for k, v in expected.items()}
    assert d.names == face_names(), "the rest of the zip is used"
    assert r.ignored_other == 1 and r.usable + len(r.duplicates) + r.n_skipped == r.total == N_FACES + 6
    text = r.summary()
    for reason, names in expected.items():
        assert f"skipped, {reason}: {len(names)}" in text and names[0] in text
    assert "unpack it and add its images" in text and "without a password" in text
    assert_user_words(text)

    # The same zip uploaded: kept as it is and read in place by the same reader, so the same reasons.
    kept = save_upload(z, tmp_path / "uploads")
    up = prepare(kept, 32, val=0, test=0).report
    assert {k: sorted(v) for k, v in up.skipped.items()} == {k: sorted(v) for k, v in expected.items()}
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["odd.zip"], "nothing unpacked"
    assert not (tmp_path / "escape.png").exists()
    assert_user_words(up.summary())


def test_real_sized_sets_pass_every_limit(tmp_path):
    """What a real set looks like passes: 512 px PNGs and an uncompressed BMP beside 96 px JPEGs;
    a small flat image (under the ratio floor) too, however well it compresses."""
    extra = [(f"big/{i}.png", face(200 + i, side=512)) for i in range(3)]
    extra += [("big/raw.bmp", face(210, side=512, fmt="BMP")),
              ("small/flat.bmp", b"BM" + bytes(500_000))]  # not a real BMP: decoding says so, not the reader
    extra += [(f"jpg/{i}.jpg", face(300 + i, side=96, fmt="JPEG")) for i in range(3)]
    z = faces_zip(tmp_path / "real.zip", extra)
    d = prepare(z, 64, val=0, test=0)
    assert set(d.report.skipped) <= {"corrupt or truncated", "not an image"}
    assert list(d.report.skipped.values()) == [["small/flat.bmp"]]
    assert len(d) == N_FACES + 7
    assert zipread.MAX_MEMBERS >= 16 * 30_000 and zipread.MAX_TOTAL_BYTES >= 8 * 1000 * 1_000_000
