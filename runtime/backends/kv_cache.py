"""A KV cache preallocated once per context length and reused across steps and queries.

Layout per layer and K/V: ``[1, context, kv_heads, head_dim]`` (seq-major). The first ``length`` positions
are one contiguous block, so the graph's ``past`` input and ``new`` output are plain views of the buffer:
a decode step copies nothing through Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KVCache:
    keys: list[np.ndarray]
    values: list[np.ndarray]
    length: int = 0

    @classmethod
    def allocate(cls, layers: int, context: int, kv_heads: int, head_dim: int, dtype: np.dtype) -> KVCache:
        shape = (1, context, kv_heads, head_dim)
        return cls([np.zeros(shape, dtype) for _ in range(layers)], [np.zeros(shape, dtype) for _ in range(layers)])

    @property
    def context(self) -> int:
        return self.keys[0].shape[1]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.keys + self.values)

    def past(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        return self.keys[layer][:, : self.length], self.values[layer][:, : self.length]

    def slot(self, layer: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Views where the next ``count`` positions' K/V are written."""
        end = self.length + count
        return self.keys[layer][:, self.length:end], self.values[layer][:, self.length:end]
