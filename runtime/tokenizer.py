"""Qwen2 byte-level BPE tokenizer with NVILA's media tokens, and a streaming detokenizer.

Loads either a ``tokenizer.json`` or a Qwen2 checkpoint's ``vocab.json`` + ``merges.txt`` (with its added
tokens), then appends the media tokens at load time exactly as NVILA does: ``<vila/sentinel>``, ``<image>``,
``<vila/video>`` get the next three ids (151648..151650 for a real NVILA checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors

from nvila_edge.errors import CheckpointError

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SENTINEL_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN = "<vila/sentinel>", "<image>", "<vila/video>"
MEDIA_TOKENS = (SENTINEL_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN)  # appended in this order
# Qwen2's pre-tokenizer split: contractions, letter runs (with one leading non-letter), single digits,
# punctuation runs, newlines, and whitespace.
QWEN2_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                       r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level_bpe(model: models.BPE) -> tokenizers.Tokenizer:
    """Qwen2's pipeline around a BPE model: NFC, regex split, byte-to-unicode mapping, byte-level decoding."""
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read JSON ({err})") from None


def _added_tokens(llm_dir: Path) -> list[dict]:
    """Qwen2's added tokens (ChatML etc.) with their fixed ids, from added_tokens.json / tokenizer_config.json."""
    found: dict[int, dict] = {}
    if (llm_dir / "added_tokens.json").is_file():
        for content, index in _read_json(llm_dir / "added_tokens.json").items():
            found[int(index)] = {"content": content, "special": True}
    if (llm_dir / "tokenizer_config.json").is_file():
        for index, entry in _read_json(llm_dir / "tokenizer_config.json").get("added_tokens_decoder", {}).items():
            found[int(index)] = entry
    return [{"id": index, "content": entry["content"], "single_word": entry.get("single_word", False),
             "lstrip": entry.get("lstrip", False), "rstrip": entry.get("rstrip", False),
             "normalized": entry.get("normalized", False), "special": entry.get("special", True)}
            for index, entry in sorted(found.items())]


def load_qwen2_files(llm_dir: Path) -> tokenizers.Tokenizer:
    """A Qwen2 checkpoint's ``vocab.json`` + ``merges.txt`` as a fast tokenizer, added tokens at their ids."""
    vocab = _read_json(llm_dir / "vocab.json")
    lines = (llm_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#version"):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise CheckpointError(f"{llm_dir / 'merges.txt'}: line {number} is not two space-separated tokens")
        merges.append((pair[0], pair[1]))
    try:
        tok = byte_level_bpe(models.BPE(vocab=vocab, merges=merges))
    except Exception as err:  # the Rust side reports unknown merge tokens as a plain Exception
        raise CheckpointError(f"{llm_dir}: vocab.json and merges.txt disagree ({err})") from None
    # Added tokens keep the ids the checkpoint gives them; only the serialised form lets us set ids.
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = _added_tokens(llm_dir)
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


class Tokenizer:
    """Text <-> ids for NVILA prompts: ChatML specials recognised in text, no BOS, media ids appended."""

    def __init__(self, tok: tokenizers.Tokenizer, source: str = "tokenizer"):
        present = sum(tok.token_to_id(t) is not None for t in MEDIA_TOKENS)
        self.base_vocab_size = tok.get_vocab_size(with_added_tokens=True) - present
        for token in MEDIA_TOKENS:
            if tok.token_to_id(token) is None:
                tok.add_special_tokens([AddedToken(token, special=True, normalized=False)])
        self._tok = tok
        self.sentinel_token_id, self.image_token_id, self.video_token_id = (self._id(t, source) for t in MEDIA_TOKENS)
        self.im_start_id = self._id(IM_START, source)
        self.im_end_id = self._id(IM_END, source)
        self.eos_token_ids: tuple[int, ...] = (self.im_end_id, self._id(ENDOFTEXT, source))
        newline = self.encode("\n")
        if len(newline) != 1:
            raise CheckpointError(f"{source}: '\\n' is not a single token; NVILA needs a Qwen2-style byte-level BPE")
        self.newline_id = newline[0]

    def _id(self, token: str, source: str) -> int:
        index = self._tok.token_to_id(token)
        if index is None:
            raise CheckpointError(f"{source}: the tokenizer has no {token}; NVILA needs Qwen2's ChatML special tokens")
        return index

    @classmethod
    def from_dir(cls, llm_dir: str | Path) -> Tokenizer:
        """``tokenizer.json`` if present, else a Qwen2 ``vocab.json`` + ``merges.txt`` pair."""
        llm_dir = Path(llm_dir)
        if (llm_dir / "tokenizer.json").is_file():
            try:
                tok = tokenizers.Tokenizer.from_file(str(llm_dir / "tokenizer.json"))
            except Exception as err:  # the Rust side raises a plain Exception for malformed files
                raise CheckpointError(f"{llm_dir / 'tokenizer.json'}: not a valid tokenizer ({err})") from None
        elif (llm_dir / "vocab.json").is_file() and (llm_dir / "merges.txt").is_file():
            tok = load_qwen2_files(llm_dir)
        else:
            raise CheckpointError(f"{llm_dir}: no tokenizer.json and no vocab.json + merges.txt; "
                                  "point at the checkpoint's llm/ folder")
        return cls(tok, source=str(llm_dir))

    @property
    def backend(self) -> tokenizers.Tokenizer:
        return self._tok

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)


class StreamDecoder:
    """Token ids in one at a time, text deltas out; a UTF-8 character split over tokens waits until complete."""

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        # Only ids[prefix:] are re-decoded: ids[prefix:read] were already emitted (kept as context so the
        # decoder sees whole byte sequences), ids[read:] are pending.
        self._prefix = 0
        self._read = 0

    def _text(self, start: int, stop: int | None = None) -> str:
        return self._tokenizer.decode(self._ids[start:stop], skip_special_tokens=self._skip)

    def feed(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        done = self._text(self._prefix, self._read)
        text = self._text(self._prefix)
        if len(text) <= len(done) or text.endswith("\ufffd"):  # nothing new, or a character still incomplete
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(done):]

    def flush(self) -> str:
        """Whatever is still pending (an incomplete character comes out as U+FFFD)."""
        done = self._text(self._prefix, self._read)
        text = self._text(self._prefix)
        self._prefix = self._read = len(self._ids)
        return text[len(done):]


def stream_text(token_ids: Iterable[int], tokenizer: Tokenizer,
                on_text: Callable[[str], None] | None = None) -> Iterator[str]:
    """Text pieces as the token ids arrive (never half a UTF-8 character); ``on_text`` sees each piece too."""
    decoder = StreamDecoder(tokenizer)
    for token in token_ids:
        yield from _emit(decoder.feed(token), on_text)
    yield from _emit(decoder.flush(), on_text)


def _emit(piece: str, on_text: Callable[[str], None] | None) -> Iterator[str]:
    if piece:
        if on_text:
            on_text(piece)
        yield piece
