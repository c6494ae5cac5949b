"""The capture thread: newest frame, drops, the video ring, reconnection with back-off, flat memory."""

from __future__ import annotations

import itertools
import os
import threading
import time

import cv2
import numpy as np
import pytest

from nvila_edge.errors import SourceError
from nvila_edge.jetson.sources import CaptureThread, Frame, ReconnectPolicy, Source, make_source, open_source
from nvila_edge.jetson.sources.gstreamer import gstreamer_available


class TimedSource(Source):
    """``count`` tiny frames stamped ``interval`` s apart on a made-up clock: the ring's timing made exact."""

    def __init__(self, count: int, interval: float):
        super().__init__(name="timed", is_live=False)
        self.count = count
        self.interval = interval

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        if self._next_index == self.count:
            return None
        i = self._next_index
        self._next_index += 1
        return Frame(np.full((2, 2, 3), i % 256, np.uint8), timestamp=100.0 + i * self.interval, index=i)

    def _close(self) -> None:
        pass


def write_images(folder, count: int):
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((12, 16, 3), 20 * i, np.uint8))
    return folder


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def finished(capture: CaptureThread, timeout: float = 5.0) -> CaptureThread:
    wait_for(lambda: not capture.running, timeout)
    return capture


def test_file_ends_with_newest_frame_kept_and_the_rest_dropped(tmp_path):
    source = open_source(str(write_images(tmp_path / "images", 5)), fps=0)
    with CaptureThread(source) as capture:
        finished(capture)
        stats = capture.stats()
        newest = capture.latest()
        assert capture.wait_newer(newest.index, timeout=0.1) is None  # nothing comes after the end
    assert (stats.captured, stats.dropped, stats.reconnects, stats.status) == (5, 4, 0, "ended")
    assert newest.index == 4 and int(newest.image.mean()) == 80
    assert not source.opened


def test_wait_newer_hands_out_each_frame_once_in_order():
    with CaptureThread(open_source("test://shapes?width=32&height=24&fps=100")) as capture:
        seen = []
        frame = capture.wait_newer(-1, timeout=5.0)
        while len(seen) < 20:
            seen.append(frame)
            frame = capture.wait_newer(frame.index, timeout=5.0)
    stats = capture.stats()
    assert all(a.index < b.index and a.timestamp < b.timestamp for a, b in itertools.pairwise(seen))
    assert stats.captured > seen[-1].index
    assert stats.dropped <= stats.captured - len(seen)
    assert 10 < stats.fps < 130  # paced at 100 fps; a busy machine only makes it slower
    assert stats.status == "stopped"


def test_frames_for_video_samples_the_ring_at_the_asked_rate():
    capture = finished(CaptureThread(TimedSource(50, 0.1), ring_size=64, ring_fps=None).start())
    clip = capture.frames_for_video(4, fps=2.0)
    assert [round(f.timestamp - 100, 3) for f in clip] == [3.4, 3.9, 4.4, 4.9]
    assert clip[-1].index == capture.latest().index == 49
    capture.stop()


def test_frames_for_video_with_a_sparse_short_ring():
    capture = finished(CaptureThread(TimedSource(50, 0.1), ring_size=8, ring_fps=4.0).start())
    times = [f.timestamp - 100 for f in capture.frames_for_video(8, fps=4.0)]
    # The ring holds a frame every 0.25 s on its own grid, plus the newest frame off that grid.
    assert len(times) == 8 and times[-1] == pytest.approx(4.9)
    assert all(0.05 < b - a < 0.35 for a, b in itertools.pairwise(times))
    assert 1.5 <= times[-1] - times[0] <= 2.0
    # More frames or a higher rate than the ring holds: what it has, never a frame twice.
    times = [f.timestamp - 100 for f in capture.frames_for_video(30, fps=20.0)]
    assert len(times) == len(set(times)) <= 9
    assert capture.frames_for_video(0, fps=2.0) == []
    capture.stop()


