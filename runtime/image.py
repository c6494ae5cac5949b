"""Image decoding, Pillow-exact bicubic resizing and normalisation, in numpy and OpenCV only.

NVILA's processor resizes with PIL bicubic. ``resize_bicubic`` reproduces Pillow's 8-bit resampler: a
cubic kernel (a = -0.5) stretched by the downscale factor (antialiasing), per-output-pixel normalised
weights stored as 22-bit fixed point, a horizontal pass then a vertical pass, each rounded and clipped to
uint8. With the same integer arithmetic the output matches Pillow bit for bit. (Pillow 13 started running
the vertical pass first when the height shrinks much more than the width, which rounds slightly
differently; the reference NVILA stack predates that, so the classic order is kept.)
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from nvila_edge.errors import InputError

# Pillow's 8-bit resampler keeps weights as fixed point with 32 - 8 - 2 fractional bits.
PRECISION_BITS = 22
CUBIC_A = -0.5
CUBIC_SUPPORT = 2.0

# PIL.Image.open (the reference's loader) does not apply EXIF orientation, so neither do we.
DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def load_image(source: str | Path | bytes) -> np.ndarray:
    """An image file (or its encoded bytes) -> RGB uint8 [H, W, 3]."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = np.frombuffer(source, dtype=np.uint8), "image bytes"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: no such image file")
        data, name = np.fromfile(path, dtype=np.uint8), str(path)
    bgr = cv2.imdecode(data, DECODE_FLAGS) if data.size else None
    if bgr is None:
        raise InputError(f"{name}: not a readable image "
                         "(expected JPEG, PNG, BMP, WebP or another format OpenCV decodes)")
    return bgr_to_rgb(bgr)


def shrink_to_pixels(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
    """RGB [H, W, 3] with at most ``max_pixels`` pixels, same aspect ratio (area averaging: fast, no aliasing)."""
    height, width = rgb.shape[:2]
    if width * height <= max_pixels:
        return rgb
    scale = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) -> RGB uint8 [H, W, 3]."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5, evaluated in Pillow's operation order."""
    x = np.abs(x)
    inner = ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * CUBIC_A
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


@functools.lru_cache(maxsize=64)
def axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampling one axis in_size -> out_size: input indices [out, taps] and fixed-point weights [out, taps]."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)  # widening the kernel when shrinking is Pillow's antialiasing
    support = CUBIC_SUPPORT * filter_scale
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)
    count = np.minimum((center + support + 0.5).astype(np.int64), in_size) - first
    taps = np.arange(int(count.max()))
    index = first[:, None] + taps[None, :]
    weight = np.where(taps[None, :] < count[:, None],
                      _cubic((index - center[:, None] + 0.5) * (1.0 / filter_scale)), 0.0)
    total = np.zeros(out_size)
    for k in taps:  # sequential sum, as Pillow accumulates it
        total = total + weight[:, k]
    weight = weight / np.where(total == 0.0, 1.0, total)[:, None]  # Pillow leaves all-zero rows as they are
    fixed = weight * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(fixed < 0, fixed - 0.5, fixed + 0.5)).astype(np.int32)
    index = np.minimum(index, in_size - 1)
    index.setflags(write=False)  # cached: shared by every later call
    fixed.setflags(write=False)
    return index, fixed


def _resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """uint8 [H, W, C] resampled along axis 0 or 1 with 8-bit rounding and clipping."""
    index, weight = axis_weights(image.shape[axis], out_size)
    shape = list(image.shape)
    shape[axis] = out_size
    acc = np.full(shape, 1 << (PRECISION_BITS - 1), dtype=np.int32)  # the rounding half
    w_shape = (out_size, 1, 1) if axis == 0 else (1, out_size, 1)
    for k in range(index.shape[1]):
        taken = np.take(image, index[:, k], axis=axis).astype(np.int32)
        taken *= weight[:, k].reshape(w_shape)
        acc += taken
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_bicubic(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> [height, width, 3], Pillow's ``Image.resize((width, height), BICUBIC)``."""
    if width < 1 or height < 1:
        raise InputError(f"cannot resize an image to {width}x{height}; both sides must be at least 1 pixel")
    if rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise InputError(f"expected an RGB uint8 [H, W, 3] image, got {rgb.dtype} {list(rgb.shape)}")
    out = rgb
    if out.shape[1] != width:
        out = _resample_axis(out, width, axis=1)
    if out.shape[0] != height:
        out = _resample_axis(out, height, axis=0)
    return out if out is not rgb else rgb.copy()


@functools.lru_cache(maxsize=8)
def _normalize_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """[3, 256] float32: every uint8 value's normalised value per channel."""
    scaled = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)  # rescale as the processor does
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    return (scaled[None, :] - m) / s


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, H, W]: x / 255, then (x - mean) / std per channel."""
    table = _normalize_table(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    return np.stack([table[c][rgb[:, :, c]] for c in range(3)])
