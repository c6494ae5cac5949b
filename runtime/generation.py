"""The token loop shared by every backend: prefill once, then one decode step per token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nvila_edge.errors import InputError
from nvila_edge.runtime.sampling import Sampler, SamplingParams


class Decoder(Protocol):
    context: int  # positions the cache holds

    def reset(self) -> None:
        """Forget the cached positions (the buffers stay allocated)."""

    def step(self, inputs_embeds: np.ndarray) -> np.ndarray:
        """inputs_embeds [S, H] appended after the cached positions -> logits of the last position [V]."""


@dataclass
class Timings:
    prefill_ms: float = 0.0
    decode_ms: list[float] = field(default_factory=list)

    @property
    def decode_tokens_per_s(self) -> float:
        total = sum(self.decode_ms)
        return 1000.0 * len(self.decode_ms) / total if total else 0.0


def decode_rate(tokens_per_s: float, steps: int) -> str:
    """'decode 12.3 tok/s', or 'decode -' below two decode steps: one step says nothing about a rate (it is
    mostly fixed per-call cost)."""
    return f"decode {tokens_per_s:.1f} tok/s" if steps >= 2 else "decode -"


def check_fits(positions: int, context: int) -> None:
    if positions >= context:
        raise InputError(f"the request needs {positions} positions but the context holds {context} "
                         "(and one more for the answer); shorten the prompt or ask about less media")


def generate(decoder: Decoder, prompt_embeds: np.ndarray, embed: Callable[[int], np.ndarray],
             params: SamplingParams, stop_ids: set[int], timings: Timings | None = None) -> Iterator[int]:
    """Yield token ids until a stop token, max_new_tokens, or a full context. ``embed(id)`` -> [1, H]."""
    check_fits(len(prompt_embeds), decoder.context)
    timings = timings if timings is not None else Timings()
    sampler = Sampler(params)
    decoder.reset()
    budget = min(params.max_new_tokens, decoder.context - len(prompt_embeds))
    start = time.perf_counter()
    logits = decoder.step(prompt_embeds)
    timings.prefill_ms = 1000 * (time.perf_counter() - start)
    for produced in range(budget):
        token = sampler(logits)
        if token in stop_ids:
            return
        yield token
        if produced + 1 == budget:
            return
        start = time.perf_counter()
        logits = decoder.step(embed(token))
        timings.decode_ms.append(1000 * (time.perf_counter() - start))
