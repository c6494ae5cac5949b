"""Real GStreamer pipelines through every route this machine has (gst-launch-1.0 child, OpenCV's backend)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from nvila_edge.errors import SourceError
from nvila_edge.jetson.sources import open_source
from nvila_edge.jetson.sources.gst_launch import GstLaunchSource, fdsink_pipeline
from nvila_edge.jetson.sources.gstreamer import gstreamer_available, opencv_backends
from nvila_edge.jetson.sources.opencv import OpenCVSource

needs_gstreamer = pytest.mark.skipif(not gstreamer_available(), reason="no GStreamer: apt-get install "
                                     "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good")

# Solid ARGB 0xff204080 in BGR: every pixel (0x80, 0x40, 0x20). Width 30 makes GStreamer pad each
# 90-byte BGR row to 92 bytes, which a reader must strip.
SOLID = "videotestsrc pattern=solid-color foreground-color=0xff204080 num-buffers={n}"
CAPS = "video/x-raw,format=BGR,width=30,height=10,framerate=30/1"


def route(name: str, pipeline: str):
    if name == "gst-launch":
        if shutil.which("gst-launch-1.0") is None:
            pytest.skip("gst-launch-1.0 not installed")
        return GstLaunchSource(pipeline, name="test pipeline", is_live=False)
    if not opencv_backends()["GStreamer"]:
        pytest.skip("this OpenCV has no GStreamer backend (pip's never has)")
    return OpenCVSource(pipeline, cv2.CAP_GSTREAMER, name="test pipeline", is_live=False)


@pytest.mark.parametrize("name", ["gst-launch", "opencv"])
def test_videotestsrc_frames(name):
    with route(name, f"{SOLID.format(n=7)} ! {CAPS} ! videoconvert ! appsink sync=false") as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.fps == pytest.approx(30.0)
    assert [f.index for f in frames] == list(range(7))
    for frame in frames:
        assert frame.image.shape == (10, 30, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags["C_CONTIGUOUS"]
        assert (frame.image == np.array([0x80, 0x40, 0x20], np.uint8)).all()


@needs_gstreamer
def test_spec_with_pipeline_uses_an_available_route():
    with open_source("videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! appsink") as source:
        first = source.read()
        assert first.image.shape == (48, 64, 3)
        assert source.read() is not None and source.read() is not None
        assert source.read() is None


def test_appsink_tail_becomes_fdsink():
    newest_only = fdsink_pipeline("v4l2src ! videoconvert ! appsink drop=1 max-buffers=1", fd=9)
    assert newest_only.startswith("v4l2src ! videoconvert ! videoconvert ! video/x-raw,format=BGR ! ")
    assert "queue leaky=downstream max-size-buffers=1 ! fdsink" in newest_only
    assert newest_only.endswith("fd=9 sync=true")
    every_frame = fdsink_pipeline("videotestsrc ! appsink sync=false", fd=5)
    assert "queue" not in every_frame and every_frame.endswith("fd=5 sync=false")
    with pytest.raises(SourceError, match="must end in '! appsink'"):
        fdsink_pipeline("videotestsrc ! fakesink", fd=5)


@needs_gstreamer
def test_broken_pipeline_reports_gstreamer_reason():
    with pytest.raises(SourceError, match='no element "nosuchelement"') as caught:
        open_source("videotestsrc ! nosuchelement ! appsink")
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="gst-launch-1.0 not installed")
def test_runtime_error_names_element(tmp_path):
    missing = tmp_path / "gone_%03d.png"
    with pytest.raises(SourceError, match=r"multifilesrc0: .*gone_000\.png") as caught:
        open_source(f"multifilesrc location={missing} ! pngdec ! appsink")
    assert "\n" not in str(caught.value)
