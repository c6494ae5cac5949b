"""Shared fixtures: small random checkpoints in the published layout, written once per test session."""

from __future__ import annotations

import pytest
import torch


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
    torch.set_num_threads(2)
