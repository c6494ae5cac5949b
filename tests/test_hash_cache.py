"""The file-hash cache: unchanged files are not rehashed, changed ones are, and the store stays small."""

from __future__ import annotations

import json
import os

from nvila_edge.runtime import hash_cache
from nvila_edge.runtime.hash_cache import cached_sha256, sha256_file


def test_unchanged_file_is_not_rehashed(tmp_path):
    store, data = tmp_path / "hashes.json", tmp_path / "weights.bin"
    data.write_bytes(b"a" * 4096)
    first = cached_sha256(data, store)
    stat = data.stat()
    data.write_bytes(b"b" * 4096)  # same size; put the old mtime back, so only a rehash could notice
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cached_sha256(data, store) == first != sha256_file(data)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert cached_sha256(data, store) == sha256_file(data)


def test_store_keeps_the_newest_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(hash_cache, "MAX_ENTRIES", 3)
    store = tmp_path / "hashes.json"
    for i in range(5):
        (tmp_path / f"f{i}").write_text(str(i))
        cached_sha256(tmp_path / f"f{i}", store)
    kept = json.loads(store.read_text())
    assert [os.path.basename(k) for k in kept] == ["f2", "f3", "f4"]
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_unwritable_store_still_hashes(tmp_path):
    data = tmp_path / "weights.bin"
    data.write_bytes(b"x")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert cached_sha256(data, blocker / "hashes.json") == sha256_file(data)
