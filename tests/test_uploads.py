"""Uploaded zips: hostile archives are refused or defused, normal ones become a data source."""
import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from animegan import uploads
from animegan.data import prepare, zipread
from animegan.uploads import ExtractReport, UploadError, extract_zip, read_report, safe_name

# --------------------------------------------------------------------------- helpers


def png(color=(200, 80, 120), side=48) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (side, side), color).save(b, "PNG")
    return b.getvalue()


def jpeg(color=(30, 160, 90), side=48) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (side, side), color).save(b, "JPEG")
    return b.getvalue()


def make_zip(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """members: [(name or ZipInfo, bytes)] -> zip bytes."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return b.getvalue()


def patch_member(zbytes: bytes, name: str, *, usize: int | None = None, flags_or: int = 0) -> bytes:
    """Rewrite a member's declared uncompressed size and/or flag bits in both its local header
    and its central-directory entry (what a crafted zip would do)."""
    buf = bytearray(zbytes)
    raw = name.encode()
    # central directory entry: PK\1\2 ... flags@8 usize@24 name length@28 local offset@42 name@46
    i = 0
    patched = 0
    while True:
        cd = bytes(buf).find(b"PK\x01\x02", i)
        if cd < 0:
            break
        n = struct.unpack_from("<H", buf, cd + 28)[0]
        if bytes(buf[cd + 46:cd + 46 + n]) == raw:
            if usize is not None:
                struct.pack_into("<I", buf, cd + 24, usize)
            struct.pack_into("<H", buf, cd + 8, struct.unpack_from("<H", buf, cd + 8)[0] | flags_or)
            local = struct.unpack_from("<I", buf, cd + 42)[0]
            assert bytes(buf[local:local + 4]) == b"PK\x03\x04"
            if usize is not None:
                struct.pack_into("<I", buf, local + 22, usize)
            struct.pack_into("<H", buf, local + 6, struct.unpack_from("<H", buf, local + 6)[0] | flags_or)
            patched += 1
        i = cd + 4
    assert patched == 1, f"member {name} not found"
    return bytes(buf)


def tree(root: Path) -> set[str]:
    """Every path under root (files, folders, links), relative, posix."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add((Path(dirpath) / n).relative_to(root).as_posix())
    return out


def no_leftovers(parent: Path, dest: Path) -> None:
    """A refused upload leaves neither dest nor a temp folder next to it."""
    assert not dest.exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{dest.name}.")]


# --------------------------------------------------------------------------- normal uploads


def test_a_normal_zip_extracts_and_prepare_reads_it(tmp_path):
    images = [(f"faces/img_{i:03d}.png", png((i * 5, 100, 255 - i * 5))) for i in range(30)]
    images += [(f"faces/sub/pic_{i}.jpg", jpeg((i * 20, 40, 90))) for i in range(6)]
    extras = [
        ("faces/", b""),                                          # a folder entry
        ("faces/notes.txt", b"hello"),                            # not an image: counted, ignored
        ("faces/labels.csv", b"a,b\n"),
        ("faces/more.zip", make_zip([("x.png", png())])),         # nested archives: not unpacked
        ("faces/more.tar.gz", b"\x1f\x8b" + b"\0" * 40),
        ("faces/more.7z", b"7z\xbc\xaf\x27\x1c"),
        ("__MACOSX/faces/._img_000.png", b"\0\5\26\7"),           # macOS resource forks: hidden
        ("faces/.DS_Store", b"\0"),
    ]
    data = make_zip(images + extras)
    dest = tmp_path / "uploads" / "faces"
    out = extract_zip(data, dest)
    assert out == dest and dest.is_dir()
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and p.name != uploads.REPORT_NAME)
    assert files == sorted(n for n, _ in images)
    assert (dest / "faces/img_007.png").read_bytes() == images[7][1]
    rep = read_report(dest)
    assert isinstance(rep, ExtractReport)
    assert rep.extracted == 36 and rep.ignored_other == 2 and rep.hidden == 2
    assert sorted(rep.skipped[uploads.NESTED]) == ["faces/more.7z", "faces/more.tar.gz", "faces/more.zip"]
    assert rep.bytes == sum(len(b) for _, b in images)
    assert "36 image files extracted" in rep.summary() and "nested archive" in rep.summary()

    d = prepare(dest, 32, val=0, test=0)
    assert d.report.total == 36 and d.report.usable == 36 and d.report.n_skipped == 0
    assert d.report.ignored_other == 0  # the report file is hidden: prepare does not look at it
    assert len(d) == 36


