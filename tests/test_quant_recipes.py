"""Every precision recipe exported from a real (random-weight) checkpoint: manifest, ONNX gates, TensorRT
check, the runtime on ONNX Runtime, and the structure of the quantized graphs."""

import dataclasses

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from nvila_edge.cli import main
from nvila_edge.engines.compat import check_path, errors, parse_target
from nvila_edge.engines.recipes import RECIPES
from nvila_edge.errors import UnsupportedError
from nvila_edge.export.exporter import export_checkpoint
from nvila_edge.export.quantize.footprint import linear_weight_bytes
from nvila_edge.runtime.backends.onnxruntime import OrtGraph
from nvila_edge.runtime.evaluation import example_request
from nvila_edge.runtime.manifest import read_manifest
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import inputs_embeds, prepare
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.world.questions import example_stream
from nvila_edge.runtime.world.scene import random_scene, render_scene

EXPECTED = {"fp32": ("fp32", "fp32", "fp32"), "fp16": ("fp16", "fp16", "fp16"), "int4": ("fp16", "fp16", "int4"),
            "int8-int4": ("int8", "fp16", "int4"), "fp8": ("fp8", "fp16", "fp8")}


@pytest.fixture(scope="module")
def exports(tiny_checkpoint, tmp_path_factory):
    """All five recipes; int4 through the CLI (--target's default recipe), int8-int4 on a photo folder."""
    root = tmp_path_factory.mktemp("recipes")
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        scene = render_scene(random_scene(np.random.default_rng(i), width=150, height=100))
        cv2.imwrite(str(photos / f"{i}.png"), scene[..., ::-1])
    (photos / "readme.txt").write_text("skipped")
    for recipe in ("fp32", "fp16", "fp8"):
        export_checkpoint(tiny_checkpoint, root / recipe, recipe, calib_size=4)
    assert main(["export", str(tiny_checkpoint), "-o", str(root / "int4"), "--target", "orin-nano-8gb",
                 "--calib-size", "4"]) == 0
    export_checkpoint(tiny_checkpoint, root / "int8-int4", "int8-int4", calib_dir=photos, calib_size=4,
                      target="orin-nano-8gb")
    return root


def teacher_forced_logits(folder, steps: int = 6) -> np.ndarray:
    """Prefill one real question, then feed fixed tokens; logits per step [steps + 1, V]."""
    pipeline = Pipeline.open(folder, threads=1)
    prepared = prepare(pipeline.config, pipeline.tokenizer, pipeline.encoder, pipeline.newline,
                       example_request(next(example_stream(5))))
    embeds = inputs_embeds(prepared, pipeline.tokenizer, pipeline.embed_table)
    pipeline.decoder.reset()
    rows = [pipeline.decoder.step(embeds)]
    for token in np.random.default_rng(2).integers(0, pipeline.manifest.token_layout.vocab_size, steps):
        rows.append(pipeline.decoder.step(pipeline.embed(int(token))))
    return np.stack(rows)


def cosine(a, b) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_recipes_are_the_targets_recipes():
    from nvila_edge.engines.targets import RECIPES as TARGET_RECIPES

    assert tuple(RECIPES) == TARGET_RECIPES == tuple(EXPECTED)


@pytest.mark.parametrize("recipe", list(EXPECTED))
def test_manifest_says_what_each_graph_is(exports, recipe):
    manifest = read_manifest(exports / recipe, "export", verify_hashes=True)
    assert manifest.precision == recipe
    assert tuple(manifest.graphs[g].precision for g in ("vision", "projector", "llm")) == EXPECTED[recipe]
    float_dtype = "float32" if recipe == "fp32" else "float16"
    assert manifest.embeddings["dtype"] == float_dtype
    llm = manifest.graphs["llm"]
    assert {t.name: t.dtype for t in llm.inputs}["inputs_embeds"] == float_dtype
    assert {t.name: t.dtype for t in llm.outputs}["logits"] == float_dtype


@pytest.mark.parametrize("recipe", list(EXPECTED))
def test_graphs_pass_strict_inference_and_the_tensorrt_check(exports, recipe):
    folder = exports / recipe
    for name in ("vision", "projector", "llm"):
        onnx.shape_inference.infer_shapes(onnx.load(str(folder / f"{name}.onnx")), check_type=True, strict_mode=True)
    assert errors(check_path(folder, parse_target(RECIPES[recipe].trt_floor))) == []


