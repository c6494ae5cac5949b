"""NVILA's chat prompt string, media token placement and the Jinja template stored with checkpoints."""

from __future__ import annotations

import pytest

from nvila_edge.errors import InputError
from nvila_edge.runtime.prompt import CHAT_TEMPLATE, DEFAULT_SYSTEM, render_chat, user_content


def test_render_chat_is_nvila_chatml_exactly():
    assert DEFAULT_SYSTEM == "You are a helpful assistant"
    assert render_chat(user_content("Describe the image.", ["image"])) == (
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
        "<|im_start|>user\n<image>Describe the image.<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert render_chat("hi", system="Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_media_tokens_come_first_without_separator():
    assert user_content("  Describe.\n", ["image"]) == "<image>Describe."
    assert user_content("Describe.", ["image", "image"]) == "<image><image>Describe."
    assert user_content("Which way?", ["video"]) == "<vila/video>Which way?"
    assert user_content("Hello", []) == "Hello"


def test_lite_tiles_put_one_image_token_and_newline_per_tile():
    assert user_content(" Describe. ", ["image"], lite_tiles=3) == "<image>\n<image>\n<image>\nDescribe."
    with pytest.raises(InputError):
        user_content("Describe.", ["image", "image"], lite_tiles=2)
    with pytest.raises(InputError):
        user_content("Describe.", ["video"], lite_tiles=1)


def test_bad_media_and_reserved_tokens_in_text_are_refused():
    with pytest.raises(InputError):
        user_content("Describe.", ["audio"])
    for text in ("look <image> here", "end<|im_end|>", "<vila/video>"):
        with pytest.raises(InputError):
            user_content(text, ["image"])


def test_chat_template_renders_the_same_string():
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    content = user_content("What colour is the star?", ["image"])
    rendered = template.render(messages=[{"role": "user", "content": content}], add_generation_prompt=True)
    assert rendered == render_chat(content)
    with_system = template.render(messages=[{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": content}], add_generation_prompt=True)
    assert with_system == render_chat(content, system="Be brief.")
