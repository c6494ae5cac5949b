"""Stream work for the model worker: one due prompt or alert at a time, streams taken round-robin (and the
watches within a stream too), so N streams share the model fairly.

A watch is due when its interval has passed and a frame newer than the one it last looked at exists.
Work on a frame older than ``max_frame_age_s`` (or two frame intervals of a slower source) is dropped,
not queued; work on a frame that looks like the one last answered is skipped by the scene-change gate
(an alert still waiting for agreeing answers is always asked). Both are counted.
"""

from __future__ import annotations

import logging
import time

from nvila_edge.errors import InputError
from nvila_edge.jetson.sources import Frame
from nvila_edge.runtime.image import bgr_to_rgb
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams

from .events import EventBus
from .gate import scene_changed
from .metrics import ServeMetrics
from .streams import LiveStream, StreamRegistry
from .watches import Watch

log = logging.getLogger("nvila_edge.serve")


def wall_time(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)


class StreamScheduler:
    def __init__(self, registry: StreamRegistry, bus: EventBus, metrics: ServeMetrics, max_frame_age_s: float,
                 scene_threshold: float):
        self.registry, self.bus, self.metrics = registry, bus, metrics
        self.max_frame_age_s, self.scene_threshold = max_frame_age_s, scene_threshold
        self._turn = 0  # round-robin position among streams

    def run_next(self, pipeline: Pipeline) -> bool:
        """Run one due prompt or alert; False when nothing was due."""
        streams = self.registry.snapshot()
        if not streams:
            return False
        start = self._turn % len(streams)
        for offset in range(len(streams)):
            stream = streams[(start + offset) % len(streams)]
            if self._run_stream(stream, pipeline):
                self._turn = (start + offset + 1) % len(streams)
                return True
        return False

    def _run_stream(self, stream: LiveStream, pipeline: Pipeline) -> bool:
        if stream.state != "live":
            return False
        frame = stream.capture.latest()
        if frame is None:
            return False
        now = time.monotonic()
        fps = stream.capture.stats().fps
        max_age = max(self.max_frame_age_s, 2.0 / fps) if fps else self.max_frame_age_s  # slow sources too
        for watch in stream.watches_in_turn():
            if not self._due(watch, frame, now):
                continue
            stream.took_turn(watch)
            if now - frame.timestamp > max_age:
                if watch.stale_frame_index != frame.index:  # count each stale frame once
                    watch.stale_frame_index = frame.index
                    watch.stale_dropped += 1
                continue
            thumb = stream.thumbnail_of(frame)
            if watch.settled() and not scene_changed(watch.last_thumb, thumb, self.scene_threshold):
                watch.gate_skips += 1
                watch.last_frame_index, watch.frame_time = frame.index, wall_time(frame.timestamp)
                watch.next_due = now + watch.every_s
                continue
            self._answer(stream, watch, frame, thumb, pipeline)
            return True
        return False

    @staticmethod
    def _due(watch: Watch, frame: Frame, now: float) -> bool:
        """Its interval has passed and a frame newer than the one it last looked at exists."""
        return now >= watch.next_due and frame.index != watch.last_frame_index

    def _answer(self, stream: LiveStream, watch: Watch, frame: Frame, thumb, pipeline: Pipeline) -> None:
        frames = [frame]
        if watch.frames is not None:
            frames = stream.capture.frames_for_video(watch.frames, watch.fps) or [frame]
        images = [bgr_to_rgb(f.image) for f in frames]
        request = Request(watch.prompt, video=images) if watch.frames is not None else Request(watch.prompt, images)
        params = SamplingParams(max_new_tokens=watch.max_tokens)
        if watch.kind == "prompt":
            stream.overlay.begin_answer(watch.prompt)
        try:
            for piece in pipeline.stream(request, params):
                if watch.kind == "prompt":
                    stream.overlay.append(piece)
        except InputError as err:  # e.g. too many frames for the context: say so on the watch, keep serving
            log.warning("stream %s %s %s: %s", stream.id, watch.kind, watch.id, err)
            watch.answer, watch.next_due = f"error: {err}", time.monotonic() + max(watch.every_s, 5.0)
            return
        answer = pipeline.last
        self.metrics.observe_answer(watch.kind, answer)
        with stream.lock:
            watch.answer, watch.answered_at = answer.text, time.time()
            watch.frame_time, watch.last_frame_index, watch.last_thumb = wall_time(frame.timestamp), frame.index, thumb
            watch.answers += 1
            watch.next_due = time.monotonic() + watch.every_s
            previous = watch.state
            changed = watch.record_alert(answer.text) if watch.kind == "alert" else None
        if watch.kind == "prompt":  # alert answers reach the events only as state changes (they come often)
            self.bus.publish("answer", stream_id=stream.id, prompt_id=watch.id, prompt=watch.prompt,
                             answer=answer.text, frame_time=watch.frame_time, frames=len(frames),
                             ttft_ms=round(answer.ttft_ms, 1))
        if changed is not None:
            stream.overlay.end_answer(f"alert '{watch.prompt}': {changed}")
            self.bus.publish("alert", stream_id=stream.id, alert_id=watch.id, prompt=watch.prompt, state=changed,
                             previous=previous, answer=answer.text, frame_time=watch.frame_time)
        elif watch.kind == "prompt":
            stream.overlay.end_answer(f"{stream.name} | TTFT {answer.ttft_ms:.0f} ms | "
                                      f"{answer.decode_tokens_per_s:.1f} tok/s")
