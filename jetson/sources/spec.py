"""SPEC strings -> sources: the one place that knows what ``0``, ``/dev/video0``, ``csi://0``, ``rtsp://...``,
``test://shapes``, a video file, an image folder or a GStreamer pipeline mean."""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from pathlib import Path

import cv2

from nvila_edge.errors import SourceError

from .base import Source
from .capture import ReconnectPolicy
from .folder import ImageFolderSource
from .gstreamer import (
    NO_GSTREAMER,
    csi_pipeline,
    gstreamer_available,
    missing_gst_elements,
    opencv_backends,
    pipeline_source,
    rtsp_decoder,
    rtsp_pipeline,
    v4l2_pipeline,
)
from .opencv import OpenCVSource
from .options import SourceOptions
from .synthetic import ShapesSource

log = logging.getLogger(__name__)

SPEC_HELP = ("a camera index or /dev/videoN, csi://N, rtsp://..., test://shapes, a video file, an image "
             "folder, or a GStreamer pipeline ending in appsink")


def open_source(spec: str, **options) -> Source:
    """Open the source SPEC names; SourceError (one line) when it cannot deliver frames.

    Options come as keyword arguments (None = not given) and/or in the SPEC's query string, which wins:
    ``test://shapes?width=320&fps=5``, ``/dev/video0?width=1280&height=720``, ``clip.mp4?loop=1&pace=1``.
    An RTSP URL's query string belongs to the camera, so RTSP options are keyword arguments only. An
    option that does not apply to the source is an error naming those that do.
    """
    source = make_source(spec, **options)
    open_with_retries(source)
    return source


def open_with_retries(source: Source, policy: ReconnectPolicy | None = None) -> None:
    """Open, retrying a network stream with back-off up to ``source.start_attempts`` times (a camera that is
    still booting, a server that restarts); the first failure says so once, the last is the error."""
    policy = policy or ReconnectPolicy()
    started = time.monotonic()
    for attempt in range(1, source.start_attempts + 1):
        try:
            source.open()
            return
        except SourceError as err:
            if attempt == source.start_attempts:
                if attempt == 1:
                    raise
                raise SourceError(f"{err}; gave up after {attempt} attempts in "
                                  f"{time.monotonic() - started:.1f} s") from None
            if attempt == 1:
                wait = sum(policy.delay(a) for a in range(1, source.start_attempts))
                log.warning("%s: not reachable yet; retrying %d times with back-off (up to %.1f s)", source.name,
                            source.start_attempts - 1, wait)
            time.sleep(policy.delay(attempt))


def make_source(spec: str, **options) -> Source:
    """The source SPEC names, not yet opened."""
    text = spec.strip()
    if not text:
        raise SourceError(f"empty source: give {SPEC_HELP}")
    if "!" in text:
        return _pipeline(text, options)
    scheme, separator, rest = text.partition("://")
    if separator:
        scheme = scheme.lower()
        if scheme == "test":
            return _test(rest, options)
        if scheme == "csi":
            return _csi(rest, options)
        if scheme in ("rtsp", "rtsps"):
            return _rtsp(text, options)
        raise SourceError(f"unknown source {scheme}://: give {SPEC_HELP}")
    path, _, query = text.partition("?")
    if Path(text).exists():  # a file whose name really contains '?'
        path, query = text, ""
    if path.isdigit() or path.startswith("/dev/video"):
        return _camera(f"/dev/video{path}" if path.isdigit() else path, query, options)
    location = Path(path).expanduser()
    if location.is_dir():
        return _folder(location, query, options)
    if location.is_file():
        return _video_file(location, query, options)
    raise SourceError(f"no such file, folder or camera: {path!r} (give {SPEC_HELP})")


def _pipeline(pipeline: str, options: dict) -> Source:
    opts = SourceOptions("a GStreamer pipeline", options)
    live = opts.flag("live", True)  # a pipeline is usually a camera or stream: reconnect it when lost
    timeout = opts.number("timeout", 10.0, minimum=0.1)
    opts.reject_unknown()
    first_element = pipeline.split("!")[0].strip()
    return pipeline_source(pipeline, name=f"GStreamer pipeline '{first_element} ! ...'", is_live=live,
                           timeout=timeout)


def _test(rest: str, options: dict) -> Source:
    kind, _, query = rest.partition("?")
    if kind != "shapes":
        raise SourceError(f"unknown test source test://{kind}: the synthetic camera is test://shapes")
    opts = SourceOptions.with_query("test://shapes", query, options)
    source = ShapesSource(width=opts.integer("width", 640, minimum=16),
                          height=opts.integer("height", 480, minimum=16),
                          fps=opts.number("fps", 15.0),
                          seed=opts.integer("seed", 0),
                          speed=opts.number("speed", 2.0),
                          scene_seconds=opts.number("scene_seconds", 20.0))
    opts.reject_unknown()
    return source


