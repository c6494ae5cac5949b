"""The TensorRT compatibility checker on hand-built graphs: each rule fires on a bad graph and not on a good one."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nvila_edge.cli import main
from nvila_edge.engines.compat import check_model, check_path, errors, parse_target
from nvila_edge.errors import UnsupportedError

TRT_10_3 = parse_target("10.3")


def model_of(nodes, inputs, outputs, initializers=(), opset=21, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=imports)


def int4_weight_matmul(zero_point: int | None = None) -> onnx.ModelProto:
    """x [1, 256] @ DQ(INT4 [256, 64], FP16 scale [2, 64], axis 0, block 128): TensorRT's W4A16 form."""
    weight = helper.make_tensor("w", TensorProto.INT4, [256, 64], np.ones(256 * 64, dtype=np.int8).tolist())
    scale = numpy_helper.from_array(np.full((2, 64), 0.01, dtype=np.float16), "s")
    inits, dq_inputs = [weight, scale], ["w", "s"]
    if zero_point is not None:
        inits.append(helper.make_tensor("z", TensorProto.INT4, [2, 64], [zero_point] * 128))
        dq_inputs.append("z")
    nodes = [helper.make_node("DequantizeLinear", dq_inputs, ["wd"], name="dq", axis=0, block_size=128),
             helper.make_node("MatMul", ["x", "wd"], ["y"], name="mm")]
    return model_of(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 256])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 64])], inits)


def int8_qdq(zero_point: int) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"),
             numpy_helper.from_array(np.array(zero_point, dtype=np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")]
    return model_of(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits, opset=19)


def messages(model, target=TRT_10_3) -> list[str]:
    return [f.message for f in errors(check_model(model, target))]


def test_good_int4_weight_only_graph_passes_with_a_device_warning():
    model = int4_weight_matmul()
    onnx.checker.check_model(model, full_check=True)
    findings = check_model(model, TRT_10_3)
    assert not errors(findings)
    assert [f.severity for f in findings] == ["warning"] and "opset 21" in findings[0].message
    assert check_model(model, parse_target("10.16")) == []


def test_non_zero_zero_point_is_flagged():
    assert messages(int8_qdq(0)) == []
    assert all("non-zero zero point" in m for m in messages(int8_qdq(3))) and len(messages(int8_qdq(3))) == 2
    assert any("non-zero zero point" in m for m in messages(int4_weight_matmul(zero_point=1)))
    assert messages(int4_weight_matmul(zero_point=0)) == []


def test_contrib_op_is_flagged():
    node = helper.make_node("MatMulNBits", ["x", "w", "s"], ["y"], name="nbits", domain="com.microsoft", K=256, N=64,
                            bits=4, block_size=128)
    model = model_of([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], domains=["com.microsoft"])
    (message,) = messages(model)
    assert "ONNX Runtime contrib op" in message and "MatMulNBits" in message


def test_int4_activation_quantization_is_flagged():
    inits = [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"),
             helper.make_tensor("z", TensorProto.INT4, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q_act"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq_act")]
    model = model_of(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    found = errors(check_model(model, TRT_10_3))
    assert {f.node for f in found} == {"q_act", "dq_act"}
    assert all("INT4 on a run-time tensor" in f.message for f in found)


def test_opset_23_op_is_flagged_for_jetpack_6_only():
    scale = numpy_helper.from_array(np.ones(8, dtype=np.float32), "gamma")
    node = helper.make_node("RMSNormalization", ["x", "gamma"], ["y"], name="norm", axis=-1)
    model = model_of([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [scale], opset=23)
    onnx.checker.check_model(model, full_check=True)
    found = messages(model)
    assert any("RMSNormalization is not in TensorRT 10.3" in m for m in found)
    assert any("opset 23 is newer than TensorRT 10.3" in m for m in found)
    assert messages(model, parse_target("jetpack7.2")) == []


def test_fp8_needs_a_gpu_that_has_it():
    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float16), "w")
    inits = [weight, numpy_helper.from_array(np.array(0.5, dtype=np.float16), "s"),
             helper.make_tensor("z", TensorProto.FLOAT8E4M3FN, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["wd"], name="dq"),
             helper.make_node("MatMul", ["x", "wd"], ["y"], name="mm")]
    model = model_of(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])], inits, opset=19)
    assert messages(model) == []
    orin = messages(model, parse_target("orin-nano-8gb"))
    assert len(orin) == 2 and "compute capability 8.9" in orin[0] and "8.7" in orin[0]
    assert messages(model, parse_target("thor")) == []


def test_uint8_quantization_is_flagged():
    inits = [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dq")]
    model = model_of(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits, opset=19)
    found = messages(model)
    assert len(found) == 2 and all("UINT8" in m for m in found)


def test_targets_parse_to_tensorrt_versions_and_gpus():
    assert parse_target("10.3").trt == (10, 3) and parse_target("11").trt == (11, 0)
    assert parse_target("jetpack6").trt == (10, 3) and parse_target("jetpack7.2").trt == (10, 16)
    orin = parse_target("orin-nano-8gb")
    assert (orin.trt, orin.capability) == ((10, 3), (8, 7))
    assert parse_target("thor").trt == (10, 13)
    with pytest.raises(UnsupportedError, match="ONNX Runtime"):
        parse_target("cpu")
    with pytest.raises(UnsupportedError, match="unknown check target"):
        parse_target("banana")


def test_check_command_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    onnx.save(int4_weight_matmul(), good / "llm.onnx")
    onnx.save(int8_qdq(5), bad / "vision.onnx")
    assert main(["check", str(good), "--target", "10.3"]) == 0
    assert "no problems, 1 warning(s)" in capsys.readouterr().out
    assert main(["check", str(bad), "--target", "jetpack6"]) == 1
    out = capsys.readouterr().out
    assert "ERROR vision.onnx: 2 nodes (DequantizeLinear, QuantizeLinear; first 'q'): non-zero zero point" in out
    assert "2 problem(s)" in out
    assert len(check_path(bad / "vision.onnx", TRT_10_3)) == 2
