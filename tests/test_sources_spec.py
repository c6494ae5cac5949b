"""SPEC parsing and its errors: every bad spec, missing device or bad URL is a one-line SourceError."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from nvila_edge.errors import SourceError
from nvila_edge.jetson.sources import open_source
from nvila_edge.jetson.sources.capture import ReconnectPolicy
from nvila_edge.jetson.sources.gstreamer import missing_gst_elements, opencv_backends
from nvila_edge.jetson.sources.spec import open_with_retries
from nvila_edge.jetson.sources.synthetic import ShapesSource


def open_error(spec: str, **options) -> str:
    with pytest.raises(SourceError) as caught:
        open_source(spec, **options)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("spec, expected", [
    ("", "empty source"),
    ("/dev/video97", "camera /dev/video97 not found; cameras here:"),
    ("97", "camera /dev/video97 not found"),
    ("no/such/clip.mp4", "no such file, folder or camera: 'no/such/clip.mp4'"),
    ("test://nothing", "the synthetic camera is test://shapes"),
    ("test://shapes?fsp=3", "unknown option 'fsp' for test://shapes (options: fps, height,"),
    ("test://shapes?fps=fast", "option fps='fast' for test://shapes must be a number"),
    ("test://shapes?width=4", "must be an integer >= 16"),
    ("ftp://host/video", "unknown source ftp://"),
    ("csi://front", "give its sensor number, e.g. csi://0"),
    ("videotestsrc ! fakesink", "must end in '! appsink'"),
])
def test_bad_spec(spec, expected):
    assert expected in open_error(spec)


def test_bad_keyword_option():
    assert "option loop='maybe' for image folders must be 1/0" in open_error(".", loop="maybe")


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    assert open_error(str(tmp_path)).startswith("no images (.png, .jpg")


def test_file_that_is_not_a_video(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"definitely not a video" * 100)
    message = open_error(str(fake))
    assert f"video file {fake}" in message and "not a video OpenCV can decode" in message


def refused_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_rtsp_camera_fails_fast_without_leaking_its_password():
    start = time.monotonic()
    message = open_error(f"rtsp://admin:hunter2@127.0.0.1:{refused_port()}/stream", timeout=5, attempts=1)
    assert time.monotonic() - start < 6
    assert "RTSP stream rtsp://admin:***@" in message and "hunter2" not in message and "gave up" not in message


def test_an_rtsp_stream_that_refuses_is_retried_with_back_off_then_given_up(caplog):
    url = f"rtsp://127.0.0.1:{refused_port()}/stream"
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        message = open_error(url, timeout=5, attempts=3)
    assert time.monotonic() - start >= 1.5  # waits of 0.5 s and 1 s between the three attempts
    assert message.startswith(f"cannot open RTSP stream {url}") and "; gave up after 3 attempts in " in message
    assert [r.getMessage() for r in caplog.records] == [
        f"RTSP stream {url}: not reachable yet; retrying 2 times with back-off (up to 1.5 s)"]


class LateSource(ShapesSource):
    """The synthetic camera, refusing its first two opens like a camera that is still booting."""

    refusals = 2

    def _open(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise SourceError("not up yet")
        super()._open()


def test_a_stream_that_comes_up_during_the_retries_opens():
    source = LateSource(width=64, height=48)
    source.start_attempts = 3
    open_with_retries(source, ReconnectPolicy(first_delay=0.01))
    try:
        assert source.opened and source.read() is not None
    finally:
        source.close()


@pytest.mark.skipif(not missing_gst_elements("nvarguscamerasrc"), reason="a Jetson: csi://0 may really exist")
def test_csi_camera_off_jetson():
    assert "needs Jetson's GStreamer elements" in open_error("csi://0")


@pytest.mark.skipif(opencv_backends()["GStreamer"], reason="this OpenCV runs GStreamer itself")
def test_pipeline_without_gstreamer_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gst-launch-1.0 to be found
    message = open_error("videotestsrc ! appsink")
    assert "pip's opencv-python never has it" in message and "--system-site-packages" in message
    assert "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good" in message
