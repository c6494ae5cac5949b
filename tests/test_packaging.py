"""The wheel carries every module under the nvila_edge namespace, and installs without a C++ compiler."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6) has no tomllib
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("runtime", "export", "engines", "jetson")


def test_every_stage_folder_is_mapped_into_the_namespace():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["wheel"]["packages"]
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert set(packages.values()) == on_disk
    assert packages == {"nvila_edge": "nvila_edge", **{f"nvila_edge/{stage}": stage for stage in STAGES}}


def test_wheel_without_a_compiler_installs_and_preprocesses_with_numpy(tmp_path):
    """No C++ compiler: CMake skips the native target, the wheel is pure Python and the numpy path runs."""
    pytest.importorskip("scikit_build_core", reason="building the wheel here needs the dev extra's scikit-build-core")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-c++"), "CUDACXX": str(tmp_path / "no-such-nvcc")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), f"--config-settings=build-dir={tmp_path / 'build'}"],
                   check=True, env=env, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("nvila_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("nvila_edge/cli.py", "nvila_edge/runtime/tiling.py", "nvila_edge/runtime/backends/tensorrt.py",
                   "nvila_edge/export/onnx/__init__.py", "nvila_edge/engines/build.py",
                   "nvila_edge/jetson/sources/__init__.py", "nvila_edge/builtin/nvila-shapes/config.json",
                   "nvila_edge/serve/static/index.html"):
        assert module in names
    assert not [n for n in names if "_preprocess" in n or "__pycache__" in n]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    # -S and cwd: only the unpacked wheel and the dependencies, not this checkout or its editable install
    deps = {str(Path(module.__file__).resolve().parents[1]) for module in (numpy, cv2)}
    script = ("from nvila_edge.runtime import preprocess, tiling\n"
              "import numpy as np\n"
              "from nvila_edge.runtime.builtin import builtin_dir\n"
              "from nvila_edge.runtime.config import NvilaConfig\n"
              "config = NvilaConfig.from_dir(builtin_dir())\n"
              "tiles = preprocess.tile_image(config, np.zeros((30, 40, 3), np.uint8))\n"
              "print(preprocess.active_path(), tiles.pixel_values.shape[0], tiling.__file__)\n")
    path = os.pathsep.join([str(tmp_path / "site"), *deps])
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          check=False, env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr
    active, tiles, where = done.stdout.split()
    assert active == "numpy" and int(tiles) >= 1 and where.startswith(str(tmp_path / "site"))
