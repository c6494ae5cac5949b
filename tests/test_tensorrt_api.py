"""The TensorRT version shim, the engine checks, the decoder's cache addressing and the layer precision check:
everything of the TensorRT backend that needs no GPU."""

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nvila_edge.engines.layer_precision import check_layer_precision, engine_layer_types, network_quantized_layers
from nvila_edge.errors import EngineMismatchError, UnsupportedError
from nvila_edge.runtime.backends.tensorrt import (
    ALIGNMENT,
    DecoderLayout,
    check_capability,
    check_release,
    choose_profile,
    decoder_bindings,
)
from nvila_edge.runtime.backends.trt_api import TrtVersion, engines_compatible, import_trt, network_flags
from nvila_edge.runtime.manifest import EngineTarget


@pytest.mark.parametrize("text, parsed", [
    ("10.3.0", (10, 3, 0, 0)), ("10.3.0.30", (10, 3, 0, 30)), ("10.14.1.48.post1", (10, 14, 1, 48)),
    ("11.4.0.106", (11, 4, 0, 106)), ("1.7.1.116", (1, 7, 1, 116)), ("10.16", (10, 16, 0, 0)),
])
def test_versions_parse_from_every_release_spelling(text, parsed):
    assert TrtVersion.parse(text) == TrtVersion(*parsed)


def test_version_order_and_text():
    assert TrtVersion.parse("10.3.0") < TrtVersion.parse("10.13.3.9") < TrtVersion.parse("11.0")
    assert str(TrtVersion.parse("10.3.0")) == "10.3.0" and str(TrtVersion.parse("10.3.0.30")) == "10.3.0.30"
    with pytest.raises(ValueError):
        TrtVersion.parse("ten")


def test_engines_load_only_on_their_release():
    assert engines_compatible("10.3.0.30", "10.3.0")  # JetPack reports no build number
    assert not engines_compatible("10.3.0", "10.16.2.10")
    assert not engines_compatible("1.7.1.116", "1.6.0.4")


def test_strongly_typed_flag_set_before_11_and_on_rtx_left_to_the_default_on_11():
    flags = SimpleNamespace(STRONGLY_TYPED=1)
    trt = SimpleNamespace(NetworkDefinitionCreationFlag=flags, __version__="10.3.0")
    assert network_flags(trt, "tensorrt") == 1 << 1
    assert network_flags(SimpleNamespace(NetworkDefinitionCreationFlag=flags, __version__="11.4.0.106"),
                         "tensorrt") == 0
    rtx = pytest.importorskip("tensorrt_rtx_bindings")
    assert network_flags(rtx, "tensorrt-rtx") == 1 << int(rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_missing_tensorrt_is_one_line_with_the_jetpack_hint():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedError, match="TensorRT cannot be imported here .*JetPack"):
            import_trt("tensorrt")
    else:
        pytest.skip("full TensorRT is installed here")
    with pytest.raises(UnsupportedError, match="not a TensorRT backend"):
        import_trt("onnxruntime")


TARGET = EngineTarget("orin-nano-8gb", "tensorrt", "10.3.0.30", "8.7", 4096)


def test_engine_from_another_release_is_refused_with_the_rebuild_command():
    check_release(TARGET, "10.3.0", "nvila-edge build X -o Y --target orin-nano-8gb")
    with pytest.raises(EngineMismatchError) as err:
        check_release(TARGET, "10.16.2.10", "nvila-edge build X -o Y --target orin-nano-8gb")
    assert "TensorRT 10.3.0.30" in str(err.value) and "10.16.2.10" in str(err.value)
    assert str(err.value).endswith("rebuild with: nvila-edge build X -o Y --target orin-nano-8gb")


def test_engine_for_another_gpu_is_refused():
    check_capability(TARGET, (8, 7), "cmd")
    with pytest.raises(EngineMismatchError, match=r"compute capability 8\.7 .*this GPU has 11\.0; rebuild with: cmd"):
        check_capability(TARGET, (11, 0), "cmd")


def test_profile_choice():
    assert choose_profile(0, 300) == "prefill"
    assert choose_profile(300, 1) == "decode"
    assert choose_profile(0, 1) == "prefill"  # a one-token prompt has nothing cached
    assert choose_profile(300, 20) == "prefill"  # a later chunk of a prompt


def layout(layers=2, kv_heads=2, head_dim=32, itemsize=4) -> DecoderLayout:
    base = 1 << 20
    cache = tuple((base + 2 * i * (1 << 16), base + (2 * i + 1) * (1 << 16)) for i in range(layers))
    return DecoderLayout(128, kv_heads, head_dim, 512, itemsize, cache, 1 << 24, 1 << 25, 1 << 26, 1 << 27)


