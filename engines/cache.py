"""The engine cache: one folder per built engine, keyed by everything that changes the engine.

Key = ONNX graph (file and external data hashes), recipe, backend and its version, target and compute
capability, builder options (profiles, max context, workspace, optimisation level). Entries are written under
a temporary name and renamed when complete, so a killed build never leaves an entry that looks finished; the
next build removes such leftovers. TensorRT timing caches live next to the entries, one per release and GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvila_edge.atomic import atomic_folder
from nvila_edge.runtime.hash_cache import cache_root
from nvila_edge.runtime.manifest import GraphSpec, sha256_file

CACHE_FORMAT = 3  # bump when the build code changes what an identical key produces
ENTRY = "entry.json"


def engine_cache_dir() -> Path:
    """Where built engines are kept: ``$NVILA_EDGE_CACHE``, else ``~/.cache/nvila-edge``."""
    return cache_root()


def onnx_fingerprint(folder: Path, graph: GraphSpec) -> str:
    """sha256 over the graph file's hash and every external-data file (the manifest hashes only the former)."""
    digest = hashlib.sha256(graph.sha256.encode())
    for name in graph.external_data:
        digest.update(name.encode())
        digest.update(sha256_file(Path(folder) / name).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    graph: str
    onnx: str
    recipe: str
    backend: str
    backend_version: str
    target: str
    compute_capability: str
    options: dict[str, Any]
    profiles: list[dict[str, Any]]  # optimization profiles (empty for ONNX Runtime)

    def digest(self) -> str:
        fields = {"cache_format": CACHE_FORMAT, **dataclasses.asdict(self)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path) -> None:
    """Delete ``.NAME.partial-PID`` / ``.NAME.old-PID`` leftovers (nvila_edge.atomic's temporary names) of
    processes that no longer run."""
    if not Path(folder).is_dir():
        return
    for path in Path(folder).glob(".*-*"):
        kind, _, pid = path.name.rpartition("-")
        if kind.endswith((".partial", ".old")) and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class EngineCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, key: EngineKey) -> Path:
        return self.root / "engines" / f"{key.graph}-{key.backend}-{key.digest()[:16]}"

    def lookup(self, key: EngineKey) -> Path | None:
        path = self.entry(key)
        return path if (path / ENTRY).is_file() else None

    def put(self, key: EngineKey, build: Callable[[Path], dict[str, Any]]) -> Path:
        """Run ``build(folder)`` in a temporary folder that becomes the entry only when it returns; what it
        returns is kept in the entry's ``entry.json`` (file names, check results)."""
        entry = self.entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(entry.parent)
        with atomic_folder(entry, replace=True) as tmp:
            record = {"digest": key.digest(), "key": dataclasses.asdict(key), **build(tmp)}
            (tmp / ENTRY).write_text(json.dumps(record, indent=2))
        return entry

    @staticmethod
    def record(entry: Path) -> dict[str, Any]:
        return json.loads((entry / ENTRY).read_text())

    def timing_cache(self, backend: str, version: str, capability: str) -> Path:
        return self.root / "timing" / f"{backend}-{version}-cc{capability}.cache"
