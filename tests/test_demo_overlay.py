"""The demo's overlay drawing and its window / GUI detection."""

import importlib.metadata

import cv2
import numpy as np
import pytest

from nvila_edge.errors import UnsupportedError
from nvila_edge.jetson.demo import display
from nvila_edge.jetson.demo.overlay import OverlayState, OverlayView, TextStyle, draw_overlay, wrap_text
from nvila_edge.runtime.world.clip import clip_frame, random_clip


def shapes_frame(width=640, height=480, seed=0) -> np.ndarray:
    clip = random_clip(np.random.default_rng(seed), width=width, height=height)
    return cv2.cvtColor(clip_frame(clip, 0), cv2.COLOR_RGB2BGR)


def band_rows(image: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Rows where the overlay changed any pixel."""
    return np.flatnonzero((image != drawn).any(axis=(1, 2)))


def test_answer_band_at_the_bottom_leaves_the_picture_above_untouched():
    image = shapes_frame()
    drawn = draw_overlay(image, OverlayView("Describe the image.", "a red circle", "", "running"))
    rows = band_rows(image, drawn)
    assert rows.size and rows.min() > image.shape[0] // 2  # only a bottom band: no status band yet
    assert np.array_equal(drawn[: rows.min()], image[: rows.min()])
    band = slice(rows.min(), None)
    assert drawn[band].astype(int).mean() < image[band].astype(int).mean()  # darkened under the text
    assert (drawn[band] >= 250).all(axis=2).sum() > 100  # white text drawn into it
    assert drawn is not image and np.array_equal(image, shapes_frame())  # the frame itself is not modified


def test_status_band_appears_with_timings_and_warns_about_a_lost_source():
    image = shapes_frame()
    stats = "#3 age 40 ms | TTFT 85 ms | 25.1 tok/s | dropped 4"
    running = draw_overlay(image, OverlayView("Q", "a", stats, "running"))
    lost = draw_overlay(image, OverlayView("Q", "a", stats, "reconnecting (attempt 2, next in 1.0 s)"))
    assert band_rows(image, running).min() == 0
    rows = band_rows(image, lost)
    top = slice(0, int(rows[np.flatnonzero(np.diff(rows) > 1)[0]]) + 1)  # the band that starts at row 0

    def orange(drawn):  # the warning colour, BGR (0, 200, 255)
        return ((drawn[top, :, 2] > 200) & (drawn[top, :, 1] > 150) & (drawn[top, :, 0] < 80)).sum()

    assert orange(lost) > 50 and orange(running) == 0


def test_long_answers_wrap_within_the_frame_and_keep_the_newest_lines():
    style = TextStyle.for_width(320)
    words = " ".join(f"word{i}" for i in range(60))
    lines = wrap_text(words, style, 300)
    assert len(lines) > 3 and " ".join(lines) == words
    assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, style.scale, style.thickness)[0][0] <= 300
               for line in lines)
    assert all(len(piece) < 60 for piece in wrap_text("x" * 200, style, 300))  # an unbreakable word is cut
    image = shapes_frame(320, 240)
    drawn = draw_overlay(image, OverlayView("Q", words, "", "running"))
    assert band_rows(image, drawn).min() > image.shape[0] // 3  # at most question + 3 answer lines


def test_overlay_state_streams_pieces_into_views():
    state = OverlayState("Describe the image.")
    state.begin_answer("What moves?")
    for piece in ("the red", " circle", " moves left"):
        state.append(piece)
    state.set_source_status("running")
    state.end_answer("#1 age 5 ms")
    assert state.view() == OverlayView("What moves?", "the red circle moves left", "#1 age 5 ms", "running")
    state.begin_answer("What moves?")
    assert state.view().answer == "" and state.view().stats == "#1 age 5 ms"


@pytest.mark.parametrize("info, expected", [
    ("  GUI:                           NONE\n    VTK support:  NO\n", False),
    ("  GUI:                           GTK3\n    GTK+:                        YES (ver 3.24.33)\n", True),
    ("  GUI: \n    GTK+:                        YES (ver 3.24.20)\n      VTK support: NO\n", True),
    ("  GUI: \n    QT:                          YES (ver 5.15.3 )\n", True),
    ("  GUI: \n    VTK support:                 NO\n\n  Media I/O: \n", False),
])
def test_gui_detection_from_build_information(info, expected):
    assert display.parse_opencv_gui(info) is expected


def test_pip_headless_opencv_is_detected_as_having_no_gui():
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    if "opencv-python-headless" not in installed or installed & {"opencv-python", "opencv-contrib-python"}:
        pytest.skip("this check is for pip's opencv-python-headless wheel alone")
    assert display.opencv_has_gui() is False


def test_display_choice(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display.choose_display(None) is False and display.choose_display(False) is False
    monkeypatch.setattr(display, "opencv_has_gui", lambda: True)
    with pytest.raises(UnsupportedError, match="needs a screen.*--headless"):
        display.choose_display(True)
    monkeypatch.setenv("DISPLAY", ":0")
    assert display.choose_display(None) is True and display.choose_display(True) is True
    monkeypatch.setattr(display, "opencv_has_gui", lambda: False)
    assert display.choose_display(None) is False
    with pytest.raises(UnsupportedError, match="pip install opencv-python"):
        display.choose_display(True)
