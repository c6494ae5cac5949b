import dataclasses

import pytest

from nvila_edge.engines.targets import GIB, RECIPES, TARGETS, TargetRecord, check_recipe, get_target
from nvila_edge.errors import UnsupportedError

ORIN = ["orin-nano-4gb", "orin-nano-8gb", "orin-nx-8gb", "orin-nx-16gb", "orin-agx-32gb", "orin-agx-64gb"]


def test_every_named_target_exists_and_is_frozen():
    assert list(TARGETS) == ORIN + ["thor", "x86-gpu", "rtx", "cpu"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TARGETS["thor"].default_recipe = "fp16"


@pytest.mark.parametrize("name", ORIN)
def test_orin_is_sm87_tensorrt_int4_and_never_fp8(name):
    target = get_target(name)
    assert target.compute_capability == (8, 7) and target.sm == "sm_87"
    assert target.default_backend == "tensorrt"
    assert target.default_recipe == "int4"
    assert "fp8" not in target.recipes
    assert {"int4", "int8-int4", "fp16"} <= set(target.recipes)


@pytest.mark.parametrize("name, capability, backend", [
    ("thor", (11, 0), "tensorrt"),
    ("x86-gpu", (8, 9), "tensorrt"),
    ("rtx", (8, 9), "tensorrt-rtx"),
])
def test_fp8_capable_targets(name, capability, backend):
    target = get_target(name)
    assert target.compute_capability == capability
    assert target.default_backend == backend
    assert "fp8" in target.recipes
    check_recipe(target, "fp8")


def test_cpu_runs_every_recipe_on_onnxruntime():
    cpu = get_target("cpu")
    assert cpu.compute_capability is None and cpu.sm == "cpu" and cpu.capability == "none"
    assert cpu.default_backend == "onnxruntime"
    assert cpu.recipes == RECIPES
    for recipe in RECIPES:
        check_recipe(cpu, recipe)


def test_budgets_fit_in_memory_and_grow_with_it():
    for target in TARGETS.values():
        assert 0 < target.memory_budget_bytes < target.total_memory_gb * GIB, target.name
    orin = sorted((get_target(n) for n in ORIN), key=lambda t: t.total_memory_gb)
    budgets = [t.memory_budget_bytes for t in orin]
    assert budgets == sorted(budgets)
    assert get_target("orin-nano-8gb").memory_budget_bytes < 6 * GIB  # ~5.2 GiB is left after the OS


def test_typo_suggests_the_nearest_target():
    with pytest.raises(UnsupportedError) as err:
        get_target("orin-nan-8gb")
    assert str(err.value) == "unknown target 'orin-nan-8gb'; did you mean 'orin-nano-8gb'?"


def test_unrelated_name_lists_known_targets():
    with pytest.raises(UnsupportedError, match="unknown target 'jetson-tx2'; known: orin-nano-4gb, .*cpu"):
        get_target("jetson-tx2")


@pytest.mark.parametrize("name", ORIN)
def test_fp8_on_orin_names_the_capability_and_the_alternatives(name):
    with pytest.raises(UnsupportedError) as err:
        check_recipe(get_target(name), "fp8")
    message = str(err.value)
    assert f"target '{name}'" in message and "sm_87" in message and "8.7" in message
    assert "--recipe int4 or int8-int4" in message


def test_allowed_recipes_pass_and_unknown_recipe_is_named():
    check_recipe(get_target("orin-nano-8gb"), "int4")
    check_recipe(get_target("orin-nano-8gb"), "int8-int4")
    with pytest.raises(UnsupportedError, match="unknown recipe 'int8_int4'; did you mean 'int8-int4'"):
        check_recipe(get_target("thor"), "int8_int4")


def test_record_refuses_fp8_below_sm89():
    with pytest.raises(ValueError, match="fp8"):
        TargetRecord("bad", "ampere with fp8", (8, 6), 8, GIB, "tensorrt", ("fp16", "fp8"), "fp16")
    with pytest.raises(ValueError, match="backend"):
        TargetRecord("bad", "unknown backend", (8, 9), 8, GIB, "tvm", ("fp16",), "fp16")
