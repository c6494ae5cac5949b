"""GStreamer without a GStreamer-enabled OpenCV: the pipeline runs in a ``gst-launch-1.0`` child process.

The pipeline's trailing ``appsink ...`` becomes ``videoconvert ! video/x-raw,format=BGR ! fdsink`` writing
raw frames into a pipe. gst-launch's ``-v`` output names the caps the sink negotiated, which gives the frame
size, so pipelines need not state it (an RTSP camera's resolution is rarely known in advance).
"""

from __future__ import annotations

import collections
import os
import re
import select
import shlex
import shutil
import subprocess
import threading
import time

import numpy as np

from nvila_edge.errors import SourceError
from nvila_edge.jetson.processes import stop_process

from .base import Frame, Source

FRAMES_SINK = "nvila_frames"
_APPSINK_TAIL = re.compile(r"!\s*appsink(?P<props>(?:\s+[^!]*)?)$")
_SINK_CAPS = re.compile(rf"GstFdSink:{FRAMES_SINK}\.GstPad:sink: caps = (?P<caps>.*)")
_ERROR_LINE = re.compile(r"^ERROR: from element \S*?:(?P<element>[^:/]+): (?P<message>.*)$")


def appsink_tail(pipeline: str) -> re.Match:
    """The trailing ``! appsink ...`` of a source pipeline; SourceError when it has none."""
    match = _APPSINK_TAIL.search(pipeline.strip())
    if match is None:
        raise SourceError(f"a GStreamer source pipeline must end in '! appsink': {pipeline!r}")
    return match


def fdsink_pipeline(pipeline: str, fd: int) -> str:
    """``pipeline`` with its trailing appsink replaced by a BGR fdsink writing to ``fd``."""
    text = pipeline.strip()
    match = appsink_tail(text)
    props = match.group("props")
    # appsink drop=1 keeps only the newest frame; a one-buffer leaky queue does the same in front of a pipe.
    newest_only = re.search(r"\bdrop=(1|true)\b", props, re.IGNORECASE)
    leaky = "queue leaky=downstream max-size-buffers=1 ! " if newest_only else ""
    # appsink syncs to the clock unless told otherwise (fdsink does not): keep the pipeline's pacing.
    sync = "false" if re.search(r"\bsync=(0|false)\b", props, re.IGNORECASE) else "true"
    head = text[: match.start()].rstrip()
    return f"{head} ! videoconvert ! video/x-raw,format=BGR ! {leaky}fdsink name={FRAMES_SINK} fd={fd} sync={sync}"


def parse_sink_caps(caps: str) -> tuple[int, int, float | None]:
    """(width, height, fps) from caps text such as
    ``video/x-raw, width=(int)640, height=(int)480, framerate=(fraction)30/1``."""
    width = re.search(r"width=\(int\)(\d+)", caps)
    height = re.search(r"height=\(int\)(\d+)", caps)
    if width is None or height is None:
        raise SourceError(f"GStreamer negotiated caps without a frame size: {caps}")
    rate = re.search(r"framerate=\(fraction\)(\d+)/(\d+)", caps)
    fps = int(rate.group(1)) / int(rate.group(2)) if rate and int(rate.group(1)) and int(rate.group(2)) else None
    return int(width.group(1)), int(height.group(1)), fps


