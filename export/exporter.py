"""``nvila-edge export``: checkpoint folder -> export folder (ONNX graphs, embedding table, tokenizer, manifest).

A precision recipe (``engines.recipes``) says what each graph becomes; quantized recipes are
calibrated first, on the FP32 model. Every graph passes the ONNX gates and the TensorRT compatibility check
against the oldest TensorRT the export is meant for. The folder is built under a temporary name and renamed
at the end, so an interrupted export never leaves a folder that looks complete.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch

from nvila_edge.atomic import atomic_folder
from nvila_edge.engines.compat import CompatTarget, check_file, errors, parse_target
from nvila_edge.engines.recipes import DEFAULT_CALIBRATION_SIZE, Recipe, get_recipe
from nvila_edge.engines.targets import check_recipe, get_target
from nvila_edge.errors import ArtifactError
from nvila_edge.export.checkpoint import LoadedCheckpoint, load_checkpoint
from nvila_edge.export.onnx.graphs import GRAPHS
from nvila_edge.export.onnx.trace import check_graph
from nvila_edge.export.quantize.calibration import build_calibration
from nvila_edge.export.quantize.graph_export import export_graph
from nvila_edge.runtime.config import CONFIG_FILES, read_config_files
from nvila_edge.runtime.manifest import (
    DimRange,
    GraphSpec,
    Manifest,
    TensorSpec,
    TokenLayout,
    folder_sha256,
    sha256_file,
)
from nvila_edge.runtime.progress import progress_bar
from nvila_edge.runtime.prompt import CHAT_TEMPLATE

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt")


def onnx_dtype_name(elem_type: int) -> str:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def tensor_specs(values) -> list[TensorSpec]:
    specs = []
    for value in values:
        t = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        specs.append(TensorSpec(value.name, onnx_dtype_name(t.elem_type), shape))
    return specs


def graph_spec(path: Path, precision: str, external: list[str]) -> GraphSpec:
    model = onnx.load(str(path), load_external_data=False)
    sizes = {name: (path.parent / name).stat().st_size for name in [path.name, *external]}
    return GraphSpec(path.name, sha256_file(path), tensor_specs(model.graph.input), tensor_specs(model.graph.output),
                     precision, external, sizes=sizes)


def dynamic_ranges(ckpt: LoadedCheckpoint) -> dict[str, DimRange]:
    """min/opt/max per dynamic dimension; TensorRT optimisation profiles are made from these."""
    config = ckpt.config
    context = config.model_max_length
    s2_tiles = sum((s // config.tile_size) ** 2 for s in config.s2_scales[:-1]) + config.max_tiles
    tiles_max = max(s2_tiles, config.max_tiles + 1, config.num_video_frames)
    dims = {
        "tiles": DimRange(1, min(tiles_max, 16), tiles_max),
        "batch": DimRange(1, 1, 1),
        "seq": DimRange(1, 1, context),
        "past": DimRange(0, context // 2, context - 1),
        "total": DimRange(1, context // 2, context),
    }
    if config.is_dynamic_s2:
        g = config.vision.grid
        dims["merged_rows"] = DimRange(g, 3 * g, config.max_tiles * g)
        dims["merged_cols"] = DimRange(g, 3 * g, config.max_tiles * g)
        dims["image_tokens"] = DimRange(config.tokens_per_tile, 9 * config.tokens_per_tile,
                                        config.max_tiles * config.tokens_per_tile)
    return dims


def copy_tokenizer(ckpt: LoadedCheckpoint, dest: Path) -> None:
    dest.mkdir()
    for name in TOKENIZER_FILES:
        if (ckpt.path / "llm" / name).is_file():
            shutil.copy2(ckpt.path / "llm" / name, dest / name)


def token_layout(ckpt: LoadedCheckpoint, rows: int) -> TokenLayout:
    tok = ckpt.tokenizer
    return TokenLayout(tok.image_token_id, tok.video_token_id, tok.sentinel_token_id, tok.newline_id,
                       tok.im_end_id, list(tok.eos_token_ids), ckpt.config.llm.vocab_size, rows)


def compat_target(recipe: Recipe, target: str | None) -> CompatTarget:
    """The oldest TensorRT the export is meant for: the target's, else the recipe's (a CPU target has none)."""
    if target and get_target(target).default_backend != "onnxruntime":
        return parse_target(target)
    return parse_target(recipe.trt_floor)


def check_compat(path: Path, target: CompatTarget) -> None:
    findings = check_file(path, target)
    for finding in findings:
        if finding.severity != "error":
            log.info("%s", finding.line())
    broken = errors(findings)
    if broken:
        more = f" (and {len(broken) - 1} more; see `nvila-edge check`)" if len(broken) > 1 else ""
        raise ArtifactError(f"{path.name} would not build on {target.trt_name}: {broken[0].line()}{more}")


def export_checkpoint(model: str | Path, out: Path, precision: str = "fp32", replace: bool = False,
                      calib_dir: Path | None = None, calib_size: int = DEFAULT_CALIBRATION_SIZE,
                      target: str | None = None, quantize_lm_head: bool = False, progress: bool = True) -> Manifest:
    """Export ``model`` with the precision recipe ``precision`` (fp32, fp16, int4, int8-int4, fp8).

    ``target`` (a device target name) refuses recipes it cannot run and sets the TensorRT the graphs are
    checked against; ``calib_dir`` replaces the built-in world's calibration images with the user's own.
    """
    recipe = get_recipe(precision)
    if target:
        check_recipe(get_target(target), recipe.name)
    trt = compat_target(recipe, target)
    if calib_dir and not recipe.needs_calibration:
        log.warning("--calib is ignored: recipe %s quantizes nothing", recipe.name)
    steps = progress_bar(enabled=progress, total=len(GRAPHS) + 3 + recipe.needs_calibration, desc="export",
                         unit="step")
    steps.set_postfix_str("loading checkpoint")
    ckpt = load_checkpoint(model, dtype=torch.float32)
    steps.update()
    calibration = None
    if recipe.needs_calibration:
        steps.set_postfix_str("calibration data")
        calibration = build_calibration(ckpt, calib_dir, calib_size)
        steps.update()
    with atomic_folder(Path(out), replace=replace) as tmp:
        graphs = {}
        for name in GRAPHS:
            graph_precision = recipe.precision_of(name)
            steps.set_postfix_str(f"{name}.onnx ({graph_precision})")
            path = tmp / f"{name}.onnx"
            external = export_graph(ckpt, name, graph_precision, path, calibration, quantize_lm_head)
            check_graph(path)
            check_compat(path, trt)
            graphs[name] = graph_spec(path, graph_precision, external)
            steps.update()
        steps.set_postfix_str("embeddings, tokenizer, hashes")
        table = ckpt.model.llm.model.embed_tokens.weight.detach().float().numpy().astype(recipe.float_dtype)
        np.save(tmp / "embeddings.npy", table)
        copy_tokenizer(ckpt, tmp / "tokenizer")
        files = read_config_files(ckpt.path)
        manifest = Manifest(
            kind="export",
            precision=recipe.name,
            model_config={name: files[name] for name in CONFIG_FILES},
            source={"name": ckpt.path.name, "path": str(ckpt.path), "sha256": folder_sha256(ckpt.path),
                    "calibration": calibration.source if calibration else None, "tensorrt_check": trt.label},
            graphs=graphs,
            dims=dynamic_ranges(ckpt),
            embeddings={"file": "embeddings.npy", "dtype": table.dtype.name, "shape": list(table.shape),
                        "sha256": sha256_file(tmp / "embeddings.npy")},
            tokenizer_dir="tokenizer",
            token_layout=token_layout(ckpt, table.shape[0]),
            chat_template=CHAT_TEMPLATE,
            generation={"max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0,
                        "stop_token_ids": list(ckpt.tokenizer.eos_token_ids)},
            projector_form="dynamic_s2" if ckpt.config.is_dynamic_s2 else "per_tile",
        )
        manifest.write(tmp)
        steps.update()
    steps.set_postfix_str("done")
    steps.update()
    steps.close()
    return manifest
