"""The decoded-data cache is keyed by what a source holds, not where it lies: the same zip at two
paths is decoded once and stored once; a source whose content changed is rebuilt and its old
cache removed."""
from __future__ import annotations

import shutil
import zipfile

from animegan.data import cache_usage, find_cache, prepare
from tests.test_data import encode, noise, put


def faces_zip(path, n=6, first_seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            z.writestr(f"faces/{i:03d}.png", encode(noise(40, 40, seed=first_seed + i), "PNG"))
    return path


def test_the_same_zip_at_two_paths_is_decoded_and_cached_once(tmp_path):
    root = tmp_path / "cache"
    a = faces_zip(tmp_path / "downloads" / "faces.zip")
    b = tmp_path / "elsewhere" / "copy-of-faces.zip"
    b.parent.mkdir()
    shutil.copyfile(a, b)
    first = prepare(a, 32, cache_root=root)
    assert not first.from_cache and first.decoded == 6
    second = prepare(b, 32, cache_root=root)
    assert second.from_cache and second.decoded == 0, "the copy was decoded again"
    assert second.cache_path == first.cache_path
    assert len(cache_usage(root)) == 1
    assert find_cache(b, 32, cache_root=root) is not None     # the Dataset page sees the copy as prepared


def test_a_changed_source_is_rebuilt_and_its_old_cache_removed(tmp_path):
    root = tmp_path / "cache"
    src = tmp_path / "faces"
    for i in range(4):
        put(src / f"img{i}.png", noise(40, 40, seed=i))
    prepare(src, 32, cache_root=root)
    put(src / "img9.png", noise(40, 40, seed=9))
    again = prepare(src, 32, cache_root=root)
    assert again.rebuilt_because == "source changed" and len(again) == 5
    assert [u["count"] for u in cache_usage(root)] == [5]
