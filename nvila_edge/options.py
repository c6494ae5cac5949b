"""Numeric option types for argparse: a value out of range is refused at parse time (exit 2) with the range."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Number:
    """``type=`` for a number in [low, high] (``low_open`` excludes ``low``); None = unbounded."""

    kind: type = int
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{noun} <= {self.high:g}" if self.high is not None else noun

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {self.describe()}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"'{text}' is not {self.describe()}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and value > self.high
        if below or above:
            raise argparse.ArgumentTypeError(f"{text} is out of range; use {self.describe()}")
        return value

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.describe()


POSITIVE = Number(int, 1)  # counts: tokens, frames, questions, threads, positions
NON_NEGATIVE = Number(int, 0)
TEMPERATURE = Number(float, 0.0)
TOP_P = Number(float, 0.0, 1.0, low_open=True)
POSITIVE_FLOAT = Number(float, 0.0, low_open=True)
NON_NEGATIVE_FLOAT = Number(float, 0.0)


def add_sampling_arguments(parser: argparse.ArgumentParser, max_new_tokens: int) -> None:
    """The question and sampling options every answering command takes (``ask``, ``run``)."""
    parser.add_argument("--prompt", default="Describe the image.", help="the question (default: %(default)r)")
    parser.add_argument("--max-new-tokens", type=POSITIVE, default=max_new_tokens,
                        help="answer length at most (default: %(default)s)")
    parser.add_argument("--temperature", type=TEMPERATURE, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=TOP_P, default=1.0,
                        help="nucleus sampling: keep the likeliest tokens up to this mass (default: 1.0, all)")
    parser.add_argument("--seed", type=NON_NEGATIVE, help="sampling seed (default: none, a fresh one each run)")
