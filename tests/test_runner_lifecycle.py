"""Runners, decoders and the Pipeline are closed deterministically (context managers), and a missing optional
module is one line naming the extra to install."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

from nvila_edge.cli import main
from nvila_edge.errors import ArtifactError
from nvila_edge.extras import extra_for
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.world.scene import random_scene, render_scene


def scene(seed=0):
    return render_scene(random_scene(np.random.default_rng(seed), 160, 120))


def test_pipeline_closes_its_runners_at_the_end_of_a_with_block(builtin_exports):
    with Pipeline.open(builtin_exports("fp16"), threads=2) as pipeline:
        answer = pipeline.ask(Request("What shapes are in the picture?", [scene()]), SamplingParams(max_new_tokens=4))
        runners = (pipeline.encoder.vision, pipeline.encoder.projector, pipeline.decoder.graph)
        assert answer.token_ids and all(r.session is not None for r in runners)
    assert all(r.session is None for r in runners)
    pipeline.close()  # closing twice is harmless


def test_a_graph_that_fails_to_load_closes_the_runners_opened_before_it(builtin_exports, tmp_path, monkeypatch):
    from nvila_edge.runtime.backends.onnxruntime import OrtGraph
    from nvila_edge.runtime.hash_cache import sha256_file

    folder = tmp_path / "export"
    shutil.copytree(builtin_exports("fp16"), folder)
    os.truncate(folder / "llm.onnx", 50_000)
    manifest = json.loads((folder / "manifest.json").read_text())  # agree with the damage: only loading tells
    manifest["graphs"]["llm"].update(sha256=sha256_file(folder / "llm.onnx"), sizes={})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    closed, close = [], OrtGraph.close
    monkeypatch.setattr(OrtGraph, "close", lambda graph: (closed.append(graph), close(graph)))
    with pytest.raises(ArtifactError, match="llm.onnx: ONNX Runtime cannot load it"):
        Pipeline.open(folder, threads=1)
    assert len(closed) == 2 and all(graph.session is None for graph in closed)  # vision and projector


def test_missing_optional_module_is_one_line_naming_the_extra(builtin_exports, tmp_path, monkeypatch, capsys):
    import cv2

    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), scene()[..., ::-1])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert main(["run", str(builtin_exports("fp16")), "--image", str(image)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: this command needs onnxruntime (Python module 'onnxruntime'), which is not installed; "
                   "pip install 'nvila-edge[runtime]'")


@pytest.mark.parametrize("module, extra", [("torch", "export"), ("cv2", "runtime"), ("cuda.bindings", "jetson"),
                                           ("tensorrt_rtx_bindings", "tensorrt-rtx"), ("modelopt.onnx", "export")])
def test_each_optional_module_maps_to_the_extra_that_brings_it(module, extra):
    assert extra_for(module)[1] == extra


def test_a_module_no_extra_brings_is_a_real_error_not_a_hint():
    assert extra_for("no_such_module") is None and extra_for("nvila_edge.missing") is None
