"""NVILA image tiling (Dynamic-S2, NVILA-Lite dynamic, plain resize) and visual-token accounting.

One ``TilePlan`` describes how an image of a given size becomes ViT tiles: a list of stages, each a squash
resize to (cols x tile, rows x tile) pixels cut into rows x cols tiles, row-major. ``tile_image`` executes
the plan on pixels and ``count_visual_tokens`` only counts it, so the two cannot disagree.

Like the reference, every stage resizes the original image once (bicubic, Pillow-exact) straight to its
final size; the processor's own tile-size resize that follows in the reference is then a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nvila_edge.errors import CheckpointError, InputError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.image import normalize, resize_bicubic


@dataclass(frozen=True)
class TileStage:
    """Squash-resize the image to (cols x tile, rows x tile) pixels and cut rows x cols tiles row-major."""

    cols: int
    rows: int

    @property
    def tiles(self) -> int:
        return self.cols * self.rows


@dataclass(frozen=True)
class TilePlan:
    mode: str  # "dynamic_s2", "dynamic" or "resize"
    stages: tuple[TileStage, ...]  # in ViT batch order
    block: tuple[int, int] | None  # (rows, cols) of Dynamic-S2's last scale; None otherwise
    grid: tuple[int, int] | None  # (rows, cols) chosen by the aspect-ratio search, for either dynamic mode

    @property
    def tiles(self) -> int:
        return sum(s.tiles for s in self.stages)

    @property
    def scale_tiles(self) -> tuple[int, ...]:
        return tuple(s.tiles for s in self.stages)


@dataclass
class ImageTiles:
    pixel_values: np.ndarray  # [T, 3, S, S] float32 (or preprocess.DeviceTiles on the CUDA path)
    block: tuple[int, int] | None  # (rows, cols) of the last scale for a Dynamic-S2 single image
    scale_tiles: tuple[int, ...]  # tiles per stage in ViT batch order, e.g. (1, 4, 12); Lite: (grid, thumbnail)
    mode: str


@dataclass(frozen=True)
class TokenCount:
    mode: str  # an image mode, or "video"
    tiles: int  # ViT passes
    visual_tokens: int  # projector outputs that reach the LLM (after temporal pooling for video)
    llm_positions: int  # visual tokens + "\n" end embeddings (+ NVILA-Lite's text "\n" per tile)
    block: tuple[int, int] | None
    grid: tuple[int, int] | None = None
    frames: int | None = None


def candidate_grids(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    """(cols, rows) with min_tiles <= cols x rows <= max_tiles, by tile count.

    Grids with equal counts keep the order CPython gives this set (the reference builds the same set the
    same way); it only matters on exact aspect-ratio ties.
    """
    grids = {
        (cols, rows)
        for n in range(min_tiles, max_tiles + 1)
        for cols in range(1, n + 1)
        for rows in range(1, n + 1)
        if min_tiles <= cols * rows <= max_tiles
    }
    return sorted(grids, key=lambda g: g[0] * g[1])


def select_grid(width: int, height: int, tile: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """The (cols, rows) grid whose aspect ratio is closest to width / height.

    On an exact tie a later (larger) grid wins only if the image has more than half its pixel area.
    """
    grids = candidate_grids(min_tiles, max_tiles)
    if not grids:
        raise CheckpointError(f"no tile grid has between {min_tiles} and {max_tiles} tiles; "
                              "raise max_tiles in config.json")
    aspect = width / height
    best, best_diff = grids[0], float("inf")
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


def plan_tiles(config: NvilaConfig, width: int, height: int, single: bool = True) -> TilePlan:
    """How an image of width x height becomes tiles; ``single`` = the only image of the conversation."""
    if width < 1 or height < 1:
        raise InputError(f"image size {width}x{height} is empty; both sides must be at least 1 pixel")
    if not single or config.image_mode == "resize":
        return TilePlan("resize", (TileStage(1, 1),), None, None)
    tile = config.tile_size
    if config.image_mode == "dynamic_s2":
        factors = [scale // tile for scale in config.s2_scales]
        cols, rows = select_grid(width, height, tile, factors[-1] ** 2, config.max_tiles)
        stages = tuple(TileStage(k, k) for k in factors[:-1]) + (TileStage(cols, rows),)
        return TilePlan("dynamic_s2", stages, (rows, cols), (rows, cols))
    cols, rows = select_grid(width, height, tile, config.min_tiles, config.max_tiles)
    stages = (TileStage(cols, rows),)
    if cols * rows > 1:
        stages += (TileStage(1, 1),)  # the whole-image thumbnail goes last
    return TilePlan("dynamic", stages, None, (rows, cols))


def pixel_limit(config: NvilaConfig) -> int:
    """Pixels an input image may have before it is worth shrinking first: 4x the largest tile grid's area
    (2x per side of what the tiling ever keeps), at least one megapixel. Beyond it the exact bicubic
    resize only spends time on detail that the tiles lose anyway."""
    largest = max(config.max_tiles, max(config.s2_scales or [0]) ** 2 // config.tile_size ** 2)
    return max(4 * largest * config.tile_size ** 2, 1 << 20)


def cut_tiles(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[3, rows*S, cols*S] -> [rows*cols, 3, S, S], tiles row-major."""
    channels, height, _ = pixels.shape
    s = height // rows
    grid = pixels.reshape(channels, rows, s, cols, s).transpose(1, 3, 0, 2, 4)
    return grid.reshape(rows * cols, channels, s, s)