def test_file_objects_paths_and_streams_are_accepted(tmp_path):
    data = make_zip([("a.png", png()), ("b.png", png((1, 2, 3)))])
    f = io.BytesIO(data)
    f.name = "My Upload.zip"  # what Streamlit's UploadedFile looks like
    extract_zip(f, tmp_path / "one")
    assert read_report(tmp_path / "one").source == "My Upload.zip"
    (tmp_path / "up.zip").write_bytes(data)
    extract_zip(tmp_path / "up.zip", tmp_path / "two")
    extract_zip(str(tmp_path / "up.zip"), tmp_path / "three")

    class Stream(io.RawIOBase):  # a non-seekable stream
        def __init__(self, b):
            self._b = io.BytesIO(b)

        def readable(self):
            return True

        def readinto(self, buf):
            n = self._b.readinto(buf)
            return n

    extract_zip(io.BufferedReader(Stream(data)), tmp_path / "four")
    for d in ("one", "two", "three", "four"):
        assert {p.name for p in (tmp_path / d).iterdir()} == {"a.png", "b.png", uploads.REPORT_NAME}


def test_extracting_again_replaces_an_earlier_upload_but_never_a_foreign_folder(tmp_path):
    dest = tmp_path / "faces"
    extract_zip(make_zip([("old.png", png())]), dest)
    extract_zip(make_zip([("new.png", png())]), dest)
    assert {p.name for p in dest.iterdir()} == {"new.png", uploads.REPORT_NAME}
    mine = tmp_path / "my-photos"
    mine.mkdir()
    (mine / "precious.png").write_bytes(b"keep me")
    with pytest.raises(UploadError, match="not an earlier upload"):
        extract_zip(make_zip([("x.png", png())]), mine)
    assert {p.name for p in mine.iterdir()} == {"precious.png"}
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UploadError, match="not a folder"):
        extract_zip(make_zip([("x.png", png())]), tmp_path / "a-file")
    extract_zip(make_zip([("x.png", png())]), tmp_path / "empty")  # an empty or new folder is fine
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp folders left behind"


# --------------------------------------------------------------------------- hostile archives


def test_zip_slip_members_never_leave_dest(tmp_path):
    good = png()
    members = [
        ("../evil.png", good),            # parent folder
        ("../../evil2.png", good),
        ("a/../../evil3.png", good),      # escapes after a real component
        ("..\\evil4.png", good),          # Windows separators
        ("sub\\..\\..\\evil5.png", good),
        ("/abs/evil6.png", good),         # absolute: made relative, lands inside dest
        ("C:\\evil7.png", good),          # drive letter: dropped
        ("C:/windows/evil8.png", good),
        ("//server/share/evil9.png", good),
        ("ok/fine.png", good),
        ("win\\style\\fine2.png", good),  # backslashes in a normal name: separators
    ]
    box = tmp_path / "box"
    box.mkdir()
    dest = box / "inner" / "dest"
    extract_zip(make_zip(members), dest)
    # nothing anywhere outside dest
    assert tree(tmp_path) - {"box", "box/inner", "box/inner/dest"} == {f"box/inner/dest/{p}" for p in tree(dest)}
    files = {p for p in tree(dest) if (dest / p).is_file()} - {uploads.REPORT_NAME}
    assert files == {"abs/evil6.png", "evil7.png", "windows/evil8.png", "server/share/evil9.png", "ok/fine.png",
                     "win/style/fine2.png"}
    rep = read_report(dest)
    assert sorted(rep.skipped[uploads.UNSAFE]) == sorted(["../evil.png", "../../evil2.png", "a/../../evil3.png",
                                                           "..\\evil4.png", "sub\\..\\..\\evil5.png"])
    assert rep.normalised == 5  # /abs, C:\, C:/, //server, win\style
    assert not (tmp_path / "evil.png").exists() and not (box / "evil.png").exists()