def test_open_failure_at_start_raises_instead_of_retrying(tmp_path):
    folder = write_images(tmp_path / "images", 2)
    source = make_source(str(folder))
    os.rename(folder, tmp_path / "elsewhere")
    capture = CaptureThread(source, reconnect=True)
    with pytest.raises(SourceError, match="does not exist"):
        capture.start()
    assert not capture.running and capture.status == "not started"


def test_file_that_breaks_mid_stream_fails_without_reconnecting(tmp_path):
    folder = write_images(tmp_path / "images", 3)
    with CaptureThread(open_source(str(folder), fps=20, loop=True)) as capture:
        capture.wait_newer(2, timeout=5.0)
        os.rename(folder, tmp_path / "elsewhere")
        finished(capture)
        assert capture.status.startswith("failed: cannot read image")
        assert capture.stats().reconnects == 0


def test_lost_source_reconnects_with_backoff_and_frames_resume(tmp_path):
    folder = write_images(tmp_path / "images", 4)
    statuses: list[tuple[float, str]] = []
    source = open_source(str(folder), fps=50, loop=True)
    policy = ReconnectPolicy(first_delay=0.1, max_delay=0.4)
    with CaptureThread(source, reconnect=True, policy=policy,
                       on_status=lambda s: statuses.append((time.monotonic(), s))) as capture:
        before = capture.wait_newer(5, timeout=5.0)
        os.rename(folder, tmp_path / "away")  # the camera goes away mid-stream...
        wait_for(lambda: capture.status.startswith("reconnecting (attempt 4,"))
        assert capture.running and "does not exist" in capture.stats().last_error
        os.rename(tmp_path / "away", folder)  # ...and comes back
        after = capture.wait_newer(capture.latest().index, timeout=5.0)
        stats = capture.stats()
    assert after is not None and after.index > before.index and after.timestamp > before.timestamp
    assert stats.reconnects == 1
    assert [s for _, s in statuses] == [
        "running",
        "reconnecting (attempt 1, next in 0.1 s)", "reconnecting (attempt 2, next in 0.2 s)",
        "reconnecting (attempt 3, next in 0.4 s)", "reconnecting (attempt 4, next in 0.4 s)",
        "running", "stopped"]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(statuses[1:5])]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.18 and gaps[2] >= 0.36


@pytest.mark.skipif(not gstreamer_available(), reason="no GStreamer installed")
def test_live_pipeline_that_ends_is_restarted():
    pipeline = "videotestsrc num-buffers=5 ! video/x-raw,format=BGR,width=32,height=24 ! appsink sync=false"
    source = open_source(pipeline)  # a pipeline counts as live: a camera that stops gets reopened
    with CaptureThread(source, policy=ReconnectPolicy(first_delay=0.02, max_delay=0.1)) as capture:
        wait_for(lambda: capture.stats().reconnects >= 2, timeout=10.0)
        frame = capture.wait_newer(capture.latest().index, timeout=5.0)
    assert frame is not None and frame.image.shape == (24, 32, 3)
    assert capture.stats().captured >= 11


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_ten_thousand_frames_in_flat_memory():
    source = open_source("test://shapes?width=32&height=24&fps=0")
    taken = []
    with CaptureThread(source, ring_size=16, ring_fps=None) as capture:

        def consume():
            index = -1
            while (frame := capture.wait_newer(index, timeout=5.0)) is not None:
                index = frame.index
                taken.append(index)
                if index >= 10_000:
                    return

        consumer = threading.Thread(target=consume)
        consumer.start()
        wait_for(lambda: capture.stats().captured >= 1_000, timeout=30.0)
        before = resident_bytes()
        wait_for(lambda: capture.stats().captured >= 10_000, timeout=60.0)
        after = resident_bytes()
        consumer.join(timeout=10.0)
        stats = capture.stats()
    assert after - before < 3 * 2**20, f"resident memory grew {(after - before) / 2**20:.1f} MB"
    assert stats.captured >= 10_000
    # Every frame was handed out once or counted as dropped, except perhaps the newest.
    assert stats.captured - 1 <= stats.dropped + len(set(taken)) <= stats.captured
    assert len(capture.frames_for_video(100, fps=1000.0)) <= 17
