"""Load a checkpoint folder in the published NVILA layout (``config.json``, ``llm/``, ``vision_tower/``,
``mm_projector/``) into the PyTorch reference model, without VILA code, remote code or pickle.

Every problem is reported as one ``CheckpointError`` line naming the file, key or tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nvila_edge.errors import CheckpointError
from nvila_edge.export.modeling.nvila import NvilaModel
from nvila_edge.export.weights import check_shapes, load_tensors, tensor_index
from nvila_edge.runtime.builtin import resolve_model
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.tokenizer import Tokenizer

# checkpoint subfolder -> attribute of NvilaModel holding that part
PARTS = {"vision_tower": "vision_tower", "mm_projector": "mm_projector", "llm": "llm"}


@dataclass
class LoadedCheckpoint:
    path: Path
    config: NvilaConfig
    model: NvilaModel
    tokenizer: Tokenizer


def expected_shapes(model: NvilaModel, part: str) -> dict[str, tuple[int, ...]]:
    module = getattr(model, PARTS[part])
    return {name: tuple(t.shape) for name, t in module.state_dict(keep_vars=True).items()}


def optional_tensors(config: NvilaConfig, part: str) -> set[str]:
    return {"lm_head.weight"} if part == "llm" and config.llm.tie_word_embeddings else set()


def validate_checkpoint(path: str | Path) -> NvilaConfig:
    """Configs and every tensor's shape, from file headers only (milliseconds, no weights loaded)."""
    root = resolve_model(path)
    config = NvilaConfig.from_dir(root)
    with torch.device("meta"):
        model = NvilaModel(config)
    for part in PARTS:
        folder = root / part
        check_shapes(tensor_index(folder), expected_shapes(model, part), folder, optional_tensors(config, part))
    if not ((root / "llm" / "tokenizer.json").is_file() or (root / "llm" / "vocab.json").is_file()):
        raise CheckpointError(f"{root / 'llm'}: no tokenizer (expected tokenizer.json, or vocab.json + merges.txt)")
    return config


def resize_vocab(model: NvilaModel, rows: int) -> None:
    """Grow embed_tokens (and lm_head) to the tokenizer's size after the media tokens were added.

    New rows are the mean of the existing ones, as transformers' resize does by default. Media positions are
    replaced by visual embeddings anyway, and logits beyond the checkpoint's vocabulary are never sampled.
    """
    llm = model.llm
    old = llm.model.embed_tokens.weight.data
    if rows <= old.shape[0]:
        return
    extra = old.mean(dim=0, keepdim=True).expand(rows - old.shape[0], -1)
    llm.model.embed_tokens = torch.nn.Embedding.from_pretrained(torch.cat((old, extra)), freeze=False)
    if llm.cfg.tie_word_embeddings:
        llm.lm_head.weight = llm.model.embed_tokens.weight
    else:
        head = llm.lm_head.weight.data
        new_head = torch.cat((head, head.mean(dim=0, keepdim=True).expand(rows - head.shape[0], -1)))
        llm.lm_head = torch.nn.Linear(head.shape[1], rows, bias=False)
        llm.lm_head.weight = torch.nn.Parameter(new_head)


def load_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedCheckpoint:
    root = resolve_model(path)
    config = validate_checkpoint(root)
    tokenizer = Tokenizer.from_dir(root / "llm")
    if tokenizer.base_vocab_size > config.llm.vocab_size:
        raise CheckpointError(f"{root / 'llm'}: the tokenizer has {tokenizer.base_vocab_size} tokens but "
                              f"vocab_size in llm/config.json is {config.llm.vocab_size}")
    with torch.device("meta"):
        model = NvilaModel(config)
    for part in PARTS:
        module = getattr(model, PARTS[part])
        names = [n for n in expected_shapes(model, part) if n not in optional_tensors(config, part)]
        state = load_tensors(tensor_index(root / part), names, dtype)
        missing, _ = module.load_state_dict(state, strict=False, assign=True)
        if set(missing) - optional_tensors(config, part):
            raise CheckpointError(f"{root / part}: tensors not loaded: {sorted(missing)[:3]}")
    if config.llm.tie_word_embeddings:
        model.llm.lm_head.weight = model.llm.model.embed_tokens.weight
    resize_vocab(model, len(tokenizer))
    return LoadedCheckpoint(root, config, model.eval(), tokenizer)
