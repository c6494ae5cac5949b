"""Write checkpoint folders in the published NVILA layout: random-weight presets and the built-in model.

Tensors are produced and written one shard at a time, so even the real-size presets never hold two copies
of the weights in memory. The folder appears atomically (built under a temporary name, then renamed).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

from nvila_edge.atomic import atomic_folder
from nvila_edge.export.checkpoint import PARTS, expected_shapes, optional_tensors
from nvila_edge.export.modeling.nvila import NvilaModel
from nvila_edge.export.weights import write_sharded
from nvila_edge.runtime.config import NvilaConfig

TensorFactory = Callable[[str, str, tuple[int, ...]], torch.Tensor]  # (part, name, shape) -> tensor

# Published NVILA shards its LLM at about 5 GB; vision tower and projector are single files.
LLM_SHARD_BYTES = 5 * 2**30


def random_tensors(seed: int, std: float = 0.02) -> TensorFactory:
    """Seeded per tensor name, so the result does not depend on write order or sharding."""

    def make(part: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name.endswith(("norm.weight", "layer_norm1.weight", "layer_norm2.weight")) or (
                part == "mm_projector" and len(shape) == 1 and name.endswith("weight")):
            return torch.ones(shape)
        if name.endswith("bias") and part != "llm":
            return torch.zeros(shape)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(f"{part}/{name}".encode()))
        return torch.randn(shape, generator=generator) * std

    return make


def full_vision_shapes(config: NvilaConfig) -> dict[str, tuple[int, ...]]:
    """All SigLIP layers plus post_layernorm, as published (NVILA itself uses layers up to select layer)."""
    with torch.device("meta"):
        from nvila_edge.export.modeling.vision import VisionTower

        tower = VisionTower(config.vision, config.vision.num_hidden_layers)
    shapes = {n: tuple(t.shape) for n, t in tower.state_dict().items()}
    d = config.vision.hidden_size
    shapes.update({"vision_model.post_layernorm.weight": (d,), "vision_model.post_layernorm.bias": (d,)})
    return shapes


def write_checkpoint(out: Path, config_files: dict[str, dict], tensors: TensorFactory,
                     write_tokenizer: Callable[[Path], None], dtype: torch.dtype = torch.bfloat16,
                     replace: bool = False, llm_shard_bytes: int = LLM_SHARD_BYTES) -> Path:
    config = NvilaConfig.from_files(config_files)
    with torch.device("meta"):
        model = NvilaModel(config)
    top = dict(config_files["config.json"])
    top.update({"llm_cfg": config_files["llm/config.json"],
                "vision_tower_cfg": config_files["vision_tower/config.json"],
                "mm_projector_cfg": config_files["mm_projector/config.json"]})
    with atomic_folder(Path(out), replace=replace) as tmp:
        for name, content in config_files.items():
            file = tmp / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps(top if name == "config.json" else content, indent=2))
        for part in PARTS:
            shapes = full_vision_shapes(config) if part == "vision_tower" else expected_shapes(model, part)
            shapes = {n: s for n, s in shapes.items() if n not in optional_tensors(config, part)}
            limit = llm_shard_bytes if part == "llm" else 2**62
            write_sharded(tmp / part, shapes, lambda n, s, p=part: tensors(p, n, s), dtype, limit)
        write_tokenizer(tmp / "llm")
    return Path(out)
