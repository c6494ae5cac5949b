"""Exported ONNX graphs run by ONNX Runtime on CPU against the PyTorch reference, on real checkpoints."""

import numpy as np
import pytest
import torch

from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.exporter import export_checkpoint
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.runtime.backends.onnxruntime import OrtGraph
from nvila_edge.runtime.evaluation import example_request
from nvila_edge.runtime.manifest import read_manifest
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.tiling import tile_image
from nvila_edge.runtime.world.questions import example_stream
from nvila_edge.runtime.world.scene import random_scene, render_scene


@pytest.fixture(scope="module", params=["tiny_checkpoint", "tiny_lite_checkpoint"])
def exported(request, tmp_path_factory):
    ckpt_dir = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp("export") / "out"
    export_checkpoint(ckpt_dir, out)
    return load_checkpoint(ckpt_dir), out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_manifest_and_gates(exported):
    _, out = exported
    manifest = read_manifest(out, "export", verify_hashes=True)
    assert set(manifest.graphs) == {"vision", "projector", "llm"}
    llm_inputs = [t.name for t in manifest.graphs["llm"].inputs]
    assert llm_inputs[:3] == ["inputs_embeds", "position_ids", "attention_mask"]
    assert manifest.dims["past"].min == 0
    assert not list(out.parent.glob(".out.partial-*"))


def test_vision_features_relative_error(exported):
    ckpt, out = exported
    rng = np.random.default_rng(0)
    image = render_scene(random_scene(rng, width=200, height=120))
    tiles = tile_image(ckpt.config, image, single=True)
    with torch.inference_mode():
        expected = ckpt.model.vision_tower(torch.from_numpy(tiles.pixel_values)).numpy()
    got = OrtGraph(out / "vision.onnx").run({"pixel_values": tiles.pixel_values})["features"]
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4


def test_projector_matches_for_images_and_frames(exported):
    ckpt, out = exported
    reference = ReferencePipeline(ckpt)
    pipeline = Pipeline.open(out, threads=2)
    rng = np.random.default_rng(1)
    for width, height in ((64, 64), (300, 100), (90, 260)):
        image = render_scene(random_scene(rng, width=width, height=height))
        for single in (True, False):
            tiles = tile_image(ckpt.config, image, single=single)
            expected = reference.encoder.encode_image(tiles)
            got = pipeline.encoder.encode_image(tiles)
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                assert g.shape == e.shape
                assert np.abs(g - e).max() / np.abs(e).max() < 1e-4


def test_teacher_forced_logits_cosine(exported):
    ckpt, out = exported
    reference = ReferencePipeline(ckpt)
    pipeline = Pipeline.open(out, threads=2)
    example = next(example_stream(5))
    prepared = reference.prepare(example_request(example))
    from nvila_edge.runtime.request import inputs_embeds

    embeds = inputs_embeds(prepared, ckpt.tokenizer, reference.embed_table)
    forced = np.random.default_rng(2).integers(0, ckpt.config.llm.vocab_size, 24)
    reference.decoder.reset()
    pipeline.decoder.reset()
    step_in = embeds
    for token in forced:
        expected = reference.decoder.step(step_in)
        got = pipeline.decoder.step(step_in)
        assert cosine(got, expected) >= 0.9999
        step_in = reference.embed_table[token][None]


def test_greedy_outputs_identical(exported):
    ckpt, out = exported
    reference = ReferencePipeline(ckpt)
    pipeline = Pipeline.open(out, threads=2)
    params = SamplingParams(max_new_tokens=32)
    stream = example_stream(7)  # images of every size and 8-frame clips, 20 seeded scenes
    for _ in range(20):
        request = example_request(next(stream))
        assert pipeline.ask(request, params).token_ids == list(reference.generate(request, params))
    two = Request("Describe.", images=[render_scene(random_scene(np.random.default_rng(s))) for s in (1, 2)])
    assert pipeline.ask(two, params).token_ids == list(reference.generate(two, params))
