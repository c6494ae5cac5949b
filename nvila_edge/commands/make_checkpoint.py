from __future__ import annotations

import argparse
import time

from nvila_edge.options import NON_NEGATIVE


class MakeCheckpointCommand:
    """Write a random-weight checkpoint of a preset in the published NVILA folder layout.

    The folder has config.json, llm/ (Qwen2, sharded safetensors + index when large), vision_tower/
    (SigLIP + preprocessor_config.json) and mm_projector/, plus a small BPE tokenizer. Weights are seeded,
    so the same command gives the same files. Real-size presets are written one shard at a time.

    examples:
      nvila-edge make-checkpoint ckpt/tiny --random-weights
      nvila-edge make-checkpoint ckpt/lite2b --preset nvila-lite-2b --random-weights --seed 1
      nvila-edge make-checkpoint ckpt/8b-fp16 --preset nvila-8b --random-weights --dtype float16
    """

    name = "make-checkpoint"
    help = "write a random-weight checkpoint (presets: nvila-8b, nvila-lite-2b, tiny, tiny-lite)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("out", help="output folder (must not exist)")
        parser.add_argument("--preset", default="tiny",
                            help="model shape: nvila-8b, nvila-lite-2b, tiny or tiny-lite (default: tiny)")
        parser.add_argument("--random-weights", action="store_true", required=True,
                            help="fill weights with seeded random values (the only mode; says what you get)")
        parser.add_argument("--seed", type=NON_NEGATIVE, default=0, help="weight seed (default: 0)")
        parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                            help="stored weight type (default: bfloat16, as published NVILA)")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        import torch

        from nvila_edge.errors import InputError
        from nvila_edge.export.random_checkpoint import make_random_checkpoint

        if Path(args.out).exists():
            raise InputError(f"{args.out} already exists; choose a new folder")
        start = time.perf_counter()
        out = make_random_checkpoint(Path(args.out), args.preset, args.seed, getattr(torch, args.dtype))
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"wrote {out} ({args.preset}, {size / 2**20:.1f} MiB, {time.perf_counter() - start:.1f} s)")
        return 0
