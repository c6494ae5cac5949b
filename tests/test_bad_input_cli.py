"""Bad input, as a user gives it: the real CLI in a subprocess on real files (the built-in model's export and
CPU engines, a truncated graph in a copied folder, ...). Every case must exit non-zero with at most two lines
on stderr, no traceback, and leave nothing half-written behind.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest


@dataclass
class Case:
    name: str
    args: list[str]  # "{key}" is replaced by the path of that file in the `world` fixture
    says: str  # stderr contains this
    code: int = 1
    absent: str | None = None  # this output must not exist afterwards

    def __str__(self) -> str:
        return self.name


CASES = [
    # 1. broken export / engines folders
    Case("run-truncated-export", ["run", "{bad_export}", "--image", "{image}"], "llm.onnx: 100000 bytes"),
    Case("eval-truncated-export", ["eval", "{bad_export}", "--n", "2"], "llm.onnx: 100000 bytes"),
    Case("validate-truncated-engines", ["validate", "{bad_engines}"], "llm.ort.onnx: contents do not match"),
    Case("demo-truncated-export", ["demo", "--engines", "{bad_export}", "--max-answers", "1", "--headless"],
         "llm.onnx: 100000 bytes"),
    Case("run-truncated-engines", ["run", "{bad_engines}", "--image", "{image}"], "re-run `nvila-edge build`"),
    Case("run-unloadable-graph", ["run", "{unloadable_export}", "--image", "{image}"],
         "ONNX Runtime cannot load it"),
    Case("run-corrupt-export", ["run", "{corrupt_export}", "--image", "{image}"], "vision.onnx: contents do not match"),
    Case("build-truncated-export", ["build", "{bad_export}", "-o", "{out}", "--target", "cpu"],
         "truncated or replaced", absent="{out}"),
    # 2. numbers out of range are refused at parse time with the range
    Case("run-max-new-tokens-0", ["run", "{export}", "--image", "{image}", "--max-new-tokens", "0"],
         "--max-new-tokens: 0 is out of range; use an integer >= 1", code=2),
    Case("run-max-new-tokens-negative", ["run", "{export}", "--image", "{image}", "--max-new-tokens", "-1"],
         "use an integer >= 1", code=2),
    Case("eval-n-0", ["eval", "{export}", "--n", "0"], "--n: 0 is out of range", code=2),
    Case("eval-n-negative", ["eval", "{export}", "--n", "-5"], "--n: -5 is out of range", code=2),
    Case("run-frames-0", ["run", "{export}", "--video", "{image}", "--frames", "0"], "--frames: 0", code=2),
    Case("run-temperature-negative", ["run", "{export}", "--image", "{image}", "--temperature", "-1"],
         "use a number >= 0", code=2),
    Case("run-top-p-5", ["run", "{export}", "--image", "{image}", "--top-p", "5"], "use a number in (0, 1]", code=2),
    Case("run-threads-0", ["run", "{export}", "--image", "{image}", "--threads", "0"], "--threads: 0", code=2),
    Case("demo-fps-nan", ["demo", "--fps", "nan"], "'nan' is not a number > 0", code=2),
    Case("run-max-context-above-model", ["run", "{export}", "--image", "{image}", "--max-context", "20000"],
         "more than the model's 1024"),
    Case("run-max-context-above-engines", ["run", "{engines}", "--image", "{image}", "--max-context", "1000"],
         "these engines hold at most 512 positions"),
    # 3. training never writes over the shipped model or an existing folder by accident
    Case("train-builtin-over-shipped", ["train-builtin", "--out", "{builtin}"], "pass --replace-builtin"),
    Case("train-builtin-existing-out", ["train-builtin", "--out", "{export}"], "already exists"),
    # 4. a context overflow says which part is too long, with the numbers
    Case("run-prompt-too-long", ["run", "{export}", "--image", "{image}", "--prompt", "red " * 1100],
         "prompt tokens + 97 visual tokens (1 image in 7 tiles); the prompt alone is too long"),
    Case("run-image-over-small-context", ["run", "{export}", "--image", "{image}", "--max-context", "100"],
         "needs 119 positions but the context holds 100"),
    # 8. a folder of frames: its images only, and never more frames than it has
    Case("run-video-folder-too-few-frames", ["run", "{export}", "--video", "{frames}", "--frames", "8"],
         "3 frame(s), fewer than the 8 asked for; ask for 3 or fewer"),
    # 9. a network stream that refuses is retried with back-off at start-up, saying so once, then given up
    Case("demo-rtsp-refused", ["demo", "--source", "rtsp://127.0.0.1:{refused_port}/stream", "--max-answers", "1"],
         "gave up after 5 attempts"),
    # 10. config keys are checked, all at once, before any weight is read
    Case("tokens-config-missing-keys", ["tokens", "--model", "{stripped_checkpoint}", "--image-size", "64x64"],
         "config.json: missing key(s) image_aspect_ratio, model_max_length, s2_scales"),
    Case("export-config-missing-keys", ["export", "{stripped_checkpoint}", "-o", "{out}"],
         "config.json: missing key(s) image_aspect_ratio, model_max_length, s2_scales", absent="{out}"),
]


def render_image(path: Path, size: tuple[int, int] | None = None, seed: int = 3) -> Path:
    from nvila_edge.runtime.world.scene import random_scene, render_scene

    rgb = render_scene(random_scene(np.random.default_rng(seed)))
    if size:
        rgb = cv2.resize(rgb, size)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


def retarget_manifest(folder: Path, graph: str, **changes) -> None:
    """Make the manifest agree with a damaged file, so only loading it can tell."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["graphs"][graph].update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory, builtin_cli_export):
    from nvila_edge.runtime.builtin import builtin_dir
    from nvila_edge.runtime.hash_cache import sha256_file

    root = tmp_path_factory.mktemp("bad-input")
    env = {**os.environ, "NVILA_EDGE_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    files = {"root": root, "out": root / "out", "env": env, "builtin": builtin_dir()}
    files["export"] = builtin_cli_export
    files["engines"] = root / "engines"
    subprocess.run([sys.executable, "-m", "nvila_edge", "build", str(files["export"]), "-o", str(files["engines"]),
                    "--target", "cpu", "--max-context", "512", "--no-progress"], check=True, env=env,
                   capture_output=True)
    files["image"] = render_image(root / "scene.png")
    files["frames"] = root / "frames"
    files["frames"].mkdir()
    for i in range(3):
        render_image(files["frames"] / f"{i:03d}.jpg", seed=i)
    (files["frames"] / "notes.txt").write_text("not a frame")

    bad_export = files["bad_export"] = root / "bad-export"
    shutil.copytree(files["export"], bad_export)
    os.truncate(bad_export / "llm.onnx", 100_000)
    bad_engines = files["bad_engines"] = root / "bad-engines"
    shutil.copytree(files["engines"], bad_engines)
    os.truncate(bad_engines / "llm.ort.onnx", 100_000)

    unloadable = files["unloadable_export"] = root / "unloadable-export"
    shutil.copytree(files["export"], unloadable)
    os.truncate(unloadable / "projector.onnx", 50_000)
    retarget_manifest(unloadable, "projector", sha256=sha256_file(unloadable / "projector.onnx"), sizes={})

    stripped = files["stripped_checkpoint"] = root / "stripped-checkpoint"
    shutil.copytree(builtin_dir(), stripped)
    config = json.loads((stripped / "config.json").read_text())
    for key in ("image_aspect_ratio", "model_max_length", "s2_scales"):
        del config[key]
    (stripped / "config.json").write_text(json.dumps(config))

    corrupt = files["corrupt_export"] = root / "corrupt-export"
    shutil.copytree(files["export"], corrupt)
    with open(corrupt / "vision.onnx", "r+b") as f:  # same size, other bytes
        f.seek(1000)
        f.write(b"\xff" * 64)
    return files


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(world: dict, args: list[str]) -> subprocess.CompletedProcess:
    names = {k: v for k, v in world.items() if isinstance(v, Path)}
    args = [a.format(refused_port=refused_port(), **names) for a in args]
    return subprocess.run([sys.executable, "-m", "nvila_edge", *args], check=False, capture_output=True, text=True,
                          env=world["env"], cwd=world["root"], timeout=300)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(world, case):
    done = run_cli(world, case.args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == case.code, done.stderr
    assert "Traceback" not in done.stderr and len(lines) <= 2, done.stderr
    assert case.says in done.stderr, done.stderr
    if case.absent:
        assert not Path(case.absent.format(**{k: v for k, v in world.items() if isinstance(v, Path)})).exists()
    assert not leftovers(world["root"])
