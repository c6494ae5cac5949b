"""The native preprocessing library against the numpy reference (runtime/tiling.py): max abs difference 0.

200 seeded random images from 1x1 to 4000x3000, extreme aspect ratios included, for nvila-8b, nvila-lite-2b
and the built-in model, as a single image, in a multi-image request and as video frames, FP32 and FP16.
The default suite runs every 25th image of the 200 plus the extremes (the numpy side of a 4000x3000 image
takes seconds); ``-m slow`` runs all 200.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.runtime import preprocess
from nvila_edge.runtime.builtin import builtin_dir
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.image import _normalize_table
from nvila_edge.runtime.presets import preset_files
from nvila_edge.runtime.request import Request, tile_request
from nvila_edge.runtime.tiling import tile_image as reference_tile_image

CONFIGS = {
    "nvila-8b": NvilaConfig.from_files(preset_files("nvila-8b")),
    "nvila-lite-2b": NvilaConfig.from_files(preset_files("nvila-lite-2b")),
    "builtin": NvilaConfig.from_dir(builtin_dir()),
}
EXTREMES = [(1, 1), (4000, 3000), (4000, 1), (1, 3000), (2, 4000), (449, 447)]


def random_sizes(count: int = 200, seed: int = 25) -> list[tuple[int, int]]:
    """(width, height) from 1x1 to 4000x3000 (or 3000x4000): log-uniform sides, a quarter of them extreme."""
    rng = np.random.default_rng(seed)
    sizes = []
    for i in range(count):
        if i % 4 == 3:  # extreme aspect ratio: one side up to 4000, the other 1..8
            long, short = int(rng.integers(100, 4001)), int(rng.integers(1, 9))
            sizes.append((long, short) if rng.random() < 0.5 else (short, long))
            continue
        w, h = np.exp(rng.uniform(0, np.log([4000, 3000]))).astype(int)
        sizes.append((int(w), int(h)) if rng.random() < 0.5 else (int(h), int(w)))
    return sizes


def random_image(width: int, height: int, seed: int) -> np.ndarray:
    """Noise with smooth structure on top: both kinds of rounding case for the resampler."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ramp = (np.arange(width)[None, :, None] * 7 + np.arange(height)[:, None, None] * 3) % 256
    return np.where(rng.random((height, width, 1)) < 0.5, noise, ramp).astype(np.uint8)


def require_native():
    if preprocess.native is None:
        if shutil.which("c++") or shutil.which("g++"):
            pytest.fail("a C++ compiler is here but the native library is not built; reinstall: pip install -e .")
        pytest.skip("no C++ compiler on this machine, so the native library is not built")


def assert_bit_exact(config: NvilaConfig, rgb: np.ndarray, single: bool) -> None:
    want = reference_tile_image(config, rgb, single)
    for dtype in (np.float32, np.float16):
        got = preprocess.tile_image(config, rgb, single, dtype)
        assert got.pixel_values.dtype == dtype
        assert (got.block, got.scale_tiles, got.mode) == (want.block, want.scale_tiles, want.mode)
        expected = want.pixel_values.astype(dtype)
        # bit patterns, so -0.0 / 0.0 and NaN could not hide a difference
        assert np.array_equal(got.pixel_values.view(np.uint8), expected.view(np.uint8)), (rgb.shape, dtype)


SIZES = random_sizes()
DEFAULT = [(i, SIZES[i]) for i in range(0, 200, 25)]
EVERY = [(i, size) for i, size in enumerate(SIZES)]


@pytest.mark.parametrize("preset", CONFIGS)
@pytest.mark.parametrize("index,size", DEFAULT, ids=[f"{w}x{h}" for _, (w, h) in DEFAULT])
def test_single_image_bit_exact(preset, index, size):
    require_native()
    assert_bit_exact(CONFIGS[preset], random_image(*size, seed=index), single=True)


@pytest.mark.parametrize("preset", CONFIGS)
@pytest.mark.parametrize("size", EXTREMES, ids=[f"{w}x{h}" for w, h in EXTREMES])
def test_extreme_sizes_bit_exact(preset, size):
    require_native()
    assert_bit_exact(CONFIGS[preset], random_image(*size, seed=size[0] * 7 + size[1]), single=True)


