"""Precision recipes: what each graph of an export becomes, the oldest TensorRT the result must parse, and
how much accuracy the recipe may lose against ``fp32``. The one table of recipes: the export applies them,
the build targets list the ones their GPU can run, the accuracy test and ``bench/quant_table.py`` hold each
to its tolerance.

Graph precisions: ``fp32`` and ``fp16`` (plain float graphs), ``int8`` (SmoothQuant W8A8, explicit Q/DQ,
FP16 elsewhere), ``int4`` (AWQ weight-only W4A16: INT4 weights behind blocked DequantizeLinear, FP16
activations) and ``fp8`` (E4M3 Q/DQ on weights and activations, FP16 elsewhere). The projector and the
embedding table never go below FP16; the LLM's lm_head stays FP16 unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvila_edge.errors import UnsupportedError

GRAPHS = ("vision", "projector", "llm")
QUANTIZED = ("int8", "int4", "fp8")
DEFAULT_CALIBRATION_SIZE = 32  # images / prompts


@dataclass(frozen=True)
class Recipe:
    name: str
    vision: str
    projector: str
    llm: str
    trt_floor: str  # the oldest TensorRT the recipe is meant for; every export is checked against it
    accuracy_drop: float  # at most this much below fp32's accuracy on the shapes suite (0.02 = 2 points)
    summary: str

    def precision_of(self, graph: str) -> str:
        return getattr(self, graph)

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.precision_of(g) for g in GRAPHS)

    @property
    def needs_calibration(self) -> bool:
        return any(p in QUANTIZED for p in self.precisions)

    @property
    def float_dtype(self) -> str:
        """numpy dtype of every float graph input/output and of the embedding table."""
        return "float32" if self.llm == "fp32" else "float16"


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("fp32", "fp32", "fp32", "fp32", "10.3", 0.0, "all graphs FP32 (the CPU reference; not for devices)"),
        Recipe("fp16", "fp16", "fp16", "fp16", "10.3", 0.02, "all graphs FP16"),
        Recipe("int4", "fp16", "fp16", "int4", "10.3", 0.03,
               "LLM INT4-AWQ weight-only (symmetric, block 128), vision + projector FP16; the Orin default"),
        Recipe("int8-int4", "int8", "fp16", "int4", "10.3", 0.03,
               "vision INT8 SmoothQuant (Q/DQ) + LLM INT4-AWQ, projector FP16"),
        # FP8 needs compute capability 8.9+: Thor (JetPack 7.0 = TensorRT 10.13 is its oldest), Ada, Hopper.
        Recipe("fp8", "fp8", "fp16", "fp8", "10.13", 0.02,
               "vision + LLM FP8 E4M3 Q/DQ, projector FP16; Thor, Ada and Hopper only (not Orin)"),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnsupportedError(f"unknown precision recipe '{name}'; choose from: {', '.join(RECIPES)}") from None
