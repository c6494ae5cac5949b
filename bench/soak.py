"""Soak: does ``nvila-edge demo`` keep its memory flat and its latency steady over thousands of answers?

Runs the demo as its own process, as a service unit does (headless, ``--jsonl``), until it has given
``--answers`` answers (its ``--max-answers``) or for ``--duration`` seconds (then it is stopped with SIGTERM,
as systemd stops it), whichever comes first. Every ``--interval`` seconds it samples the demo's resident
memory (and, on a Jetson, the RAM in use by the whole board from tegrastats) with the number of answers so
far. After the first ``--warmup`` answers (allocator pools and ONNX Runtime's first runs settle there), the
RSS slope is fitted by least squares, against answers (KB per 1,000 answers) and against time (KB per hour).
Latency percentiles come from the demo's JSONL records: the ``--window`` answers right after warm-up, and
the last ``--window``.

    nice -n 10 python bench/soak.py --answers 10000
    python bench/soak.py --duration 3600 --engines out/engines --source /dev/video0 --json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nvila_edge.jetson.telemetry import TegrastatsMonitor, read_process_memory
from nvila_edge.runtime.latency_histogram import LatencyHistogram

SLOPE_LIMIT_KB = 50.0  # per 1,000 answers: what counts as flat
P50_DRIFT_LIMIT = 0.2  # the end's p50 latency within 20 % of the start's
STOP_S = 60.0  # how long a stopped demo may take to finish its files and summary


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    answers: int
    rss_kb: float
    board_ram_mb: float | None  # tegrastats RAM in use (Jetson only)


class AnswerCounter:
    """Counts the lines of a JSONL file that is still being written, reading only what is new."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                new = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(new)
        self.lines += new.count(b"\n")
        return self.lines


def demo_command(args: argparse.Namespace, jsonl: Path) -> list[str]:
    command = [sys.executable, "-m", "nvila_edge", "demo", "--headless", "--source", args.source,
               "--prompt", args.prompt, "--jsonl", str(jsonl), "--max-new-tokens", str(args.max_new_tokens)]
    command += ["--engines", str(args.engines)] if args.engines else ["--model", args.model]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--max-answers", str(args.answers)] if args.answers else []
    return command


