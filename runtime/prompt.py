"""NVILA's chat prompt: Qwen2 ChatML with VILA's default system line and media tokens placed before the text.

``render_chat`` is the string the model was trained on; ``CHAT_TEMPLATE`` is the same format as a Jinja
template, stored in ``llm/tokenizer_config.json`` for tools that expect one (the runtime never renders it).
"""

from __future__ import annotations

from collections.abc import Sequence

from nvila_edge.errors import InputError
from nvila_edge.runtime.tokenizer import ENDOFTEXT, IM_END, IM_START, IMAGE_TOKEN, MEDIA_TOKENS, VIDEO_TOKEN

DEFAULT_SYSTEM = "You are a helpful assistant"  # VILA's, without the period stock Qwen2.5 has
MEDIA_TOKEN_OF = {"image": IMAGE_TOKEN, "video": VIDEO_TOKEN}
_RESERVED = (ENDOFTEXT, IM_START, IM_END, *MEDIA_TOKENS)

CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def render_chat(user_content: str, system: str = DEFAULT_SYSTEM) -> str:
    """One user turn, ready for the assistant's answer."""
    return (f"{IM_START}system\n{system}{IM_END}\n"
            f"{IM_START}user\n{user_content}{IM_END}\n"
            f"{IM_START}assistant\n")


def user_content(prompt: str, media: Sequence[str], lite_tiles: int | None = None) -> str:
    """Media tokens first, glued to the stripped prompt: ``<image>Describe.``, ``<image><image>Describe.``.

    NVILA-Lite with a single tiled image writes one ``<image>\\n`` per tile instead (``lite_tiles``).
    """
    for token in _RESERVED:
        if token in prompt:
            raise InputError(f"the prompt contains the reserved token {token}; pass images and videos as media, "
                             "not as text")
    unknown = [m for m in media if m not in MEDIA_TOKEN_OF]
    if unknown:
        raise InputError(f"unknown media kind {unknown[0]!r}; use 'image' or 'video'")
    text = prompt.strip()
    if lite_tiles is None:
        return "".join(MEDIA_TOKEN_OF[m] for m in media) + text
    if list(media) != ["image"]:
        raise InputError(f"NVILA-Lite tiling applies to exactly one image, not {list(media)}; "
                         "drop lite_tiles for several images or a video")
    if lite_tiles < 1:
        raise InputError(f"lite_tiles must be at least 1, got {lite_tiles}")
    return f"{IMAGE_TOKEN}\n" * lite_tiles + text
