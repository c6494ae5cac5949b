"""sha256 of large files, remembered by path, size and modification time so a start stays fast.

Checking an export or engines folder against its manifest hashes every graph; for a real model that is
gigabytes. The first check hashes them and records ``path -> (size, mtime_ns, sha256)`` in one small JSON
file in the user cache; later checks rehash only files whose size or mtime changed. The file keeps the
newest ``MAX_ENTRIES`` entries and is replaced in one rename, so concurrent runs never see half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nvila_edge.atomic import atomic_file

HASHES_FILE = "file-hashes.json"
MAX_ENTRIES = 256


def cache_root() -> Path:
    """The user cache: ``$NVILA_EDGE_CACHE``, else ``~/.cache/nvila-edge``."""
    return Path(os.environ.get("NVILA_EDGE_CACHE") or Path.home() / ".cache" / "nvila-edge")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_entries(store: Path) -> dict[str, list]:
    try:
        entries = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def cached_sha256(path: Path, store: Path | None = None) -> str:
    """sha256 of ``path``, from the cache when its size and mtime are unchanged."""
    path = Path(path).resolve()
    store = store or cache_root() / HASHES_FILE
    stat = path.stat()
    key = str(path)
    entries = _read_entries(store)
    entry = entries.get(key)
    if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
        return entry[2]
    digest = sha256_file(path)
    entries.pop(key, None)
    entries[key] = [stat.st_size, stat.st_mtime_ns, digest]  # newest last
    kept = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        with atomic_file(store) as tmp:
            tmp.write_text(json.dumps(kept))
    except OSError:
        pass  # a read-only cache only costs the next start a rehash
    return digest
