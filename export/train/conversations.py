"""Training conversations: several questions about one scene or clip, all asked of one copy of the media.

One vision pass is the expensive part of a step; asking up to ``MAX_TURNS`` questions about the same
image puts several supervised answers behind it instead of one. ``batches.pack`` lays every question out
exactly as a single-question request (what evaluation and users send), so the order of turns is only the
order of segments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nvila_edge.export.train.question_probe import attention_targets, probe_target
from nvila_edge.runtime.world.clip import Clip, random_clip, render_clip
from nvila_edge.runtime.world.questions import ask, name_of
from nvila_edge.runtime.world.scene import Scene, random_scene, render_scene

# Families asked about still images, with how often each is drawn (captions are the longest answers).
IMAGE_FAMILY_WEIGHTS = {"color": 1.0, "shape": 1.0, "count": 0.6, "position": 1.25, "exists": 1.0, "caption": 1.25}
VIDEO_SHARE = 0.3  # of conversations; a clip carries fewer turns (one per moving shape)
MAX_TURNS = 5


@dataclass
class Conversation:
    media_kind: str  # "image" or "video"
    frames: list[np.ndarray]
    turns: list[tuple[str, str]]  # (question, answer), in order
    world: Scene | Clip
    probe_targets: np.ndarray  # [turns, 4] per question, see question_probe
    attention_targets: np.ndarray  # [turns, HEADS, 5] per question, see question_probe


def image_turns(rng: np.random.Generator, scene: Scene) -> list[tuple[str, str, str]]:
    """Up to MAX_TURNS distinct (family, question, answer) about one scene."""
    families = list(IMAGE_FAMILY_WEIGHTS)
    p = np.array(list(IMAGE_FAMILY_WEIGHTS.values()))
    turns: list[tuple[str, str, str]] = []
    for family in rng.choice(families, size=MAX_TURNS, p=p / p.sum()):
        asked = ask(rng, str(family), scene)
        if asked is not None and asked[0] not in (q for _, q, _ in turns):
            turns.append((str(family), *asked))
    return turns


def motion_turns(rng: np.random.Generator, clip: Clip) -> list[tuple[str, str, str]]:
    """One ("motion", question, answer) per moving shape, in random order."""
    moving = [name_of(s) for s, m in zip(clip.shapes, clip.motions) if m != "still"]
    by_shape: dict[str, tuple[str, str, str]] = {}
    for _ in range(8 * len(moving)):
        question, answer = ask(rng, "motion", clip)
        by_shape.setdefault(next(n for n in moving if n in question), ("motion", question, answer))
    return list(by_shape.values())


def random_conversation(rng: np.random.Generator) -> Conversation:
    while True:
        if rng.random() < VIDEO_SHARE:
            clip = random_clip(rng)
            turns = motion_turns(rng, clip)
            frames = render_clip(clip)
            world: Scene | Clip = clip
            kind = "video"
        else:
            world = random_scene(rng)
            turns = image_turns(rng, world)
            frames = [render_scene(world)]
            kind = "image"
        if turns:
            probes = np.stack([probe_target(family, question, world) for family, question, _ in turns])
            looks = np.stack([attention_targets(family, question, world) for family, question, _ in turns])
            return Conversation(kind, frames, [(q, a) for _, q, a in turns], world, probes, looks)


def conversation_stream(seed: int) -> Iterator[Conversation]:
    """Endless conversations, the same sequence for the same seed."""
    rng = np.random.default_rng(seed)
    while True:
        yield random_conversation(rng)
