"""Frame -> tiles: the numpy reference, the native library and Pillow's resizes, side by side in one run.

Per row one seeded random frame is tiled as a single image (``tile_image(..., single=True)``):
  numpy_ms   runtime/tiling.py, the reference
  native_ms  the native library on every core (``--threads``), FP32 into a preallocated buffer
  pillow_ms  Pillow's own bicubic resizes of every stage (Pillow runs one thread) plus the reference's
             normalisation and cut, i.e. what the tiling costs with Pillow doing the resampling
  bit_exact  the native FP32 and FP16 outputs equal the reference's bits
Times are medians of ``--repeat`` runs after one warm-up run.

    nice -n 10 python bench/preprocess.py
    python bench/preprocess.py --json --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

from nvila_edge.runtime import preprocess
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.image import normalize
from nvila_edge.runtime.presets import preset_files
from nvila_edge.runtime.tiling import cut_tiles, plan_tiles, tile_image

ROWS = [("nvila-8b", 640, 480), ("nvila-8b", 1920, 1080), ("nvila-8b", 4032, 3024), ("nvila-lite-2b", 1920, 1080)]


def frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def median_ms(run, repeat: int) -> float:
    run()  # warm-up: weight caches, page faults of the output buffer
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def pillow_tiles(config: NvilaConfig, image: Image.Image) -> np.ndarray:
    plan, tile = plan_tiles(config, image.width, image.height), config.tile_size
    parts = []
    for stage in plan.stages:
        resized = np.asarray(image.resize((stage.cols * tile, stage.rows * tile), Image.Resampling.BICUBIC))
        parts.append(cut_tiles(normalize(resized, config.image_mean, config.image_std), stage.rows, stage.cols))
    return np.concatenate(parts)


def native_runner(config: NvilaConfig, rgb: np.ndarray, dtype, threads: int):
    plan, stages = preprocess.native_stages(config, rgb.shape[1], rgb.shape[0], True)
    out = np.empty((plan.tiles, 3, config.tile_size, config.tile_size), dtype)
    return out, lambda: preprocess.native.tile_into(rgb, stages, config.tile_size, config.image_mean,
                                                    config.image_std, out, threads)


def measure(preset: str, width: int, height: int, repeat: int, threads: int) -> dict:
    config = NvilaConfig.from_files(preset_files(preset))
    rgb = frame(width, height)
    reference = tile_image(config, rgb).pixel_values
    out32, run32 = native_runner(config, rgb, np.float32, threads)
    out16, run16 = native_runner(config, rgb, np.float16, threads)
    run32(), run16()
    exact = (np.array_equal(out32.view(np.uint32), reference.view(np.uint32))
             and np.array_equal(out16.view(np.uint16), reference.astype(np.float16).view(np.uint16)))
    pil = Image.fromarray(rgb)
    numpy_ms = median_ms(lambda: tile_image(config, rgb), max(1, repeat // 3))
    native_ms = median_ms(run32, repeat)
    pillow_ms = median_ms(lambda: pillow_tiles(config, pil), max(1, repeat // 3))
    return {"preset": preset, "size": f"{width}x{height}", "tiles": int(reference.shape[0]),
            "numpy_ms": round(numpy_ms, 2), "native_ms": round(native_ms, 2),
            "native_fp16_ms": round(median_ms(run16, repeat), 2),
            "pillow_ms": round(pillow_ms, 2), "native_vs_numpy": round(numpy_ms / native_ms, 1),
            "native_vs_pillow": round(pillow_ms / native_ms, 1), "threads": threads, "bit_exact": bool(exact)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9, help="timed runs of the native library (numpy and "
                        "Pillow run a third as many)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="native library threads (default: all)")
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    args = parser.parse_args()
    if preprocess.native is None:
        print("the native library is not built (no C++ compiler at install time); nothing to compare",
              file=sys.stderr)
        return 1
    rows = [measure(preset, w, h, args.repeat, args.threads) for preset, w, h in ROWS]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"frame -> tiles, single image, median of {args.repeat} (native, {args.threads} threads) and "
          f"{max(1, args.repeat // 3)} (numpy, Pillow)")
    print(f"{'preset':14} {'size':>10} {'tiles':>5} {'numpy ms':>9} {'native ms':>9} {'fp16 ms':>8} {'Pillow ms':>9} "
          f"{'x numpy':>8} {'x Pillow':>8}  bit-exact")
    for r in rows:
        print(f"{r['preset']:14} {r['size']:>10} {r['tiles']:>5} {r['numpy_ms']:>9.1f} {r['native_ms']:>9.1f} "
              f"{r['native_fp16_ms']:>8.1f} {r['pillow_ms']:>9.1f} {r['native_vs_numpy']:>8.1f} "
              f"{r['native_vs_pillow']:>8.1f}  {'yes' if r['bit_exact'] else 'NO'}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
