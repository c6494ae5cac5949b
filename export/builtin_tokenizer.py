"""A small Qwen2-style tokenizer for the built-in model, trained on the shapes world's text.

Byte-level BPE with Qwen2's pre-tokenization, followed by Qwen2's three special tokens at the ids right
after the BPE vocabulary (as 151643..151645 follow Qwen2's). NVILA's media tokens are not saved: the
runtime appends them at load time, as it does for real checkpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, models, pre_tokenizers, trainers

from nvila_edge.atomic import atomic_file
from nvila_edge.errors import InputError
from nvila_edge.runtime.prompt import CHAT_TEMPLATE, DEFAULT_SYSTEM, render_chat
from nvila_edge.runtime.tokenizer import ENDOFTEXT, IM_END, IM_START, MEDIA_TOKENS, byte_level_bpe
from nvila_edge.runtime.world.clip import DIRECTIONS
from nvila_edge.runtime.world.questions import NUMBER_WORDS, TEMPLATES
from nvila_edge.runtime.world.scene import COLORS, SHAPES

SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
BYTE_ALPHABET = 256
_SPECIAL_SPLIT = re.compile("|".join(re.escape(t) for t in (*SPECIAL_TOKENS, *MEDIA_TOKENS)))


def world_words() -> list[str]:
    """Every word the world's questions, answers and the chat scaffolding use."""
    templates = (re.sub(r"\{\w+\}", " ", t) for family in TEMPLATES.values() for t in family)
    text = " ".join([DEFAULT_SYSTEM, "system user assistant yes no above below still", *COLORS, *SHAPES,
                     *DIRECTIONS, *NUMBER_WORDS, *templates])
    return sorted(set(re.findall(r"[A-Za-z]+", text)))


def _pieces(text: str) -> list[str]:
    # Special and media tokens are atomic ids, so BPE learns only the text between them.
    return [piece for piece in _SPECIAL_SPLIT.split(text) if piece]


def _corpus(texts: Iterable[str]) -> Iterator[str]:
    scaffold = _pieces(render_chat(""))
    for text in texts:
        yield from _pieces(text)
        yield from scaffold  # as frequent as in real prompts, so the chat frame gets whole-word tokens
    # Each world word lower-case and capitalised, alone and after a space: fills the vocabulary with pieces
    # a model's answer can use ("Yes", " Left") whatever the sample of texts.
    for word in world_words():
        for form in (word.lower(), word.capitalize()):
            yield form
            yield " " + form


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> tokenizers.Tokenizer:
    """Byte-level BPE of exactly ``vocab_size`` ids: the BPE vocabulary, then the three ChatML specials."""
    bpe_size = vocab_size - len(SPECIAL_TOKENS)
    if bpe_size <= BYTE_ALPHABET:
        raise InputError(f"vocab_size {vocab_size} leaves no room for merges; use at least "
                         f"{BYTE_ALPHABET + len(SPECIAL_TOKENS) + 1}")
    tok = byte_level_bpe(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=bpe_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(_corpus(texts), trainer)
    learned = tok.get_vocab_size()
    if learned != bpe_size:
        raise InputError(f"the training text supports only {learned} BPE tokens, not {bpe_size}; pass more "
                         f"varied text or use vocab_size {learned + len(SPECIAL_TOKENS)}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def _write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_tokenizer(tok: tokenizers.Tokenizer, llm_dir: str | Path, model_max_length: int = 4096) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` like a Qwen2 folder."""
    llm_dir = Path(llm_dir)
    llm_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(llm_dir / "tokenizer.json") as tmp:
        tok.save(str(tmp))
    added = {}
    for token in SPECIAL_TOKENS:
        index = tok.token_to_id(token)
        if index is None:
            raise InputError(f"the tokenizer lacks {token}; build it with train_tokenizer")
        added[str(index)] = {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": True}
    _write_json(llm_dir / "tokenizer_config.json", {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": ENDOFTEXT,
        "padding_side": "right",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    })
    _write_json(llm_dir / "special_tokens_map.json", {
        "additional_special_tokens": [IM_START, IM_END],
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
    })
