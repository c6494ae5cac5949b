"""One record per answer (what was asked about which frames, how fast, how stale) and the JSONL file of them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nvila_edge.errors import InputError
from nvila_edge.runtime.generation import decode_rate


@dataclass
class AnswerRecord:
    index: int  # 1, 2, 3, ... in the order answers were asked
    time: str  # wall clock when the question started, ISO 8601 with the UTC offset
    source: str
    prompt: str
    kind: str  # "image" (the newest frame) or "video" (the last N frames)
    frames: int  # frames in the question
    frame_index: int  # capture index of the newest frame asked about
    frame_age_ms: float  # how old that frame was when the question started
    text: str
    tokens: int  # generated tokens
    visual_tokens: int
    preprocess_ms: float  # frames -> tiles
    vision_ms: float
    projector_ms: float
    ttft_ms: float  # question start (frames in hand) -> first token
    frame_to_first_token_ms: float  # newest frame captured -> first text on screen
    answer_ms: float  # question start -> last token
    decode_tokens_per_s: float
    frames_dropped: int  # frames the capture replaced before anyone took them, since the previous record
    source_status: str  # the capture's state when the answer ended ("running", "reconnecting ...")
    telemetry: dict[str, Any] = field(default_factory=dict)  # memory, GPU load, power (jetson.telemetry)
    decode_steps: int = 0  # the rate is shown from two steps on; 0 in records written before it was kept

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stats_line(self) -> str:
        dropped = f"{self.frames_dropped} frame{'s' if self.frames_dropped != 1 else ''} dropped"
        status = "" if self.source_status == "running" else f" | source {self.source_status}"
        return (f"frame age {self.frame_age_ms:.0f} ms | preprocess {self.preprocess_ms:.1f} ms | "
                f"vision {self.vision_ms:.1f} ms | TTFT {self.ttft_ms:.0f} ms | "
                f"frame->first token {self.frame_to_first_token_ms:.0f} ms | "
                f"{decode_rate(self.decode_tokens_per_s, self.decode_steps)} | "
                f"{dropped}{status}")


class JsonlWriter:
    """Writes each record as one line and flushes it, so the file can be followed while the demo runs and
    holds only whole lines whenever the demo stops."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(self.path, "w", encoding="utf-8")
        except OSError as err:
            raise InputError(f"--jsonl {self.path}: cannot write there ({err.strerror}); pick a writable path"
                             ) from None
        self.written = 0

    def write(self, record: AnswerRecord) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(json.dumps(record.as_dict(), ensure_ascii=False) + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> list[AnswerRecord]:
    """The records of a JSONL file written by the demo."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [AnswerRecord(**json.loads(line)) for line in lines if line.strip()]
