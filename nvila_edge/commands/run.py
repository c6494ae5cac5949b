from __future__ import annotations

import argparse
import sys

from nvila_edge.options import POSITIVE, add_sampling_arguments


class RunCommand:
    """Ask an export or engines folder about images or a video, streaming tokens as they come.

    Ends with one summary line: preprocess ms, vision ms, projector ms, TTFT ms, decode tokens/s (when at least
    two tokens were decoded), visual tokens. Images with more pixels than the model can use (4x its largest
    tile grid, at least 1 MP) are shrunk first with a note; --strict refuses them instead.

    examples:
      nvila-edge run out/builtin --image f.jpg --prompt "Describe the image."
      nvila-edge run out/builtin --images a.jpg b.jpg --prompt "What differs?"
      nvila-edge run out/builtin --video f.mp4 --frames 8 --prompt "What happens?"
    """

    name = "run"
    help = "run an export/engines folder on images or a video (no torch needed)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", help="export or engines folder")
        media = parser.add_mutually_exclusive_group(required=True)
        media.add_argument("--image", help="one image file (tiled by the model's image mode)")
        media.add_argument("--images", nargs="+", help="several image files (one tile each)")
        media.add_argument("--video", help="a video file or a folder of frames")
        parser.add_argument("--frames", type=POSITIVE, help="video frames to sample (default: the model's)")
        add_sampling_arguments(parser, max_new_tokens=128)
        parser.add_argument("--threads", type=POSITIVE, help="CPU threads for ONNX Runtime (default: all cores)")
        parser.add_argument("--strict", action="store_true",
                            help="refuse images above the model's pixel limit instead of shrinking them first")
        parser.add_argument("--max-context", type=POSITIVE, help="KV cache positions (default: the folder's maximum)")

    def run(self, args: argparse.Namespace) -> int:
        from nvila_edge.runtime.image import load_image
        from nvila_edge.runtime.pipeline import Pipeline
        from nvila_edge.runtime.request import Request
        from nvila_edge.runtime.sampling import SamplingParams
        from nvila_edge.runtime.tiling import pixel_limit
        from nvila_edge.runtime.video import sample_frames

        with Pipeline.open(args.folder, threads=args.threads, max_context=args.max_context) as pipeline:
            request = Request(args.prompt)
            if args.video:
                request.video = sample_frames(args.video, args.frames or pipeline.config.num_video_frames,
                                              pipeline.config.fps)
            else:
                limit = pixel_limit(pipeline.config)
                request.images = [fit_image(load_image(p), p, limit, args.strict)
                                  for p in ([args.image] if args.image else args.images)]
            params = SamplingParams(args.max_new_tokens, args.temperature, args.top_p, args.seed)
            for piece in pipeline.stream(request, params):
                print(piece, end="", flush=True)
            print()
            print(pipeline.last.summary(), file=sys.stderr)
        return 0


def fit_image(rgb, path: str, limit: int, strict: bool):
    """The image, shrunk to ``limit`` pixels (with a note) when larger; refused instead with ``strict``."""
    from nvila_edge.errors import InputError
    from nvila_edge.runtime.image import shrink_to_pixels

    height, width = rgb.shape[:2]
    if width * height <= limit:
        return rgb
    if strict:
        raise InputError(f"{path}: {width}x{height} is above this model's limit of {limit / 1e6:.1f} MP; "
                         "shrink it, or drop --strict to have it shrunk first")
    small = shrink_to_pixels(rgb, limit)
    print(f"note: {path} is {width}x{height}; shrunk to {small.shape[1]}x{small.shape[0]} first (this model uses "
          f"at most {limit / 1e6:.1f} MP; --strict refuses instead)", file=sys.stderr)
    return small
