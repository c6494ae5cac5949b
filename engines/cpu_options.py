"""Options of the CPU rewrite of the LLM (``engines/cpu_llm.py``), kept free of ONNX so planning a build
imports nothing heavy.

Defaults per recipe come from measurements on this project's CPU benchmark and the built-in model's accuracy
(docs/performance.md). Accuracy level 0 keeps MatMulNBits' activations FP32 (the export's W4A16 arithmetic);
level 4 quantizes them to INT8 per block and runs ONNX Runtime's integer kernels, which on the measured AVX2
machine were many times faster than level 0 (ONNX Runtime 1.32). The lm_head is quantized by default: on a
Qwen2-size vocabulary it is the largest single read of a decode step. INT4 recipes get an INT4 head, fp32 and fp16 an
INT8 head (both blocks of 32); ``--lm-head float`` keeps it as exported.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvila_edge.errors import InputError

LM_HEAD_FORMS = ("float", "int8", "int4")
ACCURACY_LEVELS = (0, 1, 4)  # MatMulNBits: 0 unset (FP32 here), 1 FP32, 4 INT8 activations
# the recipes whose LLM the cpu build rewrites; the others' (fp8, int8) runs as exported, head included
DEFAULT_LM_HEAD = {"fp32": "int8", "fp16": "int8", "int4": "int4", "int8-int4": "int4"}
DEFAULT_ACCURACY_LEVEL = 4
# part of the cpu LLM's cache key: bump when engines/cpu_llm.py writes another graph for the same options
GRAPH_FORMAT = 3


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
