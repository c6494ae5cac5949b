"""Video sources for the camera demo and the capture thread that keeps the newest frame.

    with open_source("test://shapes?fps=15") as source, CaptureThread(source) as capture:
        frame = capture.wait_newer(-1, timeout=5)      # Frame(image BGR uint8 HxWx3, timestamp, index)
        clip = capture.frames_for_video(8, fps=2)    # the last 8 frames, 0.5 s apart, newest last
"""

from .base import Frame, Source
from .capture import CaptureStats, CaptureThread, ReconnectPolicy
from .spec import SPEC_HELP, make_source, open_source

__all__ = ["CaptureStats", "CaptureThread", "Frame", "ReconnectPolicy", "SPEC_HELP", "Source", "make_source",
           "open_source"]
