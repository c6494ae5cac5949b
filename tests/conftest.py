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
