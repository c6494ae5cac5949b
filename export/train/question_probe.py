"""Targets of the training-only question probe: where the shapes an answer depends on are.

Position and motion answers compare two centres: two named shapes, or one shape in the first and the last
frame. Trained on answers alone, the question tokens never learned to fetch a named shape's position (both
families stayed at chance while colour and kind were learned). A linear head on a middle decoder layer's
output (TrainSettings.question_layer) at the position that predicts the first answer token regresses those
centres, which gives the attention from the question to the named shapes' visual tokens a direct signal
and leaves the later layers free to turn them into the answer. The head is dropped with the other
probes when the checkpoint is written.

A target is four numbers, (x, y) of two slots as fractions of the image's width and height; the other
families get none (all NaN).

The same questions also say where the first two heads of that layer should look from that position:
``attention_targets`` names, per head, the visual tokens that show one of those shapes, and the trainer
rewards the attention mass the head puts on them (TrainSettings.attention_weight). The probe alone lifted
position and motion off chance. Steering only the questions that compare two shapes took motion to
0.95-1.0 but left shape questions reading the wrong shape; steering colour and shape questions too, both
heads on the one shape named, brought shape back to 0.90. The two heads share their keys and values
(grouped-query attention), so one lookup has to serve every steered family (see docs/builtin-model.md).
"""

from __future__ import annotations

import numpy as np

from nvila_edge.export.train.region_labels import COLOR_INDEX
from nvila_edge.runtime.world.clip import Clip, shapes_at
from nvila_edge.runtime.world.questions import name_of
from nvila_edge.runtime.world.scene import SHAPES, Scene, Shape

SLOTS = 2
HEADS = 2  # heads of the question layer whose attention is supervised
ANY_BLOCK, LAST_BLOCK, UNSUPERVISED = -1, -2, -3  # block field of an attention target
NO_TARGET = [UNSUPERVISED, 0, 0, 0, 0]


def centre(shape: Shape, world: Scene | Clip) -> tuple[float, float]:
    return shape.cx / world.width, shape.cy / world.height


def named_in_order(question: str, shapes: list[Shape]) -> list[Shape]:
    """Shapes whose full name ("red circle") is in the question, in the order the question names them."""
    found = [(question.find(name_of(s)), s) for s in shapes if name_of(s) in question]
    return [s for _, s in sorted(found, key=lambda pair: pair[0])]


def answer_shapes(family: str, question: str, world: Scene | Clip) -> list[tuple[int, Shape]]:
    """The shapes an answer compares, each with the media block it is seen in (ANY_BLOCK for an image)."""
    if family == "motion":
        shape = named_in_order(question, world.shapes)[0]
        return [(0, shape), (LAST_BLOCK, shapes_at(world, world.num_frames - 1)[world.shapes.index(shape)])]
    if family == "position":
        return [(ANY_BLOCK, s) for s in named_in_order(question, world.shapes)]
    return []  # probing centres on single-shape questions too cost shape and exists accuracy


def probe_target(family: str, question: str, world: Scene | Clip) -> np.ndarray:
    """-> [2 * SLOTS] float32: (x, y) per slot in 0..1, NaN where the question names no shape."""
    target = np.full(2 * SLOTS, np.nan, np.float32)
    slots = [centre(s, world) for _, s in answer_shapes(family, question, world)][:SLOTS]
    if slots:
        target[:2 * len(slots)] = np.asarray(slots, np.float32).reshape(-1)
    return target


def look_at(block: int, shape: Shape, world: Scene | Clip) -> list[float]:
    """(block, kind label, colour label, x, y) of one head's target; labels numbered as in region_labels,
    (x, y) the shape's centre, whose token is the target when no token centre is on the shape."""
    return [block, SHAPES.index(shape.kind) + 1, COLOR_INDEX[shape.color], *centre(shape, world)]


def steered_shapes(family: str, question: str, world: Scene | Clip) -> list[tuple[int, Shape]]:
    """(block, shape) per head: the shapes an answer compares, or for a colour or shape question the one
    shape it names by kind or colour, for both heads. Existence questions stay free: steering them (head 0
    to the named kind, head 1 to the named colour) left existence at chance, and the other splits tried
    scored lower, each in a single run of a seed-sensitive recipe (see docs/builtin-model.md)."""
    if family in ("color", "shape"):
        words = question.replace("?", " ").split()
        named = next(s for s in world.shapes if (s.kind if family == "color" else s.color) in words)
        return [(ANY_BLOCK, named)] * HEADS
    return answer_shapes(family, question, world)


def attention_targets(family: str, question: str, world: Scene | Clip) -> np.ndarray:
    """-> [HEADS, 5] float32 (block, kind, colour, x, y) per head (see look_at): the visual tokens it should
    attend to from the position predicting the first answer token. Block is a media block (image or frame)
    index, ANY_BLOCK or LAST_BLOCK; UNSUPERVISED leaves the head free."""
    target = np.array([NO_TARGET] * HEADS, np.float32)
    rows = [look_at(block, s, world) for block, s in steered_shapes(family, question, world)][:HEADS]
    if rows:
        target[:len(rows)] = rows
    return target
