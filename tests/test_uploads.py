"""Uploaded zips: kept as they are and read in place through the one zip reader; hostile members are
never read and are named in prepare's report, hostile archives are refused whole; normal ones become a
data source."""
import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from animegan import paths, uploads
from animegan.data import prepare, zipread
from animegan.uploads import UploadError, list_uploads, safe_name, save_upload

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


def no_leftovers(root: Path, *kept: str) -> None:
    """The uploads folder holds exactly `kept`: no temporary file, nothing unpacked."""
    assert sorted(p.name for p in root.iterdir()) == sorted(kept)


def named(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name  # as Streamlit's UploadedFile
    return f


def skipped(kept: Path) -> dict[str, list[str]]:
    """prepare's report of an upload: reason -> the names of the members it did not use."""
    return {k: sorted(v) for k, v in prepare(kept, 32, val=0, test=0).report.skipped.items()}


# --------------------------------------------------------------------------- normal uploads


def test_a_normal_zip_is_kept_as_it_is_and_prepare_reads_it(tmp_path):
    images = [(f"faces/img_{i:03d}.png", png((i * 5, 100, 255 - i * 5))) for i in range(30)]
    images += [(f"faces/sub/pic_{i}.jpg", jpeg((i * 20, 40, 90))) for i in range(6)]
    extras = [
        ("faces/", b""),                                          # a folder entry
        ("faces/notes.txt", b"hello"),                            # not an image: counted, ignored
        ("faces/labels.csv", b"a,b\n"),
        ("faces/more.zip", make_zip([("x.png", png())])),         # nested archives: not opened
        ("faces/more.tar.gz", b"\x1f\x8b" + b"\0" * 40),
        ("faces/more.7z", b"7z\xbc\xaf\x27\x1c"),
        ("__MACOSX/faces/._img_000.png", b"\0\5\26\7"),           # macOS resource forks: hidden
        ("faces/.DS_Store", b"\0"),
    ]
    data = make_zip(images + extras)
    root = tmp_path / "uploads"
    kept = save_upload(named(data, "faces.zip"), root)
    assert kept == root / "faces.zip" and kept.read_bytes() == data
    no_leftovers(root, "faces.zip")
    d = prepare(kept, 32, val=0, test=0)
    assert d.report.usable == 36 and len(d) == 36 and d.report.ignored_other == 2
    assert d.report.skipped == {zipread.NESTED: ["faces/more.7z", "faces/more.tar.gz", "faces/more.zip"]}
    assert "nested archive" in d.report.summary() and "faces/more.zip" in d.report.summary()


def test_file_objects_paths_and_streams_are_accepted(tmp_path):
    data = make_zip([("a.png", png()), ("b.png", png((1, 2, 3)))])
    root = tmp_path / "uploads"
    assert save_upload(named(data, "My Upload.zip"), root) == root / "My-Upload.zip"
    (tmp_path / "up.zip").write_bytes(data)
    assert save_upload(tmp_path / "up.zip", root) == root / "up.zip"
    assert save_upload(str(tmp_path / "up.zip"), root, name="three.zip") == root / "three.zip"

    class Stream(io.RawIOBase):  # a non-seekable stream
        def __init__(self, b):
            self._b = io.BytesIO(b)

        def readable(self):
            return True

        def readinto(self, buf):
            return self._b.readinto(buf)

    assert save_upload(io.BufferedReader(Stream(data)), root, name="four") == root / "four.zip"
    for name in ("My-Upload.zip", "up.zip", "three.zip", "four.zip"):
        assert (root / name).read_bytes() == data
    no_leftovers(root, "My-Upload.zip", "up.zip", "three.zip", "four.zip")


def test_uploading_again_replaces_the_earlier_upload_of_that_name(tmp_path):
    root = tmp_path / "uploads"
    save_upload(named(make_zip([("old.png", png())]), "faces.zip"), root)
    kept = save_upload(named(make_zip([("new.png", png())]), "faces.zip"), root)
    assert prepare(kept, 32, val=0, test=0).names == ["new.png"]
    no_leftovers(root, "faces.zip")


# --------------------------------------------------------------------------- hostile members: never read


def test_hostile_members_are_never_read_and_named_with_their_reason(tmp_path):
    def link(name, target):
        zi = zipfile.ZipInfo(name)
        zi.create_system = 3
        zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        return zi, target.encode()

    fifo = zipfile.ZipInfo("pipe.png")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    members = [
        ("../evil.png", png()), ("a/../../evil3.png", png()), ("..\\evil4.png", png()),   # climbing out
        ("/abs/evil6.png", png()),                                                           # absolute
        link("passwd.png", "/etc/passwd"), (fifo, b""),                                     # links, special files
        ("bomb.png", b"\0" * (2 << 20)),                                                    # a zip bomb (~1,000x)
        ("huge.png", png((9, 9, 9))),                                                        # declares 3 GB
        ("secret.png", png()),                                                               # encrypted
        ("ok/fine.png", png((1, 2, 3))), ("face.png", png()),
    ]
    data = patch_member(patch_member(make_zip(members), "huge.png", usize=3 * 1024**3), "secret.png", flags_or=0x1)
    box = tmp_path / "box"
    kept = save_upload(named(data, "hostile.zip"), box / "uploads")
    assert tree(tmp_path) == {"box", "box/uploads", "box/uploads/hostile.zip"}, "nothing unpacked, anywhere"
    assert skipped(kept) == {
        zipread.UNSAFE: sorted(["../evil.png", "a/../../evil3.png", "..\\evil4.png", "/abs/evil6.png"]),
        zipread.SYMLINK: ["passwd.png"], zipread.SPECIAL: ["pipe.png"], zipread.TOO_COMPRESSED: ["bomb.png"],
        zipread.MEMBER_TOO_LARGE: ["huge.png"], zipread.ENCRYPTED: ["secret.png"],
    }
    assert prepare(kept, 32, val=0, test=0).names == ["face.png", "ok/fine.png"]


def test_a_header_that_lies_about_its_size_is_read_no_further_than_the_caps(tmp_path):
    liar = patch_member(make_zip([("a.png", png()), ("liar.png", b"\0" * (2 << 20))]), "liar.png", usize=1000)
    kept = save_upload(named(liar, "liar.zip"), tmp_path / "uploads")
    assert skipped(kept) == {zipread.DAMAGED: ["liar.png"]}


def test_damaged_members_are_reported_not_fatal(tmp_path):
    data = make_zip([("a.png", png()), ("b.png", png((1, 1, 1), side=64))])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("b.png")
    start = info.header_offset + 30 + len(info.filename)
    buf = bytearray(data)
    for k in range(10, 30):  # flip bytes inside b.png's compressed data (its CRC no longer matches)
        buf[start + k] ^= 0xFF
    kept = save_upload(named(bytes(buf), "d.zip"), tmp_path / "uploads")
    assert skipped(kept) == {zipread.DAMAGED: ["b.png"]}  # the name alone: no zipfile message in the report


# --------------------------------------------------------------------------- refused whole: nothing kept


def test_too_many_members_or_bytes_refuse_the_upload_before_keeping_it(tmp_path, monkeypatch):
    root = paths.ensure(tmp_path / "uploads")
    data = make_zip([(f"{i}.png", png()) for i in range(12)])
    monkeypatch.setattr(zipread, "MAX_MEMBERS", 5)
    with pytest.raises(UploadError, match="12 entries, more than the 5 allowed"):
        save_upload(named(data, "many.zip"), root)
    no_leftovers(root)
    monkeypatch.setattr(zipread, "MAX_MEMBERS", 12)
    rnd = [(f"r{i}.png", os.urandom(300_000)) for i in range(5)]  # incompressible: no ratio alarm
    monkeypatch.setattr(zipread, "MAX_TOTAL_BYTES", 1_000_000)
    with pytest.raises(UploadError, match="more than 1.0 MB") as e:
        save_upload(named(make_zip(rnd), "heavy.zip"), root)
    assert "Nothing was kept" in str(e.value)
    no_leftovers(root)


def test_not_a_zip_is_a_clear_error_without_zipfiles_own_words(tmp_path):
    root = paths.ensure(tmp_path / "uploads")
    for data in (b"hello, not a zip", b"", png(), make_zip([("a.png", png())])[:150]):
        with pytest.raises(UploadError, match="is not a zip archive") as e:
            save_upload(named(data, "photo.zip"), root)
        msg = str(e.value)
        assert "File is not a zip file" not in msg and "BadZipFile" not in msg and "Upload a .zip of images" in msg
        no_leftovers(root)
    with pytest.raises(UploadError, match="not found"):
        save_upload(tmp_path / "missing.zip", root)
    no_leftovers(root)


def test_a_zip_without_images_is_a_clear_error(tmp_path):
    root = paths.ensure(tmp_path / "uploads")
    data = make_zip([("readme.txt", b"x"), ("inner.zip", make_zip([("a.png", png())])), ("../evil.png", png())])
    with pytest.raises(UploadError, match="holds no image files") as e:
        save_upload(named(data, "none.zip"), root)
    msg = str(e.value)
    assert "1 other file ignored" in msg and "nested archive" in msg and "unsafe path" in msg and "../evil.png" in msg
    no_leftovers(root)


# --------------------------------------------------------------------------- the dashboard's uploads


def test_save_upload_keeps_each_upload_in_the_uploads_folder_and_lists_them_newest_first(tmp_path):
    root = paths.uploads_dir()
    first = save_upload(named(make_zip([("a.png", png())]), "My Faces.zip"))
    assert first == root / "My-Faces.zip"
    os.utime(first, (1, 1))  # uploaded long ago
    second = save_upload(named(make_zip([("b.png", png()), ("c.png", png())]), "second.ZIP"))
    assert second == root / "second.zip"
    (root / "not-an-upload").mkdir()  # a folder someone made: never listed (nor touched)
    uploads.save_checkpoint_upload("model.pt", b"x")  # an uploaded checkpoint is no data source
    assert list_uploads() == [second, first]
    assert list_uploads(tmp_path / "nowhere") == []


def test_an_upload_an_earlier_version_extracted_stays_a_source(tmp_path):
    root = paths.ensure(paths.uploads_dir())
    old = root / "faces"
    (old / "faces").mkdir(parents=True)
    for i in range(3):
        (old / "faces" / f"{i}.png").write_bytes(png((i * 40, 80, 120)))
    (old / uploads.LEGACY_REPORT).write_text('{"source": "faces.zip", "extracted": 3}')
    os.utime(old / uploads.LEGACY_REPORT, (1, 1))
    new = save_upload(named(make_zip([("a.png", png())]), "new.zip"))
    assert list_uploads() == [new, old]
    d = prepare(old, 32, val=0, test=0)
    assert d.report.usable == 3 and d.report.ignored_other == 0  # the old report file is hidden: not looked at


def test_a_rejected_upload_is_kept_nowhere_and_an_earlier_one_survives(tmp_path):
    root = paths.uploads_dir()
    good = save_upload(named(make_zip([("a.png", png())]), "faces.zip"))
    before = good.read_bytes()
    broken = make_zip([(f"x/{i}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40) for i in range(3)]
                      + [("x/tiny.png", png(side=8))])
    with pytest.raises(UploadError, match="none of its 4 image files can be used \\(corrupt or truncated 3, too "
                                          "small 1\\)") as e:
        save_upload(named(broken, "faces.zip"))  # the same name as the good one
    assert "Nothing was kept" in str(e.value)
    assert good.read_bytes() == before, "the earlier upload is kept as it was"
    for bad, name in ((b"PK\x03\x04 nope", "other.zip"), (make_zip([("notes.txt", b"x")]), "text.zip"), (broken, "b.zip")):
        with pytest.raises(UploadError):
            save_upload(named(bad, name))
    no_leftovers(root, "faces.zip")
    assert list_uploads() == [good]


def test_list_uploads_sweeps_what_a_killed_upload_left(tmp_path):
    root = paths.ensure(paths.uploads_dir())
    stale, fresh = root / ".faces.abc.uploading", root / ".faces.def.uploading"
    old_dir, old_tmp = root / ".faces.ghi.extracting", root / ".faces.jkl.old"   # earlier versions' extraction
    for p in (stale, fresh):
        p.write_bytes(b"PK")
    for p in (old_dir, old_tmp):
        p.mkdir()
        (p / "1.png").write_bytes(png())
    for p in (stale, old_dir, old_tmp):
        os.utime(p, (0, 0))
    assert list_uploads() == []
    assert sorted(p.name for p in root.iterdir()) == [fresh.name], "a fresh one may be an upload under way"


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
