"""``nvila-edge validate``: run every engine of an engines folder on fixed inputs and compare it with ONNX Runtime
on the CPU running the same ONNX graph from the export folder the engines were built from.

The inputs are realistic and fixed: a rendered synthetic scene tiled as the runtime tiles it, the reference
vision features fed to both projectors, and a chat prompt with that image for the LLM, which runs a prefill
and one decode step so both of its optimization profiles are exercised. For TensorRT engines the layer
precision check (silent FP32 fallback) runs as well, since it needs the GPU that can load the engines.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvila_edge.engines.recipes import GRAPHS
from nvila_edge.errors import ArtifactError, UnsupportedError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.manifest import MANIFEST, Manifest, engine_build, engine_target, read_manifest, sha256_file

# Largest relative L2 error against the ONNX Runtime reference, per graph precision. FP32 engines may use TF32
# matmuls; quantized graphs differ from the reference by their kernels' accumulation order and rounding. An LLM
# whose cpu build quantized the lm_head is judged at the coarser of its precision and the head's.
TOLERANCE = {"fp32": 5e-3, "fp16": 3e-2, "int8": 6e-2, "int4": 6e-2, "fp8": 8e-2}
PROMPT = "Which shapes are in the picture, and what colors are they?"


@dataclass(frozen=True)
class Comparison:
    check: str
    precision: str
    max_abs: float
    rel_l2: float
    cosine: float
    top1_agrees: bool | None
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.rel_l2)) and self.rel_l2 <= self.tolerance

    def row(self) -> list[str]:
        top1 = "-" if self.top1_agrees is None else ("same" if self.top1_agrees else "differs")
        return [self.check, self.precision, f"{self.max_abs:.3g}", f"{self.rel_l2:.3g}", f"{self.cosine:.6f}", top1,
                f"{self.tolerance:g}", "pass" if self.passed else "FAIL"]


def compare(check: str, precision: str, got: np.ndarray, want: np.ndarray, logits: bool = False) -> Comparison:
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    if got.shape != want.shape:
        return Comparison(check, precision, float("inf"), float("inf"), 0.0, None, TOLERANCE[precision])
    diff = got - want
    norm = np.linalg.norm(want) or 1.0
    cosine = float(got @ want / ((np.linalg.norm(got) * np.linalg.norm(want)) or 1.0))
    top1 = bool(got.argmax() == want.argmax()) if logits else None
    return Comparison(check, precision, float(np.abs(diff).max(initial=0.0)), float(np.linalg.norm(diff) / norm),
                      cosine, top1, TOLERANCE[precision])


def export_folder(engines_dir: Path, manifest: Manifest, override: Path | None) -> tuple[Path, Manifest]:
    """The export folder the engines came from, checked to be the very same export."""
    folder = Path(override or manifest.source.get("path", ""))
    if not (folder / MANIFEST).is_file():
        raise ArtifactError(f"{engines_dir} was built from {folder}, which is not there any more; pass --export DIR "
                            "with a copy of that export folder")
    export = read_manifest(folder, "export", verify_hashes=True)
    if sha256_file(folder / MANIFEST) != manifest.source.get("sha256"):
        raise ArtifactError(f"{folder} is not the export {engines_dir} was built from (its manifest differs); "
                            "pass --export with the right folder, or rebuild")
    for name in manifest.graphs:
        if export.graphs[name].sha256 != engine_build(manifest, name).onnx_sha256:
            raise ArtifactError(f"{folder / export.graphs[name].file} differs from the ONNX graph the engine was "
                                "built from; rebuild the engines")
    return folder, export


def fixed_request():
    from nvila_edge.runtime.request import Request
    from nvila_edge.runtime.world.scene import random_scene, render_scene

    image = render_scene(random_scene(np.random.default_rng(0), width=320, height=200))
    return Request(PROMPT, [image])


def validate_engines(engines_dir: Path, export_override: Path | None = None,
                     threads: int | None = None) -> tuple[list[Comparison], list[PrecisionCheck]]:
    """-> (comparisons, layer precision checks); raises before any comparison if something is off."""
    from nvila_edge.runtime.pipeline import open_runners
    from nvila_edge.runtime.tokenizer import Tokenizer

    engines_dir = Path(engines_dir)
    manifest = read_manifest(engines_dir, "engines", verify_hashes=True)
    target = engine_target(manifest)
    export_dir, export = export_folder(engines_dir, manifest, export_override)
    config = NvilaConfig.from_files(manifest.model_config)
    tokenizer = Tokenizer.from_dir(engines_dir / manifest.tokenizer_dir)
    table = np.load(engines_dir / manifest.embeddings["file"], mmap_mode="r")
    device = "cpu" if target.compute_capability == "none" else "cuda"
    with contextlib.ExitStack() as opened:
        engines = open_runners(engines_dir, manifest, threads, device, target.max_context)  # refuses first, if at all
        for runner in engines:
            opened.enter_context(runner)
        reference = open_runners(export_dir, export, threads, "cpu", target.max_context)
        for runner in reference:
            opened.enter_context(runner)
        return _compare_runners(manifest, config, tokenizer, table, engines, reference)


def _compare_runners(manifest: Manifest, config: NvilaConfig, tokenizer, table: np.ndarray, engines,
                     reference) -> tuple[list[Comparison], list[PrecisionCheck]]:
    """Vision, projector, the LLM's prefill and one decode step on both sets of runners."""
    from nvila_edge.runtime.request import inputs_embeds, prepare, tile_request
    from nvila_edge.runtime.visual import GraphEncoder

    target, request = engine_target(manifest), fixed_request()
    ref_encoder, eng_encoder = (GraphEncoder(config, r[0], r[1], table.dtype) for r in (reference, engines))
    precision = {name: graph.precision for name, graph in manifest.graphs.items()}
    precision["llm"] = llm_precision(manifest)

    tiles = tile_request(config, request).tiles[0]
    want = ref_encoder.features(tiles.pixel_values)
    results = [compare("vision", precision["vision"], eng_encoder.features(tiles.pixel_values), want)]
    results.append(compare("projector", precision["projector"], np.concatenate(eng_encoder.project(tiles, want)),
                           np.concatenate(ref_encoder.project(tiles, want))))
    newline = np.asarray(table[manifest.token_layout.newline_token_id])[None]
    embeds = inputs_embeds(prepare(config, tokenizer, ref_encoder, newline, request), tokenizer, table)
    embeds = embeds[: target.max_context - 1]
    ref_decoder, eng_decoder = reference[2], engines[2]
    for decoder in (ref_decoder, eng_decoder):
        decoder.reset()
    want = ref_decoder.step(embeds)
    results.append(compare("llm prefill", precision["llm"], eng_decoder.step(embeds), want, logits=True))
    token = np.asarray(table[int(want.argmax())])[None]
    results.append(compare("llm decode", precision["llm"], eng_decoder.step(token), ref_decoder.step(token),
                           logits=True))
    checks = _precision_checks(manifest, engines) if target.backend != "onnxruntime" else []
    return results, checks