@pytest.mark.parametrize("recipe", ["fp16", "int4", "int8-int4", "fp8"])
def test_runtime_answers_and_stays_near_fp32(exports, recipe):
    reference = teacher_forced_logits(exports / "fp32")
    got = teacher_forced_logits(exports / recipe)
    assert np.isfinite(got).all()
    # random weights exaggerate quantization error; these bounds catch a broken graph, not model quality
    floor = {"fp16": 0.999, "int4": 0.97, "int8-int4": 0.97, "fp8": 0.99}[recipe]
    assert min(cosine(g, r) for g, r in zip(got, reference)) >= floor
    answer = Pipeline.open(exports / recipe, threads=1).ask(example_request(next(example_stream(1))),
                                                             SamplingParams(max_new_tokens=4))
    assert len(answer.token_ids) >= 1


def graph(exports, recipe, name) -> onnx.ModelProto:
    return onnx.load(str(exports / recipe / f"{name}.onnx"))


def test_int4_llm_is_blocked_symmetric_weight_only_with_fp16_lm_head(exports):
    model = graph(exports, "int4", "llm")
    inits = {t.name: t for t in model.graph.initializer}
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 7 * 2  # q, k, v, o, gate, up, down in both layers
    for dq in dqs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in dq.attribute}
        assert attrs == {"axis": 0, "block_size": 128}
        assert inits[dq.input[0]].data_type == TensorProto.INT4
        assert inits[dq.input[1]].data_type == TensorProto.FLOAT16
        assert len(dq.input) == 2 or not numpy_helper.to_array(inits[dq.input[2]]).any()
    assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    (head,) = [n for n in model.graph.node if n.op_type == "MatMul" and "logits" in n.output]
    assert inits[head.input[1]].data_type == TensorProto.FLOAT16
    assert model.opset_import[0].version == 21


def test_int4_keeps_the_fp16_traces_fp32_islands(exports):
    """RMSNorm statistics and the masked softmax compute in FP32, exactly as in the FP16 export."""
    def float32_ops(model):
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
        return sorted(n.op_type for n in model.graph.node if n.op_type in ("Softmax", "ReduceMean", "Pow")
                      and types.get(n.output[0]) == TensorProto.FLOAT)

    int4 = float32_ops(graph(exports, "int4", "llm"))
    assert int4 == float32_ops(graph(exports, "fp16", "llm"))
    assert int4.count("Softmax") == 2 and int4.count("ReduceMean") == 5


def test_int4_linear_weights_are_at_most_015_of_fp32(exports):
    fp32 = linear_weight_bytes(graph(exports, "fp32", "llm"))
    int4 = linear_weight_bytes(graph(exports, "int4", "llm"))
    assert int4 <= 0.15 * fp32
    assert int4 == fp32 // 8 + fp32 // 4 // 128 * 2  # packed nibbles + one FP16 scale per block of 128


def dequantized(model: onnx.ModelProto) -> onnx.ModelProto:
    """The INT4 graph with every blocked DequantizeLinear replaced by its FP16 weights, computed in numpy."""
    inits = {t.name: t for t in model.graph.initializer}
    fake = onnx.ModelProto()
    fake.CopyFrom(model)
    del fake.graph.node[:]
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            fake.graph.node.append(node)
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)  # [K, N]
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # [K / 128, N]
        weight = (q * np.repeat(scale, 128, axis=0)).astype(np.float16)
        fake.graph.initializer.append(numpy_helper.from_array(weight, node.output[0]))
    return fake


def test_int4_onnx_runtime_matches_the_dequantized_weights(exports, tmp_path):
    model = graph(exports, "int4", "llm")
    onnx.save(dequantized(model), tmp_path / "fake.onnx")
    rng = np.random.default_rng(0)
    feeds = {"inputs_embeds": rng.standard_normal((1, 9, 128)).astype(np.float16),
             "position_ids": np.arange(9)[None], "attention_mask": np.ones((1, 9), dtype=np.int64)}
    feeds.update({f"past_{kind}.{i}": np.zeros((1, 0, 2, 32), np.float16)
                  for i in range(2) for kind in ("key", "value")})
    real = OrtGraph(exports / "int4" / "llm.onnx", threads=1).run(feeds)
    fake = OrtGraph(tmp_path / "fake.onnx", threads=1).run(feeds)
    for name in ("logits", "new_key.1", "new_value.1"):
        r, f = real[name].astype(np.float32), fake[name].astype(np.float32)
        assert np.abs(r - f).max() <= 2e-2 * np.abs(f).max(), name
        assert cosine(r, f) >= 0.9999, name


