"""The emulated engine plan: what ``build_serialized_network`` writes and ``deserialize_cuda_engine`` reads.

A plan refers to the ONNX graph it was built from (path and SHA-256) and records the TensorRT release, the
compute capability of the GPU that built it, the IO tensors with their types and the optimization profiles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAGIC = b"nvila-edge emulated TensorRT plan\n"


@dataclass
class TensorInfo:
    name: str
    mode: str  # "INPUT" / "OUTPUT"
    dtype: str  # DataType member name
    shape: list[int]  # -1 for dynamic dimensions


@dataclass
class Plan:
    version: str
    capability: list[int]
    onnx: str
    onnx_sha256: str
    tensors: list[TensorInfo]
    profiles: list[dict[str, list[list[int]]]]  # per profile: input -> [min, opt, max]
    layers: list[dict] = field(default_factory=list)  # engine inspector entries

    def serialize(self) -> bytes:
        return MAGIC + json.dumps(asdict(self)).encode()

    @classmethod
    def parse(cls, data) -> Plan | None:
        data = bytes(data)
        if not data.startswith(MAGIC):
            return None
        fields = json.loads(data[len(MAGIC):])
        fields["tensors"] = [TensorInfo(**t) for t in fields["tensors"]]
        return cls(**fields)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release(version: str) -> tuple[int, ...]:
    """A plan loads only on the TensorRT release that built it (the build number may differ)."""
    return tuple(int(part) for part in version.split(".")[:3])
