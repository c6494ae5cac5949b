"""Visual encoding on the runtime side: tiles -> vision graph -> projector graph -> embedding blocks.

``s2_matrices`` and ``split_by_scale`` are also what the PyTorch reference uses, so both feed the
projector the same Dynamic-S2 averaging matrices.
"""

from __future__ import annotations

import time

import numpy as np

from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.s2merge import area_matrix
from nvila_edge.runtime.tiling import ImageTiles


def s2_matrices(config: NvilaConfig, block: tuple[int, int] | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Averaging matrices per scale (rows, cols) for a block (R, C); None = block-less (channel repeat)."""
    g = config.vision.grid
    if block is None:
        eye = np.eye(g, dtype=np.float32)
        return [eye] * config.num_scales, [eye] * config.num_scales
    r, c = block
    rows, cols = [], []
    for scale in config.s2_scales[:-1]:
        k = scale // config.tile_size
        rows.append(area_matrix(k * g, r * g))
        cols.append(area_matrix(k * g, c * g))
    rows.append(np.eye(r * g, dtype=np.float32))
    cols.append(np.eye(c * g, dtype=np.float32))
    return rows, cols


def split_by_scale(features, scale_tiles: tuple[int, ...]) -> list:
    """ViT features of one image [T, g*g, D] -> per-scale groups, in ViT batch order."""
    bounds = np.cumsum((0, *scale_tiles))
    return [features[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class GraphEncoder:
    """MediaEncoder over two graph runners (any backend): ``vision`` and ``projector``."""

    def __init__(self, config: NvilaConfig, vision, projector, dtype: np.dtype):
        self.config, self.vision, self.projector, self.dtype = config, vision, projector, dtype
        self.vision_ms = 0.0
        self.projector_ms = 0.0

    def features(self, pixel_values: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        if isinstance(pixel_values, np.ndarray):  # else tiles already in device memory (TensorRT binds them)
            pixel_values = pixel_values.astype(self.dtype, copy=False)
        out = self.vision.run({"pixel_values": pixel_values})["features"]
        self.vision_ms += 1000 * (time.perf_counter() - start)
        return out

    def project(self, tiles: ImageTiles, features: np.ndarray) -> list[np.ndarray]:
        start = time.perf_counter()
        if not self.config.is_dynamic_s2:
            blocks = list(self.projector.run({"features": features})["embeddings"])
        else:
            n = self.config.num_scales
            per_scale = [features] * n if tiles.block is None else split_by_scale(features, tiles.scale_tiles)
            rows, cols = s2_matrices(self.config, tiles.block)
            feeds = {f"features_{i}": np.ascontiguousarray(f) for i, f in enumerate(per_scale)}
            feeds.update({f"rows_{i}": m for i, m in enumerate(rows)})
            feeds.update({f"cols_{i}": m for i, m in enumerate(cols)})
            blocks = [self.projector.run(feeds)["embeddings"]]
        self.projector_ms += 1000 * (time.perf_counter() - start)
        return blocks

    def encode_image(self, tiles: ImageTiles) -> list[np.ndarray]:
        return self.project(tiles, self.features(tiles.pixel_values))

    def encode_frames(self, frames: list[ImageTiles]) -> list[np.ndarray]:
        features = self.features(np.concatenate([f.pixel_values for f in frames]))
        blocks = [self.project(tiles, features[i:i + 1])[0] for i, tiles in enumerate(frames)]
        pool = self.config.video_pool
        if pool > 1:
            stacked = np.stack(blocks)  # [F, n, H]
            blocks = list(stacked.reshape(len(blocks) // pool, pool, *stacked.shape[1:]).mean(axis=1))
        return blocks