def test_past_and_new_are_offsets_into_one_cache_buffer_per_layer():
    lay = layout()
    bindings = decoder_bindings(lay, past=5, seq=3)
    for i, (keys, values) in enumerate(lay.cache):
        assert bindings[f"past_key.{i}"].address == keys and bindings[f"past_key.{i}"].shape == (1, 5, 2, 32)
        assert bindings[f"new_key.{i}"].address == keys + 5 * lay.row_bytes
        assert bindings[f"new_value.{i}"].address == values + 5 * lay.row_bytes
        assert bindings[f"new_value.{i}"].shape == (1, 3, 2, 32)
    assert bindings["attention_mask"].shape == (1, 8) and bindings["position_ids"].shape == (1, 3)
    assert bindings["inputs_embeds"].shape == (1, 3, 128) and bindings["logits"].shape == (1, 1, 512)
    # the next step's past is exactly this step's past + new
    after = decoder_bindings(lay, past=8, seq=1)
    assert after["past_key.0"].shape == (1, 8, 2, 32)
    assert after["new_key.0"].address == bindings["new_key.0"].address + 3 * lay.row_bytes


def test_every_cache_address_is_aligned_for_nvila_rows():
    for kv_heads, head_dim, itemsize in ((2, 128, 2), (4, 128, 2), (2, 32, 4)):  # Lite-2B, 8B FP16, tiny FP32
        lay = layout(kv_heads=kv_heads, head_dim=head_dim, itemsize=itemsize)
        for past in (0, 1, 7, 1000):
            assert all(b.address % ALIGNMENT == 0 for b in decoder_bindings(lay, past, 1).values())


def test_empty_past_on_prefill():
    bindings = decoder_bindings(layout(), past=0, seq=4)
    assert bindings["past_key.0"].shape == (1, 0, 2, 32)
    assert bindings["new_key.0"].address == bindings["past_key.0"].address


def inspector(*layers) -> str:
    return json.dumps({"Layers": list(layers), "Bindings": ["x", "y"]})


def layer(name, inputs, outputs, weights=None):
    entry = {"Name": name, "LayerType": "CaskGemmMatrixMultiply",
             "Inputs": [{"Name": f"{name}_in", "Format/Datatype": f} for f in inputs],
             "Outputs": [{"Name": f"{name}_out", "Format/Datatype": f} for f in outputs]}
    if weights:
        entry["Weights"] = {"Type": weights, "Count": 16}
    return entry


def test_engine_layer_types_read_inspector_formats():
    info = inspector(layer("a", ["Row major linear FP16 format"], ["Row major Int8 format"]),
                     layer("b", ["Channel major INT8 format where channel % 16 == 0"], ["Row major linear FP32"]),
                     layer("c", ["Row major linear FP16 format"], ["Row major linear FP16 format"], weights="Int4"),
                     layer("d", ["Row major linear FP8 format"], ["Row major linear FP16 format"]),
                     "a layer name only")
    assert engine_layer_types(info) == {"int8": 2, "int4": 1, "fp8": 1}


def test_silent_fallback_fails_and_real_low_precision_passes():
    fp16_only = engine_layer_types(inspector(layer("a", ["Row major linear FP16 format"], ["Row major linear FP32"])))
    with pytest.raises(UnsupportedError, match="14 INT4 Q/DQ layers but no engine layer runs INT4"):
        check_layer_precision("llm", {"int4": 14}, fp16_only)
    found = engine_layer_types(inspector(layer("a", ["Row major linear FP16 format"], ["Row major linear FP16 format"],
                                               weights="Int4")))
    assert check_layer_precision("llm", {"int4": 14}, found) == "passed: 1 INT4 layers"
    assert check_layer_precision("vision", {}, fp16_only) == "passed: no Q/DQ layers in the graph"


def qdq_matmul_graph(path):
    """x (fp16) -> Q/DQ int8 -> MatMul with an int8 per-channel DQ weight."""
    k, n = 64, 32
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-100, 100, (k, n)).astype(np.int8), "w"),
             numpy_helper.from_array(np.full((n,), 0.01, np.float16), "ws"),
             numpy_helper.from_array(np.array(0.02, np.float16), "xs"),
             numpy_helper.from_array(np.array(0, np.int8), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "zp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["s", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["s", n])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), path)


def test_quantized_layers_are_counted_on_a_parsed_network(tmp_path):
    trt = pytest.importorskip("tensorrt_rtx_bindings")
    from nvila_edge.engines.tensorrt_builder import _logger, parse_onnx

    qdq_matmul_graph(tmp_path / "qdq.onnx")
    logger = _logger(trt)
    network, _parser = parse_onnx(trt, trt.Builder(logger), logger, tmp_path / "qdq.onnx", "tensorrt-rtx")
    assert network_quantized_layers(trt, network) == {"int8": 3}


def test_rtx_builds_for_the_named_compute_capability_and_refuses_an_unknown_one():
    trt = pytest.importorskip("tensorrt_rtx_bindings")
    from nvila_edge.runtime.backends.trt_api import set_compute_capability

    config = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_builder_config()
    set_compute_capability(trt, config, (8, 9))
    assert config.num_compute_capabilities == 1 and config.get_compute_capability(0) == trt.ComputeCapability.SM89
    with pytest.raises(UnsupportedError, match=r"cannot build for sm_10 \(it knows: SM"):
        set_compute_capability(trt, config, (1, 0))
