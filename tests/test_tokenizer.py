"""The tokenizer: the built-in BPE, a Qwen2-style vocab.json + merges.txt folder, media ids, streaming decode."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tokenizers import pre_tokenizers

from nvila_edge.errors import CheckpointError, InputError
from nvila_edge.export.builtin_tokenizer import save_tokenizer, train_tokenizer
from nvila_edge.runtime.prompt import render_chat, user_content
from nvila_edge.runtime.tokenizer import MEDIA_TOKENS, StreamDecoder, Tokenizer
from nvila_edge.runtime.world.questions import example_stream


def world_texts(seed: int, n: int) -> list[str]:
    texts = []
    for example in itertools.islice(example_stream(seed, families=("color", "shape", "count", "position",
                                                                     "exists", "caption")), n):
        texts.extend((example.question, example.answer))
    return texts


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("builtin") / "llm"
    save_tokenizer(train_tokenizer(world_texts(seed=1, n=300), vocab_size=512), path)
    return path


@pytest.fixture(scope="module")
def tokenizer(llm_dir) -> Tokenizer:
    return Tokenizer.from_dir(llm_dir)


def test_builtin_vocabulary_layout(tokenizer, llm_dir):
    assert tokenizer.base_vocab_size == 512 and len(tokenizer) == 515
    assert (tokenizer.sentinel_token_id, tokenizer.image_token_id, tokenizer.video_token_id) == (512, 513, 514)
    assert tokenizer.eos_token_ids == (511, 509) and tokenizer.im_start_id == 510 and tokenizer.im_end_id == 511
    assert tokenizer.newline_id == tokenizer.encode("\n")[0] == 198  # byte-level alphabet order, as in Qwen2
    saved = (llm_dir / "tokenizer.json").read_text()
    assert not any(token in saved for token in MEDIA_TOKENS)  # appended at load time only
    config = json.loads((llm_dir / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>" and "chat_template" in config
    assert sorted(json.loads((llm_dir / "special_tokens_map.json").read_text())) == [
        "additional_special_tokens", "eos_token", "pad_token"]


def test_training_is_deterministic_and_sized_exactly():
    texts = world_texts(seed=4, n=50)
    first, second = train_tokenizer(texts, 400), train_tokenizer(texts, 400)
    assert first.to_str() == second.to_str() and first.get_vocab_size() == 400
    with pytest.raises(InputError):
        train_tokenizer(texts, vocab_size=200)


def test_world_text_round_trips_with_special_tokens_recognised(tokenizer):
    texts = world_texts(seed=9, n=200)
    texts += [render_chat(user_content(q, ["image"])) for q in texts[:40]]
    texts += [render_chat(user_content("Which way does the red star move?", ["video"])), "Héllo 日本 🙂\r\n\t 42"]
    for text in texts:
        assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=False) == text
    ids = tokenizer.encode(render_chat(user_content("Describe the image.", ["image", "image"])))
    assert ids[0] == tokenizer.im_start_id  # no BOS
    assert ids.count(tokenizer.image_token_id) == 2
    assert tokenizer.encode("<|im_end|><vila/video>") == [tokenizer.im_end_id, tokenizer.video_token_id]
    assert tokenizer.decode(ids) == "system\nYou are a helpful assistant\nuser\nDescribe the image.\nassistant\n"
    assert max(len(tokenizer.encode(t)) for t in texts[1:400:2]) <= 20  # answers stay short


def write_qwen2_folder(path: Path) -> dict[str, int]:
    """A miniature Qwen2 llm/ tokenizer: byte alphabet + a few merges, then Qwen2's five added tokens."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # sorted code points = GPT-2 byte order
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"),
              ("l", "d"), ("Ġwor", "ld")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = {"<|endoftext|>": len(vocab), "<|im_start|>": len(vocab) + 1, "<|im_end|>": len(vocab) + 2,
             "[BOS]": len(vocab) + 3, "[PAD]": len(vocab) + 4}
    path.mkdir(parents=True)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n",
                                     encoding="utf-8")
    (path / "added_tokens.json").write_text(json.dumps(added))
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for t, i in added.items()}
    (path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder,
                                                            "tokenizer_class": "Qwen2Tokenizer"}))
    return {**vocab, **added}


def test_qwen2_vocab_and_merges_folder_gets_media_tokens_appended(tmp_path):
    ids = write_qwen2_folder(tmp_path / "llm")
    tokenizer = Tokenizer.from_dir(tmp_path / "llm")
    base = len(ids)  # 256 bytes + 9 merges + 5 added = the real 151643 + 5 = 151648 pattern
    assert tokenizer.base_vocab_size == base and len(tokenizer) == base + 3
    media = (tokenizer.sentinel_token_id, tokenizer.image_token_id, tokenizer.video_token_id)
    assert media == (base, base + 1, base + 2)
    assert tokenizer.im_end_id == ids["<|im_end|>"]
    assert tokenizer.eos_token_ids == (ids["<|im_end|>"], ids["<|endoftext|>"])
    assert tokenizer.newline_id == ids["Ċ"] == 198
    assert tokenizer.encode("hello world") == [ids["hello"], ids["Ġworld"]]
    assert tokenizer.encode("<image>hello<|im_end|>") == [base + 1, ids["hello"], ids["<|im_end|>"]]
    assert tokenizer.decode(tokenizer.encode("héllo wörld, 12 it's")) == "héllo wörld, 12 it's"


def test_qwen2_folder_tokenizes_like_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    write_qwen2_folder(tmp_path / "llm")
    ours = Tokenizer.from_dir(tmp_path / "llm")
    reference = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "llm"))
    texts = ("hello world", "What's  up?\r\nDon't 4567 ,,, x\t\ty", "e\u0301 café 日本語", "x <|im_end|>\n\n y")
    for text in texts:
        assert ours.encode(text) == reference.encode(text, add_special_tokens=False)


def test_missing_or_incomplete_tokenizers_are_refused(tmp_path):
    with pytest.raises(CheckpointError):
        Tokenizer.from_dir(tmp_path)
    write_qwen2_folder(tmp_path / "llm")
    (tmp_path / "llm" / "added_tokens.json").unlink()
    (tmp_path / "llm" / "tokenizer_config.json").unlink()
    with pytest.raises(CheckpointError, match="im_start"):
        Tokenizer.from_dir(tmp_path / "llm")


def test_stream_decoder_never_emits_half_a_character(tokenizer):
    text = "Héllo wörld: 日本語 🙂 naïve — done"
    ids = tokenizer.encode(text) + [tokenizer.im_end_id]
    decoder = StreamDecoder(tokenizer)
    deltas = [decoder.feed(i) for i in ids]
    assert "".join(deltas) + decoder.flush() == text
    assert not any("\ufffd" in d for d in deltas)
    assert deltas.count("") >= 5  # the multi-byte characters really were split over several tokens
    assert deltas[-1] == ""  # <|im_end|> is skipped


def test_stream_decoder_flushes_an_unfinished_character(tokenizer):
    decoder = StreamDecoder(tokenizer)
    first_byte = tokenizer.encode("🙂")[0]
    [red] = tokenizer.encode("red")
    assert decoder.feed(red) == "red"
    assert decoder.feed(first_byte) == ""
    assert decoder.flush() == "\ufffd"
    assert decoder.flush() == ""
