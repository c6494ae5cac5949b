"""How much memory an engines folder needs at a given max context, and the largest context a target can hold.

Estimate = weights (the graphs' ONNX and external-data bytes; engines hold about the same) + KV cache
(2 x layers x context x kv_heads x head_dim) + activations + the builder workspace. Activations are sized
for the worst case every backend can hit: a whole-context prefill through decomposed attention (TensorRT 10.3
has no fused attention layer), whose score matrix is heads x context x context, plus the vision tower at its
largest tile batch. On Jetson the GPU shares the board's RAM, so this is what must fit the target's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvila_edge.engines.targets import GIB, TargetRecord
from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.config import NvilaConfig

CONTEXT_STEP = 256  # an automatically chosen context is a multiple of this


@dataclass(frozen=True)
class MemoryPlan:
    weights: int
    kv_cache: int
    activations: int
    workspace: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.workspace

    def describe(self) -> str:
        parts = {"weights": self.weights, "KV cache": self.kv_cache, "activations": self.activations,
                 "workspace": self.workspace}
        return f"{gib(self.total)} (" + " + ".join(f"{name} {gib(n)}" for name, n in parts.items()) + ")"


def gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB"


@dataclass(frozen=True)
class ModelMemory:
    """What the estimate needs from the model: its config, weight bytes and element sizes."""

    config: NvilaConfig
    weight_bytes: int
    activation_itemsize: int
    kv_itemsize: int
    max_tiles: int  # largest vision batch

    def kv_cache(self, context: int) -> int:
        llm = self.config.llm
        return 2 * llm.num_hidden_layers * context * llm.num_key_value_heads * llm.head_dim * self.kv_itemsize

    def activations(self, context: int) -> int:
        llm, vision = self.config.llm, self.config.vision
        # One layer's tensors live at a time: hidden states and Q/K/V, the MLP's two intermediate tensors, and
        # the attention scores of every head over the whole context.
        per_position = 4 * llm.hidden_size + 2 * llm.intermediate_size + llm.num_attention_heads * context
        tokens = vision.grid**2
        per_tile = tokens * (4 * vision.hidden_size + vision.intermediate_size + vision.num_attention_heads * tokens)
        return (context * per_position + self.max_tiles * per_tile + llm.vocab_size) * self.activation_itemsize

    def plan(self, context: int, workspace: int) -> MemoryPlan:
        return MemoryPlan(self.weight_bytes, self.kv_cache(context), self.activations(context), workspace)


def choose_context(model: ModelMemory, target: TargetRecord, model_max: int, workspace: int,
                   requested: int | None = None) -> tuple[int, MemoryPlan]:
    """The requested context if it fits, else the largest multiple of CONTEXT_STEP (or the model's maximum)
    that fits; refusals give the needed and the available bytes. ``workspace``: the builder's limit (TensorRT)."""
    budget = target.memory_budget_bytes
    if requested is not None:
        if requested < 2 or requested > model_max:
            raise UnsupportedError(f"--max-context {requested} is outside this model's range of 2..{model_max} "
                                   "positions (model_max_length)")
        plan = model.plan(requested, workspace)
        if plan.total > budget:
            best = _largest_fitting(model, workspace, budget, model_max)
            hint = (f"use --max-context {best[0]} or less" if best
                    else "use a smaller model or recipe, or a larger target")
            raise UnsupportedError(f"max context {requested} needs {plan.describe()} but target '{target.name}' has "
                                   f"{gib(budget)} for engines; {hint}")
        return requested, plan
    best = _largest_fitting(model, workspace, budget, model_max)
    if best is None:
        smallest = model.plan(min(CONTEXT_STEP, model_max), workspace)
        raise UnsupportedError(f"this model needs {smallest.describe()} even at {min(CONTEXT_STEP, model_max)} "
                               f"positions but target '{target.name}' has {gib(budget)} for engines; "
                               "use a smaller model or recipe, or a larger target")
    return best


def _largest_fitting(model: ModelMemory, workspace: int, budget: int, model_max: int):
    candidates = sorted({model_max, *range(CONTEXT_STEP, model_max + 1, CONTEXT_STEP)}, reverse=True)
    for context in candidates:
        plan = model.plan(context, workspace)
        if plan.total <= budget:
            return context, plan
    return None
