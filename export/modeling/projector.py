"""NVILA's multimodal projectors: space-to-channel downsampling, then LayerNorm + MLP.

``layers.{i}`` indices match the checkpoint keys (index 0 is the parameter-free downsample).
LayerNorm eps is PyTorch's default 1e-5 and GELU is exact (erf), as in the reference projector.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class SpaceToChannel(nn.Module):
    """[B, n*n, D] -> [B, m*m, f*f*D], m = ceil(n/f); zero-pads the grid bottom/right to a multiple of f.

    Output token (i, j) concatenates input tokens (f*i + a, f*j + b), row offset a major.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, tokens, d = x.shape
        n, f = math.isqrt(tokens), self.factor
        m = -(-n // f)
        grid = x.view(b, n, n, d)
        if m * f != n:
            grid = F.pad(grid, (0, 0, 0, m * f - n, 0, m * f - n))
        grid = grid.view(b, m, f, m, f, d).permute(0, 1, 3, 2, 4, 5)  # [B, m, m, f(row), f(col), D]
        return grid.reshape(b, m * m, f * f * d)


class GELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


def projector_layers(projector_type: str, mm_hidden: int, llm_hidden: int) -> list[nn.Module]:
    if projector_type in ("mlp_downsample", "mlp_downsample_2x2_fix"):
        d = 4 * mm_hidden
        return [SpaceToChannel(2), nn.LayerNorm(d), nn.Linear(d, llm_hidden), GELU(), nn.Linear(llm_hidden, llm_hidden)]
    if projector_type == "mlp_downsample_3x3_fix":
        d = 9 * mm_hidden
        mid = 3 * mm_hidden
        return [SpaceToChannel(3), nn.LayerNorm(d), nn.Linear(d, mid), GELU(), nn.LayerNorm(mid),
                nn.Linear(mid, llm_hidden), GELU(), nn.Linear(llm_hidden, llm_hidden)]
    raise ValueError(f"unknown projector type {projector_type}")


class Projector(nn.Module):
    """Per-tile features [B, g*g, mm_hidden] -> LLM embeddings [B, m*m, llm_hidden]."""

    def __init__(self, projector_type: str, mm_hidden: int, llm_hidden: int):
        super().__init__()
        self.layers = nn.Sequential(*projector_layers(projector_type, mm_hidden, llm_hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
