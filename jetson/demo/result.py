"""What a demo run leaves behind for its end-of-run summary, in memory that does not grow with the answers:
running counts, latency histograms for the percentiles and the last few records (the JSONL has them all)."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from nvila_edge.runtime.latency_histogram import LatencyHistogram

from .records import AnswerRecord

RECENT_ANSWERS = 16  # records kept in memory, newest last


@dataclass
class DemoResult:
    answers: int = 0
    tokens: int = 0
    frames_dropped: int = 0
    frame_to_first_token_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
    ttft_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
    recent: collections.deque[AnswerRecord] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_ANSWERS))
    ended: str = ""  # "max answers", "source ended", "window closed", "stopped", "interrupted", "terminated"
    recording: Path | None = None
    started: float | None = None  # time.monotonic() when the model loop started
    finished: float | None = None  # ... and when it ended; None while it runs (or was left behind)

    def add(self, record: AnswerRecord) -> None:
        self.answers += 1
        self.tokens += record.tokens
        self.frames_dropped += record.frames_dropped
        self.frame_to_first_token_ms.add(record.frame_to_first_token_ms)
        self.ttft_ms.add(record.ttft_ms)
        self.recent.append(record)

    @property
    def elapsed_s(self) -> float:
        """From the start of the model loop to its end (or to now, for a loop that has not ended)."""
        if self.started is None:
            return 0.0
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    @property
    def answers_per_minute(self) -> float:
        elapsed = self.elapsed_s
        return 60.0 * self.answers / elapsed if elapsed > 0 else math.nan

    def summary_line(self) -> str:
        if self.answers == 0:
            return f"no answers in {self.elapsed_s:.1f} s ({self.ended})"
        latency, ttft = self.frame_to_first_token_ms, self.ttft_ms
        return (f"{self.answers} answers in {self.elapsed_s:.1f} s ({self.answers_per_minute:.1f} per minute); "
                f"frame->first token p50 {latency.quantile(0.5):.0f} / p90 {latency.quantile(0.9):.0f} / "
                f"max {latency.max:.0f} ms; TTFT p50 {ttft.quantile(0.5):.0f} / p90 {ttft.quantile(0.9):.0f} / "
                f"max {ttft.max:.0f} ms ({self.ended})")