def test_symlink_members_are_never_created(tmp_path):
    def link(name, target):
        zi = zipfile.ZipInfo(name)
        zi.create_system = 3
        zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        return zi, target.encode()

    fifo = zipfile.ZipInfo("pipe.png")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    members = [
        link("passwd.png", "/etc/passwd"),
        link("up", ".."),                 # a link to a folder outside...
        ("up/evil.png", png()),            # ...then a file "through" it: lands in a real folder inside dest
        link("abs", str(tmp_path)),
        ("abs/evil2.png", png()),
        (fifo, b""),
        ("face.png", png()),
    ]
    dest = tmp_path / "dest"
    extract_zip(make_zip(members), dest)
    for p in tree(dest):
        assert not (dest / p).is_symlink(), p
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "evil2.png").exists()
    assert (dest / "up").is_dir() and not (dest / "up").is_symlink()
    assert (dest / "up/evil.png").read_bytes() == png()
    rep = read_report(dest)
    assert sorted(rep.skipped[uploads.SYMLINK]) == ["abs", "passwd.png", "up"]
    assert rep.skipped[uploads.SPECIAL] == ["pipe.png"]
    assert rep.extracted == 3


def test_zip_bomb_members_are_never_written_and_the_rest_is_extracted(tmp_path):
    # A member over the zip reader's per-member limits is not extracted (reported with its
    # reason, like prepare reports it for a zip read in place); the rest of the zip is used.
    zeros = b"\0" * (2 << 20)
    bomb = make_zip([("a.png", png()), ("bomb.png", zeros)])
    assert len(bomb) < 20_000
    dest = tmp_path / "dest"
    extract_zip(bomb, dest)                                   # the ratio cap (~1,000x here)
    assert {p for p in tree(dest)} == {"a.png", uploads.REPORT_NAME}
    rep = read_report(dest)
    assert rep.skipped == {uploads.TOO_COMPRESSED: ["bomb.png"]} and rep.extracted == 1
    assert "zip bomb" in rep.summary() and "bomb.png" in rep.summary()
    # a member declaring 3 GB uncompressed (central directory and local header say so)
    huge = patch_member(make_zip([("a.png", png()), ("huge.png", png((9, 9, 9)))]), "huge.png", usize=3 * 1024**3)
    with zipfile.ZipFile(io.BytesIO(huge)) as z:
        assert z.getinfo("huge.png").file_size == 3 * 1024**3
    extract_zip(huge, dest)                                   # the per-member cap, from the directory
    assert read_report(dest).skipped == {uploads.MEMBER_TOO_LARGE: ["huge.png"]}
    assert {p for p in tree(dest)} == {"a.png", uploads.REPORT_NAME}
    # the total cap refuses the archive as a whole, before anything is written
    dest2 = tmp_path / "dest2"
    with pytest.raises(UploadError, match="more than 2.0 GB of images") as e:
        extract_zip(huge, dest2, max_ratio=float("inf"), max_member=4 * 1024**3, max_total=2_000_000_000)
    assert "zip bomb" in str(e.value) and "Nothing was extracted" in str(e.value)
    no_leftovers(tmp_path, dest2)
    with pytest.raises(UploadError, match="zip bomb"):
        extract_zip(bomb, dest2, max_total=1_000_000, max_ratio=float("inf"))
    no_leftovers(tmp_path, dest2)


def test_total_size_cap_counts_every_member(tmp_path):
    rnd = [(f"r{i}.png", os.urandom(300_000)) for i in range(5)]  # incompressible: no ratio alarm
    dest = tmp_path / "dest"
    with pytest.raises(UploadError, match="more than 1.0 MB"):
        extract_zip(make_zip(rnd), dest, max_total=1_000_000)
    no_leftovers(tmp_path, dest)
    extract_zip(make_zip(rnd[:3]), dest, max_total=1_000_000)
    assert read_report(dest).bytes == 900_000


