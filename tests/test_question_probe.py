"""The question probe's targets: the centres each answer depends on, and where in a packed batch it reads."""

import itertools

import numpy as np
import pytest

from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.train.batches import IGNORE, answer_starts, make_sample, pack, segment_layout
from nvila_edge.export.train.conversations import conversation_stream
from nvila_edge.export.train.question_probe import probe_target
from nvila_edge.runtime.world.clip import Clip
from nvila_edge.runtime.world.scene import Scene, Shape

TWO_WIDE = Scene(240, 120, "plain", 7, [Shape("circle", "red", 60, 60, 40), Shape("square", "blue", 180, 64, 40)])


def test_position_targets_follow_the_order_the_question_names_the_shapes():
    target = probe_target("position", "Is the blue square left or right of the red circle?", TWO_WIDE)
    np.testing.assert_allclose(target, [0.75, 64 / 120, 0.25, 0.5])


def test_questions_about_one_shape_get_no_target():
    for family, question in [("color", "What colour is the square?"), ("shape", "Which shape is red?"),
                             ("exists", "Is there a red circle?"), ("count", "How many shapes are there?"),
                             ("caption", "Describe the image.")]:
        assert np.isnan(probe_target(family, question, TWO_WIDE)).all(), question


def test_motion_targets_the_named_shape_at_the_first_and_last_frame():
    clip = Clip(128, 96, "gradient", 3, [Shape("star", "white", 30, 48, 20), Shape("square", "red", 96, 24, 20)],
                ["right", "down"], num_frames=8, step=6.0)
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
