"""The ``shapes`` evaluation suite: exact match of normalised short answers on the synthetic world.

Any answering function can be scored (PyTorch reference, ONNX Runtime export, TensorRT engines), so the
numbers of all stages are comparable on the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nvila_edge.runtime.progress import progress_bar
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.world.questions import FAMILIES, Example, example_stream, normalize_answer

SUITES = ("shapes",)


def example_request(example: Example) -> Request:
    if example.media_kind == "video":
        return Request(example.question, video=list(example.frames))
    return Request(example.question, images=list(example.frames))


def evaluate(answer: Callable[[Example], str], n: int, seed: int, progress: bool = False,
             families: Sequence[str] = FAMILIES) -> dict:
    stream = example_stream(seed, families=families)
    totals: dict[str, list[int]] = {}
    mistakes = []
    for _ in progress_bar(range(n), enabled=progress, desc="eval", unit="q"):
        example = next(stream)
        predicted = answer(example)
        ok = normalize_answer(predicted) == normalize_answer(example.answer)
        totals.setdefault(example.family, [0, 0])
        totals[example.family][0] += ok
        totals[example.family][1] += 1
        if not ok and len(mistakes) < 5:
            mistakes.append({"question": example.question, "expected": example.answer, "got": predicted})
    correct = sum(c for c, _ in totals.values())
    return {
        "suite": "shapes",
        "seed": seed,
        "n": n,
        "accuracy": round(correct / max(1, n), 4),
        "families": {family: round(c / t, 4) for family, (c, t) in sorted(totals.items())},
        "examples_wrong": mistakes,
    }
