"""The scene-change gate: a prompt or alert is not asked again while the picture has not changed since its
last answer. A frame is reduced to a small grey thumbnail; the scene changed when the mean absolute
difference to the thumbnail of the last answered frame reaches the threshold (grey levels, 0-255)."""

from __future__ import annotations

import cv2
import numpy as np

THUMB_SIZE = (32, 24)  # (width, height): coarse enough to ignore sensor noise, fine enough for a moved object


def thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.int16)


def scene_changed(previous: np.ndarray | None, current: np.ndarray, threshold: float) -> bool:
    if threshold <= 0 or previous is None:
        return True
    return float(np.abs(current - previous).mean()) >= threshold
