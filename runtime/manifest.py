"""``manifest.json``: the contract between stages (export folder -> engines folder -> runtime).

Each stage reads only the previous stage's folder and its manifest. The manifest is versioned and checked
on read: a folder of another schema version, a missing file or a mismatching hash is one ``ArtifactError``
line saying which command rebuilds it.

An engines folder uses the same schema: ``target`` holds an ``EngineTarget`` (what the runtime compares with
the machine before loading an engine), each ``GraphSpec.build`` an ``EngineBuild`` (profiles, the ONNX file
it came from, the cache key), and ``source`` names the export folder (path and manifest sha256).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvila_edge import __version__
from nvila_edge.atomic import atomic_file
from nvila_edge.errors import ArtifactError
from nvila_edge.runtime.hash_cache import cached_sha256, sha256_file

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("export", "engines")


@dataclass
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, float16, int64, ...
    shape: list[int | str]  # ints are fixed, strings name a dynamic dimension (see Manifest.dims)


@dataclass
class DimRange:
    min: int
    opt: int
    max: int


@dataclass
class GraphSpec:
    file: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str
    external_data: list[str] = field(default_factory=list)
    backend: str = "onnx"  # onnx | onnxruntime | tensorrt | tensorrt-rtx
    build: dict[str, Any] = field(default_factory=dict)  # engines: builder version, target, profiles, ...
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of the file and each external-data file


@dataclass
class TokenLayout:
    image_token_id: int
    video_token_id: int
    sentinel_token_id: int
    newline_token_id: int
    im_end_token_id: int
    eos_token_ids: list[int]
    vocab_size: int  # logits columns (the checkpoint's own vocabulary)
    embedding_rows: int  # rows of the embedding table (vocabulary + media tokens)


@dataclass
class Manifest:
    kind: str
    precision: str
    model_config: dict[str, dict]  # the checkpoint's config files, so tiling needs nothing else
    source: dict[str, Any]  # name, sha256 of the checkpoint (or of the export folder for engines)
    graphs: dict[str, GraphSpec]
    dims: dict[str, DimRange]
    embeddings: dict[str, Any]  # file, dtype, shape, sha256
    tokenizer_dir: str
    token_layout: TokenLayout
    chat_template: str
    generation: dict[str, Any]
    projector_form: str  # "dynamic_s2" (merge inputs) or "per_tile"
    kv_layout: str = "batch,seq,kv_heads,head_dim"
    target: dict[str, Any] = field(default_factory=dict)  # engines only
    schema_version: int = SCHEMA_VERSION
    producer: str = f"nvila-edge {__version__}"

    def write(self, folder: Path) -> None:
        with atomic_file(Path(folder) / MANIFEST) as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))


@dataclass
class OptimizationProfile:
    name: str  # "default" for vision / projector; "prefill" and "decode" for the LLM
    shapes: dict[str, list[list[int]]]  # input name -> [min shape, opt shape, max shape]


@dataclass
class EngineBuild:
    onnx_file: str  # in the export folder named by Manifest.source["path"]
    onnx_sha256: str
    cache_key: str
    profiles: list[OptimizationProfile]
    options: dict[str, Any]  # builder options that are part of the cache key
    quantized_layers: dict[str, int] = field(default_factory=dict)  # Q/DQ layers per low-precision type
    precision_check: str = ""  # what the post-build layer precision check found, or why it did not run


@dataclass
class EngineTarget:
    name: str
    backend: str
    backend_version: str
    compute_capability: str  # "8.7"; "none" for the CPU
    max_context: int
    memory: dict[str, int] = field(default_factory=dict)  # the budget estimate the context was chosen with


def engine_target(manifest: Manifest) -> EngineTarget:
    if manifest.kind != "engines":
        raise ArtifactError(f"a folder of kind '{manifest.kind}' has no engine target; "
                            "build one with `nvila-edge build`")
    return _build(EngineTarget, manifest.target, "manifest.target")


def engine_build(manifest: Manifest, graph: str) -> EngineBuild:
    return _build(EngineBuild, manifest.graphs[graph].build, f"manifest.graphs.{graph}.build")


def rebuild_command(folder: Path, manifest: Manifest) -> str:
    """The command that rebuilds an engines folder from its export folder on this machine."""
    target = engine_target(manifest)
    return (f"nvila-edge build {manifest.source.get('path', 'EXPORT_DIR')} -o {folder} --target {target.name} "
            f"--backend {target.backend}")


def folder_sha256(folder: Path) -> str:
    """sha256 over every file below ``folder``: relative path, then the file's own sha256, in path order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def _build(cls, data: Any, where: str):
    """Dataclass from JSON with field checks; nested dataclasses, lists and dicts of them."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: expected an object")
    names = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in names.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ArtifactError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {}
    for name, value in data.items():
        if name not in names:
            continue
        nested = {"graphs": GraphSpec, "dims": DimRange}.get(name)
        if cls is Manifest and nested:
            values[name] = {k: _build(nested, v, f"{where}.{name}.{k}") for k, v in value.items()}
        elif cls is Manifest and name == "token_layout":
            values[name] = _build(TokenLayout, value, f"{where}.{name}")
        elif cls is GraphSpec and name in ("inputs", "outputs"):
            values[name] = [_build(TensorSpec, v, f"{where}.{name}") for v in value]
        elif cls is EngineBuild and name == "profiles":
            values[name] = [_build(OptimizationProfile, v, f"{where}.{name}") for v in value]
        else:
            values[name] = value
    return cls(**values)


def remake_hint(kind: str | None) -> str:
    """What re-creates a folder of this kind."""
    return "re-run `nvila-edge build`" if kind == "engines" else "re-run `nvila-edge export`"


def read_manifest(folder: Path, kind: str | None = None, verify_hashes: bool = False) -> Manifest:
    """Read and check ``folder/manifest.json``; every failure names the folder and the fix.

    Files are checked for presence and recorded sizes; ``verify_hashes`` also compares their sha256 with the
    manifest's (cached by size and mtime, so only changed files are rehashed)."""
    folder = Path(folder)
    path = folder / MANIFEST
    fix = remake_hint(kind)
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}; this is not an nvila-edge export or engines folder ({fix})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err}); {fix}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: schema version {version!r}, this nvila-edge reads version {SCHEMA_VERSION}; "
                            f"{fix} with this version")
    manifest = _build(Manifest, data, str(path))
    if manifest.kind not in KINDS or (kind and manifest.kind != kind):
        raise ArtifactError(f"{path}: a folder of kind '{manifest.kind}', expected '{kind or ' or '.join(KINDS)}'")
    fix = remake_hint(manifest.kind)
    for name, graph in manifest.graphs.items():
        for file in [graph.file, *graph.external_data]:
            if not (folder / file).is_file():
                raise ArtifactError(f"{folder}: graph '{name}' file '{file}' is missing; {fix}")
            size = (folder / file).stat().st_size
            if file in graph.sizes and size != graph.sizes[file]:
                raise ArtifactError(f"{folder / file}: {size} bytes, the manifest says {graph.sizes[file]} "
                                    f"(truncated or replaced); {fix}")
        if verify_hashes and cached_sha256(folder / graph.file) != graph.sha256:
            raise ArtifactError(f"{folder / graph.file}: contents do not match the manifest's sha256; {fix}")
    table = folder / manifest.embeddings["file"]
    if not table.is_file():
        raise ArtifactError(f"{folder}: embedding table '{manifest.embeddings['file']}' is missing; {fix}")
    if verify_hashes and "sha256" in manifest.embeddings and cached_sha256(table) != manifest.embeddings["sha256"]:
        raise ArtifactError(f"{table}: contents do not match the manifest's sha256; {fix}")
    return manifest
