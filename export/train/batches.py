"""Training samples from the synthetic world: tiles, packed question turns and per-token labels.

A sample is one image or clip and several questions about it. They are packed after one copy of the
media: the shared prefix (system line, user header, media tokens) is followed by one segment per
question, and each segment sees only the prefix and itself, at the positions it would have alone. So
every segment is exactly a single-question request, and no answer can be read off an earlier turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nvila_edge.export.modeling.qwen2 import MASKED
from nvila_edge.export.train.conversations import Conversation
from nvila_edge.export.train.question_probe import ANY_BLOCK, LAST_BLOCK, UNSUPERVISED
from nvila_edge.export.train.region_labels import media_labels, token_centres
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.prompt import render_chat, user_content
from nvila_edge.runtime.request import Request, TiledMedia, tile_request
from nvila_edge.runtime.splice import media_item, splice
from nvila_edge.runtime.tokenizer import Tokenizer

IGNORE = -100


@dataclass
class Sample:
    media: TiledMedia
    turns: list[tuple[str, list[int]]]  # (question, answer ids + <|im_end|>)
    region_labels: list[np.ndarray] | None  # per visual block [tokens, 2] (kind, colour); None = no labels
    token_centres: list[np.ndarray] | None  # per visual block [tokens, 2] (x, y in 0..1)
    probe_targets: np.ndarray  # [turns, 4] centres the question probe regresses (NaN = unsupervised)
    attention_targets: np.ndarray  # [turns, HEADS, 5] what the question layer's heads should look at


@dataclass
class Packed:
    """One sample's token layout: prefix ids (with media tokens) and one id segment per question."""
    prefix: list[int]
    segments: list[list[int]]
    answer_lengths: list[int]


def block_grid(config: NvilaConfig, media: TiledMedia) -> tuple[int, int] | None:
    """Token grid (rows, cols) of each visual block, where one block covers a whole image or frame."""
    m = config.grid_out
    if media.kind == "video" or (media.kind == "image" and config.is_dynamic_s2 and media.tiles[0].block):
        rows, cols = media.tiles[0].block if media.kind == "image" else (1, 1)
        return m * rows, m * cols
    return None  # NVILA-Lite tiles see parts of the image; no labels for them


def conversation_request(conversation: Conversation) -> Request:
    question = conversation.turns[0][0]
    if conversation.media_kind == "video":
        return Request(question, video=list(conversation.frames))
    return Request(question, images=list(conversation.frames))


def make_sample(config: NvilaConfig, tokenizer: Tokenizer, conversation: Conversation) -> Sample:
    media = tile_request(config, conversation_request(conversation))
    turns = [(q, tokenizer.encode(a) + [tokenizer.im_end_id]) for q, a in conversation.turns]
    grid = block_grid(config, media)
    probes, looks = conversation.probe_targets, conversation.attention_targets
    if grid is None:
        return Sample(media, turns, None, None, probes, looks)
    labels = media_labels(conversation.world, len(conversation.frames), *grid)
    return Sample(media, turns, labels, [token_centres(*grid)] * len(labels), probes, looks)


def pack(tokenizer: Tokenizer, sample: Sample, media: list[str], lite_tiles: int | None) -> Packed:
    """Split each single-question token sequence after its last media token; the prefixes agree."""
    media_ids = {tokenizer.image_token_id, tokenizer.video_token_id}
    prefix, segments = None, []
    for question, answer in sample.turns:
        ids = tokenizer.encode(render_chat(user_content(question, media, lite_tiles)))
        cut = max(i for i, t in enumerate(ids) if t in media_ids) + 1
        if prefix is not None and ids[:cut] != prefix:
            raise ValueError("questions of one sample tokenised to different media prefixes")
        prefix = ids[:cut]
        segments.append(ids[cut:] + answer)
    return Packed(prefix, segments, [len(a) for _, a in sample.turns])


def prefix_labels(prefix: list[int], media_ids: set[int], groups: list[list[np.ndarray]]) -> np.ndarray:
    """Per media token, its blocks' [tokens, 4] (kind, colour, x, y) -> [P, 5] (block, kind, colour, x, y) at
    every prefix position, laid out as the visual blocks are spliced in; block -1 where no visual token is."""
    nothing = np.full((1, 5), -1.0)
    items, index = [], 0
    for group in groups:
        blocks = []
        for labels in group:
            blocks.append(np.column_stack([np.full(len(labels), index), labels]))
            index += 1
        items.append(media_item(blocks, nothing))
    return splice(prefix, media_ids, np.full((max(prefix) + 1, 5), -1.0), items)


def attention_masks(labels: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """prefix labels [P, 5], attention targets [turns, HEADS, 5] -> bool [turns, HEADS, P]: the tokens each
    head should attend to. Those whose centre the shape covers, or else the one nearest the shape's centre
    (a small shape can fall between token centres); none for an unsupervised head."""
    block, kind, color = labels[:, :3].T
    masks = np.zeros((*targets.shape[:2], len(labels)), bool)
    for turn, head in np.ndindex(*targets.shape[:2]):
        want_block, want_kind, want_color, x, y = targets[turn, head]
        if want_block == UNSUPERVISED:
            continue
        inside = block >= 0
        if want_block != ANY_BLOCK:
            inside &= block == (block.max() if want_block == LAST_BLOCK else want_block)
        where = inside & (kind == want_kind) & (color == want_color)
        if not where.any():
            distance = np.where(inside, np.hypot(labels[:, 3] - x, labels[:, 4] - y), np.inf)
            where[np.argmin(distance)] = True
        masks[turn, head] = where
    return masks


def segment_layout(prefix_len: int, packed: Packed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> position ids [L], segment ids [L] (0 = prefix) and next-token targets [L] for one packed sample."""
    positions, segment_ids, targets = [torch.arange(prefix_len)], [torch.zeros(prefix_len, dtype=torch.long)], \
        [torch.full((prefix_len,), IGNORE)]
    for k, (ids, answer_len) in enumerate(zip(packed.segments, packed.answer_lengths), start=1):
        n = len(ids)
        positions.append(prefix_len + torch.arange(n))
        segment_ids.append(torch.full((n,), k))
        target = torch.full((n,), IGNORE)
        target[n - answer_len - 1:n - 1] = torch.tensor(ids[n - answer_len:])
        targets.append(target)
    return torch.cat(positions), torch.cat(segment_ids), torch.cat(targets)


def answer_starts(targets: torch.Tensor) -> torch.Tensor:
    """targets [B, L] -> bool [B, L]: the position predicting each segment's first answer token.

    A segment's last position has no target, so a run of targets never continues into the next segment.
    """
    answer = targets != IGNORE
    return answer & ~torch.nn.functional.pad(answer, (1, 0))[:, :-1]


def packed_bias(segment_ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """segment ids [B, L] (padded) -> additive attention bias [B, 1, L, L]: causal, prefix + own segment."""
    length = segment_ids.shape[1]
    real = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # [B, L]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) | (segment_ids[:, None, :] == 0)
    allowed = causal[None] & same & real[:, None, :]
    return (~allowed).to(torch.float32)[:, None] * MASKED


def vision_batch(samples: list[Sample]) -> torch.Tensor:
    """All tiles of all samples in one ViT batch [T_total, 3, S, S]."""
    return torch.from_numpy(np.concatenate([t.pixel_values for s in samples for t in s.media.tiles]))


def sample_tiles(sample: Sample) -> int:
    return sum(len(t.pixel_values) for t in sample.media.tiles)