def test_int8_vision_is_smoothquant_qdq_that_onnx_runtime_matches(tiny_checkpoint, tmp_path):
    """ORT on the exported INT8 vision graph against the same SmoothQuant model in PyTorch (fake-quant)."""
    from nvila_edge.export.checkpoint import load_checkpoint
    from nvila_edge.export.quantize.calibration import build_calibration
    from nvila_edge.export.quantize.graph_export import export_graph

    ckpt = load_checkpoint(tiny_checkpoint)
    calibration = build_calibration(ckpt, None, 2)
    export_graph(ckpt, "vision", "int8", tmp_path / "vision.onnx", calibration)
    pixels = torch.from_numpy(calibration.pixel_values[::-1].copy())
    with torch.inference_mode():
        expected = ckpt.model.vision_tower(pixels.half()).float().numpy()
    got = OrtGraph(tmp_path / "vision.onnx", threads=1).run({"pixel_values": pixels.numpy()})["features"]
    assert np.abs(got.astype(np.float32) - expected).max() <= 2e-2 * np.abs(expected).max()
    model = onnx.load(str(tmp_path / "vision.onnx"))
    ops = [n.op_type for n in model.graph.node]
    linears = 6 * 2  # q, k, v, out, fc1, fc2 in both kept layers
    assert ops.count("QuantizeLinear") == linears  # activations; the weights' Q are folded into INT8 initializers
    assert ops.count("DequantizeLinear") == 2 * linears
    int8 = [t for t in model.graph.initializer if t.data_type == TensorProto.INT8 and len(t.dims) == 2]
    assert len(int8) == linears
    assert model.opset_import[0].version == 19


def test_fp8_quantizes_linears_not_the_mask_or_lm_head(exports):
    model = graph(exports, "fp8", "llm")
    producers = {o: n for n in model.graph.node for o in n.output}
    softmax_inputs = {i for n in model.graph.node if n.op_type == "Softmax" for i in n.input}
    mask_adds = [n for n in model.graph.node if n.op_type == "Add" and set(n.output) & softmax_inputs]
    assert len(mask_adds) == 2
    for node in mask_adds:
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)
    (head,) = [n for n in model.graph.node if n.op_type == "MatMul" and "logits" in n.output]
    assert producers.get(head.input[1]) is None
    types = {t.name: t.data_type for t in model.graph.initializer}
    projections = [n for n in model.graph.node if n.op_type == "MatMul" and "_proj/" in n.name]
    assert len(projections) == 14
    for node in projections:
        activation, weight = (producers[i] for i in node.input)
        assert activation.op_type == weight.op_type == "DequantizeLinear"
        assert types[weight.input[0]] == TensorProto.FLOAT8E4M3FN  # FP8 weights stored, not FP16 + Q/DQ
    zero_points = [n.input[2] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and {types[z] for z in zero_points} == {TensorProto.FLOAT8E4M3FN}


def test_fp8_is_refused_for_orin_before_any_work(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(UnsupportedError, match=r"compute capability 8\.7.*int4 or int8-int4"):
        export_checkpoint(tiny_checkpoint, tmp_path / "out", "fp8", target="orin-nano-8gb")
    assert main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "out"), "--precision", "fp8",
                 "--target", "orin-nx-16gb"]) == 1
    assert "8.7" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_check_flags_the_fp8_export_for_orin_only(exports):
    orin = errors(check_path(exports / "fp8", parse_target("orin-agx-64gb")))
    assert orin and all("FP8 needs compute capability 8.9" in f.message for f in orin)
    assert {f.file for f in orin} == {"vision.onnx", "llm.onnx"}
    assert errors(check_path(exports / "fp8", parse_target("thor"))) == []


def test_int4_refuses_llm_widths_that_are_not_whole_blocks(tiny_checkpoint):
    from nvila_edge.export.checkpoint import load_checkpoint
    from nvila_edge.export.quantize.graph_export import check_int4_widths

    cfg = load_checkpoint(tiny_checkpoint).config.llm
    check_int4_widths(cfg)  # 128 / 256
    with pytest.raises(UnsupportedError, match="multiples of 128, not FFN 704"):
        check_int4_widths(dataclasses.replace(cfg, intermediate_size=704))
