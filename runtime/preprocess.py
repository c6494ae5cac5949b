"""Frame -> tiles on the fastest path this install has: the native library (C++, multi-threaded, built by
``pip install`` when a compiler is there) or else the numpy reference in ``tiling.py``. Both execute the same
``TilePlan`` and give the same bits (the tests compare them); ``NVILA_EDGE_PREPROCESS=numpy`` forces the
reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.tiling import ImageTiles, check_rgb, plan_tiles
from nvila_edge.runtime.tiling import tile_image as tile_image_numpy

try:
    from nvila_edge.runtime import _preprocess as native
except ImportError:  # installed without a C++ compiler
    native = None

FORCE_ENV = "NVILA_EDGE_PREPROCESS"
NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))  # what the native library writes directly


def active_path() -> str:
    """``native`` or ``numpy``: which code ``tile_image`` runs."""
    return "numpy" if native is None or os.environ.get(FORCE_ENV) == "numpy" else "native"


def describe_path() -> str:
    """One line for doctor: the active preprocessing path and, for numpy, why."""
    if native is None:
        return "numpy (the native library is not built: no C++ compiler at install time; install g++ and reinstall)"
    if os.environ.get(FORCE_ENV) == "numpy":
        return f"numpy (forced by {FORCE_ENV}=numpy)"
    cuda = ("with CUDA kernels" if native.cuda_devices() else "CUDA kernels built, no GPU here") if native.cuda \
        else "CPU only"
    return f"native C++ ({os.cpu_count()} threads, {cuda})"


def native_stages(config: NvilaConfig, width: int, height: int, single: bool):
    plan = plan_tiles(config, width, height, single)
    return plan, [(stage.cols, stage.rows) for stage in plan.stages]


def interleaved(rgb: np.ndarray) -> np.ndarray:
    """The native library reads rows of packed RGB pixels; other layouts (e.g. a reversed BGR view) are copied."""
    return rgb if rgb.strides[1:] == (3, 1) else np.ascontiguousarray(rgb)


def tile_image(config: NvilaConfig, rgb: np.ndarray, single: bool = True, dtype=np.float32) -> ImageTiles:
    """RGB uint8 [H, W, 3] -> normalised tiles [T, 3, S, S] of ``dtype`` in ViT batch order."""
    dtype = np.dtype(dtype)
    if active_path() == "numpy" or dtype not in NATIVE_DTYPES:
        tiles = tile_image_numpy(config, rgb, single)
        tiles.pixel_values = tiles.pixel_values.astype(dtype, copy=False)
        return tiles
    check_rgb(rgb)
    plan, stages = native_stages(config, rgb.shape[1], rgb.shape[0], single)
    tile = config.tile_size
    out = np.empty((plan.tiles, 3, tile, tile), dtype)
    native.tile_into(interleaved(rgb), stages, tile, config.image_mean, config.image_std, out)
    return ImageTiles(out, plan.block, plan.scale_tiles, plan.mode)


@dataclass(frozen=True)
class DeviceTiles:
    """Tiles the native CUDA kernels wrote into GPU memory; the TensorRT backend binds them as they are."""

    address: int
    shape: tuple[int, ...]
    dtype: np.dtype


def cuda_kernels() -> bool:
    """The CUDA kernels are built and a GPU is there to run them."""
    return active_path() == "native" and bool(native.cuda) and native.cuda_devices() > 0


def tile_image_device(config: NvilaConfig, rgb: np.ndarray, single: bool, dtype, buffer) -> ImageTiles:
    """Like ``tile_image``, computed on the GPU into ``buffer`` (a grow-only ``cuda_device.DeviceBuffer``)."""
    dtype = np.dtype(dtype)
    if dtype not in NATIVE_DTYPES:
        raise UnsupportedError(f"the CUDA preprocessing writes float32 or float16 tiles, not {dtype}")
    check_rgb(rgb)
    plan, stages = native_stages(config, rgb.shape[1], rgb.shape[0], single)
    tile = config.tile_size
    shape = (plan.tiles, 3, tile, tile)
    address = buffer.reserve(int(np.prod(shape)) * dtype.itemsize)
    native.tile_into_device(interleaved(rgb), stages, tile, config.image_mean, config.image_std, address,
                            dtype == np.float16)
    return ImageTiles(DeviceTiles(address, shape, dtype), plan.block, plan.scale_tiles, plan.mode)
