"""Frame sampling on real video files written with OpenCV: each frame shows its own index."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.runtime.video import frame_indices, sample_frames

WIDTH, HEIGHT = 64, 48
BITS = 5  # frame i shows i in binary as white/black stripes (top), over a pure red band (bottom)


def painted(index: int) -> np.ndarray:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[:32, bit * 12:(bit + 1) * 12] = 255
    frame[32:, :, 2] = 255  # red in BGR
    return frame


def write_video(path, fourcc: str, frames: int = 30, fps: float = 10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc} to {path.suffix}")
    for i in range(frames):
        writer.write(painted(i))
    writer.release()
    return path


def index_of(rgb: np.ndarray) -> int:
    """The painted index of an RGB frame; stripes read by their centres, robust to lossy codecs."""
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    band = rgb[36:44].reshape(-1, 3).mean(axis=0)
    assert band[0] > 200 and band[2] < 60, "frames must be RGB (the red band is channel 0)"
    stripes = [rgb[4:28, bit * 12 + 3:bit * 12 + 9].mean() > 128 for bit in range(BITS)]
    return sum(1 << bit for bit, on in enumerate(stripes) if on)


@pytest.fixture(scope="module", params=[("MJPG", ".avi"), ("mp4v", ".mp4")])
def video(request, tmp_path_factory):
    fourcc, suffix = request.param
    return write_video(tmp_path_factory.mktemp("video") / f"clip{suffix}", fourcc)


def test_uniform_sampling_spans_first_to_last(video):
    frames = sample_frames(video, 8)
    expected = [int(i) for i in np.round(np.linspace(0, 29, 8))]
    assert expected == [0, 4, 8, 12, 17, 21, 25, 29]
    assert [index_of(f) for f in frames] == expected


def test_more_frames_than_the_video_has_is_refused_with_the_count(video):
    with pytest.raises(InputError, match="30 frame.s., fewer than the 40 asked for; ask for 30 or fewer"):
        sample_frames(video, 40)


def test_fps_sampling_takes_timestamps_from_the_start(video):
    # 30 frames at 10 fps = 3 s; 2 fps -> t = 0, 0.5, 1.0, 1.5, 2.0, 2.5 s -> frames 0, 5, ..., 25
    assert [index_of(f) for f in sample_frames(video, 100, fps=2.0)] == [0, 5, 10, 15, 20, 25]
    assert [index_of(f) for f in sample_frames(video, 3, fps=2.0)] == [0, 5, 10]


def test_truncated_video_uses_the_last_readable_frame(tmp_path):
    full = write_video(tmp_path / "full.avi", "MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.8)])  # the header still claims 30 frames
    capture = cv2.VideoCapture(str(cut))
    claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    readable = 0
    while capture.read()[0]:
        readable += 1
    capture.release()
    assert 1 < readable < claimed == 30
    frames = sample_frames(cut, 5)
    assert [index_of(f) for f in frames] == frame_indices(readable, 5)
    assert index_of(frames[-1]) == readable - 1


def test_folder_of_frames_is_its_images_sorted_by_name_other_files_skipped_with_a_warning(tmp_path, caplog):
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), painted(i))
    (tmp_path / ".hidden").write_text("not a frame")
    (tmp_path / "notes.txt").write_text("not a frame either")
    (tmp_path / "frame_999.JPG").write_bytes(cv2.imencode(".jpg", painted(12))[1].tobytes())
    frames = sample_frames(tmp_path, 4)
    assert [index_of(f) for f in frames] == [0, 4, 8, 12]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{tmp_path}: skipped 1 file(s) that are not images (notes.txt)"]
    with pytest.raises(InputError, match="13 frame.s., fewer than the 14 asked for"):
        sample_frames(tmp_path, 14)


def test_unreadable_inputs_raise_input_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(InputError, match="notes.mp4"):
        sample_frames(text, 8)
    with pytest.raises(InputError, match="missing.mp4"):
        sample_frames(tmp_path / "missing.mp4", 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty"):
        sample_frames(empty, 8)
    with pytest.raises(InputError):
        sample_frames(text, 0)
