"""The capture thread: reads a source as fast as it delivers and always offers the newest frame.

A model that takes seconds per answer must see the camera as it is now, not a backlog: there is one
newest-frame slot (frames replaced there before anyone took them count as dropped) and a short ring of
frames, sampled at a few fps, for questions about the last seconds of video. A live source that fails
mid-stream is reopened with exponential back-off while the thread keeps running and reports its state.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from nvila_edge.errors import SourceError

from .base import Frame, Source

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    first_delay: float = 0.5  # seconds before the first reopen attempt
    max_delay: float = 8.0  # the doubling stops here

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


@dataclasses.dataclass(frozen=True)
class CaptureStats:
    captured: int  # frames read from the source
    dropped: int  # frames replaced by a newer one before anyone took them
    reconnects: int  # successful reopenings after the source was lost
    status: str  # "running", "reconnecting (attempt 3, next in 2.0 s)", "ended", "failed: ...", "stopped"
    last_error: str | None  # why the source was last lost
    fps: float | None  # measured capture rate


class CaptureThread:
    """Runs ``source`` in a thread, which owns the source from ``start()`` (opening it if needed) to ``stop()``.

    ``reconnect`` defaults to ``source.is_live``: a lost camera is reopened, a file ends. The ring keeps
    ``ring_size`` frames for video questions, at most ``ring_fps`` per second (None: every frame).
    ``on_status(text)`` is called on every status change (from the capture thread once it runs).
    """

    def __init__(self, source: Source, *, reconnect: bool | None = None, ring_size: int = 16,
                 ring_fps: float | None = 4.0, policy: ReconnectPolicy = ReconnectPolicy(),
                 on_status: Callable[[str], None] | None = None):
        self.source = source
        self.reconnect = source.is_live if reconnect is None else reconnect
        self.policy = policy
        self.on_status = on_status
        self._ring: collections.deque[Frame] = collections.deque(maxlen=ring_size)
        self._ring_interval = 1.0 / ring_fps if ring_fps else 0.0
        self._ring_due = 0.0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._latest: Frame | None = None
        self._latest_taken = False
        self._captured = 0
        self._dropped = 0
        self._reconnects = 0
        self._status = "not started"
        self._last_error: str | None = None
        self._interval_avg: float | None = None  # running mean of the seconds between frames

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> CaptureThread:
        """Open the source (SourceError here when it cannot deliver) and start capturing."""
        if self._thread is not None:
            raise RuntimeError("a CaptureThread starts once; make a new one to capture again")
        self.source.open()
        self._set_status("running")
        self._thread = threading.Thread(target=self._run, name=f"capture {self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capturing, wait for the thread and close the source."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is None:
            self.source.close()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("capture of %s did not stop within %.0f s (blocked in read)", self.source.name, timeout)

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._finished

    @property
    def status(self) -> str:
        return self._status

    def stats(self) -> CaptureStats:
        with self._cond:
            fps = 1.0 / self._interval_avg if self._interval_avg else None
            return CaptureStats(self._captured, self._dropped, self._reconnects, self._status,
                                self._last_error, fps)

    # ---- consumers -------------------------------------------------------------------------------------

    def latest(self) -> Frame | None:
        """The newest frame (its index counts captured frames from 0), or None before the first."""
        with self._cond:
            return self._take_latest()

    def wait_newer(self, than_index: int, timeout: float | None = None) -> Frame | None:
        """The newest frame once its index exceeds ``than_index``; None on timeout or when capture is over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.index <= than_index:
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._finished or self._stopping.is_set() or (remaining is not None and remaining <= 0):
                    return None
                self._cond.wait(remaining)
            return self._take_latest()

    def frames_for_video(self, n: int, fps: float) -> list[Frame]:
        """Up to ``n`` frames ``1/fps`` s apart, oldest first, ending with the newest.

        Fewer come back while the ring does not reach back far enough, or when it holds fewer frames per
        second than asked (a frame is never repeated).
        """
        with self._cond:
            candidates = list(self._ring)
            latest = self._take_latest()
        if latest is not None and (not candidates or candidates[-1] is not latest):
            candidates.append(latest)
        if fps <= 0:
            raise ValueError(f"frames_for_video needs fps > 0, got {fps}")
        if not candidates or n <= 0:
            return []
        picked: list[Frame] = []
        j = len(candidates) - 1
        newest = candidates[-1].timestamp
        for k in range(n):
            target = newest - k / fps
            if target < candidates[0].timestamp - 0.5 / fps:
                break
            while j > 0 and abs(candidates[j - 1].timestamp - target) <= abs(candidates[j].timestamp - target):
                j -= 1
            if not picked or picked[-1] is not candidates[j]:
                picked.append(candidates[j])
        return picked[::-1]

    def _take_latest(self) -> Frame | None:
        if self._latest is not None:
            self._latest_taken = True
        return self._latest

    # ---- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0  # reopen attempts since the last frame
        try:
            while not self._stopping.is_set():
                frame, error = self._read_once()
                if frame is not None:
                    attempt = 0
                    self._publish(frame)
                    continue
                if self._stopping.is_set():
                    break
                if not self.reconnect:
                    self._set_status("ended" if error is None else f"failed: {error}")
                    return
                self._last_error = error or "end of stream"
                self.source.close()
                attempt = self._reopen(attempt)
            self._set_status("stopped")
        finally:
            self.source.close()
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _read_once(self) -> tuple[Frame | None, str | None]:
        """(frame, None); (None, None) at the end of the stream; (None, reason) when reading failed."""
        try:
            return self.source.read(), None
        except SourceError as err:
            return None, str(err)
        except Exception as err:  # a backend's own error (cv2.error, OSError) also means the source is lost
            log.debug("reading %s failed", self.source.name, exc_info=True)
            return None, f"{type(err).__name__}: {err}"

    def _reopen(self, attempt: int) -> int:
        """Reopen with back-off until the source opens or capture stops; returns the attempt count."""
        while not self._stopping.is_set():
            attempt += 1
            delay = self.policy.delay(attempt)
            self._set_status(f"reconnecting (attempt {attempt}, next in {delay:.1f} s)")
            if self._stopping.wait(delay):
                break
            try:
                self.source.open()
            except Exception as err:
                self._last_error = str(err)
                continue
            with self._cond:
                self._reconnects += 1
            self._set_status("running")
            break
        return attempt

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self._latest is not None:
                if not self._latest_taken:
                    self._dropped += 1
                interval = frame.timestamp - self._latest.timestamp
                average = self._interval_avg
                self._interval_avg = interval if average is None else 0.9 * average + 0.1 * interval
            frame = dataclasses.replace(frame, index=self._captured)
            self._captured += 1
            self._latest = frame
            self._latest_taken = False
            if frame.timestamp >= self._ring_due:
                self._ring.append(frame)
                # Hold the ring's average rate when frames arrive off the grid; restart when far behind.
                behind = frame.timestamp - self._ring_due > self._ring_interval
                self._ring_due = (frame.timestamp if behind else self._ring_due) + self._ring_interval
            self._cond.notify_all()

    def _set_status(self, status: str) -> None:
        with self._cond:
            if status == self._status:
                return
            self._status = status
        if status.startswith("reconnecting"):
            log.warning("%s lost (%s): %s", self.source.name, self._last_error, status)
        elif status.startswith("failed"):
            log.error("%s %s", self.source.name, status)
        else:
            log.info("%s: %s", self.source.name, status)
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("status callback failed for %s", self.source.name)
