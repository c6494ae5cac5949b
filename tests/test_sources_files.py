"""File-backed and synthetic sources: video files, image folders, test://shapes."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest

from nvila_edge.errors import SourceError
from nvila_edge.jetson.sources import make_source, open_source
from nvila_edge.runtime.world.clip import clip_frame, random_clip

FILE_FPS = 25.0


def level(index: int) -> int:
    """The grey level frame ``index`` is painted with: far enough apart to survive JPEG compression."""
    return 10 + 20 * index


def read_all(source, limit: int = 1000) -> list:
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FILE_FPS, (64, 48))
    assert writer.isOpened()
    for i in range(10):
        image = np.full((48, 64, 3), level(i), np.uint8)
        image[:, :8] = (255, 0, 0)  # a blue bar on the left: catches RGB/BGR mix-ups
        writer.write(image)
    writer.release()
    return path


def write_images(folder, count: int):
    folder.mkdir(exist_ok=True)
    for i in reversed(range(count)):  # written out of order: the source must sort by name
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), np.full((24, 32, 3), level(i), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_video_file_frames_in_order(video_file):
    with open_source(str(video_file)) as source:
        assert not source.is_live and source.fps == pytest.approx(FILE_FPS)
        frames = read_all(source)
    assert [f.index for f in frames] == list(range(10))
    for i, frame in enumerate(frames):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert abs(float(frame.image[:, 16:].mean()) - level(i)) < 4
        assert tuple(frame.image[24, 2]) == pytest.approx((255, 0, 0), abs=12)  # BGR order
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(frames))


def test_video_file_loops_and_paces(video_file):
    with open_source(f"{video_file}?loop=1&pace=1") as source:
        start = time.monotonic()
        frames = [source.read() for _ in range(13)]
        elapsed = time.monotonic() - start
    levels = [round((f.image[:, 16:].mean() - 10) / 20) for f in frames]
    assert levels == list(range(10)) + [0, 1, 2]
    assert [f.index for f in frames] == list(range(13))
    assert elapsed >= 12 / FILE_FPS * 0.9  # 12 intervals at the file's 25 fps


def test_image_folder_sorted_once_then_ends(tmp_path):
    folder = write_images(tmp_path / "images", 5)
    with open_source(str(folder), fps=0) as source:
        frames = read_all(source)
        assert source.read() is None
    assert [round((f.image.mean() - 10) / 20) for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.image.shape == (24, 32, 3) for f in frames)


def test_image_folder_loops_at_its_fps(tmp_path):
    folder = write_images(tmp_path / "images", 3)
    with open_source(f"{folder}?fps=40&loop=true") as source:
        start = time.monotonic()
        frames = [source.read() for _ in range(9)]
        elapsed = time.monotonic() - start
    assert [round((f.image.mean() - 10) / 20) for f in frames] == [0, 1, 2] * 3
    assert elapsed >= 8 / 40 * 0.9


def test_shapes_camera_renders_the_world_in_bgr():
    with open_source("test://shapes?width=160&height=120&fps=0&seed=3", speed=10.0) as source:
        assert source.is_live
        first = source.read()
        time.sleep(0.15)  # 1.5 clip frames at speed 10: every moving shape has moved
        later = source.read()
    expected = clip_frame(random_clip(np.random.default_rng(3), width=160, height=120), 0.0)
    assert first.image.shape == (120, 160, 3) and first.image.dtype == np.uint8
    np.testing.assert_array_equal(first.image, expected[..., ::-1])
    assert later.index == 1 and not np.array_equal(later.image, first.image)


def test_shapes_camera_changes_scene_and_paces():
    with open_source("test://shapes?width=64&height=48&fps=50&seed=1&scene_seconds=0.1") as source:
        first_clip = source.clip
        start = time.monotonic()
        for _ in range(11):
            source.read()
        elapsed = time.monotonic() - start
        assert source.clip is not first_clip
    assert elapsed >= 10 / 50 * 0.9


def test_query_string_overrides_keyword_options_and_none_is_not_given():
    with open_source("test://shapes?width=40&height=30&fps=0", width=100, height=80, seed=None) as source:
        assert source.read().image.shape == (30, 40, 3)
        assert source.seed == 0


def test_read_before_open_is_an_error(tmp_path):
    source = make_source(str(write_images(tmp_path / "images", 1)))
    with pytest.raises(SourceError, match="not open"):
        source.read()
