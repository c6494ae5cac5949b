from __future__ import annotations

import argparse

from nvila_edge.options import POSITIVE
from nvila_edge.runtime.config import NvilaConfig


def image_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT (e.g. 1920x1080)")
    return int(parts[0]), int(parts[1])


class TokensCommand:
    """Count the visual tokens, ViT tiles and LLM positions one image (or a video) costs a model.

    Needs only the model's config files: MODEL is a preset (nvila-8b, nvila-lite-2b, tiny, tiny-lite),
    'builtin', a checkpoint folder, or the path of its top-level config.json. Prints JSON.

    examples:
      nvila-edge tokens --model nvila-8b --image-size 1920x1080
      nvila-edge tokens --model ./NVILA-Lite-2B --image-size 640x480
      nvila-edge tokens --model nvila-8b --frames 8
    """

    name = "tokens"
    help = "count visual tokens and tiles for an image size or a frame count (JSON out)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, metavar="MODEL",
                            help="preset name, 'builtin', checkpoint folder, or its config.json")
        parser.add_argument("--image-size", type=image_size, metavar="WxH",
                            help="image width x height in pixels, a single image (default: one tile, when --frames "
                                 "is not given)")
        parser.add_argument("--frames", type=POSITIVE, metavar="N",
                            help="count a video of N frames instead (default: an image)")

    def run(self, args: argparse.Namespace) -> int:
        import json

        from nvila_edge.errors import InputError
        from nvila_edge.runtime.tiling import count_visual_tokens

        if args.image_size is None and args.frames is None:
            raise InputError("give --image-size WxH for an image, or --frames N for a video")
        config = load_config(args.model)
        width, height = args.image_size or (config.tile_size, config.tile_size)
        count = count_visual_tokens(config, width, height, frames=args.frames)
        report = {
            "model": args.model,
            "mode": count.mode,
            "visual_tokens": count.visual_tokens,
            "tiles": count.tiles,
            "llm_positions": count.llm_positions,
            "block": list(count.block) if count.block else None,
            "grid": list(count.grid) if count.grid else None,
            "tokens_per_tile": config.tokens_per_tile,
            "model_max_length": config.model_max_length,
        }
        if args.frames is None:
            report["image_size"] = [width, height]
        else:
            report.update(frames=args.frames, video_pool=config.video_pool)
        print(json.dumps(report, indent=2))
        return 0


def load_config(spec: str) -> NvilaConfig:
    """A preset name, 'builtin', a checkpoint folder or its config.json -> NvilaConfig."""
    from pathlib import Path

    from nvila_edge.errors import InputError
    from nvila_edge.runtime.builtin import BUILTIN_NAME, resolve_model
    from nvila_edge.runtime.presets import PRESETS, preset_files

    if spec in PRESETS:
        return NvilaConfig.from_files(preset_files(spec), source=f"preset {spec}")
    if spec != BUILTIN_NAME and not Path(spec).expanduser().exists():
        raise InputError(f"'{spec}' is neither a preset ({', '.join(PRESETS)}) nor a checkpoint folder or config.json")
    path = resolve_model(spec)
    if path.is_file():
        if path.name != "config.json":
            raise InputError(f"{path}: expected a checkpoint folder or its top-level config.json")
        path = path.parent
    return NvilaConfig.from_dir(path)
