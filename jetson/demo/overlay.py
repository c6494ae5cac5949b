"""The overlay: the answer streaming at the bottom of the picture, timings and the source's state on top.

The model thread writes into an ``OverlayState`` token by token; whoever shows or records frames takes an
``OverlayView`` of it for each frame and draws it with ``draw_overlay``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BAND_DIM = 0.35  # the picture under text bands keeps this fraction of its brightness
TEXT = (255, 255, 255)  # BGR
WARNING = (0, 200, 255)
MAX_ANSWER_LINES = 3


@dataclass(frozen=True)
class OverlayView:
    question: str
    answer: str  # the text so far, "" before the first token
    stats: str  # the previous answer's timings, "" before the first answer
    source_status: str  # "running", "reconnecting (attempt 2, next in 1.0 s)", ...


class OverlayState:
    """Thread-safe: the model thread begins, appends to and ends answers; the display thread takes views."""

    def __init__(self, question: str):
        self._lock = threading.Lock()
        self._question = question
        self._answer = ""
        self._stats = ""
        self._status = "starting"

    def begin_answer(self, question: str) -> None:
        with self._lock:
            self._question, self._answer = question, ""

    def append(self, piece: str) -> None:
        with self._lock:
            self._answer += piece

    def end_answer(self, stats: str) -> None:
        with self._lock:
            self._stats = stats

    def set_source_status(self, status: str) -> None:
        with self._lock:
            self._status = status

    def view(self) -> OverlayView:
        with self._lock:
            return OverlayView(self._question, self._answer, self._stats, self._status)


@dataclass(frozen=True)
class TextStyle:
    scale: float
    thickness: int
    line_height: int
    margin: int

    @classmethod
    def for_width(cls, width: int) -> TextStyle:
        scale = max(0.35, width / 1280)
        thickness = 1 if scale < 0.8 else 2
        (_, height), baseline = cv2.getTextSize("Ag", FONT, scale, thickness)
        return cls(scale, thickness, int((height + baseline) * 1.5), max(4, width // 80))


def wrap_text(text: str, style: TextStyle, width: int) -> list[str]:
    """Words -> lines that fit ``width`` pixels; a word longer than a line is cut."""
    lines: list[str] = []
    line = ""
    for word in " ".join(text.split()).split(" "):
        candidate = f"{line} {word}" if line else word
        if _text_width(candidate, style) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
        while _text_width(line, style) > width and len(line) > 1:
            cut = _fitting_prefix(line, style, width)
            lines.append(line[:cut])
            line = line[cut:]
    if line:
        lines.append(line)
    return lines


def _text_width(text: str, style: TextStyle) -> int:
    return cv2.getTextSize(text, FONT, style.scale, style.thickness)[0][0]


def _fitting_prefix(text: str, style: TextStyle, width: int) -> int:
    cut = len(text) - 1
    while cut > 1 and _text_width(text[:cut], style) > width:
        cut -= 1
    return cut


def draw_overlay(image: np.ndarray, view: OverlayView) -> np.ndarray:
    """A copy of the BGR frame with the status band on top and the question and answer band at the bottom."""
    out = image.copy()
    height, width = out.shape[:2]
    style = TextStyle.for_width(width)
    text_width = width - 2 * style.margin
    status_warning = view.source_status != "running"
    top = [f"source {view.source_status}"] if status_warning else []
    top += wrap_text(view.stats, style, text_width)[:2] if view.stats else []
    answer = wrap_text(view.answer or "...", style, text_width)[-MAX_ANSWER_LINES:]
    bottom = wrap_text(f"Q: {view.question}", style, text_width)[:1] + answer
    if top:
        colors = [WARNING if status_warning and i == 0 else TEXT for i in range(len(top))]
        _text_band(out, top, colors, style, y0=0)
    band = len(bottom) * style.line_height + style.margin
    _text_band(out, bottom, [TEXT] * len(bottom), style, y0=max(0, height - band))
    return out


def _text_band(out: np.ndarray, lines: list[str], colors: list[tuple[int, int, int]], style: TextStyle,
               y0: int) -> None:
    """Darken a full-width band from row ``y0`` and write ``lines`` into it."""
    y1 = min(out.shape[0], y0 + len(lines) * style.line_height + style.margin)
    region = out[y0:y1]
    region[:] = (region.astype(np.float32) * BAND_DIM).astype(np.uint8)
    for i, (line, color) in enumerate(zip(lines, colors)):
        baseline = y0 + (i + 1) * style.line_height - style.line_height // 4
        cv2.putText(out, line, (style.margin, baseline), FONT, style.scale, color, style.thickness, cv2.LINE_AA)
