"""animegan.data: sources, bad files, conversions, the decoded cache, splits, tensors."""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import paths
from animegan.data import (
    DataError,
    DataReport,
    ImageRejected,
    cache_usage,
    clear_caches,
    decode,
    describe_member,
    describe_source,
    find_cache,
    fingerprint,
    iter_source_files,
    load_image_bytes,
    make_splits,
    prepare,
    read_member,
    split_sizes,
    to_float,
    to_uint8,
)

BOMB_LIMIT = 10_000  # pixels; every "good" test image stays below it


# --------------------------------------------------------------------------- helpers


def noise(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    chans = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    a = rng.integers(0, 256, (h, w, chans), dtype=np.uint8)
    return Image.fromarray(a[..., 0] if chans == 1 else a, mode)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def put(path: Path, payload: bytes | Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, Image.Image):
        payload = encode(payload, fmt or path.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
    path.write_bytes(payload)
    return path


def good_folder(root: Path, n: int = 12, side: int = 40) -> Path:
    for i in range(n):
        put(root / f"img{i:03d}.png", noise(side, side, seed=1000 + i))
    return root


def zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            rel = Path(dirpath).relative_to(folder)
            if str(rel) != ".":
                zf.write(dirpath, rel.as_posix() + "/")
            for fn in sorted(filenames):
                zf.write(Path(dirpath) / fn, (rel / fn).as_posix())
    return out


@pytest.fixture
def messy(tmp_path, monkeypatch) -> Path:
    """Good images plus every kind of bad file; the bomb limit is lowered to BOMB_LIMIT."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BOMB_LIMIT)
    d = tmp_path / "messy"
    a = put(d / "good/a.png", noise(64, 64, 1))
    shutil.copyfile(a, d / "good/a_copy.png")                      # exact duplicate
    put(d / "good/b.jpg", noise(64, 48, 2))                        # non-square -> cropped
    put(d / "good/C.PNG", noise(40, 40, 3), "PNG")                 # upper-case extension
    put(d / "sub/deeper/d.webp", noise(50, 50, 4), "WEBP")         # recursive search
    put(d / "e.bmp", noise(96, 96, 5), "BMP")
    put(d / "empty.jpg", b"")                                       # zero-byte
    png = encode(noise(64, 64, 6), "PNG")
    jpg = encode(noise(64, 64, 7), "JPEG")
    put(d / "trunc.png", png[: len(png) // 2])                      # truncated PNG
    put(d / "trunc.jpg", jpg[: len(jpg) // 2])                      # truncated JPEG
    put(d / "headless.png", png[:20])                               # header cut: still a PNG
    put(d / "text.png", b"this is not an image, whatever its name says\n")
    put(d / "tiny.png", noise(20, 20, 8))                           # under 32 px
    put(d / "thin.png", noise(90, 20, 9))                           # one side under 32 px
    put(d / "bomb.png", Image.new("RGB", (110, 110), "red"))        # 12,100 px: warning level
    put(d / "bomb2.png", Image.new("RGB", (300, 300), "red"))       # 90,000 px: error level
    put(d / "notes.txt", b"not looked at")                          # other extension: ignored
    put(d / ".hidden/x.png", noise(64, 64, 10))                     # hidden: ignored
    return d


EXPECTED_SKIPPED = {
    "empty file": ["empty.jpg"],
    "corrupt or truncated": ["headless.png", "trunc.jpg", "trunc.png"],
    "not an image": ["text.png"],
    "too small": ["thin.png", "tiny.png"],
    "too large (decompression bomb)": ["bomb.png", "bomb2.png"],
}


# --------------------------------------------------------------------------- bad files


def test_bad_files_are_reported_with_their_reason(messy):
    p = prepare(messy, 32)
    r = p.report
    assert {k: sorted(v) for k, v in r.skipped.items()} == EXPECTED_SKIPPED
    assert r.duplicates == [("good/a.png", "good/a_copy.png")]
    assert r.total == 15 and r.ignored_other == 1
    assert r.usable == 5 == len(p) == len(p.names)
    assert r.usable + len(r.duplicates) + r.n_skipped == r.total
    assert p.names == ["e.bmp", "good/C.PNG", "good/a.png", "good/b.jpg", "sub/deeper/d.webp"]
    assert p.images.shape == (5, 3, 32, 32) and p.images.dtype == np.uint8
    assert isinstance(p.images, np.memmap)
    assert r.converted.get("cropped") == 1
    text = r.summary()
    for reason, names in EXPECTED_SKIPPED.items():
        assert reason in text and names[0] in text
    assert "good/a_copy.png = good/a.png" in text
    assert DataReport.from_dict(r.to_dict()) == r


def test_summary_limits_names():
    r = DataReport(total=12, usable=2, skipped={"not an image": [f"f{i}.png" for i in range(10)]})
    text = r.summary(max_names=3)
    assert "f0.png, f1.png, f2.png" in text and "f3.png" not in text and "+7 more" in text


def test_load_image_bytes_rejects_with_reason(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BOMB_LIMIT)
    png = encode(noise(64, 64, 0), "PNG")
    cases = {
        b"": "empty file",
        png[: len(png) // 2]: "corrupt or truncated",
        b"GIF89a? no": "corrupt or truncated",
        b"plain text": "not an image",
        encode(noise(31, 64, 0), "PNG"): "too small",
        encode(Image.new("L", (200, 200)), "PNG"): "too large (decompression bomb)",
    }
    for payload, reason in cases.items():
        with pytest.raises(ImageRejected) as ei:
            load_image_bytes(payload, "x.png")
        assert ei.value.reason == reason
        assert isinstance(ei.value, DataError)
    im = load_image_bytes(png)
    assert im.mode == "RGB" and im.size == (64, 64)


def test_bomb_size_is_checked_before_decoding(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BOMB_LIMIT)
    big = encode(noise(120, 120, 0), "PNG")
    header_only = big[:200]  # a decode would fail on this; the size check comes first
    with pytest.raises(ImageRejected) as ei:
        load_image_bytes(header_only)
    assert ei.value.reason == "too large (decompression bomb)"


# --------------------------------------------------------------------------- conversions


def test_modes_are_converted_to_rgb(tmp_path):
    d = tmp_path / "modes"
    put(d / "gray.png", Image.new("L", (64, 64), 77))
    pal = Image.new("P", (64, 64), 1)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    put(d / "pal.png", pal)                                         # blue through a palette
    palt = pal.copy()
    palt.paste(0, (0, 0, 32, 64))                                   # left half: index 0 (red)
    palt.info["transparency"] = 0                                   # ... which is transparent
    put(d / "palt.png", encode(palt, "PNG", transparency=0))
    rgba = Image.new("RGBA", (64, 64), (10, 20, 30, 255))
    rgba.paste((10, 200, 30, 0), (0, 0, 32, 64))                    # left half fully transparent
    put(d / "rgba.png", rgba)
    la = Image.new("LA", (64, 64), (50, 255))
    la.paste((0, 0), (0, 0, 32, 64))
    put(d / "la.png", la)
    put(d / "cmyk.jpg", encode(Image.new("CMYK", (64, 64), (0, 255, 0, 0)), "JPEG", quality=95))
    band = np.zeros((64, 64), np.uint16)
    band[:20], band[20:40], band[40:] = 65535, 32896, 257 * 100     # -> 255, 128, 100
    i16 = Image.fromarray(band)
    assert i16.mode == "I;16"
    put(d / "i16.png", i16)

    p = prepare(d, 64)  # same size: no resize, pixels are exact
    assert p.report.converted == {"grayscale": 1, "palette": 2, "rgba": 1,
                                  "grayscale+alpha": 1, "cmyk": 1, "16-bit": 1}
    img = {n: np.asarray(p.images[i]).transpose(1, 2, 0) for i, n in enumerate(p.names)}
    assert (img["gray.png"] == 77).all()
    assert (img["pal.png"] == [0, 0, 255]).all()
    assert (img["palt.png"][:, :32] == 255).all() and (img["palt.png"][:, 32:] == [0, 0, 255]).all()
    assert (img["rgba.png"][:, :32] == 255).all() and (img["rgba.png"][:, 32:] == [10, 20, 30]).all()
    assert (img["la.png"][:, :32] == 255).all() and (img["la.png"][:, 32:] == 50).all()
    assert np.abs(img["cmyk.jpg"].astype(int) - [255, 0, 255]).max() <= 3   # C=0,M=255 -> magenta
    assert (img["i16.png"][:20] == 255).all()
    assert (img["i16.png"][20:40] == 128).all()
    assert (img["i16.png"][40:] == 100).all()


def test_32bit_integer_mode_is_scaled_as_16_bit():
    a = np.array([[0, 257 * 7, 32896, 65535, 70000, -5]] * 2, dtype=np.int32)
    im = Image.fromarray(a)
    assert im.mode == "I"
    rgb, tags = decode._to_rgb(im)
    assert tags == ["16-bit"]
    assert np.asarray(rgb)[0, :, 0].tolist() == [0, 7, 128, 255, 255, 0]


def test_non_square_images_are_center_cropped(tmp_path):
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, :40], wide[:, 40:80], wide[:, 80:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    tall = wide.transpose(1, 0, 2).copy()
    for arr in (wide, tall):
        im = load_image_bytes(encode(Image.fromarray(arr), "PNG"))
        assert im.size == (40, 40)
        assert (np.asarray(im) == [0, 255, 0]).all()
    d = tmp_path / "crop"
    put(d / "wide.png", Image.fromarray(wide))
    put(d / "tall.png", Image.fromarray(tall))
    p = prepare(d, 32)
    assert p.report.converted == {"cropped": 2}
    assert (np.asarray(p.images).transpose(0, 2, 3, 1) == [0, 255, 0]).all()


def test_resize_is_antialiased_and_upscales_small_images(tmp_path):
    d = tmp_path / "sizes"
    checker = (np.indices((128, 128)).sum(0) % 2 * 255).astype(np.uint8)
    put(d / "checker.png", Image.fromarray(checker))                # fine detail -> mid gray
    put(d / "small.png", Image.new("RGB", (40, 40), (9, 99, 199)))
    p = prepare(d, 64)
    checker64 = np.asarray(p.images[p.names.index("checker.png")]).astype(int)
    assert abs(checker64.mean() - 127.5) < 3 and checker64.std() < 20  # no aliasing pattern
    assert (np.asarray(p.images[p.names.index("small.png")]).transpose(1, 2, 0) == [9, 99, 199]).all()
    assert p.report.converted == {"grayscale": 1, "upscaled": 1}


# --------------------------------------------------------------------------- zip sources


def test_zip_source_gives_the_same_report(messy, tmp_path):
    folder = prepare(messy, 32)
    z = zip_folder(messy, tmp_path / "messy.zip")
    zipped = prepare(z, 32)
    assert zipped.report.to_dict() == folder.report.to_dict()
    assert zipped.names == folder.names
    assert np.array_equal(np.asarray(zipped.images), np.asarray(folder.images))
    assert [s.tolist() for s in zipped.splits.values()] == [s.tolist() for s in folder.splits.values()]
    assert describe_source(z) == f"zip {z.resolve()} (15 members)"
    assert describe_source(messy) == f"folder {messy.resolve()} (15 files)"
    a = {n: read() for n, _, read in iter_source_files(messy)}
    b = {n: read() for n, _, read in iter_source_files(z)}
    assert a == b and len(a) == 15 and a["empty.jpg"] == b""
    assert [(n, s) for n, s, _ in iter_source_files(z)] == [(n, len(v)) for n, v in sorted(a.items())]


def test_zip_fingerprint_uses_the_directory(tmp_path):
    src = good_folder(tmp_path / "g", n=3)
    z1 = zip_folder(src, tmp_path / "one.zip")
    z2 = zip_folder(src, tmp_path / "two.zip")
    assert fingerprint(z1) == fingerprint(z2)                      # same members, sizes, CRCs
    put(src / "img000.png", noise(40, 40, 99))
    z3 = zip_folder(src, tmp_path / "three.zip")
    assert fingerprint(z3) != fingerprint(z1)


# --------------------------------------------------------------------------- cache


def test_second_prepare_decodes_nothing(tmp_path):
    src = good_folder(tmp_path / "src")
    first = prepare(src, 32)
    assert not first.from_cache and first.decoded == 12 and first.rebuilt_because is None
    assert first.cache_path.exists() and first.cache_path.parent == paths.cache_dir()
    second = prepare(src, 32)
    assert second.from_cache and second.decoded == 0
    assert np.array_equal(np.asarray(second.images), np.asarray(first.images))
    assert second.names == first.names and second.report == first.report
    assert second.fingerprint == first.fingerprint == fingerprint(src)
    other_size = prepare(src, 48)                                   # the size is part of the key
    assert not other_size.from_cache and other_size.images.shape == (12, 3, 48, 48)
    assert prepare(src, 32).from_cache


def test_changed_source_rebuilds(tmp_path):
    src = good_folder(tmp_path / "src")
    first = prepare(src, 32)
    st = (src / "img003.png").stat()
    os.utime(src / "img003.png", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch
    again = prepare(src, 32)
    assert not again.from_cache and again.decoded == 12
    assert again.rebuilt_because == "source changed"
    assert again.fingerprint != first.fingerprint
    put(src / "new/img999.png", noise(40, 40, 4242))                # add a file
    added = prepare(src, 32)
    assert not added.from_cache and len(added) == 13 and "new/img999.png" in added.names
    (src / "img000.png").unlink()                                   # remove one
    removed = prepare(src, 32)
    assert not removed.from_cache and len(removed) == 12
    assert prepare(src, 32).from_cache


def _damage_truncate(npy: Path) -> None:
    with open(npy, "r+b") as f:
        f.truncate(npy.stat().st_size - 1000)


def _damage_overwrite(npy: Path) -> None:
    with open(npy, "r+b") as f:
        f.seek(npy.stat().st_size // 2)
        f.write(b"\xff\x00" * 50)


def _damage_garbage(npy: Path) -> None:
    npy.write_bytes(os.urandom(npy.stat().st_size))


def _damage_shape(npy: Path) -> None:
    np.save(npy, np.zeros((48, 3, 16, 16), np.uint8))             # same bytes, another shape


def _damage_header(npy: Path) -> None:
    with open(npy, "r+b") as f:
        f.write(b"NOTNUMPY")


def _damage_meta(npy: Path) -> None:
    npy.with_suffix(".json").unlink()


@pytest.mark.parametrize("damage, why", [
    (_damage_truncate, "wrong size"),
    (_damage_overwrite, "checksum mismatch"),
    (_damage_garbage, "unreadable"),
    (_damage_shape, "wrong shape"),
    (_damage_header, "unreadable"),
    (_damage_meta, "meta file missing"),
])
def test_damaged_cache_is_rebuilt(tmp_path, damage, why):
    src = good_folder(tmp_path / "src")
    first = prepare(src, 32)
    expected = np.array(first.images)
    del first
    npy = prepare(src, 32).cache_path
    damage(npy)
    rebuilt = prepare(src, 32)
    assert not rebuilt.from_cache and rebuilt.decoded == 12
    assert why in rebuilt.rebuilt_because
    assert np.array_equal(np.asarray(rebuilt.images), expected)
    assert prepare(src, 32).from_cache


def test_interrupted_build_leaves_no_valid_looking_cache(tmp_path, monkeypatch):
    src = good_folder(tmp_path / "src")
    root = tmp_path / "cache"
    calls = []

    def boom(done, total):
        calls.append(done)
        if done:
            raise KeyboardInterrupt

    monkeypatch.setattr(decode, "CHUNK", 4)
    with pytest.raises(KeyboardInterrupt):
        prepare(src, 32, cache_root=root, progress=boom)
    assert calls == [0, 4]
    assert not list(root.glob("*.npy")) and not list(root.glob("*.json"))
    assert not [p for p in root.iterdir()]                          # temp file removed too
    p = prepare(src, 32, cache_root=root)
    assert not p.from_cache and len(p) == 12


def test_cache_usage_and_clear(tmp_path):
    src = good_folder(tmp_path / "src", n=3)
    root = tmp_path / "cache"
    assert cache_usage(root) == [] and clear_caches(root) == 0
    p = prepare(src, 32, cache_root=root)
    (root / ".leftover.npy.tmp-1-abcd").write_bytes(b"x" * 10)
    usage = cache_usage(root)
    complete = [u for u in usage if u["complete"]]
    assert len(complete) == 1 and len(usage) == 2
    u = complete[0]
    assert u["source"] == str(src) and u["size"] == 32 and u["count"] == 3
    assert u["path"] == p.cache_path
    assert u["bytes"] == p.cache_path.stat().st_size + p.cache_path.with_suffix(".json").stat().st_size
    (root / "unrelated.txt").write_text("not ours")
    freed = clear_caches(root)
    assert freed == sum(x["bytes"] for x in usage)
    assert [q.name for q in root.iterdir()] == ["unrelated.txt"]
    assert not prepare(src, 32, cache_root=root).from_cache


def test_find_cache_finds_only_a_valid_cache_and_builds_nothing(tmp_path):
    src = good_folder(tmp_path / "src", n=3)
    root = tmp_path / "cache"
    assert find_cache(src, 32, cache_root=root) is None
    assert not root.exists()                                        # looking creates nothing
    p = prepare(src, 32, cache_root=root)
    found = find_cache(src, 32, cache_root=root)
    assert found is not None
    images, meta = found
    assert isinstance(images, np.memmap) and np.array_equal(np.asarray(images), np.asarray(p.images))
    assert meta["names"] == p.names and meta["fingerprint"] == p.fingerprint
    assert find_cache(src, 48, cache_root=root) is None             # another size
    assert find_cache(tmp_path / "nowhere", 32, cache_root=root) is None
    put(src / "img999.png", noise(40, 40, 7))                       # the source changed
    assert find_cache(src, 32, cache_root=root) is None
    assert prepare(src, 32, cache_root=root).rebuilt_because == "source changed"
    assert find_cache(src, 32, cache_root=root) is not None


def test_find_cache_never_renders_the_synthetic_set(animegan_home):
    assert find_cache("synthetic", 32) is None
    assert not (animegan_home / "synthetic").exists()


def test_read_member_and_describe_member(tmp_path):
    src = good_folder(tmp_path / "src", n=2)
    put(src / "sub/wide.png", noise(80, 40, 5))
    put(src / "bad.png", b"not an image at all")
    z = zip_folder(src, tmp_path / "src.zip")
    for source in (src, z):
        assert read_member(source, "sub/wide.png") == (src / "sub/wide.png").read_bytes()
        assert describe_member(source, "sub/wide.png") == f"80×40 px, RGB, PNG, {(src / 'sub/wide.png').stat().st_size:,} bytes"
        assert describe_member(source, "bad.png") == "19 bytes (not readable now)"
        assert describe_member(source, "missing.png") is None
        with pytest.raises(DataError, match="cannot be read"):
            read_member(source, "missing.png")
    (tmp_path / "secret.png").write_bytes(b"outside")
    for bad in ("../secret.png", "/etc/passwd", ""):
        with pytest.raises(DataError, match="not a file name inside"):
            read_member(src, bad)


def test_progress_reports(tmp_path, capsys):
    src = good_folder(tmp_path / "src")
    seen = []
    prepare(src, 32, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    prepare(src, 40, progress=True)
    assert "12/12" in capsys.readouterr().err


def test_pool_decoding_matches_in_process(messy, monkeypatch):
    """The multiprocessing path (forked workers, bomb limit passed along) gives the same result."""
    pools = []
    real_context = decode.pool_context

    def counted_context():
        pools.append(1)
        return real_context()

    monkeypatch.setattr(decode, "pool_context", counted_context)
    inproc = prepare(messy, 32, cache_root=messy.parent / "c1", workers=1)
    assert pools == []                                              # one worker: decoded in-process
    monkeypatch.setattr(decode, "POOL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 5)
    pooled = prepare(messy, 32, cache_root=messy.parent / "c2", workers=2)
    assert pools == [1]                                             # ... and here by a pool
    assert pooled.decoded == 15
    assert pooled.report == inproc.report
    assert pooled.names == inproc.names
    assert np.array_equal(np.asarray(pooled.images), np.asarray(inproc.images))


# --------------------------------------------------------------------------- splits


def test_split_sizes_scale_down():
    assert split_sizes(0) == (0, 0)
    assert split_sizes(9) == (0, 0)
    assert split_sizes(10) == (1, 1)
    assert split_sizes(25) == (2, 2)
    assert split_sizes(5_000) == (500, 500)
    assert split_sizes(30_000) == (2000, 2000)
    assert split_sizes(30_000, 100, 0) == (100, 0)
    with pytest.raises(DataError):
        split_sizes(100, -1, 0)


def test_splits_are_deterministic_and_disjoint():
    names = [f"images/{i}.jpg" for i in range(5_000)]
    s = make_splits(names, seed=0)
    assert len(s["val"]) == len(s["test"]) == 500 and len(s["train"]) == 4000
    allidx = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(allidx.tolist()) == list(range(5_000))
    for part in s.values():
        assert part.dtype == np.int64 and (np.diff(part) > 0).all()
    again = make_splits(list(names), seed=0)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    other = make_splits(names, seed=1)
    assert not np.array_equal(s["val"], other["val"])
    # adding names keeps most held-out images where they were
    more = make_splits(names + [f"extra/{i}.jpg" for i in range(50)], seed=0)
    assert len(set(s["val"].tolist()) & set(more["val"].tolist())) > 450


def test_prepare_splits_small_source_and_seed_from_cache(tmp_path):
    tiny = good_folder(tmp_path / "tiny", n=6)
    p = prepare(tiny, 32)
    assert len(p.splits["val"]) == len(p.splits["test"]) == 0 and len(p.splits["train"]) == 6
    src = good_folder(tmp_path / "src", n=25)
    a = prepare(src, 32)
    assert len(a.splits["val"]) == len(a.splits["test"]) == 2 and len(a.splits["train"]) == 21
    assert a.split_images("val").shape == (2, 3, 32, 32)
    assert np.array_equal(a.split_images("test"), np.asarray(a.images)[a.splits["test"]])
    b = prepare(src, 32, split_seed=7)
    assert b.from_cache and b.decoded == 0
    assert not (np.array_equal(a.splits["val"], b.splits["val"])
                and np.array_equal(a.splits["test"], b.splits["test"]))
    c = prepare(src, 32, split_seed=0)
    assert c.from_cache and all(np.array_equal(a.splits[k], c.splits[k]) for k in a.splits)
    d = prepare(src, 32, val=1, test=0)
    assert len(d.splits["val"]) == 1 and len(d.splits["test"]) == 0


# --------------------------------------------------------------------------- tensors


def test_to_float_and_to_uint8():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    f = to_float(x)
    assert f.dtype == torch.float32 and f.min().item() == -1.0 and f.max().item() == 1.0
    assert torch.equal(to_uint8(f), x)
    y = to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, float("nan")]))
    assert y.dtype == torch.uint8 and y.tolist() == [0, 0, 128, 255, 255, 128]


# --------------------------------------------------------------------------- user errors


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError) as ei:
        prepare(tmp_path / "nowhere")
    msg = str(ei.value)
    assert "not found" in msg and "nowhere" in msg and "synthetic" in msg and ".zip" in msg


def test_empty_folder_is_a_clear_error(tmp_path):
    d = tmp_path / "empty"
    put(d / "readme.txt", b"hi")
    with pytest.raises(DataError) as ei:
        prepare(d)
    msg = str(ei.value)
    assert "No images" in msg and ".jpg" in msg and "1 other files ignored" in msg


def test_other_user_errors(tmp_path):
    bad_zip = put(tmp_path / "bad.zip", b"this is not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        prepare(bad_zip)
    single = put(tmp_path / "one.png", noise(40, 40, 0))
    with pytest.raises(DataError, match="is a file, not a folder"):
        prepare(single)
    junk = tmp_path / "junk"
    put(junk / "a.png", b"text")
    put(junk / "b.jpg", b"")
    with pytest.raises(DataError) as ei:
        prepare(junk)
    assert "None of the 2 image files" in str(ei.value) and "not an image" in str(ei.value)
    for bad in (16, 300, 64.5):
        with pytest.raises(DataError, match="between 32 and 256"):
            prepare(good_folder(tmp_path / "ok", n=1), bad)
    with zipfile.ZipFile(tmp_path / "nothing.zip", "w") as zf:
        zf.writestr("notes.txt", "no images here")
    with pytest.raises(DataError, match="No images"):
        prepare(tmp_path / "nothing.zip")


# --------------------------------------------------------------------------- synthetic


def test_synthetic_source_small_n(animegan_home):
    p = prepare("synthetic", 32, synthetic_n=30)
    assert p.source == "synthetic"
    assert p.report.total == 30 and p.report.n_skipped == 0
    assert len(p) + len(p.report.duplicates) == 30
    assert p.images.shape[1:] == (3, 32, 32)
    assert (animegan_home / "synthetic" / "images").is_dir()
    assert describe_source("synthetic") == "synthetic set (30 faces)"
    again = prepare("synthetic", 32, synthetic_n=30)
    assert again.from_cache and again.decoded == 0


# --------------------------------------------------------------------------- the real data set


def test_real_zip(real64, shared_zip):
    p, home = real64  # (prepared once per session in tests/conftest.py)
    r = p.report
    assert r.total == 30_000 and r.n_skipped == 0 and not r.skipped
    assert r.usable + len(r.duplicates) == 30_000
    assert len(p) == r.usable and p.images.shape == (r.usable, 3, 64, 64)
    assert len(set(p.names)) == len(p.names)
    assert len(p.splits["val"]) == len(p.splits["test"]) == 2000
    again = prepare(shared_zip, 64, cache_root=home / "cache")
    assert again.from_cache and again.decoded == 0 and again.report == r
