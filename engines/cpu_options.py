"""Options of the CPU rewrite of the LLM (``engines/cpu_llm.py``), kept free of ONNX so planning a build
imports nothing heavy.

Defaults per recipe come from measurements on this project's CPU benchmark and the built-in model's accuracy
(docs/performance.md): accuracy level 0 keeps MatMulNBits' activations FP32 (exactly the export's W4A16
arithmetic, up to FP16 rounding); level 4 quantizes them to INT8 per block.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvila_edge.errors import InputError

LM_HEAD_FORMS = ("float", "int8", "int4")
ACCURACY_LEVELS = (0, 1, 4)  # MatMulNBits: 0 unset (FP32 here), 1 FP32, 4 INT8 activations
DEFAULT_LM_HEAD = {"fp32": "float", "fp16": "float", "int4": "float"}
DEFAULT_ACCURACY_LEVEL = 0


@dataclass(frozen=True)
class CpuLlmOptions:
    accuracy_level: int = DEFAULT_ACCURACY_LEVEL
    lm_head: str = "float"  # float | int8 | int4

    def __post_init__(self) -> None:
        if self.accuracy_level not in ACCURACY_LEVELS:
            raise InputError(f"accuracy level {self.accuracy_level} is not one of {ACCURACY_LEVELS}")
        if self.lm_head not in LM_HEAD_FORMS:
            raise InputError(f"lm_head form '{self.lm_head}' is not one of: {', '.join(LM_HEAD_FORMS)}")


def cpu_options(recipe: str, accuracy_level: int | None = None, lm_head: str | None = None) -> CpuLlmOptions:
    """The options for an export of ``recipe``: the given ones, else the recipe's defaults."""
    return CpuLlmOptions(DEFAULT_ACCURACY_LEVEL if accuracy_level is None else accuracy_level,
                         lm_head or DEFAULT_LM_HEAD.get(recipe, "float"))
