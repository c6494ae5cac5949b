"""The question probe's targets: the centres each answer depends on, where in a packed batch it reads, and
the visual tokens the question layer's heads are steered to."""

import itertools

import numpy as np
import pytest
import torch

from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.train.batches import (
    IGNORE,
    answer_starts,
    attention_masks,
    make_sample,
    pack,
    prefix_labels,
    segment_layout,
)
from nvila_edge.export.train.conversations import Conversation, conversation_stream
from nvila_edge.export.train.question_probe import UNSUPERVISED, attention_targets, probe_target
from nvila_edge.export.train.region_labels import COLOR_INDEX
from nvila_edge.export.train.trainer import attention_loss
from nvila_edge.runtime.world.clip import Clip, render_clip, shapes_at
from nvila_edge.runtime.world.scene import SHAPES, Scene, Shape, render_scene

TWO_WIDE = Scene(240, 120, "plain", 7, [Shape("circle", "red", 60, 60, 40), Shape("square", "blue", 180, 64, 40)])


def test_position_targets_follow_the_order_the_question_names_the_shapes():
    target = probe_target("position", "Is the blue square left or right of the red circle?", TWO_WIDE)
    np.testing.assert_allclose(target, [0.75, 64 / 120, 0.25, 0.5])


def test_questions_about_one_shape_get_no_target():
    for family, question in [("color", "What colour is the square?"), ("shape", "Which shape is red?"),
                             ("exists", "Is there a red circle?"), ("count", "How many shapes are there?"),
                             ("caption", "Describe the image.")]:
        assert np.isnan(probe_target(family, question, TWO_WIDE)).all(), question


CLIP = Clip(128, 96, "gradient", 3, [Shape("star", "white", 30, 48, 20), Shape("square", "red", 96, 24, 20)],
            ["right", "down"], num_frames=8, step=6.0)


def test_motion_targets_the_named_shape_at_the_first_and_last_frame():
    clip = CLIP
    target = probe_target("motion", "Which way does the red square move?", clip)
    np.testing.assert_allclose(target, [0.75, 0.25, 0.75, (24 + 42) / 96])


def test_targets_agree_with_every_position_and_motion_answer_in_the_training_stream():
    checked = 0
    for conversation in itertools.islice(conversation_stream(11), 300):
        for (question, answer), (xa, ya, xb, yb) in zip(conversation.turns, conversation.probe_targets):
            if conversation.media_kind == "video":  # first frame, then last: the way the shape went
                expected = {"left": xb < xa, "right": xb > xa, "up": yb < ya, "down": yb > ya}
            else:  # shape a, then shape b: where a is relative to b
                expected = {"left": xa < xb, "right": xa > xb, "above": ya < yb, "below": ya > yb}
            if answer in expected and not np.isnan(xb):
                assert expected[answer], (question, answer, (xa, ya, xb, yb))
                checked += 1
    assert checked > 100


@pytest.fixture(scope="module")
def builtin():
    return load_checkpoint("builtin")


def test_the_probe_reads_the_position_that_predicts_each_first_answer_token(builtin):
    tokenizer = builtin.tokenizer
    conversation = next(c for c in conversation_stream(3) if len(c.turns) >= 3)
    sample = make_sample(builtin.model.config, tokenizer, conversation)
    packed = pack(tokenizer, sample, ["image"] if conversation.media_kind == "image" else ["video"], None)
    _, segments, targets = segment_layout(10, packed)
    starts = answer_starts(targets[None])[0]
    assert segments[starts].tolist() == list(range(1, len(sample.turns) + 1))
    assert targets[starts].tolist() == [answer[0] for _, answer in sample.turns]
    assert (targets[starts.nonzero().flatten() - 1] == IGNORE).all()


def label(shape: Shape) -> tuple[int, int]:
    return SHAPES.index(shape.kind) + 1, COLOR_INDEX[shape.color]


def test_position_heads_look_at_the_shapes_in_the_order_the_question_names_them():
    circle, square = TWO_WIDE.shapes
    target = attention_targets("position", "Is the blue square left or right of the red circle?", TWO_WIDE)
    assert [tuple(row[1:3]) for row in target] == [label(square), label(circle)]


