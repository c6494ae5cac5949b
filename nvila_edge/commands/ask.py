from __future__ import annotations

import argparse
import sys
import time

from nvila_edge.options import NON_NEGATIVE, POSITIVE, add_sampling_arguments


class AskCommand:
    """Ask the PyTorch reference pipeline about images, a video, or a synthetic scene.

    This runs the checkpoint directly in PyTorch (the ground truth that exports are checked against);
    use `nvila-edge run` on an export or engines folder for the deployable runtime.

    examples:
      nvila-edge ask builtin --scene 7 --prompt "Describe the image."
      nvila-edge ask ./NVILA-8B --image photo.jpg --prompt "What is in the picture?"
      nvila-edge ask builtin --video clip.mp4 --frames 8 --prompt "Which way does the red circle move?"
    """

    name = "ask"
    help = "ask the PyTorch reference model about images or a video (needs the export extra)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", nargs="?", default="builtin", help="checkpoint folder or 'builtin' (default)")
        media = parser.add_mutually_exclusive_group()
        media.add_argument("--image", nargs="+", default=[], metavar="FILE",
                           help="one or more image files (default: no media, or --video / --scene)")
        media.add_argument("--video", metavar="FILE", help="a video file or a folder of frames (default: none)")
        media.add_argument("--scene", type=NON_NEGATIVE, metavar="SEED",
                           help="render a synthetic shapes scene with this seed (default: none)")
        parser.add_argument("--frames", type=POSITIVE,
                            help="video frames to sample (default: the model's num_video_frames)")
        add_sampling_arguments(parser, max_new_tokens=64)

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np

        from nvila_edge.export.checkpoint import load_checkpoint
        from nvila_edge.export.reference import ReferencePipeline
        from nvila_edge.runtime.image import load_image
        from nvila_edge.runtime.request import Request
        from nvila_edge.runtime.sampling import SamplingParams
        from nvila_edge.runtime.video import sample_frames
        from nvila_edge.runtime.world.scene import random_scene, render_scene

        ckpt = load_checkpoint(args.model)
        request = Request(args.prompt)
        if args.scene is not None:
            scene = random_scene(np.random.default_rng(args.scene))
            request.images = [render_scene(scene)]
            print(f"scene {args.scene}: " + ", ".join(f"{s.color} {s.kind}" for s in scene.shapes), file=sys.stderr)
        elif args.video:
            request.video = sample_frames(args.video, args.frames or ckpt.config.num_video_frames, ckpt.config.fps)
        else:
            request.images = [load_image(path) for path in args.image]
        params = SamplingParams(args.max_new_tokens, args.temperature, args.top_p, args.seed)
        pipeline = ReferencePipeline(ckpt)
        start = time.perf_counter()
        for piece in pipeline.stream(request, params):
            print(piece, end="", flush=True)
        print()
        print(f"[{len(pipeline.last_tokens)} tokens in {time.perf_counter() - start:.2f} s, reference PyTorch fp32]",
              file=sys.stderr)
        return 0
