"""NVILA tiling and visual-token accounting: published counts and tile pixels against a Pillow re-run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nvila_edge.errors import CheckpointError, InputError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.presets import preset_files
from nvila_edge.runtime.tiling import candidate_grids, count_visual_tokens, plan_tiles, select_grid, tile_image


def preset(name: str, **top) -> NvilaConfig:
    files = preset_files(name)
    files["config.json"].update(top)
    return NvilaConfig.from_files(files)


NVILA_8B = preset("nvila-8b")
LITE_2B = preset("nvila-lite-2b")

# nvila.md section 10: (W, H) -> (cols, rows), ViT tiles, visual tokens
NVILA_TABLE = [
    ((448, 448), (3, 3), 14, 2304),
    ((1024, 1024), (3, 3), 14, 2304),
    ((1344, 1344), (3, 3), 14, 2304),
    ((1920, 1080), (4, 3), 17, 3072),
    ((1280, 960), (4, 3), 17, 3072),
    ((640, 480), (4, 3), 17, 3072),
    ((1080, 1920), (2, 5), 15, 2560),
    ((2000, 1000), (5, 2), 15, 2560),
    ((1000, 3000), (2, 6), 17, 3072),
]
LITE_TABLE = [
    ((448, 448), (1, 1), 1, 121),
    ((300, 300), (1, 1), 1, 121),
    ((700, 700), (2, 2), 5, 605),
    ((1024, 1024), (3, 3), 10, 1210),
    ((1920, 1080), (4, 2), 9, 1089),
    ((1080, 1920), (2, 4), 9, 1089),
    ((2000, 1000), (4, 2), 9, 1089),
    ((640, 480), (4, 3), 13, 1573),
]


@pytest.mark.parametrize("size,grid,tiles,tokens", NVILA_TABLE)
def test_nvila_8b_published_counts(size, grid, tiles, tokens):
    count = count_visual_tokens(NVILA_8B, *size)
    cols, rows = grid
    assert (count.mode, count.tiles, count.visual_tokens) == ("dynamic_s2", tiles, tokens)
    assert count.block == (rows, cols)  # block sizes are (rows, cols)
    assert count.llm_positions == tokens + 1  # one "\n" end embedding


@pytest.mark.parametrize("size,grid,tiles,tokens", LITE_TABLE)
def test_nvila_lite_published_counts(size, grid, tiles, tokens):
    count = count_visual_tokens(LITE_2B, *size)
    cols, rows = grid
    assert (count.mode, count.tiles, count.visual_tokens, count.grid) == ("dynamic", tiles, tokens, (rows, cols))
    assert count.block is None
    assert count.llm_positions == 123 * tiles  # 121 + "\n" embedding + the prompt's text "\n", per tile


def test_multi_image_and_video_counts():
    assert count_visual_tokens(NVILA_8B, 1920, 1080, single=False).visual_tokens == 256
    assert count_visual_tokens(NVILA_8B, 1920, 1080, single=False).llm_positions == 257
    assert count_visual_tokens(LITE_2B, 640, 480, single=False).llm_positions == 122
    video = count_visual_tokens(NVILA_8B, 1920, 1080, frames=8)
    assert (video.mode, video.tiles, video.visual_tokens, video.llm_positions) == ("video", 8, 2048, 2056)
    assert count_visual_tokens(LITE_2B, 0, 0, frames=8).llm_positions == 8 * 122


def test_video_temporal_pooling_counts():
    tsp = '{"_target_": "llava.model.encoders.TSPVideoEncoder", "pool_sizes": [[8, 1, 1]]}'
    video_model = preset("nvila-8b", video_encoder=tsp, num_video_frames=256)
    assert video_model.video_pool == 8
    count = count_visual_tokens(video_model, 448, 448, frames=256)
    assert (count.tiles, count.visual_tokens, count.llm_positions) == (256, 32 * 256, 32 * 257)
    with pytest.raises(InputError, match="multiple of 8"):
        count_visual_tokens(video_model, 448, 448, frames=12)


def test_candidate_grids_cover_the_range_in_tile_order():
    grids = candidate_grids(9, 12)
    assert len(grids) == len(set(grids)) == 15
    assert all(9 <= c * r <= 12 for c, r in grids)
    products = [c * r for c, r in grids]
    assert products == sorted(products)


def test_tie_goes_to_the_larger_grid_only_above_half_its_area():
    # 1:1 images tie between (1,1) and (2,2); (2,2) wins once W*H > 0.5 * 448^2 * 4 = 401408.
    assert select_grid(633, 633, 448, 1, 12) == (1, 1)  # 400689 pixels
    assert select_grid(634, 634, 448, 1, 12) == (2, 2)  # 401956 pixels
    # (3,3) needs W*H > 0.5 * 448^2 * 9 = 903168.
    assert select_grid(950, 950, 448, 1, 12) == (2, 2)  # 902500 pixels
    assert select_grid(951, 951, 448, 1, 12) == (3, 3)  # 904401 pixels


def test_max_tiles_below_the_s2_minimum_is_a_config_error():
    with pytest.raises(CheckpointError, match="max_tiles"):
        count_visual_tokens(preset("nvila-8b", max_tiles=8), 640, 480)


def reference_tiles(rgb: np.ndarray, stages, tile: int) -> np.ndarray:
    """The reference's procedure in Pillow: resize per stage, crop row-major boxes, (x/255 - .5)/.5."""
    image = Image.fromarray(rgb)
    out = []
    for cols, rows in stages:
        resized = image.resize((cols * tile, rows * tile), Image.BICUBIC)
        for i in range(cols * rows):
            left, top = (i % cols) * tile, (i // cols) * tile
            crop = np.asarray(resized.crop((left, top, left + tile, top + tile)), dtype=np.float64)
            out.append(((crop / 255 - 0.5) / 0.5).transpose(2, 0, 1))
    return np.stack(out)


def test_dynamic_s2_tiles_match_pillow_reference():
    config = preset("tiny")  # scales 64, 128, 192: same algorithm at 64 px tiles
    rgb = np.random.default_rng(3).integers(0, 256, (90, 300, 3), dtype=np.uint8)
    tiles = tile_image(config, rgb)
    cols, rows = select_grid(300, 90, 64, 9, 12)
    assert (cols, rows) == (6, 2)
    assert tiles.mode == "dynamic_s2" and tiles.block == (2, 6) and tiles.scale_tiles == (1, 4, 12)
    assert tiles.pixel_values.dtype == np.float32 and tiles.pixel_values.shape == (17, 3, 64, 64)
    expected = reference_tiles(rgb, [(1, 1), (2, 2), (6, 2)], 64)
    np.testing.assert_allclose(tiles.pixel_values, expected, atol=1e-6)


def test_nvila_8b_1080p_tiles_match_pillow_reference():
    rgb = np.random.default_rng(4).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    tiles = tile_image(NVILA_8B, rgb)
    assert tiles.pixel_values.shape == (17, 3, 448, 448) and tiles.block == (3, 4)
    expected = reference_tiles(rgb, [(1, 1), (2, 2), (4, 3)], 448)
    np.testing.assert_allclose(tiles.pixel_values, expected, atol=1e-6)


def test_lite_tiles_put_the_thumbnail_last():
    config = preset("tiny-lite")
    rgb = np.random.default_rng(5).integers(0, 256, (100, 130, 3), dtype=np.uint8)
    tiles = tile_image(config, rgb)
    cols, rows = select_grid(130, 100, 64, 1, 12)
    assert tiles.mode == "dynamic" and tiles.block is None and tiles.scale_tiles == (cols * rows, 1)
    expected = reference_tiles(rgb, [(cols, rows), (1, 1)], 64)
    np.testing.assert_allclose(tiles.pixel_values, expected, atol=1e-6)
    assert count_visual_tokens(config, 130, 100).tiles == len(tiles.pixel_values)


def test_single_tile_paths_are_one_squash_resize():
    rgb = np.random.default_rng(6).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    expected = reference_tiles(rgb, [(1, 1)], 64)
    for config, single in [(preset("tiny"), False), (preset("tiny-lite"), False), (preset("tiny-lite"), True),
                           (preset("tiny", image_aspect_ratio="resize"), True)]:
        tiles = tile_image(config, rgb, single=single)
        assert tiles.scale_tiles == (1,) and tiles.block is None
        np.testing.assert_allclose(tiles.pixel_values, expected, atol=1e-6)
    assert tile_image(preset("tiny"), rgb, single=False).mode == "resize"
    assert tile_image(preset("tiny-lite"), rgb).mode == "dynamic"  # a small square picks the 1x1 grid: no thumbnail


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
@pytest.mark.parametrize("size", [(64, 64), (300, 90), (90, 300), (1, 500), (257, 255)])
def test_tile_image_and_count_agree(name, size):
    config = preset(name)
    rgb = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    tiles = tile_image(config, rgb)
    count = count_visual_tokens(config, *size)
    assert len(tiles.pixel_values) == count.tiles == sum(tiles.scale_tiles)
    assert tiles.block == count.block == plan_tiles(config, *size).block


def test_tile_image_rejects_non_rgb():
    with pytest.raises(InputError):
        tile_image(NVILA_8B, np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError):
        count_visual_tokens(NVILA_8B, 0, 10)
