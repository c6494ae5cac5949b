"""Shared fixtures: small random checkpoints in the published layout, written once per test session.

torch is imported only where needed: the files listed in ``torch_free.txt`` also run in venvs that have just
the ``runtime`` and ``jetson`` extras (Python 3.10 and 3.12 in CI).
"""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    from nvila_edge.export.random_checkpoint import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_lite_checkpoint(tmp_path_factory):
    from nvila_edge.export.random_checkpoint import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-lite", "tiny-lite", seed=1)


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(2)


@pytest.fixture(scope="session")
def builtin_engines(tmp_path_factory):
    """The built-in model exported (with torch) and built for the CPU once per session, as `demo` and `serve`
    do on first use."""
    from nvila_edge.export.exporter import export_checkpoint
    from nvila_edge.first_use import CachedModel, build_for_cpu
    from nvila_edge.runtime.builtin import resolve_model

    cache = tmp_path_factory.mktemp("cache")
    checkpoint = resolve_model("builtin")
    cached = CachedModel.of(checkpoint, cache)
    export_checkpoint(checkpoint, cached.export_dir)
    build_for_cpu(cached.export_dir, cached.engines_dir, cache)
    return cached.engines_dir


@pytest.fixture(scope="session")
def builtin_exports(tmp_path_factory):
    """The built-in model exported with a recipe, once per recipe and test session: ``builtin_exports("fp16")``."""
    from nvila_edge.export.exporter import export_checkpoint

    made = {}

    def export(recipe: str):
        if recipe not in made:
            made[recipe] = tmp_path_factory.mktemp(f"builtin-{recipe}") / "export"
            export_checkpoint("builtin", made[recipe], recipe, calib_size=4)
        return made[recipe]

    return export


@pytest.fixture(params=["cuda-python", "pycuda"])
def emulator(request, monkeypatch):
    """TensorRT 10.3 and CUDA on an emulated Orin (tests/trt_emulator) for one test, once through each CUDA binding
    installed alone; fails the test if any device allocation, pinned buffer or stream is left behind."""
    from trt_emulator import Emulator

    emulated = Emulator()
    emulated.install(monkeypatch, binding=request.param)
    yield emulated
    emulated.check_released()


@pytest.fixture(scope="session")
def trt_engines(builtin_exports, tmp_path_factory):
    """Engines folders of the built-in model for orin-nano-8gb and the tensorrt backend, built by `nvila-edge
    build` on the emulator: ``trt_engines("int4")``. Both recipes are exported and built when the session first
    asks, before any test installs the emulator (the int4 export's quantizer would otherwise find it)."""
    from trt_emulator import Emulator

    from nvila_edge.cli import main

    built = {}
    cache = tmp_path_factory.mktemp("trt-cache")
    for recipe in ("fp16", "int4"):
        export = builtin_exports(recipe)
        built[recipe] = tmp_path_factory.mktemp(f"trt-{recipe}") / "engines"
        with pytest.MonkeyPatch.context() as patch:
            emulated = Emulator()
            emulated.install(patch)
            assert main(["build", str(export), "-o", str(built[recipe]), "--target", "orin-nano-8gb", "--backend",
                         "tensorrt", "--no-progress", "--cache-dir", str(cache)]) == 0
            emulated.check_released()
    return built.__getitem__


@pytest.fixture(scope="session")
def builtin_cli_export(tmp_path_factory):
    """The built-in model exported (fp32) by the CLI, as a user makes it; shared by the CLI tests."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("builtin-cli") / "export"
    env = {**os.environ, "NVILA_EDGE_CACHE": str(out.parent / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nvila_edge", "export", "builtin", "-o", str(out), "--quiet"],
                          check=True, env=env, capture_output=True, text=True)
    (out.parent / "export-output.txt").write_text(done.stdout + done.stderr)  # for the --quiet test
    return out
