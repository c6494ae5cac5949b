"""GStreamer: what this machine has, the pipelines for Jetson cameras and RTSP, and the route that runs them.

Two routes run a pipeline ending in ``appsink``: OpenCV's own GStreamer backend when OpenCV was built with
it (JetPack's system OpenCV is; pip's opencv-python never is), otherwise a ``gst-launch-1.0`` child process
(real GStreamer, no Python bindings needed).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import cv2

from nvila_edge.errors import SourceError

from .base import Source
from .gst_launch import GstLaunchSource, appsink_tail
from .opencv import OpenCVSource

GSTREAMER_PACKAGES = "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
NO_GSTREAMER = (
    "GStreamer is not available: this OpenCV was built without it (pip's opencv-python never has it) and "
    "gst-launch-1.0 is not installed; on Jetson use JetPack's OpenCV (apt-get install python3-opencv, in a "
    f"venv made with --system-site-packages), or install GStreamer: apt-get install {GSTREAMER_PACKAGES}"
)
# Newest frame only: a slow reader gets the current picture, never a backlog.
APPSINK = "appsink drop=1 max-buffers=1"


@functools.cache
def opencv_backends() -> dict[str, bool]:
    """Video I/O backends compiled into this OpenCV, e.g. {"GStreamer": False, "FFMPEG": True}."""
    info = cv2.getBuildInformation()
    return {name: bool(re.search(rf"^\s*{name}:\s*YES", info, re.MULTILINE)) for name in ("GStreamer", "FFMPEG")}


def gstreamer_available() -> bool:
    return opencv_backends()["GStreamer"] or shutil.which("gst-launch-1.0") is not None


@functools.cache
def gst_element_exists(element: str) -> bool | None:
    """Whether a GStreamer element is installed; None when gst-inspect-1.0 is missing and nobody can tell."""
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        return None
    result = subprocess.run([inspect, "--exists", element], capture_output=True, check=False, timeout=30)
    return result.returncode == 0


def missing_gst_elements(*elements: str) -> list[str]:
    return [element for element in elements if gst_element_exists(element) is False]


def pipeline_source(pipeline: str, *, name: str, is_live: bool, timeout: float = 10.0) -> Source:
    """The source running ``pipeline`` (which ends in appsink) through the best route this machine has.

    ``timeout`` bounds the wait for the first frame and between frames (gst-launch route only).
    """
    appsink_tail(pipeline)
    if opencv_backends()["GStreamer"]:
        return OpenCVSource(pipeline, cv2.CAP_GSTREAMER, name=name, is_live=is_live,
                            fix_hint="run the pipeline with gst-launch-1.0 -v, appsink replaced by fakesink, "
                                     "to see GStreamer's error")
    if shutil.which("gst-launch-1.0"):
        return GstLaunchSource(pipeline, name=name, is_live=is_live, open_timeout=timeout, read_timeout=timeout)
    raise SourceError(NO_GSTREAMER)


def csi_pipeline(sensor_id: int, width: int, height: int, fps: int, flip: int) -> str:
    """Jetson CSI camera: the ISP (nvarguscamerasrc) -> NVMM -> nvvidconv to system memory -> BGR."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw,format=BGRx ! "
        f"videoconvert ! video/x-raw,format=BGR ! {APPSINK}"
    )


def rtsp_decoder(codec: str) -> str | None:
    """Jetson's hardware decoder when present, else libav's software one; None when neither is installed."""
    for decoder in ("nvv4l2decoder", f"avdec_{codec}"):
        if gst_element_exists(decoder) is not False:
            return decoder
    return None


def rtsp_pipeline(url: str, codec: str, decoder: str) -> str:
    """Low-latency RTSP: no jitter buffer delay, late packets dropped, no clock sync at the sink."""
    convert = "nvvidconv ! video/x-raw,format=BGRx ! " if decoder == "nvv4l2decoder" else ""
    return (
        f'rtspsrc location="{url}" latency=0 drop-on-latency=true ! '
        f"rtp{codec}depay ! {codec}parse ! {decoder} ! {convert}"
        f"videoconvert ! video/x-raw,format=BGR ! {APPSINK} sync=false"
    )


def v4l2_pipeline(device: str, width: int | None, height: int | None, fps: int | None, mjpeg: bool) -> str:
    """A V4L2 camera through GStreamer's v4l2src (``backend=gstreamer``), instead of OpenCV's own V4L2 reader."""
    fields = [f"width={width}" if width else "", f"height={height}" if height else "",
              f"framerate={fps}/1" if fps else ""]
    caps = ",".join(["image/jpeg" if mjpeg else "video/x-raw", *filter(None, fields)])
    decode = " ! jpegdec" if mjpeg else ""
    return f"v4l2src device={device} ! {caps}{decode} ! videoconvert ! video/x-raw,format=BGR ! {APPSINK}"
