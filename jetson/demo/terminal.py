"""What the demo prints: answers streaming on stdout as ``[3] a red circle ...``; timings, notes and the
final summary on stderr, so stdout carries the answers only."""

from __future__ import annotations

import sys
from typing import TextIO

from .records import AnswerRecord
from .result import DemoResult


class TerminalPrinter:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self._out = out
        self._err = err

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up late: tests and callers may replace sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def note(self, message: str) -> None:
        print(message, file=self.err, flush=True)

    def begin(self, index: int) -> None:
        self.out.write(f"[{index}] ")
        self.out.flush()

    def piece(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def end(self, record: AnswerRecord) -> None:
        self.out.write("\n")
        self.out.flush()
        self.note(f"    {record.stats_line()}")

    def interrupted(self) -> None:
        self.out.write(" [interrupted]\n")
        self.out.flush()

    def summary(self, result: DemoResult) -> None:
        self.note(result.summary_line())