def test_a_header_that_lies_about_its_size_cannot_get_past_the_cap(tmp_path, monkeypatch):
    zeros = b"\0" * (2 << 20)
    # the headers say 1,000 bytes; the stream holds 2 MiB
    liar = patch_member(make_zip([("a.png", png()), ("liar.png", zeros)]), "liar.png", usize=1000)
    dest = tmp_path / "dest"
    extract_zip(liar, dest, max_total=1_000_000)
    assert not (dest / "liar.png").exists()
    rep = read_report(dest)
    assert rep.skipped[uploads.DAMAGED] == ["liar.png"]
    assert sum((dest / p).stat().st_size for p in tree(dest)) < 1_000_000

    # The streaming counter on its own: even when a declared size is believed (here: 0 for
    # big.png, whatever zipfile does), the bytes actually read are counted: big.png is not
    # extracted (more data than its header declares), the rest is.
    real = zipread.declared_size
    monkeypatch.setattr(zipread, "declared_size", lambda info: 0 if info.filename == "big.png" else real(info))
    dest2 = tmp_path / "dest2"
    extract_zip(make_zip([("a.png", png()), ("big.png", os.urandom(1_500_000))]), dest2, max_total=1_000_000)
    assert {p for p in tree(dest2)} == {"a.png", uploads.REPORT_NAME}
    assert read_report(dest2).skipped == {uploads.DAMAGED: ["big.png"]}


def test_too_many_members_is_refused_before_extracting(tmp_path, monkeypatch):
    data = make_zip([(f"{i}.png", png()) for i in range(12)])
    dest = tmp_path / "dest"
    with pytest.raises(UploadError, match="12 entries, more than the 5 allowed"):
        extract_zip(data, dest, max_members=5)
    no_leftovers(tmp_path, dest)
    # the count is read from the end record first; without it, from the parsed directory
    monkeypatch.setattr(zipread, "declared_entries", lambda fp: None)
    with pytest.raises(UploadError, match="12 entries"):
        extract_zip(data, dest, max_members=5)
    no_leftovers(tmp_path, dest)
    extract_zip(data, dest, max_members=12)
    assert read_report(dest).extracted == 12


def test_damaged_encrypted_and_duplicate_members_are_reported_not_fatal(tmp_path):
    good = png()
    data = make_zip([("a.png", good), ("b.png", png((1, 1, 1), side=64)), ("dir/x.png", good), ("dir\\x.png", good),
                     ("d.png", good), ("d.png/e.png", good), ("secret.png", good)])
    data = patch_member(data, "secret.png", flags_or=0x1)
    # flip bytes inside b.png's compressed data (its CRC no longer matches)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("b.png")
    start = info.header_offset + 30 + len(info.filename)
    buf = bytearray(data)
    for k in range(10, 30):
        buf[start + k] ^= 0xFF
    dest = tmp_path / "dest"
    extract_zip(bytes(buf), dest)
    rep = read_report(dest)
    assert rep.skipped[uploads.DAMAGED] == ["b.png"]  # the name alone: no zipfile message in the report
    assert rep.skipped[uploads.ENCRYPTED] == ["secret.png"]
    assert sorted(rep.skipped[uploads.DUPLICATE]) == ["d.png/e.png", "dir\\x.png"]
    assert {p for p in tree(dest) if (dest / p).is_file()} == {"a.png", "dir/x.png", "d.png", uploads.REPORT_NAME}
    assert rep.extracted == 3


def test_not_a_zip_is_a_clear_error(tmp_path):
    dest = tmp_path / "dest"
    cases = {"text": b"hello, not a zip", "empty": b"", "png": png(), "half zip": make_zip([("a.png", png())])[:150]}
    for data in cases.values():
        with pytest.raises(UploadError, match="is not a zip archive"):
            extract_zip(data, dest)
        no_leftovers(tmp_path, dest)
    (tmp_path / "photo.zip").write_bytes(png())
    with pytest.raises(UploadError, match="photo.zip is not a zip archive"):
        extract_zip(tmp_path / "photo.zip", dest)
    with pytest.raises(UploadError, match="not found"):
        extract_zip(tmp_path / "missing.zip", dest)
    no_leftovers(tmp_path, dest)


def test_a_zip_without_images_is_a_clear_error(tmp_path):
    dest = tmp_path / "dest"
    data = make_zip([("readme.txt", b"x"), ("inner.zip", make_zip([("a.png", png())])), ("../evil.png", png())])
    with pytest.raises(UploadError, match="holds no image files") as e:
        extract_zip(data, dest)
    msg = str(e.value)
    assert "1 other file ignored" in msg and "nested archive" in msg and "unsafe path" in msg
    no_leftovers(tmp_path, dest)