def _csi(rest: str, options: dict) -> Source:
    sensor, _, query = rest.partition("?")
    if not sensor.isdigit():
        raise SourceError(f"csi://{sensor} is not a CSI camera: give its sensor number, e.g. csi://0")
    opts = SourceOptions.with_query("csi:// cameras", query, options)
    pipeline = csi_pipeline(int(sensor), width=opts.integer("width", 1280, minimum=16),
                            height=opts.integer("height", 720, minimum=16), fps=opts.integer("fps", 30, minimum=1),
                            flip=opts.integer("flip", 0))
    opts.reject_unknown()
    if not gstreamer_available():
        raise SourceError(NO_GSTREAMER)
    missing = missing_gst_elements("nvarguscamerasrc", "nvvidconv")
    if missing:
        raise SourceError(f"csi://{sensor} needs Jetson's GStreamer elements ({', '.join(missing)} missing): "
                          "run on a Jetson with JetPack, or use a USB camera as 0 or /dev/video0")
    return pipeline_source(pipeline, name=f"CSI camera {sensor}", is_live=True)


def _rtsp(url: str, options: dict) -> Source:
    opts = SourceOptions("RTSP streams", options)
    codec = opts.choice("codec", ("h264", "h265"), "h264")
    timeout = opts.number("timeout", 10.0, minimum=0.1)
    attempts = opts.integer("attempts", 5, minimum=1)  # at start-up; 5 = back-off of 0.5 + 1 + 2 + 4 s
    opts.reject_unknown()
    source = _rtsp_source(url, codec, timeout)
    source.start_attempts = attempts
    return source


def _rtsp_source(url: str, codec: str, timeout: float) -> Source:
    name = f"RTSP stream {_without_password(url)}"
    if gstreamer_available():
        decoder = rtsp_decoder(codec)
        if decoder and not missing_gst_elements("rtspsrc", f"rtp{codec}depay", f"{codec}parse"):
            return pipeline_source(rtsp_pipeline(url, codec, decoder), name=name, is_live=True, timeout=timeout)
    if opencv_backends()["FFMPEG"]:
        milliseconds = int(timeout * 1000)
        # FFmpeg and OpenCV print their own lines for every failed connection; the error says it once
        # (a user's own settings of these variables win).
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        if "OPENCV_LOG_LEVEL" not in os.environ:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        return OpenCVSource(url, cv2.CAP_FFMPEG, name=name, is_live=True,
                            open_params=[cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds,
                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds],
                            settings={cv2.CAP_PROP_BUFFERSIZE: 1},
                            # FFmpeg buffers RTSP input by default, which shows the camera seconds late.
                            ffmpeg_options="fflags;nobuffer|flags;low_delay",
                            fix_hint="check the URL, that the camera is reachable, and its user and password")
    raise SourceError(f"cannot decode RTSP here: GStreamer lacks rtspsrc/{codec} elements (install "
                      "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav) and this OpenCV "
                      "has no FFmpeg")


def _without_password(url: str) -> str:
    """The URL as it may appear in logs and messages: rtsp://user:***@host/..."""
    return re.sub(r"^(\w+://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _camera(device: str, query: str, options: dict) -> Source:
    opts = SourceOptions.with_query("cameras", query, options)
    width = opts.integer("width", None, minimum=16)
    height = opts.integer("height", None, minimum=16)
    fps = opts.integer("fps", None, minimum=1)
    fourcc = (opts.text("fourcc", None) or "").upper()
    backend = opts.choice("backend", ("opencv", "gstreamer"), "opencv")
    opts.reject_unknown()
    if not Path(device).exists():
        present = sorted(glob.glob("/dev/video*"))
        where = ", ".join(present) if present else "none (a container needs --device /dev/video0)"
        raise SourceError(f"camera {device} not found; cameras here: {where}")
    if fourcc and len(fourcc) != 4:
        raise SourceError(f"option fourcc={fourcc!r} for cameras must be 4 characters, e.g. MJPG or YUYV")
    if backend == "gstreamer":
        if fourcc not in ("", "MJPG"):
            raise SourceError(f"fourcc={fourcc} is not supported with backend=gstreamer (only MJPG)")
        return pipeline_source(v4l2_pipeline(device, width, height, fps, mjpeg=fourcc == "MJPG"),
                               name=f"camera {device}", is_live=True)
    settings: dict[int, float] = {}
    if fourcc:  # before the size: a camera offers different sizes per pixel format
        settings[cv2.CAP_PROP_FOURCC] = cv2.VideoWriter_fourcc(*fourcc)
    if width:
        settings[cv2.CAP_PROP_FRAME_WIDTH] = width
    if height:
        settings[cv2.CAP_PROP_FRAME_HEIGHT] = height
    if fps:
        settings[cv2.CAP_PROP_FPS] = fps
    settings[cv2.CAP_PROP_BUFFERSIZE] = 1  # fewer queued driver buffers = a fresher newest frame
    return OpenCVSource(device, cv2.CAP_V4L2, name=f"camera {device}", is_live=True, settings=settings,
                        fix_hint="busy in another program, or not a capture device; see v4l2-ctl --list-devices")


def _folder(folder: Path, query: str, options: dict) -> Source:
    opts = SourceOptions.with_query("image folders", query, options)
    source = ImageFolderSource(folder, fps=opts.number("fps", 5.0), loop=opts.flag("loop", False))
    opts.reject_unknown()
    return source


def _video_file(path: Path, query: str, options: dict) -> Source:
    opts = SourceOptions.with_query("video files", query, options)
    loop = opts.flag("loop", False)
    pace = opts.flag("pace", False)  # deliver at the file's own fps, like a camera
    opts.reject_unknown()
    return OpenCVSource(str(path), cv2.CAP_ANY, name=f"video file {path}", is_live=False, loop=loop, pace=pace,
                        fix_hint="not a video OpenCV can decode; check it plays in ffplay or convert it to .mp4")
