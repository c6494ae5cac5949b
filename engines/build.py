"""``nvila-edge build``: export folder -> engines folder for one target and backend.

Every check that can refuse (manifest and hashes, recipe, backend, GPU, memory budget) runs in ``plan_build``
before anything is written. ``build_engines`` then takes each graph's engine from the cache or builds it into
the cache, and assembles the engines folder (engines linked from the cache, embedding table, tokenizer,
manifest) under a temporary name that is renamed when complete. A folder that already holds exactly these
engines is left alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nvila_edge.atomic import atomic_folder
from nvila_edge.engines.cache import EngineCache, EngineKey, onnx_fingerprint, remove_stale_partials
from nvila_edge.engines.cpu_options import GRAPH_FORMAT as CPU_GRAPH_FORMAT
from nvila_edge.engines.cpu_options import CpuLlmOptions, cpu_options
from nvila_edge.engines.memory import MemoryPlan, ModelMemory, choose_context
from nvila_edge.engines.profiles import context_dims, graph_profiles
from nvila_edge.engines.targets import TargetRecord, check_recipe
from nvila_edge.errors import ArtifactError, InputError, UnsupportedError
from nvila_edge.runtime.backends import BACKENDS
from nvila_edge.runtime.backends.trt_api import BACKEND_NAMES
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.manifest import (
    MANIFEST,
    EngineBuild,
    EngineTarget,
    GraphSpec,
    Manifest,
    OptimizationProfile,
    TensorSpec,
    engine_build,
    engine_target,
    read_manifest,
    sha256_file,
)
from nvila_edge.runtime.progress import progress_bar

log = logging.getLogger(__name__)
DEFAULT_OPTIMIZATION_LEVEL = 3


def check_backend(target: TargetRecord, backend: str) -> None:
    if backend not in BACKENDS:
        raise UnsupportedError(f"unknown backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if backend != "onnxruntime" and target.compute_capability is None:
        raise UnsupportedError(f"target '{target.name}' has no GPU; use --backend onnxruntime")
    if backend == "tensorrt" and target.default_backend == "tensorrt-rtx":
        raise UnsupportedError(f"target '{target.name}' is for TensorRT-RTX; use --backend tensorrt-rtx, or "
                               "--target x86-gpu for TensorRT")
    if backend == "tensorrt-rtx" and target.is_jetson:
        raise UnsupportedError(f"TensorRT-RTX does not run on Jetson ('{target.name}'); use --backend tensorrt")


def backend_version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    from nvila_edge.runtime.backends.trt_api import import_trt, module_version

    return module_version(import_trt(backend))


def check_build_gpu(target: TargetRecord) -> None:
    """TensorRT tunes and compiles for the GPU it runs on, so it must be the target's."""
    from nvila_edge.runtime.backends.cuda_device import device_capability

    here = device_capability()
    if here != target.compute_capability:
        found = f"compute capability {here[0]}.{here[1]}" if here else "no usable CUDA GPU"
        raise UnsupportedError(f"TensorRT builds for the GPU it runs on: target '{target.name}' is compute capability "
                               f"{target.capability} but this machine has {found}; run the build on the target "
                               "device (or use --backend tensorrt-rtx / onnxruntime)")


def ort_device(target: TargetRecord) -> str:
    """ONNX Runtime's execution provider for a target: CUDA where there is a GPU."""
    return "cpu" if target.compute_capability is None else "cuda"


def model_memory(folder: Path, export: Manifest, float32: bool = False) -> ModelMemory:
    """``float32``: the engines compute and cache in FP32 whatever the export's float type (the CPU build)."""
    llm = {t.name: t for t in export.graphs["llm"].inputs}
    weights = sum((folder / f).stat().st_size for g in export.graphs.values() for f in [g.file, *g.external_data])
    itemsize = {name: 4 if float32 else np.dtype(llm[name].dtype).itemsize for name in ("inputs_embeds", "past_key.0")}
    return ModelMemory(NvilaConfig.from_files(export.model_config), weights, itemsize["inputs_embeds"],
                       itemsize["past_key.0"], export.dims["tiles"].max)


@dataclass
class BuildPlan:
    """Everything decided before a byte is written."""

    export_dir: Path
    export: Manifest
    target: TargetRecord
    backend: str
    backend_version: str
    context: int
    memory: MemoryPlan
    profiles: dict[str, list[OptimizationProfile]]
    keys: dict[str, EngineKey]
    optimization_level: int
    cpu: CpuLlmOptions = field(default_factory=CpuLlmOptions)  # the CPU rewrite of the LLM (onnxruntime only)


