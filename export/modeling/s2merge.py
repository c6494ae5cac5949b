"""Dynamic-S2 feature merge, written with reshapes and averaging-matrix products so it exports to ONNX.

Per image with last-scale block (R, C): each scale's tiles are reassembled into one map ("chessboard"),
area-resized to the last scale's [g*R, g*C] grid as A_rows @ X @ A_cols^T (fp32), and the maps are
concatenated on channels [small | ... | last]. The merged map is cut back into R*C tiles for the projector,
whose outputs are put back in raster order over the whole image.

Tile counts per scale are read from the averaging matrices' shapes: rows [g*R, k_r*g], cols [g*C, k_c*g].
A block-less image (multi-image prompt, video frame) passes the same single tile as every scale with
identity matrices, which is exactly NVILA's channel repeat.
"""

from __future__ import annotations

import torch
from torch import nn

from nvila_edge.export.modeling.projector import Projector


def assemble_tiles(tiles: torch.Tensor, k_rows, k_cols, g: int) -> torch.Tensor:
    """[k_r*k_c, g*g, D] (row-major tiles) -> one map [k_r*g, k_c*g, D]."""
    d = tiles.shape[-1]
    grid = tiles.reshape(k_rows, k_cols, g, g, d).permute(0, 2, 1, 3, 4)
    return grid.reshape(k_rows * g, k_cols * g, d)


def area_resize(feature_map: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[H_in, W_in, D] -> [H_out, W_out, D] with rows [H_out, H_in], cols [W_out, W_in]."""
    w_in, d = feature_map.shape[1], feature_map.shape[2]
    x = (rows @ feature_map.reshape(feature_map.shape[0], -1)).reshape(-1, w_in, d)  # [H_out, W_in, D]
    h_out = x.shape[0]
    x = x.transpose(0, 1).reshape(w_in, -1)  # [W_in, H_out*D]
    return (cols @ x).reshape(-1, h_out, d).transpose(0, 1)  # [H_out, W_out, D]


def split_tiles(feature_map: torch.Tensor, r, c, g: int) -> torch.Tensor:
    """[r*g, c*g, D] -> [r*c, g*g, D] (row-major tiles)."""
    d = feature_map.shape[-1]
    return feature_map.reshape(r, g, c, g, d).permute(0, 2, 1, 3, 4).reshape(r * c, g * g, d)


def raster_tokens(tiles: torch.Tensor, r, c, m: int) -> torch.Tensor:
    """Projected tiles [r*c, m*m, H] -> image tokens in raster order over the whole image [r*m*c*m, H]."""
    h = tiles.shape[-1]
    return tiles.reshape(r, c, m, m, h).permute(0, 2, 1, 3, 4).reshape(r * m * c * m, h)


def merge_scales(features: list[torch.Tensor], rows: list[torch.Tensor], cols: list[torch.Tensor],
                 g: int) -> torch.Tensor:
    """Per-scale tile features and averaging matrices -> merged tiles [R*C, g*g, D*scales] (input dtype)."""
    maps = []
    for feats, a_rows, a_cols in zip(features, rows, cols):
        k_rows, k_cols = a_rows.shape[1] // g, a_cols.shape[1] // g
        feature_map = assemble_tiles(feats.float(), k_rows, k_cols, g)
        maps.append(area_resize(feature_map, a_rows.float(), a_cols.float()))
    merged = torch.cat(maps, dim=-1)
    r, c = rows[-1].shape[0] // g, cols[-1].shape[0] // g
    return split_tiles(merged, r, c, g).to(features[0].dtype)


class DynamicS2Projector(nn.Module):
    """Merge + projector + raster order: the graph ``projector.onnx`` holds for Dynamic-S2 models."""

    def __init__(self, projector: Projector, grid: int, num_scales: int):
        super().__init__()
        self.projector = projector
        self.grid = grid
        self.grid_out = -(-grid // projector.layers[0].factor)
        self.num_scales = num_scales

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        n = self.num_scales
        features, rows, cols = list(inputs[:n]), list(inputs[n:2 * n]), list(inputs[2 * n:])
        tiles = merge_scales(features, rows, cols, self.grid)
        projected = self.projector(tiles)
        r, c = rows[-1].shape[0] // self.grid, cols[-1].shape[0] // self.grid
        return raster_tokens(projected, r, c, self.grid_out)