def check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"expected an RGB uint8 [H, W, 3] image, got {rgb.dtype} {list(rgb.shape)}")


def tile_image(config: NvilaConfig, rgb: np.ndarray, single: bool = True) -> ImageTiles:
    """RGB uint8 [H, W, 3] -> normalised tiles in ViT batch order (the numpy reference; ``preprocess.tile_image``
    runs the native library when it is built)."""
    check_rgb(rgb)
    plan = plan_tiles(config, rgb.shape[1], rgb.shape[0], single)
    tile = config.tile_size
    parts = []
    for stage in plan.stages:
        resized = resize_bicubic(rgb, stage.cols * tile, stage.rows * tile)
        parts.append(cut_tiles(normalize(resized, config.image_mean, config.image_std), stage.rows, stage.cols))
    return ImageTiles(np.concatenate(parts), plan.block, plan.scale_tiles, plan.mode)


def count_visual_tokens(config: NvilaConfig, width: int, height: int, frames: int | None = None,
                        single: bool = True) -> TokenCount:
    """Visual tokens, ViT passes and LLM positions for one image (or a video of ``frames`` frames)."""
    per_tile = config.tokens_per_tile
    if frames is not None:
        pool = config.video_pool
        if frames < 1 or frames % pool:
            raise InputError(f"{frames} frames: this model pools {pool} consecutive frames, "
                             f"so use a positive multiple of {pool}")
        pooled = frames // pool
        return TokenCount("video", frames, pooled * per_tile, pooled * (per_tile + 1), None, None, frames)
    plan = plan_tiles(config, width, height, single)
    if plan.mode == "dynamic_s2":
        # The scales merge into the last scale's grid: one block of rows x cols tiles' tokens.
        rows, cols = plan.block
        visual = per_tile * rows * cols
        return TokenCount(plan.mode, plan.tiles, visual, visual + 1, plan.block, plan.grid)
    if plan.mode == "dynamic":
        # Each tile is its own "<image>\n" in the prompt: tokens, the "\n" embedding and a text "\n".
        return TokenCount(plan.mode, plan.tiles, per_tile * plan.tiles, (per_tile + 2) * plan.tiles, None, plan.grid)
    return TokenCount(plan.mode, 1, per_tile, per_tile + 1, None, None)
