"""Short clips of the synthetic world: shapes sliding left, right, up or down over a still background.

A clip is a scene plus one motion per shape and a speed. ``clip_frame`` renders any (fractional) time, so
the same data serves training clips and the endless ``test://shapes`` camera: within the clip's frames
every shape stays fully inside the image and clear of the others; after that a shape that leaves one edge
re-enters from the opposite one, so motion goes on forever in the same direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from nvila_edge.errors import InputError
from nvila_edge.runtime.world.scene import (
    BACKGROUNDS,
    COLORS,
    SHAPE_GAP,
    SHAPES,
    Shape,
    draw_shape,
    place_shapes,
    render_background,
)

MOTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
                                       "still": (0, 0)}
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
CLIP_SIZE = (128, 96)
MAX_CLIP_SHAPES = 3
CLIP_SIZE_RANGE = (1 / 6, 1 / 4)  # shape size as a fraction of the shorter side
TRAVEL_RANGE = (0.30, 0.45)  # whole-clip displacement as a fraction of the shorter side: plainly visible


@dataclass
class Clip:
    width: int
    height: int
    background: str
    seed: int
    shapes: list[Shape] = field(default_factory=list)  # positions at frame 0
    motions: list[str] = field(default_factory=list)  # per shape: left/right/up/down/still
    num_frames: int = 8
    step: float = 4.0  # pixels per frame for every moving shape


def random_clip(rng: np.random.Generator, num_frames: int = 8, width: int = CLIP_SIZE[0],
                height: int = CLIP_SIZE[1], n_shapes: int | None = None) -> Clip:
    if num_frames < 2:
        raise InputError(f"a clip needs at least 2 frames to show motion, got {num_frames}")
    n = int(n_shapes) if n_shapes is not None else int(rng.integers(1, MAX_CLIP_SHAPES + 1))
    if not 1 <= n <= len(SHAPES):
        raise InputError(f"n_shapes must be 1..{len(SHAPES)}, got {n}")
    short = min(width, height)
    step = float(rng.uniform(*TRAVEL_RANGE) * short / (num_frames - 1))
    motions = [str(m) for m in rng.choice(list(MOTIONS), size=n)]
    if all(m == "still" for m in motions):
        motions[int(rng.integers(n))] = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
    velocity = np.array([MOTIONS[m] for m in motions], dtype=np.float64) * step  # [n, 2] px per frame
    times = np.arange(num_frames)
    kinds = rng.permutation(len(SHAPES))[:n]
    colors = rng.permutation(len(COLORS))[:n]
    while True:
        sizes = rng.uniform(CLIP_SIZE_RANGE[0] * short, CLIP_SIZE_RANGE[1] * short, size=n)
        starts, sizes = place_shapes(rng, width, height, sizes, travel=velocity * (num_frames - 1))
        paths = starts[None] + times[:, None, None] * velocity[None]  # [F, n, 2]
        if paths_stay_apart(paths, sizes):
            break
    names = list(COLORS)
    shapes = [Shape(SHAPES[k], names[c], float(x), float(y), float(s))
              for k, c, (x, y), s in zip(kinds, colors, starts, sizes)]
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return Clip(int(width), int(height), background, int(rng.integers(2**31)), shapes, motions, num_frames, step)


def paths_stay_apart(paths: np.ndarray, sizes: np.ndarray) -> bool:
    """True when no two shapes come closer than touching at any frame; paths [F, n, 2]."""
    gaps = np.linalg.norm(paths[:, :, None] - paths[:, None, :], axis=-1)  # [F, n, n]
    needed = (sizes[:, None] + sizes[None, :]) / 2 + SHAPE_GAP
    np.fill_diagonal(needed, 0.0)
    return bool((gaps >= needed[None]).all())


def shapes_at(clip: Clip, t: float) -> list[Shape]:
    """Every shape at time ``t`` (in frames), wrapped around the edges once it has left the image."""
    moved = []
    for shape, motion in zip(clip.shapes, clip.motions):
        dx, dy = MOTIONS[motion]
        cx = _wrap(shape.cx + dx * clip.step * t, clip.width, shape.size)
        cy = _wrap(shape.cy + dy * clip.step * t, clip.height, shape.size)
        moved.append(replace(shape, cx=cx, cy=cy))
    return moved


def _wrap(position: float, extent: int, size: float) -> float:
    # The period is extent + size, so a shape is wholly off-screen at the moment it jumps to the other side.
    return (position + size / 2) % (extent + size) - size / 2


@lru_cache(maxsize=8)
def _background(width: int, height: int, kind: str, seed: int) -> np.ndarray:
    image = render_background(width, height, kind, seed)
    image.flags.writeable = False
    return image


def clip_frame(clip: Clip, t: float) -> np.ndarray:
    """RGB uint8 [H, W, 3] at time ``t`` in frames; ``clip_frame(clip, i)`` is frame ``i`` of the clip."""
    image = _background(clip.width, clip.height, clip.background, clip.seed).copy()
    for s in shapes_at(clip, t):
        draw_shape(image, s.kind, s.color, s.cx, s.cy, s.size)
    return image


def render_clip(clip: Clip) -> list[np.ndarray]:
    return [clip_frame(clip, i) for i in range(clip.num_frames)]
