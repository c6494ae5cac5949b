from __future__ import annotations

import argparse

from nvila_edge.engines.cpu_options import ACCURACY_LEVELS, DEFAULT_ACCURACY_LEVEL, DEFAULT_LM_HEAD, LM_HEAD_FORMS
from nvila_edge.engines.targets import TARGETS
from nvila_edge.options import POSITIVE
from nvila_edge.runtime.backends import BACKENDS


class BuildCommand:
    """Build engines for one target from an export folder: TensorRT on a Jetson (or an x86 host with an NVIDIA
    GPU), TensorRT-RTX for RTX PCs (builds without a GPU), or ONNX Runtime optimized models for the CPU.

    Engines are strongly typed: their precision is the export's recipe (its casts and Q/DQ nodes). Optimization
    profiles come from the export manifest: the vision tile batch, and a prefill and a decode profile for the
    LLM up to the max context, which is the most the target's memory budget holds unless --max-context says
    otherwise. Built engines are kept in the engine cache ($NVILA_EDGE_CACHE, else ~/.cache/nvila-edge): an
    identical build reuses them, and an engines folder that is already up to date is left alone. Run
    `nvila-edge validate OUT` afterwards on the device.

    examples:
      nvila-edge build out/lite2b-int4 -o engines/lite2b --target auto
      nvila-edge build out/builtin-fp16 -o engines/builtin-rtx --target rtx
      nvila-edge build out/builtin-fp32 -o engines/builtin-cpu --target cpu --max-context 1024
      nvila-edge build out/builtin-int4 -o engines/builtin-cpu-int4 --target cpu --lm-head int8
    """

    name = "build"
    help = "build engines for a target from an export folder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("export_dir", help="export folder (from `nvila-edge export`)")
        parser.add_argument("-o", "--out", required=True, help="engines folder to create or bring up to date")
        parser.add_argument("--target", required=True,
                            help=f"'auto' (detect this device) or one of: {', '.join(TARGETS)}")
        parser.add_argument("--backend", choices=BACKENDS,
                            help="default: the target's (tensorrt on Jetson and x86-gpu, tensorrt-rtx on rtx, "
                                 "onnxruntime on cpu)")
        parser.add_argument("--max-context", type=POSITIVE,
                            help="positions the LLM engine holds (default: the most that fits the target's memory "
                                 "budget)")
        parser.add_argument("--optimization-level", type=int, default=3, choices=range(6), metavar="0-5",
                            help="TensorRT builder optimization level (default 3)")
        parser.add_argument("--accuracy-level", type=int, choices=ACCURACY_LEVELS,
                            help="cpu target: MatMulNBits accuracy level of INT4 weights (0 = FP32 activations, "
                                 f"4 = INT8 activations; default {DEFAULT_ACCURACY_LEVEL})")
        parser.add_argument("--lm-head", choices=LM_HEAD_FORMS,
                            help="cpu target: lm_head weights as exported (float) or quantized to int8 / int4 "
                                 "(default per recipe: " + ", ".join(f"{r} {f}" for r, f in DEFAULT_LM_HEAD.items())
                                 + ")")
        parser.add_argument("--cache-dir", help="engine cache (default: $NVILA_EDGE_CACHE, else ~/.cache/nvila-edge)")
        parser.add_argument("--no-progress", action="store_true",
                            help="no progress bars (they are off anyway when stderr is not a terminal)")
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars and no report, only errors")

    def run(self, args: argparse.Namespace) -> int:
        import logging
        from pathlib import Path

        from nvila_edge.engines.build import build_engines, plan_build
        from nvila_edge.engines.cache import EngineCache, engine_cache_dir
        from nvila_edge.engines.memory import gib
        from nvila_edge.engines.targets import get_target

        def say(line: str) -> None:
            if not args.quiet:
                print(line)

        if args.quiet:
            logging.getLogger().setLevel(logging.WARNING)
        if args.target == "auto":
            from nvila_edge.jetson.device import detect_target

            target, reason = detect_target()
            say(f"target auto: {reason}")
        else:
            target = get_target(args.target)
        plan = plan_build(Path(args.export_dir), target, args.backend, args.max_context, args.optimization_level,
                          args.accuracy_level, args.lm_head)
        say(f"{plan.export.source.get('name')} ({plan.export.precision}) -> {target.name}: {plan.backend} "
            f"{plan.backend_version}, max context {plan.context}, needs {plan.memory.describe()} of "
            f"{gib(target.memory_budget_bytes)}")
        cache = EngineCache(Path(args.cache_dir) if args.cache_dir else engine_cache_dir())
        outcome = build_engines(plan, Path(args.out), cache, progress=not (args.no_progress or args.quiet))
        if outcome.up_to_date:
            say(f"{args.out} is up to date (same export, target, backend and options); nothing to do")
            return 0
        for name, spec in outcome.manifest.graphs.items():
            how = f"built in {outcome.built[name]:.1f} s" if name in outcome.built else "from the cache"
            size = sum((Path(args.out) / f).stat().st_size for f in [spec.file, *spec.external_data])
            check = spec.build["precision_check"]
            say(f"  {name:<10} {spec.file:<22} {size / 2**20:8.1f} MiB  {how}; precision check {check}")
        say(f"engines in {args.out}; on the device run: nvila-edge validate {args.out}")
        return 0
