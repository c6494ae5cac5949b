"""The model loop: ask about the newest frame (or the last N frames) as soon as the previous answer ends, or
every ``--every`` seconds, stream the answer to the terminal and the overlay, and record how it went."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable

from nvila_edge.jetson.sources import CaptureThread, Frame
from nvila_edge.jetson.telemetry import Telemetry
from nvila_edge.runtime.generation import decode_rate
from nvila_edge.runtime.image import bgr_to_rgb
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams

from .options import DemoOptions
from .overlay import OverlayState
from .records import AnswerRecord
from .terminal import TerminalPrinter

POLL_S = 0.25  # how often a wait for frames looks at the stop flag


class ModelLoop:
    def __init__(self, pipeline: Pipeline, capture: CaptureThread, options: DemoOptions, overlay: OverlayState,
                 printer: TerminalPrinter, telemetry: Telemetry | None, on_record: Callable[[AnswerRecord], None]):
        self.pipeline = pipeline
        self.capture = capture
        self.options = options
        self.overlay = overlay
        self.printer = printer
        self.telemetry = telemetry
        self.on_record = on_record
        self.params = SamplingParams(max_new_tokens=options.max_new_tokens)
        self._dropped_seen = 0

    def run(self, stop: threading.Event) -> str:
        """Answer until ``stop`` is set, the answer limit is reached or the capture is over; -> why it ended."""
        asked, newest_asked, next_start = 0, -1, 0.0
        while self.options.max_answers is None or asked < self.options.max_answers:
            if stop.wait(max(0.0, next_start - time.monotonic())):
                return "stopped"
            frames = self.pick_frames(newest_asked, stop)
            if stop.is_set():
                return "stopped"
            if not frames:
                return "source ended"
            next_start = time.monotonic() + self.options.every
            asked += 1
            record = self.answer(asked, frames, stop)
            if record is None:
                return "stopped"
            newest_asked = frames[-1].index
            self.on_record(record)
        return "max answers"

    def pick_frames(self, newer_than: int, stop: threading.Event) -> list[Frame]:
        """The newest frame captured after ``newer_than``, or for a video question the last N frames at F fps
        once the capture has that much history (waiting at most 3x that long: a slow camera still gets answers);
        [] when the capture is over."""
        filling_deadline: float | None = None
        while not stop.is_set():
            newest = self.capture.wait_newer(newer_than, timeout=POLL_S)
            if newest is None:
                if not self.capture.running:  # the source ended or failed: nothing newer will come
                    return []
                continue
            if self.options.frames is None:
                return [newest]
            clip = self.capture.frames_for_video(self.options.frames, self.options.video_fps)
            history_s = self.options.frames / self.options.video_fps
            filling_deadline = filling_deadline or time.monotonic() + 3 * history_s + POLL_S
            if len(clip) >= self.options.frames or time.monotonic() >= filling_deadline:
                return clip
            newer_than = newest.index
        return []

    def answer(self, index: int, frames: list[Frame], stop: threading.Event) -> AnswerRecord | None:
        """Ask about ``frames`` (newest last) and stream the answer; None when ``stop`` interrupted it."""
        started = time.monotonic()
        wall = datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")
        newest = frames[-1]
        images = [bgr_to_rgb(frame.image) for frame in frames]
        prompt = self.options.prompt
        request = Request(prompt, video=images) if self.options.kind == "video" else Request(prompt, images=images)
        self.overlay.begin_answer(prompt)
        self.printer.begin(index)
        first_text: float | None = None
        for piece in self.pipeline.stream(request, self.params):
            first_text = first_text or time.monotonic()
            self.overlay.append(piece)
            self.printer.piece(piece)
            if stop.is_set():
                self.printer.interrupted()
                return None
        ended = time.monotonic()
        answer = self.pipeline.last
        stats = self.capture.stats()
        dropped, self._dropped_seen = stats.dropped - self._dropped_seen, stats.dropped
        record = AnswerRecord(
            index=index, time=wall, source=self.capture.source.name, prompt=prompt, kind=self.options.kind,
            frames=len(frames), frame_index=newest.index,
            frame_age_ms=1000 * (started - newest.timestamp),
            text=answer.text, tokens=len(answer.token_ids), visual_tokens=answer.visual_tokens,
            preprocess_ms=answer.preprocess_ms, vision_ms=answer.vision_ms, projector_ms=answer.projector_ms,
            ttft_ms=answer.ttft_ms,
            frame_to_first_token_ms=1000 * ((first_text or ended) - newest.timestamp),
            answer_ms=1000 * (ended - started), decode_tokens_per_s=answer.decode_tokens_per_s,
            decode_steps=answer.decode_steps,
            frames_dropped=dropped, source_status=stats.status,
            telemetry=self.telemetry.snapshot().as_dict() if self.telemetry else {},
        )
        self.overlay.end_answer(f"#{index} age {record.frame_age_ms:.0f} ms | TTFT {record.ttft_ms:.0f} ms | "
                                f"{decode_rate(record.decode_tokens_per_s, record.decode_steps)} | "
                                f"dropped {dropped}")
        self.printer.end(record)
        return record
