"""The emulator cannot drift into an API that does not exist: every class, method, property and enum member it
emulates exists under the same name, with the same parameter names where they can be read, in the real
TensorRT-RTX bindings and in cuda-python's runtime module.

The emulator stands for TensorRT 10 (the Jetson's); within the subset it emulates, TensorRT-RTX 1.7 has every
name TensorRT 10 has, so the RTX bindings installed here are the reference (docs/jetson.md lists where the two
differ beyond names).
"""

import enum
import inspect
import re

import pytest
from trt_emulator import emulated_cudart, emulated_pycuda, emulated_tensorrt


def public_members(cls) -> dict[str, object]:
    members = {}
    for klass in reversed(cls.__mro__[:-1]):
        if klass.__module__.startswith("trt_emulator"):
            members.update({k: v for k, v in vars(klass).items() if not k.startswith("_") or k == "__init__"})
    return members


def emulated_names(module) -> list[str]:
    return [name for name in module.__all__ if name != "__version__"]


def real_parameters(function) -> list[list[str]]:
    """Parameter names of every overload, from a signature or a pybind11 docstring."""
    try:
        params = [p for p in inspect.signature(function).parameters if p != "self"]
        if params != ["args", "kwargs"]:
            return [params]
    except (TypeError, ValueError):
        pass
    name = getattr(function, "__name__", "")
    found = []
    for line in (function.__doc__ or "").splitlines():
        match = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*(->.*)?$", line)
        if match and match.group(1) != "*args, **kwargs":
            found.append([part.split(":")[0].strip() for part in _split_arguments(match.group(1))])
    return [[p for p in params if p and p != "self"] for params in found]


def _split_arguments(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[(" and 1 or (char in "])" and -1 or 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def emulated_parameters(function) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]


def check_module(emulated, real, label: str, parameters: bool = True) -> list[str]:
    """Names (and, with ``parameters``, parameter names) of an emulated module missing from the real one."""
    problems = []
    for name in emulated_names(emulated):
        ours = getattr(emulated, name)
        if not hasattr(real, name):
            problems.append(f"{label}.{name} does not exist")
            continue
        theirs = getattr(real, name)
        if isinstance(ours, type) and issubclass(ours, enum.Enum):
            members = getattr(theirs, "__members__", {})
            problems += [f"{label}.{name}.{m} does not exist" for m in ours.__members__ if m not in members]
        elif isinstance(ours, type):
            problems += check_class(ours, theirs, f"{label}.{name}", parameters)
        elif callable(ours) and parameters:
            problems += check_parameters(ours, theirs, f"{label}.{name}")
    return problems


def check_class(ours, theirs, label: str, parameters: bool = True) -> list[str]:
    problems = []
    for member, value in public_members(ours).items():
        if member[0].isupper() and isinstance(value, type) and issubclass(value, enum.Enum):
            real_enum = getattr(theirs, member, None)
            real_members = getattr(real_enum, "__members__", {})
            problems += [f"{label}.{member}.{m} does not exist" for m in value.__members__ if m not in real_members]
            continue
        if not hasattr(theirs, member):
            problems.append(f"{label}.{member} does not exist")
            continue
        if parameters and callable(value) and not isinstance(value, (property, type, enum.Enum)):
            problems += check_parameters(value, getattr(theirs, member), f"{label}.{member}")
    return problems


def check_parameters(ours, theirs, label: str) -> list[str]:
    overloads = real_parameters(theirs)
    if not overloads:  # nothing introspectable
        return []
    mine = emulated_parameters(ours)
    if any(mine == params for params in overloads):
        return []
    return [f"{label}{tuple(mine)} has other parameters than the real one: {overloads}"]


def test_emulated_tensorrt_exists_in_the_real_bindings():
    real = pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    assert check_module(emulated_tensorrt, real, "tensorrt") == []


def test_emulated_cuda_runtime_exists_in_cuda_python():
    real = pytest.importorskip("cuda.bindings.runtime", reason="needs cuda-python")
    assert check_module(emulated_cudart, real, "cudart") == []


def test_emulated_pycuda_exists_in_pycuda():
    """Names only: pycuda's Boost.Python docstrings do not spell parameter names the way pybind11's do."""
    real = pytest.importorskip("pycuda.driver", reason="pycuda does not import here (it needs the CUDA driver)",
                               exc_type=ImportError)
    assert check_module(emulated_pycuda, real, "pycuda.driver", parameters=False) == []


def test_the_check_itself_catches_a_name_that_does_not_exist():
    class Fake:
        class IExecutionContext:
            def execute_async_v4(self, stream_handle):
                pass

    fake = type("module", (), {"__all__": ["IExecutionContext"], "IExecutionContext": Fake.IExecutionContext})
    real = pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    assert check_module(fake, real, "tensorrt") == []  # not from the emulator package: members are not listed
    Fake.IExecutionContext.__module__ = "trt_emulator.fake"
    assert check_module(fake, real, "tensorrt") == ["tensorrt.IExecutionContext.execute_async_v4 does not exist"]
