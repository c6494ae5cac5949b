"""What a build decides before it writes anything: optimization profiles, the memory budget and max context,
cache keys, and the cleanup of leftovers from killed builds."""

import dataclasses
import os
import subprocess
import sys

import pytest

from nvila_edge.engines.cache import EngineCache, EngineKey, remove_stale_partials
from nvila_edge.engines.memory import CONTEXT_STEP, ModelMemory, choose_context
from nvila_edge.engines.profiles import PREFILL_OPT, context_dims, input_shapes, llm_phase_dims, scale_dims
from nvila_edge.engines.targets import GIB, get_target
from nvila_edge.errors import ArtifactError, UnsupportedError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.manifest import DimRange, TensorSpec
from nvila_edge.runtime.presets import preset_files


def config(preset: str) -> NvilaConfig:
    return NvilaConfig.from_files(preset_files(preset))


def test_dynamic_s2_scale_dims_cover_block_and_resize_modes():
    tiny = config("tiny")  # scales 64, 128, 192 over 64 px tiles, 8x8 patch grid, max 12 tiles
    dims = scale_dims(tiny)
    assert dims["tiles_0"] == DimRange(1, 1, 1) and dims["tiles_1"] == DimRange(1, 4, 4)
    assert dims["rows_in_1"] == DimRange(8, 16, 16) and dims["cols_in_0"] == DimRange(8, 8, 8)
    assert dims["tiles_2"] == DimRange(1, 9, 12) and dims["rows_in_2"] == DimRange(8, 24, 96)
    assert scale_dims(config("tiny-lite")) == {}


def test_llm_profiles_prefill_from_empty_cache_and_decode_one_position():
    phases = llm_phase_dims(2048)
    spec = TensorSpec("past_key.0", "float32", ["batch", "past", 2, 32])
    batch = {"batch": DimRange(1, 1, 1)}
    prefill = input_shapes(spec, {**batch, **phases["prefill"]}, "llm")
    decode = input_shapes(spec, {**batch, **phases["decode"]}, "llm")
    assert prefill == [[1, 0, 2, 32], [1, 0, 2, 32], [1, 2047, 2, 32]]
    assert decode == [[1, 1, 2, 32], [1, 1024, 2, 32], [1, 2047, 2, 32]]
    assert phases["prefill"]["seq"] == DimRange(1, PREFILL_OPT, 2048) and phases["decode"]["seq"] == DimRange(1, 1, 1)
    assert llm_phase_dims(100)["prefill"]["seq"].opt == 100
    assert context_dims(1024)["total"].max == 1024 and context_dims(1024)["past"].max == 1023


def test_unknown_dynamic_dimension_is_an_artifact_error():
    with pytest.raises(ArtifactError, match="dynamic dimension 'frames' with no range"):
        input_shapes(TensorSpec("x", "float32", ["frames", 3]), {}, "vision")


def memory(preset: str, weight_gb: float, itemsize: int = 2) -> ModelMemory:
    return ModelMemory(config(preset), int(weight_gb * GIB), itemsize, itemsize, 13)


def test_max_context_is_the_largest_step_that_fits():
    model = memory("nvila-8b", 4.3)  # INT4 LLM + FP16 vision
    nx16 = get_target("orin-nx-16gb")
    context, plan = choose_context(model, nx16, 8192, nx16.workspace_bytes)
    assert context % CONTEXT_STEP == 0 and plan.total <= nx16.memory_budget_bytes and plan.workspace > 0
    assert model.plan(context + CONTEXT_STEP, plan.workspace).total > nx16.memory_budget_bytes
    assert choose_context(model, get_target("orin-agx-64gb"), 8192, 2 * GIB)[0] == 8192  # the model's own limit


def test_a_context_that_does_not_fit_is_refused_with_both_numbers():
    model = memory("nvila-lite-2b", 1.5)
    with pytest.raises(UnsupportedError) as err:
        choose_context(model, get_target("orin-nano-8gb"), 32768, GIB // 2, requested=32768)
    message = str(err.value)
    assert "max context 32768 needs" in message and "has 4.50 GiB for engines" in message
    assert "use --max-context" in message
    with pytest.raises(UnsupportedError, match="even at 256 positions .* 'orin-nano-4gb' has 2.00 GiB"):
        choose_context(memory("nvila-8b", 4.3), get_target("orin-nano-4gb"), 8192, GIB // 4)
    with pytest.raises(UnsupportedError, match="outside this model's range of 2..4096"):
        choose_context(model, get_target("orin-nx-16gb"), 4096, GIB, requested=8192)


def key(**changes) -> EngineKey:
    base = EngineKey("llm", "abc", "int4", "tensorrt", "10.3.0", "orin-nano-8gb", "8.7",
                     {"optimization_level": 3, "workspace_bytes": 1 << 29}, [{"name": "prefill", "shapes": {}}])
    return dataclasses.replace(base, **changes)


def test_cache_key_changes_with_everything_that_changes_the_engine():
    assert key().digest() == key().digest()
    variants = [key(onnx="abd"), key(recipe="fp16"), key(backend_version="10.16.2"), key(target="orin-nx-8gb"),
                key(compute_capability="11.0"), key(options={"optimization_level": 4, "workspace_bytes": 1 << 29}),
                key(profiles=[{"name": "prefill", "shapes": {"x": [[1], [2], [3]]}}]), key(graph="vision")]
    assert len({k.digest() for k in variants} | {key().digest()}) == len(variants) + 1


def test_cache_entry_appears_only_when_complete(tmp_path):
    cache = EngineCache(tmp_path)

    def fail(folder):
        (folder / "llm.engine").write_bytes(b"half")
        raise RuntimeError("builder crashed")

    def build(folder):
        (folder / "llm.engine").write_bytes(b"plan")
        return {"files": ["llm.engine"]}

    with pytest.raises(RuntimeError):
        cache.put(key(), fail)
    assert cache.lookup(key()) is None and not list((tmp_path / "engines").iterdir())
    entry = cache.put(key(), build)
    assert cache.lookup(key()) == entry and cache.record(entry)["files"] == ["llm.engine"]


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".llm-tensorrt-0123.partial-{int(dead.stdout)}"
    live = tmp_path / f".vision-tensorrt-4567.partial-{os.getpid()}"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "x.engine").write_bytes(b"x")
    (tmp_path / ".keep.partial-notapid").mkdir()
    remove_stale_partials(tmp_path)
    assert not stale.exists() and live.exists() and (tmp_path / ".keep.partial-notapid").exists()


def test_build_and_validate_import_without_torch():
    """They run on the device, which has the runtime extra and TensorRT but no torch."""
    code = ("import sys\n"
            "for name in ('torch', 'transformers', 'modelopt'):\n"
            "    sys.modules[name] = None\n"
            "import nvila_edge.commands.build, nvila_edge.commands.validate, nvila_edge.engines.build\n"
            "import nvila_edge.engines.validate, nvila_edge.engines.tensorrt_builder\n"
            "import nvila_edge.engines.onnxruntime_builder\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
