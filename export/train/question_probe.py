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
"""

from __future__ import annotations

import numpy as np

from nvila_edge.runtime.world.clip import Clip, shapes_at
from nvila_edge.runtime.world.questions import name_of
from nvila_edge.runtime.world.scene import Scene, Shape

SLOTS = 2


def centre(shape: Shape, world: Scene | Clip) -> tuple[float, float]:
    return shape.cx / world.width, shape.cy / world.height


def named_in_order(question: str, shapes: list[Shape]) -> list[Shape]:
    """Shapes whose full name ("red circle") is in the question, in the order the question names them."""
    found = [(question.find(name_of(s)), s) for s in shapes if name_of(s) in question]
    return [s for _, s in sorted(found, key=lambda pair: pair[0])]


def slot_centres(family: str, question: str, world: Scene | Clip) -> list[tuple[float, float]]:
    if family == "motion":
        last = shapes_at(world, world.num_frames - 1)
        return [centre(s, world) for shape in named_in_order(question, world.shapes)
                for s in (shape, last[world.shapes.index(shape)])]
    if family == "position":
        return [centre(s, world) for s in named_in_order(question, world.shapes)]
    return []  # single-shape answers were learned without it; probing them too cost shape and exists accuracy


def probe_target(family: str, question: str, world: Scene | Clip) -> np.ndarray:
    """-> [2 * SLOTS] float32: (x, y) per slot in 0..1, NaN where the question names no shape."""
    target = np.full(2 * SLOTS, np.nan, np.float32)
    slots = slot_centres(family, question, world)[:SLOTS]
    if slots:
        target[:2 * len(slots)] = np.asarray(slots, np.float32).reshape(-1)
    return target
