"""What the CLI prints, as a user runs it: run's summary line and pixel limit, eval's table or JSON, progress
bars only on a terminal, --quiet."""

from __future__ import annotations

import json
import os
import pty
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


def cli(*args, stdout=subprocess.PIPE, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "nvila_edge", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, check=False, timeout=300)


def run(export, *args) -> subprocess.CompletedProcess:
    return cli("run", export, *args)


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


def test_eval_prints_json_when_piped_and_a_table_on_a_terminal(builtin_cli_export):
    piped = cli("eval", builtin_cli_export, "--n", "3")
    assert piped.returncode == 0, piped.stderr
    report = json.loads(piped.stdout)
    assert report["n"] == 3 and set(report["families"]) and "\r" not in piped.stderr  # no bar frames in a pipe
    leader, follower = pty.openpty()
    try:
        shown = cli("eval", builtin_cli_export, "--n", "3", stdout=follower)
        os.close(follower)
        text = read_all(leader)
    finally:
        os.close(leader)
    assert shown.returncode == 0, shown.stderr
    lines = text.splitlines()
    assert lines[1].split() == ["family", "accuracy"] and lines[-1].split()[0] in ("overall", "wrong:")
    assert [line.split()[0] for line in lines[2:2 + len(report["families"])]] == list(report["families"])
    forced = cli("eval", builtin_cli_export, "--n", "3", "--json", stdout=subprocess.PIPE)
    assert json.loads(forced.stdout)["families"] == report["families"]


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_build_without_a_terminal_has_no_bar_frames_and_quiet_prints_nothing(builtin_cli_export, tmp_path):
    env = {"NVILA_EDGE_CACHE": str(tmp_path / "cache")}
    done = cli("build", builtin_cli_export, "-o", tmp_path / "engines", "--target", "cpu", "--max-context", "256",
               env=env)
    assert done.returncode == 0 and "\r" not in done.stderr and "engines in" in done.stdout, done.stderr
    quiet = cli("build", builtin_cli_export, "-o", tmp_path / "engines-quiet", "--target", "cpu", "--max-context",
                "256", "--quiet", env=env)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "engines-quiet" / "manifest.json").is_file()


def test_export_quiet_prints_nothing(builtin_cli_export):
    assert (builtin_cli_export.parent / "export-output.txt").read_text() == ""
    assert (builtin_cli_export / "manifest.json").is_file()
