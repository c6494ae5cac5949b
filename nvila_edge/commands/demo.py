from __future__ import annotations

import argparse
import signal
from functools import partial
from pathlib import Path

from nvila_edge.options import NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT

OPTIONS = ("source", "engines", "model", "prompt", "every", "frames", "fps", "display", "record", "jsonl",
           "max_answers", "max_new_tokens", "threads")


class DemoCommand:
    """Ask the model about a live camera again and again, streaming each answer as it is generated.

    Capture runs in its own thread and always hands over the newest frame. With no arguments the built-in
    model (exported for the CPU on first use, then cached) watches the synthetic test://shapes camera.
    Each answer prints its frame age, vision ms, TTFT, tokens/s and dropped frames; --jsonl keeps them.
    A camera that disappears or an RTSP stream that drops is reopened with back-off while the demo runs.
    Ctrl-C or SIGTERM stops cleanly (exit 130) with the recording and the JSONL file complete and the summary
    printed (p50 / p90 / max of frame->first token and TTFT, answers per minute). Memory stays flat however
    long it runs: only the last few answers are kept in memory, the JSONL file has them all.

    examples:
      nvila-edge demo --max-answers 5
      nvila-edge demo --engines out/engines --source csi://0 --display
      nvila-edge demo --engines out/engines --source /dev/video0 --prompt "What is on the table?" --every 5
      nvila-edge demo --source rtsp://user:pass@192.168.1.20/stream --frames 8 --fps 2 --prompt "What happens?"
      nvila-edge demo --source clip.mp4?pace=1 --headless --record out.mp4 --jsonl answers.jsonl
    """

    name = "demo"
    help = "live camera demo: streaming answers about the newest frame, with overlay and records"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        # Defaults live in DemoOptions (None = not given), so --help needs no import of the demo itself.
        model = parser.add_mutually_exclusive_group()
        model.add_argument("--engines", type=Path, metavar="DIR",
                           help="an engines or export folder to run (default: --model, exported and built on "
                                "first use)")
        model.add_argument("--model", help="checkpoint folder or 'builtin' (default), exported for the CPU on first "
                                           "use and cached")
        parser.add_argument("--source", metavar="SPEC",
                            help="where frames come from (default test://shapes): 0 or /dev/videoN, csi://N, "
                                 "rtsp://..., a video file (?pace=1 plays it at its own speed), an image folder, "
                                 "test://shapes, or a GStreamer pipeline ending in appsink")
        parser.add_argument("--prompt", help='the question (default "Describe the image.")')
        parser.add_argument("--every", type=NON_NEGATIVE_FLOAT, metavar="SECONDS",
                            help="start a question every SECONDS (default 0: as soon as the previous answer ends)")
        parser.add_argument("--frames", type=POSITIVE, metavar="N",
                            help="ask a video question over the last N frames (default: one image, the newest frame)")
        parser.add_argument("--fps", type=POSITIVE_FLOAT, metavar="F", help="sampling rate of those frames (default 2)")
        view = parser.add_mutually_exclusive_group()
        view.add_argument("--display", dest="display", action="store_true", default=None,
                          help="show a window with the overlay (needs a screen and a GUI OpenCV)")
        view.add_argument("--headless", dest="display", action="store_false",
                          help="no window (the default when there is no screen)")
        parser.add_argument("--record", type=Path, metavar="OUT.mp4",
                            help="record the frames with the overlay (default: no recording)")
        parser.add_argument("--jsonl", type=Path, metavar="OUT.jsonl",
                            help="write one JSON object per answer (default: none)")
        parser.add_argument("--max-answers", type=POSITIVE, metavar="K", help="stop after K answers (default: run on)")
        parser.add_argument("--max-new-tokens", type=POSITIVE, metavar="N",
                            help="tokens per answer at most (default 64)")
        parser.add_argument("--threads", type=POSITIVE, metavar="N",
                            help="CPU threads for ONNX Runtime (default: all cores)")

    def run(self, args: argparse.Namespace) -> int:
        from nvila_edge.first_use import demo_model_folder
        from nvila_edge.jetson.demo import DemoOptions, run_demo

        given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
        options = DemoOptions(**given)
        # `docker stop` sends SIGTERM: stop as cleanly as on Ctrl-C (recording and records finalised).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        run_demo(options, model_folder=partial(demo_model_folder, options.engines, options.model,
                                               options.cache_dir))
        return 0
