"""Live streams: a source from ``jetson.sources`` captured in its own thread (reconnecting with back-off when
a live source drops), its prompts and alerts, and the overlay its MJPEG preview draws. A stream that fails
only changes its own state; it never stops the server.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time

from nvila_edge.jetson.demo.overlay import OverlayState
from nvila_edge.jetson.sources import CaptureThread, Frame, Source

from .errors import ApiError
from .events import EventBus
from .gate import thumbnail
from .watches import MAX_FRAMES, Watch

STATES = ("connecting", "live", "reconnecting", "ended", "failed")
RING_FPS = 4.0  # frames per second kept for video prompts
STOP_S = 5.0  # how long closing waits for a capture blocked in a read


def state_of(capture_status: str) -> str:
    if capture_status == "running":
        return "live"
    if capture_status.startswith("reconnecting"):
        return "reconnecting"
    if capture_status.startswith("failed"):
        return "failed"
    if capture_status in ("ended", "stopped"):
        return "ended"
    return "connecting"


class LiveStream:
    def __init__(self, stream_id: str, name: str, source: Source, bus: EventBus, max_watches: int):
        self.id, self.name, self.source_name = stream_id, name, source.name
        self.bus = bus
        self.max_watches = max_watches
        self.created = time.time()
        self.state, self.detail = "connecting", ""
        self.overlay = OverlayState("")
        self.capture = CaptureThread(source, ring_size=MAX_FRAMES + 4, ring_fps=RING_FPS, on_status=self._on_status)
        self.lock = threading.Lock()  # guards watches and the counters the worker writes
        self.watches: collections.OrderedDict[str, Watch] = collections.OrderedDict()
        self._watch_ids = itertools.count(1)
        self._turn = 0  # round-robin position among this stream's watches
        self._thumb: tuple[int, object] = (-1, None)
        self._close_reason: str | None = None

    def start(self) -> None:
        """Open the source (SourceError when it cannot deliver) and start capturing."""
        self.capture.start()

    def close(self, reason: str) -> None:
        """Stop capturing; the final ``ended`` state change carries ``reason`` as its detail."""
        self._close_reason = reason
        self.capture.stop(STOP_S)

    def _on_status(self, status: str) -> None:
        state = state_of(status)
        detail = "" if state == "live" else self._close_reason or status
        changed = state != self.state
        self.state, self.detail = state, detail
        self.overlay.set_source_status(status)
        if changed:
            self.bus.publish("stream", stream_id=self.id, state=state, detail=detail)

    # ---- watches ---------------------------------------------------------------------------------------

    def new_watch_id(self, kind: str) -> str:
        return f"{kind[0]}{next(self._watch_ids)}"

    def add_watch(self, watch: Watch) -> None:
        with self.lock:
            if len(self.watches) >= self.max_watches:
                raise ApiError(400, f"stream {self.id} already has {self.max_watches} prompts and alerts; delete "
                                    "one first", code="too_many_watches")
            self.watches[watch.id] = watch

    def remove_watch(self, watch_id: str, kind: str) -> None:
        with self.lock:
            watch = self.watches.get(watch_id)
            if watch is None or watch.kind != kind:
                raise ApiError(404, f"stream {self.id} has no {kind} {watch_id!r}", code=f"{kind}_not_found")
            del self.watches[watch_id]

    def listed(self, kind: str) -> list[dict]:
        with self.lock:
            return [w.as_json() for w in self.watches.values() if w.kind == kind]

    def watches_in_turn(self) -> list[Watch]:
        """This stream's watches, starting after the one that ran last (round-robin)."""
        with self.lock:
            watches = list(self.watches.values())
        if not watches:
            return []
        start = self._turn % len(watches)
        return watches[start:] + watches[:start]

    def took_turn(self, watch: Watch) -> None:
        with self.lock:
            order = list(self.watches)
            if watch.id in order:
                self._turn = order.index(watch.id) + 1

    def thumbnail_of(self, frame: Frame):
        index, thumb = self._thumb
        if index != frame.index:
            thumb = thumbnail(frame.image)
            self._thumb = (frame.index, thumb)
        return thumb

    # ---- views -----------------------------------------------------------------------------------------

    def frame_age_s(self) -> float | None:
        frame = self.capture.latest()
        return None if frame is None else time.monotonic() - frame.timestamp

    def as_json(self) -> dict:
        stats = self.capture.stats()
        age = self.frame_age_s()
        with self.lock:
            prompts = sum(w.kind == "prompt" for w in self.watches.values())
            alerts = len(self.watches) - prompts
        return {"id": self.id, "name": self.name, "source": self.source_name, "state": self.state,
                "detail": self.detail, "created": self.created,
                "fps": None if stats.fps is None else round(stats.fps, 2),
                "frame_age_s": None if age is None else round(age, 3), "frames_captured": stats.captured,
                "frames_dropped": stats.dropped, "reconnects": stats.reconnects, "last_error": stats.last_error,
                "prompts": prompts, "alerts": alerts}

    def metric_rows(self) -> dict:
        stats = self.capture.stats()
        with self.lock:
            watches = list(self.watches.values())
        return {"state": self.state, "fps": stats.fps, "frame_age_s": self.frame_age_s(),
                "dropped_frames": stats.dropped, "stale_dropped": sum(w.stale_dropped for w in watches),
                "gate_skips": sum(w.gate_skips for w in watches), "answers": sum(w.answers for w in watches),
                "alerts": [(w.id, w.state) for w in watches if w.kind == "alert"]}


class StreamRegistry:
    def __init__(self, bus: EventBus, max_streams: int, max_watches: int):
        self.bus, self.max_streams, self.max_watches = bus, max_streams, max_watches
        self._streams: collections.OrderedDict[str, LiveStream] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def create(self, source: Source, name: str | None) -> LiveStream:
        with self._lock:
            if len(self._streams) >= self.max_streams:
                raise ApiError(400, f"already {self.max_streams} streams; delete one first (or start the server "
                                    "with a larger --max-streams)", code="too_many_streams")
            stream_id = f"s{next(self._ids)}"
            stream = LiveStream(stream_id, name or source.name, source, self.bus, self.max_watches)
            self._streams[stream_id] = stream
        return stream

    def discard(self, stream_id: str) -> LiveStream | None:
        with self._lock:
            return self._streams.pop(stream_id, None)

    def get(self, stream_id: str) -> LiveStream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise ApiError(404, f"no stream {stream_id!r}: GET /v1/streams lists them", code="stream_not_found")
        return stream

    def snapshot(self) -> list[LiveStream]:
        with self._lock:
            return list(self._streams.values())

    def close_all(self) -> None:
        for stream in self.snapshot():
            self.discard(stream.id)
            stream.close("server stopping")