def run_soak(args: argparse.Namespace, jsonl: Path, stderr_path: Path) -> tuple[list[Sample], int, float]:
    """Run the demo, sampling it until it ends -> (samples, exit code, seconds from start to end)."""
    counter = AnswerCounter(jsonl)
    tegrastats = TegrastatsMonitor(keep=1).start() if shutil.which("tegrastats") else None
    samples: list[Sample] = []
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(demo_command(args, jsonl), stdout=subprocess.DEVNULL, stderr=stderr)
        start = time.monotonic()
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - start
                if args.duration and elapsed >= args.duration:
                    process.send_signal(signal.SIGTERM)
                    break
                rss, _ = read_process_memory(pid=str(process.pid))
                answers = counter.count()
                if rss is not None and answers > 0:
                    board = tegrastats.latest() if tegrastats else None
                    samples.append(Sample(elapsed, answers, rss / 1024, board.ram_used_mb if board else None))
                time.sleep(min(args.interval, max(0.1, (args.duration or math.inf) - elapsed)))
            code = process.wait(timeout=STOP_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if tegrastats is not None:
                tegrastats.stop()
    return samples, code, time.monotonic() - start


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of y against x; NaN with fewer than 3 points."""
    if len(x) < 3 or max(x) == min(x):
        return math.nan
    return float(np.polyfit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), 1)[0])


def latency_window(jsonl: Path, first: int, last: int) -> dict[str, dict]:
    """p50 / p90 / max of frame->first token and TTFT over answers first..last (1-based, inclusive)."""
    latency, ttft = LatencyHistogram(), LatencyHistogram()
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if first <= record["index"] <= last:
                latency.add(record["frame_to_first_token_ms"])
                ttft.add(record["ttft_ms"])
    pick = ("count", "p50", "p90", "max")
    return {"answers": f"{first}-{last}", "frame_to_first_token_ms": {k: latency.as_dict()[k] for k in pick},
            "ttft_ms": {k: ttft.as_dict()[k] for k in pick}}


def figures(args: argparse.Namespace, samples: list[Sample], code: int, elapsed_s: float, jsonl: Path,
            summary: str) -> dict:
    answers = AnswerCounter(jsonl).count()
    # after warm-up, and before the last answer (the demo is closing then)
    settled = [s for s in samples if args.warmup < s.answers < (args.answers or math.inf)]
    kb_per_answer = slope([s.answers for s in settled], [s.rss_kb for s in settled])
    kb_per_s = slope([s.elapsed_s for s in settled], [s.rss_kb for s in settled])
    board = [s.board_ram_mb for s in settled if s.board_ram_mb is not None]
    start = latency_window(jsonl, args.warmup + 1, args.warmup + args.window)
    end = latency_window(jsonl, max(args.warmup + 1, answers - args.window + 1), answers)
    drift = {name: end[name]["p50"] / start[name]["p50"] - 1 if start[name]["count"] else math.nan
             for name in ("frame_to_first_token_ms", "ttft_ms")}
    return {
        "source": args.source, "answers": answers, "elapsed_s": elapsed_s, "exit_code": code,
        "answers_per_s": answers / elapsed_s if elapsed_s > 0 else math.nan,
        "warmup_answers": args.warmup, "samples": len(samples), "samples_after_warmup": len(settled),
        "rss_mb": {"first": samples[0].rss_kb / 1024 if samples else math.nan,
                   "after_warmup": settled[0].rss_kb / 1024 if settled else math.nan,
                   "end": settled[-1].rss_kb / 1024 if settled else math.nan,
                   "peak": max(s.rss_kb for s in samples) / 1024 if samples else math.nan},
        "rss_slope_kb_per_1000_answers": 1000 * kb_per_answer,
        "rss_slope_kb_per_hour": 3600 * kb_per_s,
        "board_ram_slope_mb_per_hour": 3600 * slope([s.elapsed_s for s in settled if s.board_ram_mb is not None],
                                                    board) if board else None,
        "latency_start": start, "latency_end": end, "p50_change": drift,
        "flat": 1000 * kb_per_answer < SLOPE_LIMIT_KB,
        "steady": all(abs(d) <= P50_DRIFT_LIMIT for d in drift.values()),
        "demo_summary": summary,
        "samples_rss": [asdict(s) for s in samples],
    }


def print_table(f: dict) -> None:
    rss = f["rss_mb"]
    print(f"soak: nvila-edge demo on {f['source']}: {f['answers']} answers in {f['elapsed_s']:.0f} s "
          f"({f['answers_per_s']:.1f} per s), exit code {f['exit_code']}, {f['samples']} RSS samples")
    print(f"  RSS            first {rss['first']:.1f} MB, after {f['warmup_answers']} warm-up answers "
          f"{rss['after_warmup']:.1f} MB, end {rss['end']:.1f} MB, peak {rss['peak']:.1f} MB")
    print(f"  RSS slope      {f['rss_slope_kb_per_1000_answers']:+.1f} KB per 1,000 answers, "
          f"{f['rss_slope_kb_per_hour']:+.0f} KB per hour (least squares over {f['samples_after_warmup']} samples "
          f"after warm-up; flat means < {SLOPE_LIMIT_KB:.0f} KB per 1,000: {'yes' if f['flat'] else 'NO'})")
    if f["board_ram_slope_mb_per_hour"] is not None:
        print(f"  board RAM      {f['board_ram_slope_mb_per_hour']:+.1f} MB per hour (tegrastats)")
    for name, label in (("frame_to_first_token_ms", "frame->first token"), ("ttft_ms", "TTFT")):
        for when in ("start", "end"):
            w = f[f"latency_{when}"]
            print(f"  {label:<18} {when:<5} answers {w['answers']:<12} p50 {w[name]['p50']:6.0f} ms, "
                  f"p90 {w[name]['p90']:6.0f} ms, max {w[name]['max']:6.0f} ms")
        print(f"  {label:<18} p50 change {100 * f['p50_change'][name]:+.0f} %")
    print(f"  steady         p50 at the end within {100 * P50_DRIFT_LIMIT:.0f} % of the start: "
          f"{'yes' if f['steady'] else 'NO'}")
    print(f"  demo summary   {f['demo_summary']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, help="run until this many answers")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="run this long (or until --answers, whichever comes first), then send SIGTERM")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--engines", type=Path, help="an export or engines folder (default: the built-in model)")
    model.add_argument("--model", default="builtin", help="checkpoint folder or 'builtin', exported on first use")
    parser.add_argument("--source", default="test://shapes")
    parser.add_argument("--prompt", default="Describe the image.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: all cores)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=int, default=500, help="answers left out of the slope and the latencies")
    parser.add_argument("--window", type=int, default=500, help="answers in each latency window (start, end)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the demo's JSONL and stderr in DIR")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if args.answers is None and args.duration is None:
        parser.error("give --answers N, --duration SECONDS or both")
    if (args.answers is not None and args.answers < 1) or (args.duration is not None and args.duration <= 0):
        parser.error("give a positive --answers or --duration")

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        jsonl, stderr_path = folder / "answers.jsonl", folder / "demo.stderr"
        samples, code, elapsed = run_soak(args, jsonl, stderr_path)
        lines = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
        summary = next((line for line in reversed(lines) if " answers in " in line), "")
        if code not in (0, 130) or not jsonl.exists():
            print(f"the demo failed (exit code {code}):\n" + "\n".join(lines[-20:]), file=sys.stderr)
            return 1
        numbers = figures(args, samples, code, elapsed, jsonl, summary)
    if args.json:
        print(json.dumps(numbers))
    else:
        print_table(numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
