"""`nvila-edge run` as a user runs it: the summary line and the pixel limit."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nvila_edge.runtime.world.scene import random_scene, render_scene


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A scene blown up to a phone photo's 4032x3024 (12 MP): far more pixels than the built-in model uses."""
    rgb = cv2.resize(render_scene(random_scene(np.random.default_rng(3))), (4032, 3024))
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


def run(export, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nvila_edge", "run", str(export), *args], capture_output=True,
                          text=True, env=env, check=False, timeout=300)


def test_a_large_photo_is_shrunk_first_with_a_note_and_the_summary_shows_preprocessing(builtin_cli_export, photo):
    done = run(builtin_cli_export, "--image", str(photo), "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    note, summary = done.stderr.strip().splitlines()
    assert note == (f"note: {photo} is 4032x3024; shrunk to 1182x886 first (this model uses at most 1.0 MP; "
                    "--strict refuses instead)")
    assert summary.startswith("preprocess ") and " | vision " in summary and " | TTFT " in summary
    assert "decode " in summary and "tok/s" in summary  # 4 tokens: 3 decode steps


def test_one_generated_token_prints_no_decode_rate(builtin_cli_export, photo):
    done = run(builtin_cli_export, "--image", str(photo), "--max-new-tokens", "1", "--strict")
    assert done.returncode == 1 and "above this model's limit of 1.0 MP" in done.stderr
    small = photo.with_name("small.png")
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(photo)), (320, 240)))
    done = run(builtin_cli_export, "--image", str(small), "--max-new-tokens", "1", "--strict")
    assert done.returncode == 0, done.stderr
    assert "| decode - |" in done.stderr and "tok/s" not in done.stderr and "note:" not in done.stderr
