"""From a request (prompt + images or a video) to token ids and media items, for any encoder.

The rules are NVILA's: one image is tiled by the model's image mode (Dynamic-S2 merge or NVILA-Lite tiles,
each Lite tile its own ``<image>`` followed by a text "\\n"); several images and video frames take one
squash-resized tile each; a video is one ``<vila/video>`` token whose item holds every (pooled) frame.
The PyTorch reference and the runtime share this code through the ``MediaEncoder`` protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nvila_edge.errors import InputError
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.preprocess import tile_image, tile_image_device
from nvila_edge.runtime.prompt import render_chat, user_content
from nvila_edge.runtime.splice import media_item, splice
from nvila_edge.runtime.tiling import ImageTiles


@dataclass
class Request:
    """A question about zero or more images, or one video (a list of RGB frames)."""

    prompt: str
    images: list[np.ndarray] = field(default_factory=list)
    video: list[np.ndarray] | None = None


class MediaEncoder(Protocol):
    def encode_image(self, tiles: ImageTiles) -> list[np.ndarray]:
        """One image's tiles -> embedding blocks [n, H]."""

    def encode_frames(self, frames: list[ImageTiles]) -> list[np.ndarray]:
        """Video frames -> blocks (temporally pooled when the model pools)."""


@dataclass
class PreparedPrompt:
    token_ids: list[int]
    items: list[np.ndarray]  # one spliced sequence per media token
    visual_tokens: int
    preprocess_ms: float = 0.0  # frames -> tiles
    media: str = ""  # what the visual tokens came from: "8 frames", "2 images", "1 image in 5 tiles"

    @property
    def text_tokens(self) -> int:
        return len(self.token_ids) - len(self.items)

    @property
    def positions(self) -> int:
        return self.text_tokens + sum(len(i) for i in self.items)


FEWER = {"video": "ask about fewer frames", "images": "ask about fewer images", "image": "use a smaller image"}


def check_fits(prepared: PreparedPrompt, context: int, kind: str = "") -> None:
    """One line saying which part overflows the context (at least one position stays free for the answer)."""
    if prepared.positions < context:
        return
    text, visual = prepared.text_tokens, prepared.positions - prepared.text_tokens
    media = f" ({prepared.media})" if prepared.media else ""
    if text >= context:
        advice = "the prompt alone is too long: shorten it"
    elif visual >= context:
        advice = f"the visual tokens alone overflow it: {FEWER.get(kind, 'ask about less media')}"
    else:
        advice = f"shorten the prompt or {FEWER.get(kind, 'ask about less media')}"
    raise InputError(f"the request needs {prepared.positions} positions but the context holds {context}: {text} "
                     f"prompt tokens + {visual} visual tokens{media}; {advice}")


@dataclass
class TiledMedia:
    kind: str  # "image" (one tiled image), "images" (one tile each) or "video"
    tiles: list[ImageTiles]


def media_kind(request: Request) -> str:
    """"video", "image" (one, tiled) or "images" (several, or none)."""
    return "video" if request.video is not None else "image" if len(request.images) == 1 else "images"


def tile_request(config: NvilaConfig, request: Request, dtype=np.float32, device_buffer=None) -> TiledMedia:
    """The request's frames as tiles of ``dtype`` (the vision graph's input type). With a ``device_buffer``
    (TensorRT vision engine and the native CUDA kernels) a single image is tiled on the GPU, into that buffer."""
    if request.video is not None:
        if request.images:
            raise InputError("ask about images or about a video, not both in one request")
        if not request.video:
            raise InputError("the video has no frames")
        return TiledMedia("video", [tile_image(config, frame, False, dtype) for frame in request.video])
    if len(request.images) == 1 and device_buffer is not None:
        return TiledMedia("image", [tile_image_device(config, request.images[0], True, dtype, device_buffer)])
    if len(request.images) == 1:
        return TiledMedia("image", [tile_image(config, request.images[0], True, dtype)])
    return TiledMedia("images", [tile_image(config, image, False, dtype) for image in request.images])


def media_blocks(config: NvilaConfig, encoder: MediaEncoder,
                 media: TiledMedia) -> tuple[list[list], list[str], int | None]:
    """-> blocks per media token, the media kinds for the prompt, and NVILA-Lite's tile count (or None)."""
    if media.kind == "video":
        return [encoder.encode_frames(media.tiles)], ["video"], None
    if media.kind == "image":
        blocks = encoder.encode_image(media.tiles[0])
        if config.image_mode == "dynamic":
            return [[b] for b in blocks], ["image"], len(blocks)
        return [blocks], ["image"], None
    return [encoder.encode_image(t) for t in media.tiles], ["image"] * len(media.tiles), None


def prepare(config: NvilaConfig, tokenizer, encoder: MediaEncoder, newline: np.ndarray, request: Request,
            pixel_dtype=np.float32, device_buffer=None) -> PreparedPrompt:
    """``newline`` is the embedding row of "\\n" [1, H] in the embedding table's dtype."""
    start = time.perf_counter()
    tiled = tile_request(config, request, pixel_dtype, device_buffer)
    preprocess_ms = 1000 * (time.perf_counter() - start)
    blocks, media, lite_tiles = media_blocks(config, encoder, tiled)
    text = render_chat(user_content(request.prompt, media, lite_tiles))
    items = [media_item([b.astype(newline.dtype, copy=False) for b in group], newline) for group in blocks]
    visual = sum(len(b) for group in blocks for b in group)
    return PreparedPrompt(tokenizer.encode(text), items, visual, preprocess_ms, describe_media(tiled))


def describe_media(tiled: TiledMedia) -> str:
    count = len(tiled.tiles)
    if tiled.kind == "video":
        return f"{count} frame{'s' * (count != 1)}"
    if tiled.kind == "images":
        return f"{count} images"
    return f"1 image in {len(tiled.tiles[0].pixel_values)} tiles"


def inputs_embeds(prepared: PreparedPrompt, tokenizer, embed_table: np.ndarray) -> np.ndarray:
    media_ids = {tokenizer.image_token_id, tokenizer.video_token_id}
    return splice(prepared.token_ids, media_ids, embed_table, prepared.items)
