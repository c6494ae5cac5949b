"""Training batches: packed questions see exactly what a single question sees; conversations are well formed."""

import itertools

import numpy as np
import pytest
import torch

from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.train.batches import IGNORE, make_sample, pack, packed_bias, segment_layout, vision_batch
from nvila_edge.export.train.conversations import conversation_stream, image_turns, motion_turns
from nvila_edge.export.train.trainer import FeatureEncoder, RegionHeads, loss_on_batch, sequence
from nvila_edge.runtime.prompt import render_chat, user_content
from nvila_edge.runtime.request import media_blocks
from nvila_edge.runtime.splice import media_item, splice
from nvila_edge.runtime.world.clip import random_clip
from nvila_edge.runtime.world.scene import random_scene


@pytest.fixture(scope="module")
def builtin():
    return load_checkpoint("builtin")


def conversations(min_turns: int, kind: str, count: int):
    stream = (c for c in conversation_stream(3) if c.media_kind == kind and len(c.turns) >= min_turns)
    return list(itertools.islice(stream, count))


def alone_logits(model, tokenizer, sample, features, question, answer):
    """Logits of one question asked on its own, through the plain causal mask: [L, V] and its length."""
    table = model.llm.model.embed_tokens.weight
    blocks, media, _ = media_blocks(model.config, FeatureEncoder(model, features), sample.media)
    items = [media_item(group, table[tokenizer.newline_id][None], torch.cat) for group in blocks]
    ids = tokenizer.encode(render_chat(user_content(question, media))) + answer
    embeds = splice(ids, {tokenizer.image_token_id, tokenizer.video_token_id}, table, items, torch.cat)[None]
    llm = model.llm
    hidden, _ = llm.hidden_states(embeds, torch.arange(embeds.shape[1])[None], torch.ones(1, embeds.shape[1]),
                                  llm.empty_cache())
    return torch.nn.functional.linear(hidden[0], llm.lm_head.weight)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_each_packed_question_gets_the_logits_it_gets_alone(builtin, kind):
    model, tokenizer = builtin.model, builtin.tokenizer
    conversation = conversations(2, kind, 1)[0]
    sample = make_sample(model.config, tokenizer, conversation)
    with torch.no_grad():
        features = model.vision_tower(vision_batch([sample]))
        embeds, positions, segments, targets, _, _ = sequence(model, tokenizer, sample, features)
        llm = model.llm
        hidden, _ = llm.hidden_states(embeds[None], positions[None], None, llm.empty_cache(),
                                      bias=packed_bias(segments[None], [len(embeds)]))
        packed = torch.nn.functional.linear(hidden[0], llm.lm_head.weight)
        prefix = int((segments == 0).sum())
        for k, (question, answer) in enumerate(sample.turns, start=1):
            alone = alone_logits(model, tokenizer, sample, features, question, answer)
            own = (segments == k).nonzero().flatten()
            assert len(own) == len(alone) - prefix
            torch.testing.assert_close(packed[own], alone[prefix:], rtol=1e-4, atol=1e-4)
            answer_targets = targets[own][targets[own] != IGNORE]
            assert answer_targets.tolist() == answer


def test_segment_layout_restarts_positions_after_the_prefix(builtin):
    tokenizer = builtin.tokenizer
    sample = make_sample(builtin.model.config, tokenizer, conversations(3, "image", 1)[0])
    packed = pack(tokenizer, sample, ["image"], None)
    positions, segments, targets = segment_layout(10, packed)
    for k, ids in enumerate(packed.segments, start=1):
        assert positions[segments == k].tolist() == list(range(10, 10 + len(ids)))
    assert (targets != IGNORE).sum() == sum(len(a) for _, a in sample.turns)


def test_padding_and_other_segments_are_masked():
    segments = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 0, 0, 0]])
    allowed = packed_bias(segments, [6, 3])[:, 0] == 0
    assert allowed[0, 4].tolist() == [True, True, False, False, True, False]
    assert allowed[0, 3].tolist() == [True, True, True, True, False, False]
    assert not allowed[1, :, 3:].any()


def test_questions_of_a_conversation_are_distinct_and_motion_names_each_moving_shape_once():
    rng = np.random.default_rng(0)
    for _ in range(50):
        turns = image_turns(rng, random_scene(rng))
        assert len({q for _, q, _ in turns}) == len(turns)
        clip = random_clip(rng)
        motion = motion_turns(rng, clip)
        moving = sorted(f"{s.color} {s.kind}" for s, m in zip(clip.shapes, clip.motions) if m != "still")
        assert sorted(next(n for n in moving if n in q) for _, q, _ in motion) == moving
        assert all(a == m for (_, q, a) in motion for s, m in zip(clip.shapes, clip.motions)
                   if f"{s.color} {s.kind}" in q)


def test_a_training_step_reduces_the_loss_on_its_batch(builtin):
    torch.manual_seed(0)
    model, tokenizer = load_checkpoint("builtin").model, builtin.tokenizer
    heads = RegionHeads(model.config.llm.hidden_size)
    samples = [make_sample(model.config, tokenizer, c) for c in itertools.islice(conversation_stream(5), 4)]
    optimizer = torch.optim.AdamW([*model.parameters(), *heads.parameters()], lr=1e-3)
    losses = []
    for _ in range(3):
        loss = loss_on_batch(model, heads, tokenizer, samples)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
