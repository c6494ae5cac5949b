"""Per-token supervision from the synthetic world: which shape (kind and colour) each visual token sees,
and where in the image the token lies; and the same kind and colour under each ViT patch of each tile.

An auxiliary linear head on the projector's output learns these labels during training, which gives the
vision tower and projector a dense signal from the first step instead of only the answer tokens' loss.
The head is dropped when the checkpoint is written: the shipped model is plain NVILA.
"""

from __future__ import annotations

import cv2
import numpy as np

from nvila_edge.runtime.tiling import TilePlan
from nvila_edge.runtime.world.clip import Clip, shapes_at
from nvila_edge.runtime.world.scene import COLORS, SHAPES, Scene, Shape, fill_shape

KIND_CLASSES = len(SHAPES) + 1  # 0 = background
COLOR_CLASSES = len(COLORS) + 1
COLOR_INDEX = {name: i + 1 for i, name in enumerate(COLORS)}


def label_map(shapes: list[Shape], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """-> kind and colour label images [H, W] (uint8, 0 = background)."""
    kinds = np.zeros((height, width), np.uint8)
    colors = np.zeros((height, width), np.uint8)
    for shape in shapes:
        fill_shape(kinds, shape.kind, shape.cx, shape.cy, shape.size, SHAPES.index(shape.kind) + 1, antialias=False)
        fill_shape(colors, shape.kind, shape.cx, shape.cy, shape.size, COLOR_INDEX[shape.color], antialias=False)
    return kinds, colors


def token_labels(shapes: list[Shape], width: int, height: int, rows: int, cols: int) -> np.ndarray:
    """Labels of a raster token grid covering the whole (squash-resized) image: [rows*cols, 2] (kind, colour)."""
    kinds, colors = label_map(shapes, width, height)
    grid = [cv2.resize(m, (cols, rows), interpolation=cv2.INTER_NEAREST) for m in (kinds, colors)]
    return np.stack([g.reshape(-1) for g in grid], axis=1).astype(np.int64)


def media_labels(scene: Scene | Clip, frames: int, grid_rows: int, grid_cols: int) -> list[np.ndarray]:
    """One label array per visual block: the image's raster grid, or each frame's grid for a clip."""
    if isinstance(scene, Clip):
        return [token_labels(shapes_at(scene, t), scene.width, scene.height, grid_rows, grid_cols)
                for t in range(frames)]
    return [token_labels(scene.shapes, scene.width, scene.height, grid_rows, grid_cols)]


def token_centres(rows: int, cols: int) -> np.ndarray:
    """Centre of each token of a raster grid over the whole image, [rows*cols, 2] (x, y in 0..1)."""
    y, x = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    return np.stack([x.reshape(-1), y.reshape(-1)], axis=1).astype(np.float32)


def patch_labels(scene: Scene, plan: TilePlan, grid: int) -> np.ndarray:
    """Kind and colour under each ViT patch of every tile of ``plan``: [tiles, grid*grid, 2], ViT batch order."""
    maps = np.stack(label_map(scene.shapes, scene.width, scene.height), axis=-1)  # [H, W, 2]
    per_stage = []
    for stage in plan.stages:
        resized = cv2.resize(maps, (stage.cols * grid, stage.rows * grid), interpolation=cv2.INTER_NEAREST)
        tiles = resized.reshape(stage.rows, grid, stage.cols, grid, 2).transpose(0, 2, 1, 3, 4)
        per_stage.append(tiles.reshape(stage.tiles, grid * grid, 2))
    return np.concatenate(per_stage).astype(np.int64)
