"""Training samples from the synthetic world: tiles, token ids and answer labels, batched for one step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nvila_edge.export.train.region_labels import media_labels
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.evaluation import example_request
from nvila_edge.runtime.prompt import render_chat, user_content
from nvila_edge.runtime.request import TiledMedia, tile_request
from nvila_edge.runtime.tokenizer import Tokenizer
from nvila_edge.runtime.world.questions import Example

IGNORE = -100


@dataclass
class Sample:
    media: TiledMedia
    prompt: str
    answer_ids: list[int]  # answer + <|im_end|>
    region_labels: list[np.ndarray] | None  # per visual block [tokens, 2] (kind, colour); None = no labels


def block_grid(config: NvilaConfig, media: TiledMedia) -> tuple[int, int] | None:
    """Token grid (rows, cols) of each visual block, where one block covers a whole image or frame."""
    m = config.grid_out
    if media.kind == "video" or (media.kind == "image" and config.is_dynamic_s2 and media.tiles[0].block):
        rows, cols = media.tiles[0].block if media.kind == "image" else (1, 1)
        return m * rows, m * cols
    return None  # NVILA-Lite tiles see parts of the image; no labels for them


def make_sample(config: NvilaConfig, tokenizer: Tokenizer, example: Example) -> Sample:
    request = example_request(example)
    answer = tokenizer.encode(example.answer) + [tokenizer.im_end_id]
    media = tile_request(config, request)
    grid = block_grid(config, media)
    labels = None if grid is None else media_labels(example.scene, len(example.frames), *grid)
    return Sample(media, request.prompt, answer, labels)


def vision_batch(samples: list[Sample]) -> torch.Tensor:
    """All tiles of all samples in one ViT batch [T_total, 3, S, S]."""
    return torch.from_numpy(np.concatenate([t.pixel_values for s in samples for t in s.media.tiles]))


def sample_tiles(sample: Sample) -> int:
    return sum(len(t.pixel_values) for t in sample.media.tiles)


def chat_ids(tokenizer: Tokenizer, sample: Sample, media: list[str], lite_tiles: int | None) -> list[int]:
    return tokenizer.encode(render_chat(user_content(sample.prompt, media, lite_tiles))) + sample.answer_ids
