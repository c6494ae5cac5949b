"""Build targets: one record per device class, saying what engines for it may use.

A record fixes the GPU's compute capability, the memory an engines folder may take (weights + KV cache +
activations), the backend that builds and runs the engines, and the precision recipes that can run there.
Recipes (``engines/recipes.py``): every recipe runs everywhere except ``fp8`` (FP8 E4M3 Q/DQ), which needs
tensor cores of compute capability 8.9 or newer, so Orin (8.7) never gets it.

Memory budgets are what is left for engines after the OS, the desktop and the demo process (Python,
OpenCV, camera buffers) on a freshly flashed board; the x86, RTX and CPU records assume a typical machine
of their class (noted per record).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from nvila_edge.engines.recipes import RECIPES as RECIPE_TABLE
from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.backends import BACKENDS

RECIPES = tuple(RECIPE_TABLE)
FP8_MIN_CAPABILITY = (8, 9)
GIB = 2**30
MAX_WORKSPACE = 2 * GIB

ORIN_RECIPES = tuple(name for name, recipe in RECIPE_TABLE.items() if "fp8" not in recipe.precisions)


@dataclass(frozen=True)
class TargetRecord:
    name: str
    description: str
    compute_capability: tuple[int, int] | None  # None: no GPU (ONNX Runtime on the CPU)
    total_memory_gb: int
    memory_budget_bytes: int  # engines + KV cache + activations
    default_backend: str
    recipes: tuple[str, ...]
    default_recipe: str

    def __post_init__(self) -> None:
        if self.default_backend not in BACKENDS:
            raise ValueError(f"{self.name}: unknown backend {self.default_backend!r}")
        unknown = set(self.recipes) - set(RECIPES)
        if unknown or self.default_recipe not in self.recipes:
            raise ValueError(f"{self.name}: bad recipes {self.recipes} / default {self.default_recipe!r}")
        if "fp8" in self.recipes and (self.compute_capability or (99, 0)) < FP8_MIN_CAPABILITY:
            raise ValueError(f"{self.name}: fp8 listed for compute capability {self.compute_capability}")

    @property
    def sm(self) -> str:
        """``sm_87`` style name of the compute capability, ``cpu`` without a GPU."""
        if self.compute_capability is None:
            return "cpu"
        major, minor = self.compute_capability
        return f"sm_{major}{minor}"

    @property
    def capability(self) -> str:
        """``8.7`` style compute capability, ``none`` without a GPU."""
        return ".".join(map(str, self.compute_capability)) if self.compute_capability else "none"

    @property
    def workspace_bytes(self) -> int:
        """Builder workspace limit (tactic scratch memory): an eighth of the budget, at most 2 GiB, so tactics
        that need more are skipped instead of pushing the board into swap."""
        return min(self.memory_budget_bytes // 8, MAX_WORKSPACE)

    @property
    def is_jetson(self) -> bool:
        return self.name.startswith(("orin-", "thor"))


def _orin(name: str, description: str, total_gb: int, budget_gib: float) -> TargetRecord:
    return TargetRecord(name, description, (8, 7), total_gb, int(budget_gib * GIB), "tensorrt", ORIN_RECIPES, "int4")


TARGETS: dict[str, TargetRecord] = {
    record.name: record
    for record in (
        # 4 GB boards show ~3.3 GiB to Linux; only the smallest models fit.
        _orin("orin-nano-4gb", "Jetson Orin Nano 4GB (Ampere sm_87, JetPack 6.x / 7.2)", 4, 2.0),
        # 8 GB boards show ~7.4 GiB; about 5.2 GiB is left after the OS, minus the demo process.
        _orin("orin-nano-8gb", "Jetson Orin Nano 8GB / Orin Nano Super (Ampere sm_87)", 8, 4.5),
        _orin("orin-nx-8gb", "Jetson Orin NX 8GB (Ampere sm_87)", 8, 4.5),
        _orin("orin-nx-16gb", "Jetson Orin NX 16GB (Ampere sm_87)", 16, 11.0),
        _orin("orin-agx-32gb", "Jetson AGX Orin 32GB (Ampere sm_87)", 32, 24.0),
        _orin("orin-agx-64gb", "Jetson AGX Orin 64GB (Ampere sm_87)", 64, 52.0),
        TargetRecord("thor", "Jetson AGX Thor 128GB (Blackwell sm_110, JetPack 7.x)", (11, 0), 128,
                     104 * GIB, "tensorrt", RECIPES, "fp8"),
        # Assumes an Ada-class 24 GB card (e.g. RTX 4090 / L4-class memory); engines built here only serve
        # accuracy checks, they never transfer to a Jetson.
        TargetRecord("x86-gpu", "x86 host with an NVIDIA GPU, TensorRT (assumed Ada sm_89, 24 GB)", (8, 9), 24,
                     20 * GIB, "tensorrt", RECIPES, "fp16"),
        # TensorRT-RTX can build without a GPU (CPU-only ahead-of-time), so this target also serves CI.
        TargetRecord("rtx", "RTX PC with TensorRT-RTX (assumed Ada sm_89, 16 GB)", (8, 9), 16,
                     13 * GIB, "tensorrt-rtx", RECIPES, "fp16"),
        # ONNX Runtime's CPU provider runs every recipe's Q/DQ graph; fp32 is the exact reference.
        TargetRecord("cpu", "any machine, ONNX Runtime on the CPU (assumed 16 GB RAM)", None, 16,
                     12 * GIB, "onnxruntime", RECIPES, "fp32"),
    )
}


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(choices)}"


def get_target(name: str) -> TargetRecord:
    """The record called ``name``; a typo raises with the nearest known name."""
    try:
        return TARGETS[name]
    except KeyError:
        raise UnsupportedError(f"unknown target '{name}'{_did_you_mean(name, TARGETS)}") from None


def check_recipe(target: TargetRecord, recipe: str) -> None:
    """Raise ``UnsupportedError`` unless ``recipe`` can run on ``target``."""
    if recipe not in RECIPES:
        raise UnsupportedError(f"unknown recipe '{recipe}'{_did_you_mean(recipe, RECIPES)}")
    if recipe in target.recipes:
        return
    if recipe == "fp8":
        raise UnsupportedError(
            f"target '{target.name}' ({target.sm}, compute capability {target.capability}) cannot run fp8: "
            f"FP8 needs compute capability 8.9 or newer; use --recipe int4 or int8-int4")
    raise UnsupportedError(
        f"target '{target.name}' ({target.sm}) does not support recipe '{recipe}'; "
        f"use one of: {', '.join(target.recipes)}")
