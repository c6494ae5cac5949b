"""Backends run the graphs of an export or engines folder. The pipeline only sees two small interfaces:

- a graph runner: ``run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]``, ``close()``;
- a decoder (``runtime.generation.Decoder``): ``context``, ``reset()``, ``step(inputs_embeds) -> logits``,
  which owns its preallocated KV cache.
"""

from __future__ import annotations

TENSORRT_BACKENDS = ("tensorrt", "tensorrt-rtx")
BACKENDS = ("onnxruntime", *TENSORRT_BACKENDS)
