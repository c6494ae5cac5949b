"""Optimization profiles: min / opt / max shapes of every graph input, from the export manifest's dynamic ranges.

vision and projector get one profile over the tile batch (and, for Dynamic-S2, the per-scale sizes). The LLM
gets two, selected per step by the runtime: ``prefill`` (a whole prompt, nothing cached) and ``decode`` (one
new position after up to context - 1 cached ones), both bounded by the chosen max context.
"""

from __future__ import annotations

from nvila_edge.errors import ArtifactError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.manifest import DimRange, Manifest, OptimizationProfile, TensorSpec

PREFILL_OPT = 512  # positions of a typical single-image prompt; TensorRT tunes kernels for the opt shape


def scale_dims(config: NvilaConfig) -> dict[str, DimRange]:
    """Dynamic-S2 projector sizes per scale: scale i < last has k x k tiles (k = scale / tile) merged from a
    k*g side, the last scale is the block itself. Without a block (resize mode, video) every scale is 1 tile."""
    if not config.is_dynamic_s2:
        return {}
    g, n = config.vision.grid, config.num_scales
    dims = {}
    for i, scale in enumerate(config.s2_scales[:-1]):
        k = scale // config.tile_size
        dims[f"tiles_{i}"] = DimRange(1, k * k, k * k)
        dims[f"rows_in_{i}"] = dims[f"cols_in_{i}"] = DimRange(g, k * g, k * g)
    last = config.s2_scales[-1] // config.tile_size
    dims[f"tiles_{n - 1}"] = DimRange(1, min(last * last, config.max_tiles), config.max_tiles)
    side = DimRange(g, min(last, config.max_tiles) * g, config.max_tiles * g)
    dims[f"rows_in_{n - 1}"] = dims[f"cols_in_{n - 1}"] = side
    return dims


def context_dims(context: int) -> dict[str, DimRange]:
    """The LLM's sequence dimensions over a context of ``context`` positions (the engines manifest's dims)."""
    return {"seq": DimRange(1, 1, context), "past": DimRange(0, context // 2, context - 1),
            "total": DimRange(1, context // 2, context)}


def llm_phase_dims(context: int) -> dict[str, dict[str, DimRange]]:
    prompt = min(context, PREFILL_OPT)
    return {
        "prefill": {"seq": DimRange(1, prompt, context), "past": DimRange(0, 0, context - 1),
                    "total": DimRange(1, prompt, context)},
        "decode": {"seq": DimRange(1, 1, 1), "past": DimRange(1, context // 2, context - 1),
                   "total": DimRange(2, context // 2 + 1, context)},
    }


def input_shapes(spec: TensorSpec, dims: dict[str, DimRange], graph: str) -> list[list[int]]:
    """[min shape, opt shape, max shape] of one input."""
    shapes: list[list[int]] = [[], [], []]
    for dim in spec.shape:
        if isinstance(dim, int):
            values = (dim, dim, dim)
        elif dim in dims:
            values = (dims[dim].min, dims[dim].opt, dims[dim].max)
        else:
            raise ArtifactError(f"graph '{graph}' input '{spec.name}' has dynamic dimension '{dim}' with no range in "
                                "the export manifest; re-export with this nvila-edge")
        for shape, value in zip(shapes, values):
            shape.append(value)
    return shapes


def graph_profiles(manifest: Manifest, graph: str, context: int) -> list[OptimizationProfile]:
    if context < 2:
        raise ValueError(f"context must hold at least 2 positions, got {context}")
    dims = {**manifest.dims, **scale_dims(NvilaConfig.from_files(manifest.model_config))}
    inputs = manifest.graphs[graph].inputs
    phases = llm_phase_dims(context) if graph == "llm" else {"default": {}}
    return [OptimizationProfile(name, {spec.name: input_shapes(spec, {**dims, **phase}, graph) for spec in inputs})
            for name, phase in phases.items()]
