"""Put visual embeddings where the media tokens are, as NVILA does before calling the LLM.

Every media token (``<image>`` or ``<vila/video>``) is replaced by the next media item in order. An item is
the concatenation of its blocks, each followed by the embedding of "\\n" (there are no start tokens).
Shared by the PyTorch reference, training and the runtime so all build identical ``inputs_embeds``; the
``concat`` argument lets torch tensors (with gradients) go through the same code as numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nvila_edge.errors import InputError

Concat = Callable[[Sequence], object]


def media_item(blocks: list, newline_embedding, concat: Concat = np.concatenate):
    """[n_i, H] blocks -> [sum(n_i + 1), H]: each block then the "\\n" end embedding ([1, H], same dtype)."""
    parts = []
    for block in blocks:
        parts.extend((block, newline_embedding))
    return concat(parts)


def splice(token_ids: list[int], media_ids: set[int], embed_table, items: list, concat: Concat = np.concatenate):
    """token ids (with media placeholders) -> inputs_embeds [L, H]; items must have the table's dtype."""
    slots = [i for i, t in enumerate(token_ids) if t in media_ids]
    if len(slots) != len(items):
        raise InputError(f"the prompt has {len(slots)} media token(s) but {len(items)} image/video input(s) were given")
    pieces, start = [], 0
    for slot, item in zip(slots, items):
        if slot > start:
            pieces.append(embed_table[token_ids[start:slot]])
        pieces.append(item)
        start = slot + 1
    if start < len(token_ids):
        pieces.append(embed_table[token_ids[start:]])
    return concat(pieces)
