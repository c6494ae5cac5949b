"""The source interface: something that hands out BGR frames, one at a time, stamped at capture.

Every source (camera, CSI, RTSP, file, folder, synthetic) is a small subclass; the capture thread and the
demo only ever see this interface.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from nvila_edge.errors import SourceError


@dataclass(eq=False)  # frames compare by identity: comparing pixel arrays is never what is meant
class Frame:
    """One captured picture."""

    image: np.ndarray  # (H, W, 3) uint8, BGR (OpenCV order)
    timestamp: float  # time.monotonic() when it was captured
    index: int  # 0, 1, 2, ... in the order its producer handed frames out


class Source(ABC):
    """A camera, stream, file or folder. ``open()`` -> ``read()`` until None -> ``close()``.

    ``read()`` returns None at the end of the stream (a file that ended, a live stream that stopped) and
    raises SourceError when reading failed. ``open()`` and ``close()`` may be called more than once: a
    capture thread closes and reopens a live source to reconnect it.
    """

    def __init__(self, name: str, is_live: bool, fps: float | None = None):
        self.name = name
        self.is_live = is_live  # a camera or stream (reconnect when lost) rather than a file (stop at its end)
        self.fps = fps  # frames per second when known
        self.start_attempts = 1  # network streams: how often open_source tries before it gives up
        self._opened = False
        self._next_index = 0

    @property
    def opened(self) -> bool:
        return self._opened

    def open(self) -> None:
        """Start the source; raises SourceError (one line, says what to do) when it cannot deliver frames."""
        if self._opened:
            return
        self._next_index = 0
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        self._opened = True

    def read(self) -> Frame | None:
        if not self._opened:
            raise SourceError(f"{self.name} is not open; call open() before read()")
        return self._read()

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _stamp(self, image: np.ndarray) -> Frame:
        """Wrap a freshly captured image into the next Frame."""
        frame = Frame(image=image, timestamp=time.monotonic(), index=self._next_index)
        self._next_index += 1
        return frame

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> Frame | None: ...

    @abstractmethod
    def _close(self) -> None:
        """Release everything; must also work after a partial ``_open``."""


class FramePacer:
    """Sleeps between frames so a file, folder or synthetic source delivers at ``fps`` like a camera.

    When the reader falls more than a frame behind, the schedule restarts from now instead of bursting to
    catch up (a camera would have dropped those frames too).
    """

    def __init__(self, fps: float):
        self.interval = 1.0 / fps
        self._next_due: float | None = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._next_due is None or now - self._next_due > self.interval:
            self._next_due = now
        elif self._next_due > now:
            time.sleep(self._next_due - now)
        self._next_due += self.interval
