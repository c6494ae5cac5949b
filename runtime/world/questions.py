"""Question families over the synthetic world, each with one short canonical answer.

A question is only posed when the scene data makes its answer unique and plainly visible: shapes are
named by kind or colour (both unique within a scene, see ``scene``), and left/right/above/below is only
asked between shapes whose centres are at least a fifth of the image apart on that axis. Answers come from
a small closed vocabulary so exact match after ``normalize_answer`` is a fair score.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from nvila_edge.errors import InputError
from nvila_edge.runtime.world.clip import Clip, random_clip, render_clip
from nvila_edge.runtime.world.scene import COLORS, MAX_SHAPES, SHAPES, Scene, Shape, random_scene, render_scene

FAMILIES = ("color", "shape", "count", "position", "exists", "motion", "caption")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLEAR_SEPARATION = 0.2  # fraction of the image side between two centres for a left/right/above/below fact

TEMPLATES: dict[str, tuple[str, ...]] = {
    "color": ("What colour is the {kind}?", "What color is the {kind}?", "Which colour is the {kind}?"),
    "shape": ("What shape is the {color} object?", "What is the shape of the {color} object?",
              "Which shape is {color}?"),
    "count": ("How many shapes are there?", "How many shapes are in the image?", "Count the shapes."),
    "position_x": ("Is the {a} left or right of the {b}?", "Is the {a} to the left or to the right of the {b}?"),
    "position_y": ("Is the {a} above or below the {b}?", "Is the {a} placed above or below the {b}?"),
    "exists": ("Is there a {name}?", "Do you see a {name}?", "Does the image contain a {name}?"),
    "motion": ("Which way does the {name} move?", "In which direction is the {name} moving?",
               "Where is the {name} going?"),
    "caption": ("Describe the image.", "What is in the image?", "Describe the scene briefly."),
}


@dataclass
class Example:
    family: str
    media_kind: str  # "image" or "video"
    frames: list[np.ndarray]  # one RGB image, or the clip's frames
    question: str
    answer: str
    scene: Scene | Clip


def name_of(shape: Shape) -> str:
    return f"{shape.color} {shape.kind}"


def caption_of(scene: Scene | Clip) -> str:
    """Canonical short description (first frame for a clip).

    One shape: "a red circle". Two: left one first, "a red circle left of a blue square". Three or four:
    listed in the fixed kind order circle, square, triangle, star ("a red circle, a blue square and a
    green star"), which depends on no near-tie in position.
    """
    shapes = scene.shapes
    if len(shapes) == 2:
        left, right = sorted(shapes, key=lambda s: s.cx)
        return f"a {name_of(left)} left of a {name_of(right)}"
    ordered = [f"a {name_of(s)}" for s in sorted(shapes, key=lambda s: SHAPES.index(s.kind))]
    return ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " and " + ordered[-1]


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _template(rng: np.random.Generator, key: str, **fields: str) -> str:
    return _pick(rng, TEMPLATES[key]).format(**fields)


def _ask_color(rng, scene: Scene) -> tuple[str, str]:
    shape = _pick(rng, scene.shapes)
    return _template(rng, "color", kind=shape.kind), shape.color


def _ask_shape(rng, scene: Scene) -> tuple[str, str]:
    shape = _pick(rng, scene.shapes)
    return _template(rng, "shape", color=shape.color), shape.kind


def _ask_count(rng, scene: Scene) -> tuple[str, str]:
    return _template(rng, "count"), NUMBER_WORDS[len(scene.shapes)]


def _ask_position(rng, scene: Scene) -> tuple[str, str] | None:
    facts = []
    for a in scene.shapes:
        for b in scene.shapes:
            if a.cx - b.cx >= CLEAR_SEPARATION * scene.width:
                facts.append(("position_x", a, b, "right"))
                facts.append(("position_x", b, a, "left"))
            if a.cy - b.cy >= CLEAR_SEPARATION * scene.height:
                facts.append(("position_y", a, b, "below"))
                facts.append(("position_y", b, a, "above"))
    if not facts:
        return None
    key, a, b, answer = _pick(rng, facts)
    return _template(rng, key, a=name_of(a), b=name_of(b)), answer


def _ask_exists(rng, scene: Scene) -> tuple[str, str]:
    present = {(s.color, s.kind) for s in scene.shapes}
    if rng.random() < 0.5:
        color, kind = _pick(rng, sorted(present))
        return _template(rng, "exists", name=f"{color} {kind}"), "yes"
    absent = [(c, k) for c in COLORS for k in SHAPES if (c, k) not in present]
    # Half the negatives are near misses (a colour or a kind that is in the picture) so neither suffices.
    near = [(c, k) for c, k in absent if any(c == pc or k == pk for pc, pk in present)]
    color, kind = _pick(rng, near if near and rng.random() < 0.5 else absent)
    return _template(rng, "exists", name=f"{color} {kind}"), "no"


def _ask_motion(rng, clip: Clip) -> tuple[str, str]:
    moving = [(s, m) for s, m in zip(clip.shapes, clip.motions) if m != "still"]
    shape, motion = _pick(rng, moving)
    return _template(rng, "motion", name=name_of(shape)), motion


def _ask_caption(rng, scene: Scene) -> tuple[str, str] | None:
    if len(scene.shapes) == 2 and abs(scene.shapes[0].cx - scene.shapes[1].cx) < CLEAR_SEPARATION * scene.width:
        return None
    return _template(rng, "caption"), caption_of(scene)


_ASK: dict[str, Callable] = {"color": _ask_color, "shape": _ask_shape, "count": _ask_count,
                             "position": _ask_position, "exists": _ask_exists, "motion": _ask_motion,
                             "caption": _ask_caption}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise InputError(f"unknown question family {family!r}; choose from {', '.join(FAMILIES)}")


def ask(rng: np.random.Generator, family: str, world: Scene | Clip) -> tuple[str, str] | None:
    """(question, answer) of ``family`` about ``world``, or None when the world has no clear one."""
    _check_family(family)
    return _ASK[family](rng, world)


def pose_question(rng: np.random.Generator, family: str, num_frames: int = 8) -> tuple[Scene | Clip, str, str]:
    """(scene or clip, question, answer) without rendering; resamples until the family's question is clear."""
    _check_family(family)
    while True:
        if family == "motion":
            world = random_clip(rng, num_frames=num_frames)
        elif family == "position":
            world = random_scene(rng, n_shapes=int(rng.integers(2, MAX_SHAPES + 1)))
        else:
            world = random_scene(rng)
        asked = ask(rng, family, world)
        if asked is not None:
            return world, asked[0], asked[1]


def make_example(rng: np.random.Generator, family: str, num_frames: int = 8) -> Example:
    world, question, answer = pose_question(rng, family, num_frames)
    if isinstance(world, Clip):
        return Example(family, "video", render_clip(world), question, answer, world)
    return Example(family, "image", [render_scene(world)], question, answer, world)


def example_stream(seed: int, families: Sequence[str] = FAMILIES, weights: Sequence[float] | None = None,
                   num_frames: int = 8) -> Iterator[Example]:
    """Endless examples, the same sequence for the same arguments."""
    families = tuple(families)
    for family in families:
        _check_family(family)
    p = np.ones(len(families)) if weights is None else np.asarray(weights, dtype=np.float64)
    if p.shape != (len(families),) or (p < 0).any() or p.sum() <= 0:
        raise InputError(f"weights must be {len(families)} non-negative numbers, one per family, not all zero")
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    while True:
        yield make_example(rng, families[int(rng.choice(len(families), p=p))], num_frames)


_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """Lowercase words without punctuation or articles; digits become number words ("2." -> "two")."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    words = [NUMBER_WORDS[int(w)] if w.isdigit() and int(w) < len(NUMBER_WORDS) else w for w in words]
    return " ".join(w for w in words if w not in _ARTICLES)