@pytest.mark.slow
@pytest.mark.parametrize("preset", CONFIGS)
@pytest.mark.parametrize("index,size", EVERY, ids=[f"{w}x{h}" for _, (w, h) in EVERY])
def test_all_200_images_bit_exact(preset, index, size):
    require_native()
    image = random_image(*size, seed=index)
    assert_bit_exact(CONFIGS[preset], image, single=True)
    assert_bit_exact(CONFIGS[preset], image, single=False)


@pytest.mark.parametrize("preset", CONFIGS)
@pytest.mark.parametrize("kind", ["images", "video"])
def test_multi_image_and_video_requests_bit_exact(preset, kind):
    """Through the runtime's own entry point: one squash-resized tile per image or frame."""
    require_native()
    config = CONFIGS[preset]
    frames = [random_image(*size, seed=i) for i, size in enumerate([(640, 480), (37, 1200), (1, 1), (1920, 1080)])]
    request = Request("q", images=frames) if kind == "images" else Request("q", video=frames)
    for dtype in (np.float32, np.float16):
        media = tile_request(config, request, dtype)
        assert media.kind == kind and len(media.tiles) == len(frames)
        for tiles, frame in zip(media.tiles, frames):
            want = reference_tile_image(config, frame, single=False).pixel_values.astype(dtype)
            assert np.array_equal(tiles.pixel_values.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("mean,std", [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                                      ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
                                      ((0.0, -0.3, 1.0), (1e-6, 3e5, 7e-3))])  # FP16 overflow, subnormals, sign
def test_normalisation_and_fp16_rounding_match_numpy(mean, std):
    """A tile-sized image (no resize) holding every byte value: the output is the normalisation table itself."""
    require_native()
    rgb = np.ascontiguousarray(np.resize(np.arange(256, dtype=np.uint8), (16, 16, 3)))
    table = _normalize_table(mean, std)
    want = np.stack([table[c][rgb[:, :, c]] for c in range(3)])[None]
    for dtype in (np.float32, np.float16):
        out = np.empty((1, 3, 16, 16), dtype)
        preprocess.native.tile_into(rgb, [(1, 1)], 16, mean, std, out)
        with np.errstate(over="ignore"):
            expected = want.astype(dtype)
        assert np.array_equal(out.view(np.uint8), expected.view(np.uint8)), dtype


def test_thread_count_and_pixel_layout_do_not_change_the_result():
    require_native()
    config = CONFIGS["nvila-8b"]
    bgr = random_image(1000, 700, seed=3)
    rgb_view = bgr[:, :, ::-1]  # a reversed view, as from an OpenCV frame
    plan_stages = preprocess.native_stages(config, 1000, 700, True)[1]
    outs = []
    for threads, image in ((1, rgb_view), (2, rgb_view), (2, np.ascontiguousarray(rgb_view))):
        out = np.empty((17, 3, 448, 448), np.float32)
        preprocess.native.tile_into(preprocess.interleaved(image), plan_stages, 448, config.image_mean,
                                    config.image_std, out, threads)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[1], outs[2])
    assert np.array_equal(outs[0], reference_tile_image(config, np.ascontiguousarray(rgb_view)).pixel_values)


def test_bad_input_and_bad_buffers_are_refused():
    require_native()
    config = CONFIGS["builtin"]
    with pytest.raises(InputError, match="RGB uint8"):
        preprocess.tile_image(config, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="empty"):
        preprocess.tile_image(config, np.zeros((0, 8, 3), np.uint8))
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\[1, 3, 64, 64\]"):
        preprocess.native.tile_into(rgb, [(1, 1)], 64, (0.5,) * 3, (0.5,) * 3, np.empty((2, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="float32 or float16"):
        preprocess.native.tile_into(rgb, [(1, 1)], 64, (0.5,) * 3, (0.5,) * 3, np.empty((1, 3, 64, 64), np.int32))


def test_forcing_numpy_and_the_doctor_line(monkeypatch):
    require_native()
    assert preprocess.active_path() == "native" and preprocess.describe_path().startswith("native C++")
    monkeypatch.setenv(preprocess.FORCE_ENV, "numpy")
    assert preprocess.active_path() == "numpy" and "forced" in preprocess.describe_path()
    image = random_image(300, 200, seed=1)
    got = preprocess.tile_image(CONFIGS["builtin"], image)
    assert np.array_equal(got.pixel_values, reference_tile_image(CONFIGS["builtin"], image).pixel_values)
