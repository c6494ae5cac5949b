"""Random-weight checkpoints of the presets, for tests and benchmarks at real shapes without downloads."""

from __future__ import annotations

from pathlib import Path

import torch

from nvila_edge.export.builtin_tokenizer import save_tokenizer, train_tokenizer
from nvila_edge.export.checkpoint_writer import LLM_SHARD_BYTES, random_tensors, write_checkpoint
from nvila_edge.runtime.presets import preset_files
from nvila_edge.runtime.world.questions import example_stream

TOKENIZER_VOCAB = 512


def tokenizer_corpus(n: int = 400) -> list[str]:
    stream = example_stream(seed=12345)
    texts = []
    for _ in range(n):
        example = next(stream)
        texts.extend((example.question, example.answer))
    return texts


def make_random_checkpoint(out: Path, preset: str, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                           llm_shard_bytes: int = LLM_SHARD_BYTES) -> Path:
    files = preset_files(preset)
    vocab = min(TOKENIZER_VOCAB, files["llm/config.json"]["vocab_size"])

    def write_tokenizer(llm_dir: Path) -> None:
        save_tokenizer(train_tokenizer(tokenizer_corpus(), vocab_size=vocab), llm_dir)

    return write_checkpoint(out, files, random_tensors(seed), write_tokenizer, dtype, llm_shard_bytes=llm_shard_bytes)
