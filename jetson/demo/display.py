"""``--display``: an OpenCV window, when this OpenCV can open one and there is a screen to open it on."""

from __future__ import annotations

import os
import re

import cv2
import numpy as np

from nvila_edge.errors import UnsupportedError

WINDOW = "nvila-edge demo"
QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q or Esc
NO_GUI = ("--display needs an OpenCV built with a GUI, and this one has none (pip's opencv-python-headless never "
          "has): pip uninstall -y opencv-python-headless && pip install opencv-python, or on a Jetson use "
          "JetPack's OpenCV (jetson/install.sh keeps it); or run --headless, with --record OUT.mp4 to watch later")
NO_SCREEN = ("--display needs a screen, but neither DISPLAY nor WAYLAND_DISPLAY is set (over SSH use ssh -X, or "
             "export DISPLAY=:0 for the Jetson's own monitor); or run --headless, with --record OUT.mp4")


def parse_opencv_gui(build_information: str) -> bool:
    """Whether ``cv2.getBuildInformation()`` names a GUI backend (``GUI: GTK3``; ``GUI: NONE`` when headless).

    Older builds print an empty ``GUI:`` heading followed by one line per backend (``GTK+: YES (ver 3.24)``).
    """
    heading = re.search(r"^\s*GUI:[ \t]*(\S*)", build_information, re.MULTILINE)
    if heading and heading.group(1):
        return heading.group(1).upper() != "NONE"
    backends = r"^\s*(GTK\+?\s*\d*|QT\s*\d*|Win32 UI|Cocoa|Wayland)\s*:\s*YES"
    return re.search(backends, build_information, re.MULTILINE | re.IGNORECASE) is not None


def opencv_has_gui() -> bool:
    return parse_opencv_gui(cv2.getBuildInformation())


def screen_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def choose_display(requested: bool | None) -> bool:
    """--display (True) must work or fail now; --headless (False) never shows; unset shows when it can."""
    if requested is False:
        return False
    if requested is None:
        return screen_available() and opencv_has_gui()
    if not opencv_has_gui():
        raise UnsupportedError(NO_GUI)
    if not screen_available():
        raise UnsupportedError(NO_SCREEN)
    return True


class Window:
    def __init__(self) -> None:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray) -> bool:
        """Show a frame; False once the user pressed q / Esc or closed the window."""
        cv2.imshow(WINDOW, image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
        return key not in QUIT_KEYS and not closed

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)
        cv2.waitKey(1)
