"""Calibration data from the built-in world and from a user's folder (with files that are not images)."""

import logging

import cv2
import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.quantize.calibration import build_calibration, read_folder_images
from nvila_edge.runtime.world.scene import random_scene, render_scene


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture()
def photo_folder(tmp_path):
    rng = np.random.default_rng(3)
    for name, (w, h) in (("a.png", (120, 90)), ("sub/b.jpg", (64, 200))):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        assert cv2.imwrite(str(tmp_path / name), render_scene(random_scene(rng, width=w, height=h))[..., ::-1])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated JPEG" + bytes(range(40)))
    (tmp_path / "notes.txt").write_text("not an image\n")
    return tmp_path


def test_folder_skips_unreadable_files_with_one_warning(photo_folder, caplog):
    with caplog.at_level(logging.WARNING):
        images = read_folder_images(photo_folder, limit=10)
    assert [name for name, _ in images] == ["a.png", "sub/b.jpg"]
    assert images[0][1].shape == (90, 120, 3)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "broken.jpg" in warning and "notes.txt" in warning and "a.png" not in warning


def test_folder_calibration_uses_the_users_images(ckpt, photo_folder, caplog):
    with caplog.at_level(logging.WARNING):
        calibration = build_calibration(ckpt, photo_folder, size=8)
    size = ckpt.config.vision.image_size
    assert calibration.pixel_values.shape[1:] == (3, size, size)
    assert 2 <= len(calibration.pixel_values) <= 8  # at most 4 tiles per image
    assert calibration.inputs_embeds.shape[0] == 2
    assert calibration.inputs_embeds.shape[2] == ckpt.config.llm.hidden_size
    assert np.isfinite(calibration.inputs_embeds).all()
    assert str(photo_folder) in calibration.source


def test_folder_without_images_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing to see")
    with pytest.raises(InputError, match="no readable images"):
        read_folder_images(tmp_path, limit=4)
    with pytest.raises(InputError, match="no such calibration folder"):
        read_folder_images(tmp_path / "missing", limit=4)


def test_world_calibration_is_deterministic_prompts_plus_answers(ckpt):
    first = build_calibration(ckpt, None, size=3)
    again = build_calibration(ckpt, None, size=3)
    assert first.inputs_embeds.shape[0] == 3
    np.testing.assert_array_equal(first.inputs_embeds, again.inputs_embeds)
    np.testing.assert_array_equal(first.pixel_values, again.pixel_values)
    assert "built-in world" in first.source
