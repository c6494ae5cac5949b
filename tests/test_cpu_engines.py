"""The cpu build's rewrite of the LLM into ONNX Runtime's CPU form (MatMulNBits, GroupQueryAttention over an
in-place KV cache, fused skip + RMSNorm, FP32 activations), checked against the export it came from."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from nvila_edge.cli import main
from nvila_edge.engines.build import plan_build
from nvila_edge.engines.cpu_llm import MS, _Writer, quantize_blocks
from nvila_edge.engines.cpu_options import CpuLlmOptions
from nvila_edge.engines.targets import get_target
from nvila_edge.errors import InputError
from nvila_edge.runtime.backends.kv_cache import SHARED_HEAD_MAJOR
from nvila_edge.runtime.manifest import read_manifest
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.world.scene import random_scene, render_scene


def build(export, out, *options) -> int:
    return main(["build", str(export), "-o", str(out), "--target", "cpu", "--no-progress", *map(str, options)])


def op_counts(path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("recipe", ["int4", "fp16"])
def test_cpu_engines_rewrite_the_llm_validate_and_answer_like_the_export(recipe, builtin_exports, tmp_path, capsys):
    out = tmp_path / "engines"
    assert build(builtin_exports(recipe), out) == 0
    manifest = read_manifest(out, "engines", verify_hashes=True)
    assert manifest.kv_layout == SHARED_HEAD_MAJOR
    llm_inputs = {t.name: t.dtype for t in manifest.graphs["llm"].inputs}
    assert llm_inputs["inputs_embeds"] == "float32" and llm_inputs["seqlens_k"] == "int32"
    assert "present_key.0" in {t.name for t in manifest.graphs["llm"].outputs}
    assert [t.dtype for t in manifest.graphs["vision"].inputs] == ["float32"]  # FP16 vision tower -> FP32
    layers = len([t for t in manifest.graphs["llm"].inputs if t.name.startswith("past_key.")])
    ops = op_counts(out / "llm.ort.onnx")
    assert ops["GroupQueryAttention"] == layers and ops["SkipSimplifiedLayerNormalization"] == 2 * layers
    assert not {"DequantizeLinear", "Softmax", "Pow"} & set(ops)
    # int4: q/k/v packed and gate/up packed (each group shares one AWQ scale), o, down, and the lm_head (INT4)
    assert ops.get("MatMulNBits", 0) == (4 * layers + 1 if recipe == "int4" else 1)  # fp16: the INT8 head
    assert ops.get("Split", 0) == (layers if recipe == "int4" else 0)
    assert ops["Mul"] == (2 * layers if recipe == "int4" else layers)  # SiLU(gate) * up, o_proj's AWQ scale
    capsys.readouterr()
    assert main(["validate", str(out), "--threads", "2"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:5]] == ["pass"] * 4
    scene = render_scene(random_scene(np.random.default_rng(3), 160, 120))
    request = Request("What shapes are in the picture?", [scene])
    params = SamplingParams(max_new_tokens=12)
    want = Pipeline.open(builtin_exports(recipe), threads=2).ask(request, params).token_ids
    got = Pipeline.open(out, threads=2).ask(request, params).token_ids
    assert len(want) > 0 and sum(a == b for a, b in zip(got, want)) >= 0.9 * len(want)


def test_the_cpu_options_shape_only_the_llm_key_and_bad_ones_are_refused(builtin_exports):
    export, cpu = builtin_exports("int4"), get_target("cpu")
    plain = plan_build(export, cpu)
    head = plan_build(export, cpu, lm_head="int8")
    level = plan_build(export, cpu, accuracy_level=0)
    assert plain.keys["vision"].digest() == head.keys["vision"].digest() == level.keys["vision"].digest()
    assert len({plan.keys["llm"].digest() for plan in (plain, head, level)}) == 3
    with pytest.raises(InputError, match="lm_head form 'int3'"):
        plan_build(export, cpu, lm_head="int3")
    with pytest.raises(InputError, match="accuracy level 2"):
        CpuLlmOptions(accuracy_level=2)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("level", [0, 4])
def test_matmulnbits_packing_computes_the_dequantized_product(bits, level):
    rng = np.random.default_rng(bits)
    k, n, block = 64, 24, 32
    weight = rng.standard_normal((k, n)).astype(np.float32)
    values, scales = quantize_blocks(weight, bits, block)
    dequantized = values.astype(np.float32) * np.repeat(scales, block, axis=0)
    assert np.abs(dequantized - weight).max() <= scales.max() / 2 + 1e-6  # round to nearest within each block
    writer = _Writer(CpuLlmOptions(accuracy_level=level))
    bias = rng.standard_normal(n).astype(np.float32)
    writer.nbits("x", values, scales, bits, block, bias, "y")
    graph = helper.make_graph(writer.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])], writer.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(MS, 1)])
    x = rng.standard_normal((3, k)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    want = x @ dequantized + bias
    if level == 0:  # FP32 activations: the dequantized product up to summation order
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    else:  # activations quantized to INT8 per block
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.02