def plan_build(export_dir: Path, target: TargetRecord, backend: str | None = None, max_context: int | None = None,
               optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL, accuracy_level: int | None = None,
               lm_head: str | None = None) -> BuildPlan:
    """Check and decide everything; ``accuracy_level`` and ``lm_head`` shape the CPU rewrite of the LLM (the
    recipe's defaults when None)."""
    export_dir = Path(export_dir)
    export = read_manifest(export_dir, "export", verify_hashes=True)
    backend = backend or target.default_backend
    check_recipe(target, export.precision)
    check_backend(target, backend)
    version = backend_version(backend)
    if backend == "tensorrt":
        check_build_gpu(target)
    workspace = 0 if backend == "onnxruntime" else target.workspace_bytes
    float32 = backend == "onnxruntime" and ort_device(target) == "cpu"
    context, memory = choose_context(model_memory(export_dir, export, float32), target, export.dims["total"].max,
                                     workspace, max_context)
    profiles, keys = {}, {}
    cpu = cpu_options(export.precision, accuracy_level, lm_head)
    if backend == "onnxruntime":
        options = {"device": ort_device(target), "level": "extended"}
    else:
        options = {"optimization_level": optimization_level, "workspace_bytes": target.workspace_bytes}
    for name, graph in export.graphs.items():
        profiles[name] = graph_profiles(export, name, context) if backend != "onnxruntime" else []
        graph_options = options
        if backend == "onnxruntime" and name == "llm" and options["device"] == "cpu":
            graph_options = {**options, "cpu": dataclasses.asdict(cpu), "cpu_graph_format": CPU_GRAPH_FORMAT}
        keys[name] = EngineKey(name, onnx_fingerprint(export_dir, graph), export.precision, backend, version,
                               target.name, target.capability, graph_options,
                               [dataclasses.asdict(p) for p in profiles[name]])
    return BuildPlan(export_dir, export, target, backend, version, context, memory, profiles, keys, optimization_level,
                     cpu)


@dataclass
class BuildOutcome:
    engines_dir: Path
    up_to_date: bool
    built: dict[str, float] = field(default_factory=dict)  # graph -> seconds; the others came from the cache
    manifest: Manifest | None = None


def _build_into(plan: BuildPlan, name: str, folder: Path, cache: EngineCache, bar) -> dict:
    """Build one graph's engine into ``folder``; -> the cache entry record."""
    onnx_path = plan.export_dir / plan.export.graphs[name].file
    if plan.backend == "onnxruntime":
        from nvila_edge.engines.onnxruntime_builder import build_ort_graph

        llm = NvilaConfig.from_files(plan.export.model_config).llm
        built = build_ort_graph(onnx_path, folder, name, plan.export.graphs[name].precision, ort_device(plan.target),
                                llm, plan.export.dims["total"].max, plan.cpu, threads=1)
        bar.update(1)
        return {"files": built.files, "sha256": sha256_file(folder / built.files[0]), "quantized_layers": {},
                "precision_check": "not applicable: ONNX Runtime runs the graph's Q/DQ as written",
                "inputs": [dataclasses.asdict(t) for t in built.inputs],
                "outputs": [dataclasses.asdict(t) for t in built.outputs], "kv_layout": built.kv_layout}
    else:
        from nvila_edge.engines.tensorrt_builder import TrtBuildOptions, build_trt_engine
        from nvila_edge.runtime.backends.trt_api import uses_timing_cache

        timing = (cache.timing_cache(plan.backend, plan.backend_version, plan.target.capability)
                  if uses_timing_cache(plan.backend) else None)
        options = TrtBuildOptions(plan.backend, plan.target.compute_capability, plan.target.workspace_bytes,
                                  plan.optimization_level, plan.profiles[name], timing)
        files = [f"{name}.engine"]
        result = build_trt_engine(onnx_path, folder / files[0], name, options, bar)
        quantized, check = result.quantized_layers, result.precision_check
    return {"files": files, "sha256": sha256_file(folder / files[0]), "quantized_layers": quantized,
            "precision_check": check}


