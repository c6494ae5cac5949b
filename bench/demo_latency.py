"""Camera demo latency on CPU: how long from a frame's capture to the first token about it, and how many
answers a minute the demo gives, with the built-in model watching the live synthetic camera.

This is ``nvila-edge demo`` itself (capture thread, model loop, overlay state, records), run headless for
``--answers`` answers; the first ``--warmup`` answers (ONNX Runtime's first runs) are left out of the
figures, which come from the demo's own JSONL records. The demo's own output goes to stderr; the figures go
to stdout.

    nice -n 19 python bench/demo_latency.py --answers 20 --threads 2
    nice -n 19 python bench/demo_latency.py --engines out/engines --source /dev/video0 --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

from nvila_edge.first_use import demo_model_folder
from nvila_edge.jetson.demo import AnswerRecord, DemoOptions, read_records, run_demo
from nvila_edge.jetson.demo.terminal import TerminalPrinter


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def answers_per_minute(records: list[AnswerRecord]) -> float:
    """From the first measured question's start to the last answer's end."""
    first = datetime.datetime.fromisoformat(records[0].time)
    last = datetime.datetime.fromisoformat(records[-1].time)
    span_s = (last - first).total_seconds() + records[-1].answer_ms / 1000
    return 60.0 * len(records) / span_s


def figures(records: list[AnswerRecord]) -> dict[str, float]:
    latency = [r.frame_to_first_token_ms for r in records]
    return {
        "answers": len(records),
        "answers_per_minute": answers_per_minute(records),
        "frame_to_first_token_ms_median": statistics.median(latency),
        "frame_to_first_token_ms_p90": percentile(latency, 0.9),
        "frame_to_first_token_ms_max": max(latency),
        "frame_age_ms_median": statistics.median(r.frame_age_ms for r in records),
        "vision_ms_median": statistics.median(r.vision_ms for r in records),
        "ttft_ms_median": statistics.median(r.ttft_ms for r in records),
        "answer_ms_median": statistics.median(r.answer_ms for r in records),
        "tokens_median": statistics.median(r.tokens for r in records),
        "decode_tokens_per_s_median": statistics.median(r.decode_tokens_per_s for r in records),
        "frames_dropped_per_answer": statistics.mean(r.frames_dropped for r in records),
        "visual_tokens": records[-1].visual_tokens,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--engines", type=Path, help="an export or engines folder (default: the built-in model)")
    model.add_argument("--model", default="builtin", help="checkpoint folder or 'builtin', exported on first use")
    parser.add_argument("--source", default="test://shapes")
    parser.add_argument("--prompt", default="Describe the image.")
    parser.add_argument("--answers", type=int, default=20, help="measured answers")
    parser.add_argument("--warmup", type=int, default=2, help="answers run first and left out")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        jsonl = Path(scratch) / "answers.jsonl"
        options = DemoOptions(source=args.source, engines=args.engines, model=args.model, prompt=args.prompt,
                              display=False, max_answers=args.warmup + args.answers, jsonl=jsonl,
                              max_new_tokens=args.max_new_tokens, threads=args.threads)
        folder = partial(demo_model_folder, options.engines, options.model, options.cache_dir)
        result = run_demo(options, TerminalPrinter(out=sys.stderr), model_folder=folder)
        measured = read_records(jsonl)[args.warmup:]
    if not measured:
        print(f"no answers to measure ({result.ended})", file=sys.stderr)
        return 1
    numbers = figures(measured)
    if args.json:
        print(json.dumps({"source": args.source, "threads": args.threads, **numbers}))
        return 0
    print(f"demo latency on CPU ({args.threads} threads), {args.source}, {numbers['answers']} answers after "
          f"{args.warmup} warm-up, {numbers['visual_tokens']} visual tokens, prompt {args.prompt!r}")
    print(f"  frame -> first token   median {numbers['frame_to_first_token_ms_median']:.0f} ms, "
          f"p90 {numbers['frame_to_first_token_ms_p90']:.0f} ms, max {numbers['frame_to_first_token_ms_max']:.0f} ms")
    print(f"    of which frame age   median {numbers['frame_age_ms_median']:.0f} ms")
    print(f"    of which TTFT        median {numbers['ttft_ms_median']:.0f} ms "
          f"(vision {numbers['vision_ms_median']:.0f} ms)")
    print(f"  answers per minute     {numbers['answers_per_minute']:.1f} "
          f"(answer median {numbers['answer_ms_median']:.0f} ms, {numbers['tokens_median']:.0f} tokens at "
          f"{numbers['decode_tokens_per_s_median']:.0f} tok/s)")
    print(f"  frames dropped         {numbers['frames_dropped_per_answer']:.1f} per answer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
