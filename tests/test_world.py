"""The synthetic world: determinism, visible facts, and questions whose answers follow from the scene data."""

from __future__ import annotations

import itertools
import re
import time

import cv2
import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.runtime.world.clip import MOTIONS, clip_frame, random_clip, render_clip, shapes_at
from nvila_edge.runtime.world.questions import (
    CLEAR_SEPARATION,
    FAMILIES,
    NUMBER_WORDS,
    caption_of,
    example_stream,
    make_example,
    normalize_answer,
    pose_question,
)
from nvila_edge.runtime.world.scene import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    Scene,
    Shape,
    random_scene,
    render_background,
    render_scene,
)

PALETTE = np.array(list(COLORS.values()), dtype=np.float64)
NAME = re.compile(r"(" + "|".join(COLORS) + r") (" + "|".join(SHAPES) + r")")


def _find(world, color: str | None = None, kind: str | None = None) -> Shape:
    matches = [s for s in world.shapes if color in (None, s.color) and kind in (None, s.kind)]
    assert len(matches) == 1, f"{color} {kind} names {len(matches)} shapes"
    return matches[0]


def test_same_seed_same_examples_and_pixels():
    first = list(itertools.islice(example_stream(11), 40))
    again = list(itertools.islice(example_stream(11), 40))
    other = list(itertools.islice(example_stream(12), 40))
    for a, b in zip(first, again):
        assert (a.family, a.question, a.answer, a.scene) == (b.family, b.question, b.answer, b.scene)
        assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert [e.question for e in first] != [e.question for e in other]
    assert {e.family for e in first} == set(FAMILIES)


def test_scenes_fit_the_image_and_keep_shapes_apart():
    rng = np.random.default_rng(0)
    aspects = []
    for _ in range(400):
        scene = random_scene(rng)
        assert 64 <= scene.width <= 320 and 64 <= scene.height <= 320
        aspects.append(scene.width / scene.height)
        assert len({s.kind for s in scene.shapes}) == len({s.color for s in scene.shapes}) == len(scene.shapes)
        for s in scene.shapes:
            assert s.size >= min(scene.width, scene.height) / 6 * 0.8
            assert s.size / 2 <= s.cx <= scene.width - s.size / 2 and s.size / 2 <= s.cy <= scene.height - s.size / 2
        for a, b in itertools.combinations(scene.shapes, 2):
            assert np.hypot(a.cx - b.cx, a.cy - b.cy) >= (a.size + b.size) / 2
    assert min(aspects) < 1 / 2.5 and max(aspects) > 2.5


def test_rendered_shapes_show_their_colour_even_after_a_64px_squash():
    rng = np.random.default_rng(1)
    names = list(COLORS)
    for _ in range(200):
        scene = random_scene(rng)
        image = render_scene(scene)
        assert image.dtype == np.uint8 and image.shape == (scene.height, scene.width, 3)
        assert np.array_equal(image, render_scene(scene))
        small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_CUBIC).astype(np.float64)
        for s in scene.shapes:
            assert tuple(image[round(s.cy), round(s.cx)]) == COLORS[s.color]
            pixel = small[int(s.cy * 64 / scene.height), int(s.cx * 64 / scene.width)]
            assert names[np.argmin(np.linalg.norm(PALETTE - pixel, axis=1))] == s.color


def test_colours_are_far_apart_and_backgrounds_never_look_like_a_colour():
    gaps = [np.linalg.norm(a - b) for a, b in itertools.combinations(PALETTE, 2)]
    assert min(gaps) > 120
    for seed in range(60):
        background = render_background(96, 80, BACKGROUNDS[seed % len(BACKGROUNDS)], seed).reshape(-1, 3)
        distance = np.linalg.norm(background[:, None].astype(np.float64) - PALETTE[None], axis=-1)
        assert distance.min() > 80
        assert np.ptp(background.astype(int), axis=1).max() < 40  # greyish: channels close together


