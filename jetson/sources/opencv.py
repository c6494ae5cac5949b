"""Sources read through ``cv2.VideoCapture``: V4L2 cameras, video files, FFmpeg streams (RTSP) and, with
an OpenCV built with GStreamer (JetPack's), GStreamer pipelines ending in ``appsink``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import cv2
import numpy as np

from nvila_edge.errors import SourceError

from .base import Frame, FramePacer, Source


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Some cameras deliver grey or BGRA even with conversion on; everything downstream expects BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class OpenCVSource(Source):
    """Frames from one ``cv2.VideoCapture``.

    ``api`` is the OpenCV backend (cv2.CAP_V4L2, CAP_FFMPEG, CAP_GSTREAMER, CAP_ANY); ``settings`` are
    ``capture.set`` properties applied after opening (frame size, fps, FOURCC); ``open_params`` go to the
    constructor (timeouts); ``fix_hint`` finishes the error message when opening fails.
    """

    def __init__(self, target: int | str, api: int, *, name: str, is_live: bool, loop: bool = False,
                 pace: bool = False, settings: dict[int, float] | None = None,
                 open_params: list[int] | None = None, ffmpeg_options: str | None = None, fix_hint: str = ""):
        super().__init__(name, is_live)
        self.target = target
        self.api = api
        self.ffmpeg_options = ffmpeg_options
        self.loop = loop  # a file restarts at its end instead of ending
        self.pace = pace  # a file is delivered at its own fps instead of as fast as it decodes
        self.settings = dict(settings or {})
        self.open_params = list(open_params or [])
        self.fix_hint = fix_hint
        self._capture: cv2.VideoCapture | None = None
        self._pacer: FramePacer | None = None
        self._first: Frame | None = None

    def _new_capture(self) -> cv2.VideoCapture:
        with ffmpeg_capture_options(self.ffmpeg_options):
            capture = cv2.VideoCapture(self.target, self.api, self.open_params)
        if not capture.isOpened():
            capture.release()
            hint = f" ({self.fix_hint})" if self.fix_hint else ""
            raise SourceError(f"cannot open {self.name}{hint}")
        for prop, value in self.settings.items():
            capture.set(prop, value)
        return capture

    def _grab(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return as_bgr(image) if ok and image is not None else None

    def _open(self) -> None:
        self._capture = self._new_capture()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self._pacer = FramePacer(self.fps) if self.pace and self.fps else None
        # Opening succeeds for many broken inputs (undecodable files, cameras that never stream); only a
        # first frame proves the source works, so errors surface here rather than in the capture loop.
        image = self._grab()
        if image is None:
            hint = f" ({self.fix_hint})" if self.fix_hint else ""
            raise SourceError(f"{self.name} opened but delivered no frame{hint}")
        self._first = self._stamp(image)

    def _read(self) -> Frame | None:
        if self._pacer is not None:
            self._pacer.wait()
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        image = self._grab()
        if image is None and self.loop:
            self._capture.release()
            self._capture = self._new_capture()
            image = self._grab()
        return None if image is None else self._stamp(image)

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._first = None


@contextlib.contextmanager
def ffmpeg_capture_options(options: str | None) -> Iterator[None]:
    """OpenCV's FFmpeg backend reads its options from the environment when a capture opens; set them for
    that open only, so one RTSP source does not change how every later file is decoded."""
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    if options is None or key in os.environ:  # a user's own setting wins
        yield
        return
    os.environ[key] = options
    try:
        yield
    finally:
        del os.environ[key]