def llm_precision(manifest: Manifest) -> str:
    """The precision the LLM's logits are judged at: its graph's, or its quantized lm_head's if that is coarser."""
    precision = manifest.graphs["llm"].precision
    head = engine_build(manifest, "llm").options.get("cpu", {}).get("lm_head", "float")
    return precision if head not in TOLERANCE else max(precision, head, key=TOLERANCE.__getitem__)


@dataclass(frozen=True)
class PrecisionCheck:
    graph: str
    passed: bool
    detail: str


def _precision_checks(manifest: Manifest, runners) -> list[PrecisionCheck]:
    """The layer precision check of each loaded TensorRT engine (runners expose their ``engine``)."""
    from nvila_edge.engines.layer_precision import check_layer_precision, engine_layer_types

    checks = []
    for name, runner in zip(GRAPHS, runners):
        expected = engine_build(manifest, name).quantized_layers
        try:
            detail = check_layer_precision(name, expected, engine_layer_types(runner.engine.layer_information()))
        except UnsupportedError as err:
            checks.append(PrecisionCheck(name, False, str(err)))
            continue
        checks.append(PrecisionCheck(name, True, detail))
    return checks


def format_table(results: list[Comparison]) -> str:
    header = ["check", "precision", "max abs", "rel L2", "cosine", "top-1", "tolerance", "result"]
    rows = [header] + [r.row() for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


@dataclass(frozen=True)
class TileCheck:
    """The CUDA preprocessing kernels' tiles against the CPU library's, for one output type (expected: equal)."""

    dtype: str
    max_abs: float | None  # None: not run, see detail
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.max_abs is None or self.max_abs == 0.0

    def line(self) -> str:
        if self.max_abs is None:
            return f"preprocessing GPU vs CPU {self.dtype}: not run ({self.detail})"
        verdict = "bit-exact" if self.passed else "FAIL: the GPU tiles differ from the CPU tiles"
        return f"preprocessing GPU vs CPU {self.dtype}: largest difference {self.max_abs:.3g} ({verdict})"


def compare_gpu_tiles(config: NvilaConfig, rgb: np.ndarray) -> list[TileCheck]:
    """Tile ``rgb`` as a single image with the CUDA kernels and with the CPU library, in FP32 and FP16."""
    from nvila_edge.runtime import preprocess

    names = ("fp32", "fp16")
    if preprocess.active_path() != "native" or not preprocess.native.cuda:
        reason = preprocess.describe_path() if preprocess.native is None else "the library has no CUDA kernels"
        return [TileCheck(name, None, reason) for name in names]
    if not preprocess.cuda_kernels():
        return [TileCheck(name, None, "no CUDA device here") for name in names]
    from nvila_edge.runtime.backends.cuda_device import DeviceBuffer, Stream
    checks, buffer, stream = [], DeviceBuffer(), Stream()
    try:
        for name, dtype in zip(names, (np.float32, np.float16)):
            cpu = preprocess.tile_image(config, rgb, True, dtype).pixel_values
            tiles = preprocess.tile_image_device(config, rgb, True, dtype, buffer).pixel_values
            gpu = np.empty(tiles.shape, dtype)
            stream.download(gpu, tiles.address)
            stream.synchronize()
            diff = np.abs(gpu.astype(np.float64) - cpu.astype(np.float64))
            checks.append(TileCheck(name, float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))))
    finally:
        buffer.close()
        stream.close()
    return checks