def test_every_family_asks_a_question_the_scene_answers_uniquely():
    rng = np.random.default_rng(2)
    for family in FAMILIES:
        answers = set()
        for _ in range(150):
            world, question, answer = pose_question(rng, family)
            answers.add(answer)
            names = NAME.findall(question)
            if family == "color":
                kind = next(k for k in SHAPES if f"the {k}?" in question)
                assert _find(world, kind=kind).color == answer
            elif family == "shape":
                color = next(c for c in COLORS if f" {c} " in question or question.endswith(f" {c}?"))
                assert _find(world, color=color).kind == answer
            elif family == "count":
                assert answer == NUMBER_WORDS[len(world.shapes)]
            elif family == "position":
                a, b = (_find(world, c, k) for c, k in names)
                dx, dy = (a.cx - b.cx) / world.width, (a.cy - b.cy) / world.height
                expected = {"left": -dx, "right": dx, "above": -dy, "below": dy}[answer]
                assert expected >= CLEAR_SEPARATION
            elif family == "exists":
                [(color, kind)] = names
                present = any(s.color == color and s.kind == kind for s in world.shapes)
                assert answer == ("yes" if present else "no")
            elif family == "motion":
                [(color, kind)] = names
                index = world.shapes.index(_find(world, color, kind))
                assert world.motions[index] == answer != "still"
            elif family == "caption":
                assert answer == caption_of(world)
                assert sorted(NAME.findall(answer)) == sorted((s.color, s.kind) for s in world.shapes)
                if len(world.shapes) == 2:
                    left, right = (_find(world, c, k) for c, k in NAME.findall(answer))
                    assert right.cx - left.cx >= CLEAR_SEPARATION * world.width and " left of " in answer
        expected_answers = {"count": {"one", "two", "three", "four"}, "exists": {"yes", "no"},
                            "position": {"left", "right", "above", "below"}, "motion": {"left", "right", "up", "down"},
                            "shape": set(SHAPES)}
        assert answers >= expected_answers.get(family, set())


def test_captions_have_one_canonical_form():
    red_circle, blue_square = Shape("circle", "red", 90, 40, 20), Shape("square", "blue", 20, 40, 20)
    green_star = Shape("star", "green", 50, 10, 16)
    assert caption_of(Scene(120, 80, "plain", 0, [red_circle])) == "a red circle"
    assert caption_of(Scene(120, 80, "plain", 0, [red_circle, blue_square])) == "a blue square left of a red circle"
    assert (caption_of(Scene(120, 80, "plain", 0, [green_star, blue_square, red_circle]))
            == "a red circle, a blue square and a green star")


def test_clip_motion_is_visible_in_the_pixels():
    rng = np.random.default_rng(3)
    for _ in range(30):
        clip = random_clip(rng, num_frames=8)
        frames = render_clip(clip)
        assert len(frames) == 8 and all(f.shape == (clip.height, clip.width, 3) for f in frames)
        assert np.array_equal(clip_frame(clip, 5), frames[5])
        for shape, motion in zip(clip.shapes, clip.motions):
            centroids = []
            for frame in (frames[0], frames[-1]):
                mask = np.linalg.norm(frame.astype(np.float64) - COLORS[shape.color], axis=-1) < 30
                ys, xs = np.nonzero(mask)
                centroids.append(np.array([xs.mean(), ys.mean()]))
            moved = centroids[1] - centroids[0]
            expected = np.array(MOTIONS[motion]) * clip.step * (clip.num_frames - 1)
            assert np.abs(moved - expected).max() < 1.5, (motion, moved, expected)
            if motion != "still":
                assert np.abs(expected).max() >= 0.3 * min(clip.width, clip.height) - 1e-6
        for t in range(clip.num_frames):  # whole shapes stay inside during the clip
            for s in shapes_at(clip, t):
                assert s.size / 2 <= s.cx <= clip.width - s.size / 2 and s.size / 2 <= s.cy <= clip.height - s.size / 2


def test_live_frames_wrap_around_and_are_cheap():
    clip = random_clip(np.random.default_rng(4), width=640, height=480)
    mover = next(i for i, m in enumerate(clip.motions) if m != "still")
    for t in (0.0, 3.5, 40.0, 1000.25):
        s = shapes_at(clip, t)[mover]
        assert -s.size / 2 <= s.cx <= clip.width + s.size / 2 and -s.size / 2 <= s.cy <= clip.height + s.size / 2
    clip_frame(clip, 0.0)
    timings = []
    for i in range(40):
        start = time.perf_counter()
        frame = clip_frame(clip, i * 0.7)
        timings.append(time.perf_counter() - start)
    assert frame.shape == (480, 640, 3)
    assert np.median(timings) < 0.01


def test_example_stream_respects_families_and_weights():
    examples = list(itertools.islice(example_stream(5, families=("motion", "count"), weights=(3, 1)), 40))
    kinds = [e.family for e in examples]
    assert set(kinds) == {"motion", "count"} and kinds.count("motion") > kinds.count("count")
    video = next(e for e in examples if e.family == "motion")
    assert video.media_kind == "video" and len(video.frames) == 8
    assert len(make_example(np.random.default_rng(0), "motion", num_frames=16).frames) == 16
    with pytest.raises(InputError):
        next(example_stream(0, families=("colour",)))
    with pytest.raises(InputError):
        next(example_stream(0, families=("color", "count"), weights=(1,)))


def test_normalize_answer_for_exact_match():
    assert normalize_answer(" Left. ") == "left"
    assert normalize_answer("The answer: 3") == "answer three"
    assert normalize_answer("3") == "three"
    assert normalize_answer("Yes!") == "yes"
    assert normalize_answer("A red circle, a blue square and a green star.") == "red circle blue square and green star"
    assert normalize_answer("red circle") != normalize_answer("red square")