def test_colour_and_shape_questions_steer_both_heads_to_the_shape_they_name():
    circle, square = TWO_WIDE.shapes
    for family, question, shape in [("color", "What colour is the square?", square),
                                    ("shape", "Which shape is red?", circle),
                                    ("shape", "What shape is the blue object?", square)]:
        target = attention_targets(family, question, TWO_WIDE)
        assert [tuple(row[1:3]) for row in target] == [label(shape)] * 2, question


def test_exists_count_and_caption_questions_leave_the_heads_free():
    for family, question in [("exists", "Is there a red square?"), ("count", "How many shapes are there?"),
                             ("caption", "Describe the image.")]:
        assert (attention_targets(family, question, TWO_WIDE)[:, 0] == UNSUPERVISED).all(), question


def masks_for(builtin, conversation: Conversation) -> tuple[np.ndarray, np.ndarray]:
    """-> prefix labels [P, 5] and attention masks [turns, HEADS, P] of one conversation's packed sample."""
    tokenizer = builtin.tokenizer
    sample = make_sample(builtin.model.config, tokenizer, conversation)
    packed = pack(tokenizer, sample, [conversation.media_kind], None)
    blocks = [np.column_stack(pair) for pair in zip(sample.region_labels, sample.token_centres)]
    labels = prefix_labels(packed.prefix, {tokenizer.image_token_id, tokenizer.video_token_id}, [blocks])
    media_at = next(i for i, t in enumerate(packed.prefix) if t in (tokenizer.image_token_id, tokenizer.video_token_id))
    visual = labels[:, 0] >= 0
    assert visual.sum() == sum(len(b) for b in blocks) and visual[media_at] and not visual[media_at - 1]
    return labels, attention_masks(labels, sample.attention_targets)


def conversation_about(world: Scene | Clip, family: str, question: str) -> Conversation:
    frames = render_clip(world) if isinstance(world, Clip) else [render_scene(world)]
    kind = "video" if isinstance(world, Clip) else "image"
    return Conversation(kind, frames, [(question, "?")], world, probe_target(family, question, world)[None],
                        attention_targets(family, question, world)[None])


def test_position_masks_cover_the_tokens_of_each_named_shape_on_its_side(builtin):
    circle, square = TWO_WIDE.shapes
    labels, masks = masks_for(builtin, conversation_about(
        TWO_WIDE, "position", "Is the blue square left or right of the red circle?"))
    for head, (shape, side) in enumerate([(square, lambda x: x > 0.5), (circle, lambda x: x < 0.5)]):
        chosen = labels[masks[0, head]]
        assert len(chosen) > 0 and {tuple(row) for row in chosen[:, 1:3].astype(int)} == {label(shape)}
        assert side(chosen[:, 3]).all()


def test_motion_masks_pick_the_first_and_the_last_frame_at_the_shape(builtin):
    labels, masks = masks_for(builtin, conversation_about(CLIP, "motion", "Which way does the red square move?"))
    first, last = labels[masks[0, 0]], labels[masks[0, 1]]
    assert set(first[:, 0]) == {0} and set(last[:, 0]) == {CLIP.num_frames - 1}
    for tokens, shape in [(first, CLIP.shapes[1]), (last, shapes_at(CLIP, CLIP.num_frames - 1)[1])]:
        assert np.hypot(tokens[:, 3] - shape.cx / CLIP.width, tokens[:, 4] - shape.cy / CLIP.height).max() < 0.25


def test_the_attention_loss_is_small_on_the_targets_and_log_spread_elsewhere():
    length, turns = 12, 1
    targets = torch.full((1, length), IGNORE)
    targets[0, 9] = 5  # the answer's first token is predicted at position 9
    mask = np.zeros((turns, 2, 8), bool)
    mask[0, 0, [2, 3]] = True
    mask[0, 1, 6] = True
    weights = torch.full((1, 4, length, length), 1 / length)
    assert attention_loss(weights, targets, [mask]).item() == pytest.approx(
        (np.log(length / 2) + np.log(length)) / 2, rel=1e-4)
    weights[0, :2, 9] = 0
    weights[0, 0, 9, 2] = weights[0, 0, 9, 3] = 0.5
    weights[0, 1, 9, 6] = 1.0
    assert attention_loss(weights, targets, [mask]).item() < 1e-4
