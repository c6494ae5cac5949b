"""Training samples from the synthetic world: tiles, token ids and answer labels, batched for one step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


def make_sample(config: NvilaConfig, tokenizer: Tokenizer, example: Example) -> Sample:
    request = example_request(example)
    answer = tokenizer.encode(example.answer) + [tokenizer.im_end_id]
    return Sample(tile_request(config, request), request.prompt, answer)


def vision_batch(samples: list[Sample]) -> torch.Tensor:
    """All tiles of all samples in one ViT batch [T_total, 3, S, S]."""
    return torch.from_numpy(np.concatenate([t.pixel_values for s in samples for t in s.media.tiles]))


def sample_tiles(sample: Sample) -> int:
    return sum(len(t.pixel_values) for t in sample.media.tiles)


def chat_ids(tokenizer: Tokenizer, sample: Sample, media: list[str], lite_tiles: int | None) -> list[int]:
    return tokenizer.encode(render_chat(user_content(sample.prompt, media, lite_tiles))) + sample.answer_ids
