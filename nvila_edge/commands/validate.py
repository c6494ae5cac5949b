from __future__ import annotations

import argparse

from nvila_edge.options import POSITIVE


class ValidateCommand:
    """Check an engines folder on the machine it will run on: every engine runs on fixed inputs (a rendered
    scene, its tiles, a chat prompt; the LLM's prefill and one decode step) and is compared with ONNX Runtime
    on the CPU running the same ONNX graph from the export folder the engines were built from. Prints a
    pass/fail table with the error metrics; TensorRT engines also get the layer precision check (no silent
    FP32 fallback). On a device with the native CUDA kernels built (jetson/install.sh), the preprocessing
    kernels' tiles are compared with the CPU library's in FP32 and FP16 and the largest difference is
    printed (expected: 0, the two share their per-pixel arithmetic). Exit status 1 when any check fails.

    Run it once after the first build on a Jetson. The export folder is found through the engines manifest;
    pass --export when it was moved or copied.

    examples:
      nvila-edge validate engines/lite2b
      nvila-edge validate engines/lite2b --export /data/exports/lite2b-int4
    """

    name = "validate"
    help = "compare every engine with ONNX Runtime on the export's ONNX graphs"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("engines_dir", help="engines folder (from `nvila-edge build`)")
        parser.add_argument("--export", help="the export folder the engines were built from (default: as recorded)")
        parser.add_argument("--threads", type=POSITIVE, help="ONNX Runtime threads (default: all cores)")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from nvila_edge.engines.validate import compare_gpu_tiles, fixed_request, format_table, validate_engines
        from nvila_edge.runtime.config import NvilaConfig
        from nvila_edge.runtime.manifest import read_manifest

        engines_dir = Path(args.engines_dir)
        results, checks = validate_engines(engines_dir, Path(args.export) if args.export else None, args.threads)
        print(format_table(results))
        for check in checks:
            print(f"layer precision {check.graph}: {check.detail}")
        config = NvilaConfig.from_files(read_manifest(engines_dir).model_config)
        tiles = compare_gpu_tiles(config, fixed_request().images[0])
        for tile in tiles:
            print(tile.line())
        failed = [r.check for r in results if not r.passed] + [f"{c.graph} precision" for c in checks if not c.passed]
        failed += [f"preprocessing {t.dtype}" for t in tiles if not t.passed]
        ran = len(results) + len(checks) + sum(t.max_abs is not None for t in tiles)
        print(f"FAIL: {', '.join(failed)}" if failed else f"all {ran} checks passed")
        return 1 if failed else 0
