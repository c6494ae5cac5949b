"""A KV cache preallocated once per context length and reused across steps and queries.

Two layouts, named in the manifest's ``kv_layout``:

- ``SEQ_MAJOR`` (the export's graphs): per layer and K/V ``[1, context, kv_heads, head_dim]``. The first
  ``length`` positions are one contiguous block, so the graph's ``past`` input and ``new`` output are plain
  views of the buffer.
- ``SHARED_HEAD_MAJOR`` (the CPU engines' GroupQueryAttention): ``[1, kv_heads, context, head_dim]``, and the
  graph's ``past`` input and ``present`` output are the same whole buffer, which the graph updates in place.

Either way a decode step copies nothing through Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEQ_MAJOR = "batch,seq,kv_heads,head_dim"
SHARED_HEAD_MAJOR = "batch,kv_heads,context,head_dim;shared"
KV_LAYOUTS = (SEQ_MAJOR, SHARED_HEAD_MAJOR)


@dataclass
class KVCache:
    keys: list[np.ndarray]
    values: list[np.ndarray]
    layout: str = SEQ_MAJOR
    length: int = 0

    @classmethod
    def allocate(cls, layers: int, context: int, kv_heads: int, head_dim: int, dtype: np.dtype,
                 layout: str = SEQ_MAJOR) -> KVCache:
        shape = (1, context, kv_heads, head_dim) if layout == SEQ_MAJOR else (1, kv_heads, context, head_dim)
        return cls([np.zeros(shape, dtype) for _ in range(layers)], [np.zeros(shape, dtype) for _ in range(layers)],
                   layout)

    @property
    def context(self) -> int:
        return self.keys[0].shape[1 if self.layout == SEQ_MAJOR else 2]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.keys + self.values)

    def past(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        return self.keys[layer][:, : self.length], self.values[layer][:, : self.length]

    def slot(self, layer: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Views where the next ``count`` positions' K/V are written."""
        end = self.length + count
        return self.keys[layer][:, self.length:end], self.values[layer][:, self.length:end]
