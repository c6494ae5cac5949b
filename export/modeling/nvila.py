"""The NVILA model assembled from its three parts, and its visual encoding paths (PyTorch reference)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nvila_edge.export.modeling.projector import Projector
from nvila_edge.export.modeling.qwen2 import Qwen2ForCausalLM
from nvila_edge.export.modeling.s2merge import DynamicS2Projector
from nvila_edge.export.modeling.vision import VisionTower
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.tiling import ImageTiles
from nvila_edge.runtime.visual import s2_matrices, split_by_scale


class NvilaModel(nn.Module):
    def __init__(self, config: NvilaConfig):
        super().__init__()
        self.config = config
        self.vision_tower = VisionTower(config.vision, config.vision_layers_used)
        self.mm_projector = Projector(config.projector_type, config.mm_hidden_size, config.llm.hidden_size)
        self.llm = Qwen2ForCausalLM(config.llm)

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.lm_head.weight.dtype

    def s2_projector(self) -> DynamicS2Projector:
        return DynamicS2Projector(self.mm_projector, self.config.vision.grid, self.config.num_scales)

    def encode_image(self, tiles: ImageTiles) -> list[torch.Tensor]:
        """One image's tiles -> its embedding blocks ([n, H] each, in splice order)."""
        return self.project_image(tiles, self.vision_tower(torch.from_numpy(tiles.pixel_values).to(self.dtype)))

    def project_image(self, tiles: ImageTiles, features: torch.Tensor) -> list[torch.Tensor]:
        """Vision features of one image's tiles [T, g*g, D] -> embedding blocks."""
        if not self.config.is_dynamic_s2:
            return list(self.mm_projector(features))  # one block per tile (NVILA-Lite) or the single tile
        if tiles.block is None:
            per_scale = [features] * self.config.num_scales
        else:
            per_scale = split_by_scale(features, tiles.scale_tiles)
        rows, cols = s2_matrices(self.config, tiles.block)
        matrices = [torch.from_numpy(m) for m in rows + cols]
        return [self.s2_projector()(*per_scale, *matrices)]

    def encode_frames(self, frames: list[ImageTiles]) -> list[torch.Tensor]:
        """Video frames (one block-less tile each) -> blocks, mean-pooled over time for NVILA-Video."""
        pixels = torch.from_numpy(np.concatenate([f.pixel_values for f in frames])).to(self.dtype)
        return self.project_frames(frames, self.vision_tower(pixels))

    def project_frames(self, frames: list[ImageTiles], features: torch.Tensor) -> list[torch.Tensor]:
        blocks = [self.project_image(tiles, f[None])[0] for tiles, f in zip(frames, features)]
        pool = self.config.video_pool
        if pool > 1:
            stacked = torch.stack(blocks)  # [F, n, H]
            blocks = list(stacked.view(len(blocks) // pool, pool, *stacked.shape[1:]).mean(dim=1))
        return blocks