def engines_manifest(plan: BuildPlan, records: dict[str, dict]) -> Manifest:
    export = plan.export
    graphs, kv_layout = {}, export.kv_layout
    for name, record in records.items():
        source = export.graphs[name]
        build = EngineBuild(source.file, source.sha256, plan.keys[name].digest(), plan.profiles[name],
                            plan.keys[name].options, record["quantized_layers"], record["precision_check"])
        # an ONNX Runtime build records the IO of the graph it wrote (the CPU rewrite changes it)
        inputs = [TensorSpec(**t) for t in record["inputs"]] if "inputs" in record else source.inputs
        outputs = [TensorSpec(**t) for t in record["outputs"]] if "outputs" in record else source.outputs
        graphs[name] = GraphSpec(record["files"][0], record["sha256"], inputs, outputs, source.precision,
                                 record["files"][1:], plan.backend, dataclasses.asdict(build))
        kv_layout = record.get("kv_layout") or kv_layout
    target = EngineTarget(plan.target.name, plan.backend, plan.backend_version, plan.target.capability, plan.context,
                          {**dataclasses.asdict(plan.memory), "budget": plan.target.memory_budget_bytes})
    source = {"name": export.source.get("name"), "path": str(plan.export_dir.resolve()),
              "sha256": sha256_file(plan.export_dir / MANIFEST), "checkpoint_sha256": export.source.get("sha256")}
    return dataclasses.replace(export, kind="engines", source=source, graphs=graphs, kv_layout=kv_layout,
                               dims={**export.dims, **context_dims(plan.context)}, target=dataclasses.asdict(target))


def check_replaceable(folder: Path, export_dir: Path) -> None:
    """Only an engines folder (or nothing, or an empty folder) may be replaced by a build."""
    if folder.resolve() == export_dir.resolve():
        raise InputError(f"-o {folder} is the export folder itself; choose another engines folder")
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    try:
        kind = json.loads((folder / MANIFEST).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != "engines":
        raise InputError(f"{folder} exists and is not an nvila-edge engines folder; choose another -o or remove it")


def is_current(folder: Path, plan: BuildPlan) -> bool:
    """The folder holds exactly the engines of this plan (same export, keys and context) and all their files."""
    try:
        current = read_manifest(folder, "engines")
        target = engine_target(current)
        keys = {name: engine_build(current, name).cache_key for name in current.graphs}
    except ArtifactError:
        return False
    return (target.name == plan.target.name and target.backend_version == plan.backend_version
            and target.max_context == plan.context and current.precision == plan.export.precision
            and current.source.get("sha256") == sha256_file(plan.export_dir / MANIFEST)
            and keys == {name: key.digest() for name, key in plan.keys.items()})


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard links keep one copy of multi-GB engines on the board; cache entries are never modified."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def build_engines(plan: BuildPlan, engines_dir: Path, cache: EngineCache, progress: bool = True) -> BuildOutcome:
    engines_dir = Path(engines_dir)
    check_replaceable(engines_dir, plan.export_dir)
    outcome = BuildOutcome(engines_dir, is_current(engines_dir, plan))
    if outcome.up_to_date:
        return outcome
    entries, names = {}, list(plan.keys)
    for index, name in enumerate(names, 1):
        key = plan.keys[name]
        entries[name] = cache.lookup(key)
        if entries[name] is not None:
            log.info("[%d/%d] %s: cached engine %s", index, len(names), name, key.digest()[:12])
            continue
        start = time.perf_counter()
        with progress_bar(enabled=progress, total=1, desc=f"[{index}/{len(names)}] {name}", unit="step",
                          leave=True) as bar:
            bar.set_postfix_str(f"{BACKEND_NAMES.get(plan.backend, 'ONNX Runtime')} {plan.backend_version}")
            entries[name] = cache.put(key, lambda folder, n=name, b=bar: _build_into(plan, n, folder, cache, b))
        outcome.built[name] = time.perf_counter() - start
    records = {name: EngineCache.record(entry) for name, entry in entries.items()}
    manifest = engines_manifest(plan, records)
    remove_stale_partials(engines_dir.parent)
    with atomic_folder(engines_dir, replace=True) as tmp:
        for name, entry in entries.items():
            for file in records[name]["files"]:
                link_or_copy(entry / file, tmp / file)
        link_or_copy(plan.export_dir / plan.export.embeddings["file"], tmp / plan.export.embeddings["file"])
        shutil.copytree(plan.export_dir / plan.export.tokenizer_dir, tmp / plan.export.tokenizer_dir)
        manifest.write(tmp)
    outcome.manifest = manifest
    return outcome
