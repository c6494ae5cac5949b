"""Still scenes of the synthetic world: 1-4 flat shapes on a low-contrast background.

Everything a question needs is explicit data (``Scene``/``Shape``); the pixels are a pure function of it.
Within a scene every shape has its own kind and its own colour, so "the star" or "the red object" always
names exactly one shape. Colours are saturated and far apart in RGB; backgrounds are greyish textures of
small amplitude, so a bicubic 64 px squash keeps every shape's colour recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from nvila_edge.errors import InputError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (170, 40, 210),
    "cyan": (30, 210, 220),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise", "stripes", "checker")

MIN_SIDE, MAX_SIDE = 64, 320
MAX_SHORT_SIDE = 160  # short sides above 106 cap the aspect ratio below 3 (long side <= 320)
MAX_ASPECT = 3.0
MAX_SHAPES = 4
SIZE_RANGE = (1 / 6, 1 / 3)  # shape size as a fraction of the image's shorter side
SHAPE_GAP = 2.0  # pixels kept free between the bounding circles of two shapes
_SUBPIXEL = 4  # OpenCV fixed-point shift: coordinates in 1/16 px
_STAR_INNER = 0.5  # inner/outer radius; a fat star stays star-like after downscaling


@dataclass
class Shape:
    kind: str
    color: str
    cx: float  # centre, pixels
    cy: float
    size: float  # side of the bounding square, pixels


@dataclass
class Scene:
    width: int
    height: int
    background: str
    seed: int  # drives the background texture; everything else is explicit
    shapes: list[Shape] = field(default_factory=list)


def random_image_size(rng: np.random.Generator) -> tuple[int, int]:
    """Width and height in [64, 320] with aspect ratios from 1:3 to 3:1, so images span 1..many tiles."""
    short = int(rng.integers(MIN_SIDE, MAX_SHORT_SIDE + 1))
    aspect = float(np.exp(rng.uniform(0.0, np.log(MAX_ASPECT))))
    long = int(np.clip(round(short * aspect), short, MAX_SIDE))
    return (long, short) if rng.random() < 0.5 else (short, long)


def random_scene(rng: np.random.Generator, width: int | None = None, height: int | None = None,
                 n_shapes: int | None = None) -> Scene:
    if width is None or height is None:
        w, h = random_image_size(rng)
        width, height = width or w, height or h
    n = int(n_shapes) if n_shapes is not None else int(rng.integers(1, MAX_SHAPES + 1))
    if not 1 <= n <= MAX_SHAPES:
        raise InputError(f"n_shapes must be 1..{MAX_SHAPES}, got {n}")
    kinds = rng.permutation(len(SHAPES))[:n]
    colors = rng.permutation(len(COLORS))[:n]
    short = min(width, height)
    sizes = rng.uniform(SIZE_RANGE[0] * short, SIZE_RANGE[1] * short, size=n)
    centres, sizes = place_shapes(rng, width, height, sizes)
    names = list(COLORS)
    shapes = [Shape(SHAPES[k], names[c], float(x), float(y), float(s))
              for k, c, (x, y), s in zip(kinds, colors, centres, sizes)]
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return Scene(int(width), int(height), background, int(rng.integers(2**31)), shapes)


def place_shapes(rng: np.random.Generator, width: int, height: int, sizes: np.ndarray,
                 travel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centres [n, 2] keeping every shape inside the image and clear of the others, and the sizes [n] used.

    ``travel`` [n, 2] is each shape's total displacement (clips): the shape must fit at both ends of its
    path. Non-overlap along paths is the caller's check; here only start positions are separated.
    """
    travel = np.zeros((len(sizes), 2)) if travel is None else travel
    sizes = np.asarray(sizes, dtype=np.float64)
    while True:
        centres = []
        for size, (tx, ty) in zip(sizes, travel):
            half = size / 2 + 1
            lo = np.array([half - min(tx, 0), half - min(ty, 0)])
            hi = np.array([width - half - max(tx, 0), height - half - max(ty, 0)])
            for _ in range(100):
                c = rng.uniform(lo, hi)
                if all(np.hypot(*(c - o)) >= (size + s) / 2 + SHAPE_GAP for o, s in zip(centres, sizes)):
                    centres.append(c)
                    break
            else:
                break
        if len(centres) == len(sizes):
            return np.array(centres), sizes
        sizes = sizes * 0.95  # crowded (rare): shrink a little and start over


def shape_outline(kind: str, cx: float, cy: float, size: float) -> np.ndarray:
    """Polygon vertices [k, 2] (float pixels) of a square, triangle or star."""
    r = size / 2
    if kind == "square":
        h = 0.88 * r  # same area as the circle of diameter ``size``
        return np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
    if kind == "triangle":
        return np.array([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    if kind == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * _STAR_INNER)
        return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    raise InputError(f"unknown shape kind {kind!r}; expected one of {SHAPES}")


def fill_shape(image: np.ndarray, kind: str, cx: float, cy: float, size: float, value, antialias: bool = True) -> None:
    """Fill one shape's area of ``image`` with ``value`` (an RGB triple, or a label for a 1-channel map)."""
    scale = 1 << _SUBPIXEL
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    if kind == "circle":
        centre = (round(cx * scale), round(cy * scale))
        cv2.circle(image, centre, round(size / 2 * scale), value, -1, line, _SUBPIXEL)
        return
    points = np.round(shape_outline(kind, cx, cy, size) * scale).astype(np.int32)
    cv2.fillPoly(image, [points], value, line, _SUBPIXEL)


def draw_shape(image: np.ndarray, kind: str, color: str, cx: float, cy: float, size: float) -> None:
    fill_shape(image, kind, cx, cy, size, COLORS[color])


def render_background(width: int, height: int, kind: str, seed: int) -> np.ndarray:
    """A greyish low-contrast texture, RGB uint8 [H, W, 3], determined by (size, kind, seed)."""
    rng = np.random.default_rng(seed)
    grey = rng.uniform(85, 135)
    tint = rng.uniform(-10, 10, size=3)
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    angle = rng.uniform(0, np.pi)
    along = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))  # [H, W]
    if kind == "plain":
        texture = np.zeros((height, width), np.float32)
    elif kind == "gradient":
        span = max(float(along.max() - along.min()), 1.0)
        texture = (2 * (along - along.min()) / span - 1) * np.float32(rng.uniform(12, 22))
    elif kind == "noise":
        cells = rng.uniform(-1, 1, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)))).astype(np.float32)
        texture = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(rng.uniform(12, 20))
    elif kind == "stripes":
        texture = np.sin(along * np.float32(2 * np.pi / rng.uniform(8, 24))) * np.float32(rng.uniform(5, 9))
    elif kind == "checker":
        cell = np.float32(rng.uniform(8, 24))
        texture = (((x // cell + y // cell) % 2) * 2 - 1) * np.float32(rng.uniform(4, 7))
    else:
        raise InputError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    luminance = texture + np.float32(grey)
    return cv2.merge([cv2.convertScaleAbs(luminance, beta=float(t)) for t in tint])  # rounds and saturates


def render_scene(scene: Scene) -> np.ndarray:
    """RGB uint8 [H, W, 3]; the same scene always gives the same pixels."""
    image = render_background(scene.width, scene.height, scene.background, scene.seed)
    for s in scene.shapes:
        draw_shape(image, s.kind, s.color, s.cx, s.cy, s.size)
    return image