def test_not_a_zip_is_said_without_zipfiles_own_words(tmp_path):
    for data in (b"hello, not a zip", b"", make_zip([("a.png", png())])[:150]):
        with pytest.raises(UploadError) as e:
            extract_zip(data, tmp_path / "dest")
        assert "File is not a zip file" not in str(e.value) and "BadZipFile" not in str(e.value), str(e.value)
        assert "Upload a .zip of images" in str(e.value)


# --------------------------------------------------------------------------- the dashboard's uploads


def named(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name  # as Streamlit's UploadedFile
    return f


def test_extract_upload_puts_each_upload_in_the_uploads_folder_and_lists_them_newest_first(tmp_path):
    from animegan import paths
    root = paths.uploads_dir()
    first = uploads.extract_upload(named(make_zip([("a.png", png())]), "My Faces.zip"))
    assert first == root / "My-Faces" and read_report(first).source == "My Faces.zip"
    os.utime(first / uploads.REPORT_NAME, (1, 1))  # extracted long ago
    second = uploads.extract_upload(named(make_zip([("b.png", png()), ("c.png", png())]), "second.ZIP"))
    assert second == root / "second"
    (root / "not-an-upload").mkdir()  # a folder someone made: never listed (nor touched)
    assert uploads.list_extracted() == [second, first]
    assert uploads.list_extracted(tmp_path / "nowhere") == []


def test_a_rejected_upload_is_kept_nowhere_and_an_earlier_one_survives(tmp_path):
    from animegan import paths
    root = paths.uploads_dir()
    good = uploads.extract_upload(named(make_zip([("a.png", png())]), "faces.zip"))
    broken = make_zip([(f"x/{i}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40) for i in range(3)]
                      + [("x/tiny.png", png(side=8))])
    with pytest.raises(UploadError, match="none of its 4 image files can be used \\(corrupt or truncated 3, too "
                                          "small 1\\)") as e:
        uploads.extract_upload(named(broken, "faces.zip"))  # the same name as the good one
    assert "Nothing was kept" in str(e.value)
    assert {p.name for p in good.iterdir()} == {"a.png", uploads.REPORT_NAME}, "the earlier upload is kept as it was"
    for bad, name in ((b"PK\x03\x04 nope", "other.zip"), (make_zip([("notes.txt", b"x")]), "text.zip"), (broken, "b.zip")):
        with pytest.raises(UploadError):
            uploads.extract_upload(named(bad, name))
    assert sorted(p.name for p in root.iterdir()) == ["faces"]
    assert uploads.list_extracted() == [good]
    # extract_zip itself still copies whatever has an image name (decoding is prepare's job)
    assert extract_zip(broken, tmp_path / "raw") == tmp_path / "raw"


def test_list_extracted_sweeps_what_a_killed_extraction_left(tmp_path):
    from animegan import paths
    root = paths.ensure(paths.uploads_dir())
    stale, fresh, old = root / ".faces.abc.extracting", root / ".faces.def.extracting", root / ".faces.ghi.old"
    for p in (stale, fresh, old):
        p.mkdir()
        (p / "1.png").write_bytes(png())
    for p in (stale, old):
        os.utime(p, (0, 0))
    assert uploads.list_extracted() == []
    assert sorted(p.name for p in root.iterdir()) == [fresh.name], "a fresh one may be an extraction under way"


def test_safe_name():
    assert safe_name("faces.zip") == "faces.zip"
    assert safe_name("My Faces (2024).zip") == "My-Faces-2024.zip"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\me\\faces.zip") == "faces.zip"
    assert safe_name("..") == "upload"
    assert safe_name("") == "upload"
    assert safe_name(".hidden.zip") == "hidden.zip"
    assert safe_name("a..b") == "a.b"
    assert safe_name("顔データ.zip") == "顔データ.zip"
    assert safe_name("x\x00y\n.zip") == "x-y.zip"
    assert safe_name("CON.zip") == "_CON.zip"
    long = safe_name("é" * 300 + ".zip")
    assert len(long.encode()) <= 100
    for name in ["../x", "/abs", "a/b", "a\\b", "..", ".", "", "...", "~", "-rf", "nul", "x" * 1000]:
        s = safe_name(name)
        assert s and "/" not in s and "\\" not in s and s not in (".", "..") and not s.startswith((".", "-"))
        assert len(s.encode()) <= 100
