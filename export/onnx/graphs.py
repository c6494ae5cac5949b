"""The three graphs NVILA is cut into, as torch modules with flat, named inputs and outputs.

vision:    pixel_values [tiles, 3, S, S] -> features [tiles, g*g, D]
projector: Dynamic-S2 models: per scale features_i [k_i, g*g, D] + averaging matrices rows_i, cols_i
           -> image tokens [R*C*m*m, H] in raster order;  NVILA-Lite: features [tiles, g*g, D] -> [tiles, m*m, H]
llm:       inputs_embeds [B, S, H], position_ids [B, S], attention_mask [B, P+S], past_key.i / past_value.i
           [B, P, kv, hd] -> logits [B, 1, V] (last position), new_key.i / new_value.i [B, S, kv, hd]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nvila_edge.export.modeling.nvila import NvilaModel


@dataclass
class GraphIO:
    """Names, dynamic axes and a tracing sample for one graph."""

    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    sample: tuple[torch.Tensor, ...]


class LlmGraph(nn.Module):
    def __init__(self, model: NvilaModel):
        super().__init__()
        self.llm = model.llm

    def forward(self, inputs_embeds, position_ids, attention_mask, *past):
        pairs = list(zip(past[0::2], past[1::2]))
        logits, new = self.llm(inputs_embeds, position_ids, attention_mask, pairs)
        return (logits, *[t for kv in new for t in kv])


def vision_io(model: NvilaModel, dtype: torch.dtype) -> GraphIO:
    s = model.config.vision.image_size
    return GraphIO(model.vision_tower, ["pixel_values"], ["features"],
                   {"pixel_values": {0: "tiles"}, "features": {0: "tiles"}},
                   (torch.randn(2, 3, s, s, dtype=dtype),))


def projector_io(model: NvilaModel, dtype: torch.dtype) -> GraphIO:
    config = model.config
    g, d = config.vision.grid, config.vision.hidden_size
    if not config.is_dynamic_s2:
        return GraphIO(model.mm_projector, ["features"], ["embeddings"],
                       {"features": {0: "tiles"}, "embeddings": {0: "tiles"}},
                       (torch.randn(2, g * g, config.mm_hidden_size, dtype=dtype),))
    n = config.num_scales
    names = [f"features_{i}" for i in range(n)] + [f"rows_{i}" for i in range(n)] + [f"cols_{i}" for i in range(n)]
    axes = {f"features_{i}": {0: f"tiles_{i}"} for i in range(n)}
    axes.update({f"rows_{i}": {0: "merged_rows", 1: f"rows_in_{i}"} for i in range(n)})
    axes.update({f"cols_{i}": {0: "merged_cols", 1: f"cols_in_{i}"} for i in range(n)})
    axes["embeddings"] = {0: "image_tokens"}
    # Trace with a non-square block and distinct tile counts so no size is specialised.
    block, ks = (2, 3), [1] + [2] * (n - 2)
    features = [torch.randn(k * k, g * g, d, dtype=dtype) for k in ks] + [torch.randn(6, g * g, d, dtype=dtype)]
    rows = [torch.rand(block[0] * g, k * g) for k in ks] + [torch.eye(block[0] * g)]
    cols = [torch.rand(block[1] * g, k * g) for k in ks] + [torch.eye(block[1] * g)]
    return GraphIO(model.s2_projector(), names, ["embeddings"], axes, (*features, *rows, *cols))


def llm_io(model: NvilaModel, dtype: torch.dtype) -> GraphIO:
    cfg = model.llm.cfg
    layers = range(cfg.num_hidden_layers)
    past_names = [f"past_{kind}.{i}" for i in layers for kind in ("key", "value")]
    new_names = [f"new_{kind}.{i}" for i in layers for kind in ("key", "value")]
    axes = {"inputs_embeds": {0: "batch", 1: "seq"}, "position_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "total"}, "logits": {0: "batch"}}
    axes.update({name: {0: "batch", 1: "past"} for name in past_names})
    axes.update({name: {0: "batch", 1: "seq"} for name in new_names})
    seq, past = 3, 2
    sample = (torch.randn(1, seq, cfg.hidden_size, dtype=dtype), torch.arange(past, past + seq)[None],
              torch.ones(1, past + seq, dtype=torch.int64),
              *[torch.randn(1, past, cfg.num_key_value_heads, cfg.head_dim, dtype=dtype) for _ in past_names])
    return GraphIO(LlmGraph(model), ["inputs_embeds", "position_ids", "attention_mask", *past_names],
                   ["logits", *new_names], axes, sample)


GRAPHS = {"vision": vision_io, "projector": projector_io, "llm": llm_io}