class GstLaunchSource(Source):
    """A GStreamer pipeline ending in ``appsink``, run by ``gst-launch-1.0``; frames come through a pipe."""

    def __init__(self, pipeline: str, *, name: str, is_live: bool, open_timeout: float = 10.0,
                 read_timeout: float = 10.0):
        super().__init__(name, is_live)
        self.pipeline = pipeline
        self.open_timeout = open_timeout  # seconds until the first frame (RTSP connects take a while)
        self.read_timeout = read_timeout  # seconds without a frame before the source counts as lost
        self._process: subprocess.Popen | None = None
        self._frames_fd: int | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=40)
        self._log_reader: threading.Thread | None = None
        self._caps: str | None = None
        self._caps_or_exit = threading.Event()
        self._first: Frame | None = None
        self.width = self.height = self._stride = 0

    def _open(self) -> None:
        launcher = shutil.which("gst-launch-1.0")
        if launcher is None:
            raise SourceError("gst-launch-1.0 not found: apt-get install gstreamer1.0-tools "
                              "gstreamer1.0-plugins-base gstreamer1.0-plugins-good")
        read_fd, write_fd = os.pipe()
        self._frames_fd = read_fd
        try:
            argv = [launcher, "-v", *shlex.split(fdsink_pipeline(self.pipeline, write_fd))]
            # Own session: Ctrl+C in a terminal reaches the app, which then stops the pipeline in order.
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                                             start_new_session=True)
        finally:
            os.close(write_fd)  # the child has its copy; keeping ours would hide the pipe's end of stream
        self._log.clear()
        self._caps = None
        self._caps_or_exit.clear()
        self._log_reader = threading.Thread(target=self._read_log, name="gst-launch log", daemon=True)
        self._log_reader.start()
        deadline = time.monotonic() + self.open_timeout
        if not self._caps_or_exit.wait(self.open_timeout):
            raise self._failure(f"gave no video within {self.open_timeout:g} s")
        if self._caps is None:
            raise self._failure("did not start")
        self.width, self.height, self.fps = parse_sink_caps(self._caps)
        self._stride = (self.width * 3 + 3) // 4 * 4  # GStreamer pads each BGR row to 4 bytes
        image = self._read_image(deadline)
        if image is None:
            raise self._failure("ended before its first frame")
        self._first = self._stamp(image)

    def _read_log(self) -> None:
        """Collect gst-launch's messages (kept for error reports) and spot the sink's negotiated caps."""
        for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._log.append(line)
            match = _SINK_CAPS.search(line)
            if match and self._caps is None:
                self._caps = match.group("caps")
                self._caps_or_exit.set()
        self._caps_or_exit.set()

    def _read_image(self, deadline: float) -> np.ndarray | None:
        """The next frame, None at a clean end of stream; SourceError on timeout or pipeline error."""
        size = self._stride * self.height
        buffer = np.empty(size, np.uint8)
        view = memoryview(buffer)
        got = 0
        while got < size:
            ready, _, _ = select.select([self._frames_fd], [], [], max(deadline - time.monotonic(), 0.0))
            if not ready:
                raise SourceError(f"{self.name} sent no frame for {self.read_timeout:g} s")
            count = os.readv(self._frames_fd, [view[got:]])
            if count == 0:
                self._check_exit()
                return None
            got += count
        rows = buffer.reshape(self.height, self._stride)[:, : self.width * 3]
        return np.ascontiguousarray(rows).reshape(self.height, self.width, 3)

    def _check_exit(self) -> None:
        """At the end of the frame pipe: SourceError unless gst-launch finished cleanly."""
        try:
            code = self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            raise self._failure("closed its output but kept running") from None
        self._log_reader.join(timeout=5.0)
        if code != 0:
            raise self._failure(f"stopped (gst-launch-1.0 exit code {code})")

    def _failure(self, what: str) -> SourceError:
        return SourceError(f"{self.name} {what}: {self._gst_error()}")

    def _gst_error(self) -> str:
        """GStreamer's own one-line reason from the collected log, with its detail line when present."""
        lines = list(self._log)
        for i, line in enumerate(lines):
            match = _ERROR_LINE.match(line)
            if match:
                detail = lines[i + 3] if i + 3 < len(lines) and lines[i + 1] == "Additional debug info:" else ""
                reason = f"{match.group('element')}: {match.group('message')}"
                return f"{reason} ({detail})" if detail else reason
            if line.startswith(("WARNING: erroneous pipeline", "ERROR:")):
                return line
        return "no error reported; run the pipeline with gst-launch-1.0 -v to see what happens"

    def _read(self) -> Frame | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        image = self._read_image(time.monotonic() + self.read_timeout)
        return None if image is None else self._stamp(image)

    def _close(self) -> None:
        if self._process is not None:
            stop_process(self._process, timeout=3.0)
            if self._log_reader is not None:
                self._log_reader.join(timeout=3.0)
            self._process.stdout.close()
        if self._frames_fd is not None:
            os.close(self._frames_fd)
        self._process = None
        self._frames_fd = None
        self._log_reader = None
        self._first = None
