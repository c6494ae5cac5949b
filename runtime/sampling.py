"""Next-token choice from logits: greedy, or temperature + top-p with a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None


class Sampler:
    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def __call__(self, logits: np.ndarray) -> int:
        """logits [V] (float) -> token id."""
        if self.params.temperature <= 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / self.params.temperature
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        if self.params.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            keep = np.cumsum(probs[order]) - probs[order] < self.params.top_p  # always keeps the top token
            mask = np.zeros_like(probs, dtype=bool)
            mask[order[keep]] = True
            probs = np.where(mask, probs, 0.0)
            probs /= probs.sum()
        return int(self.rng.choice(len(probs), p=probs))
