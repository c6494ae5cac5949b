"""What a stream is asked: prompts (answered every ``every_s`` seconds, over the last N frames when
``frames`` is set) and alerts (a yes/no question on the newest frame, as often as the model gets to it,
whose state changes only after ``debounce`` agreeing answers)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .errors import ApiError

MAX_PROMPT_CHARS = 2000
MAX_FRAMES = 16  # a video prompt's frames (the capture ring holds this many)
VIDEO_FPS = (0.25, 4.0)  # the capture ring samples at most 4 frames per second


@dataclass
class Watch:
    id: str
    kind: str  # "prompt" or "alert"
    prompt: str
    every_s: float
    frames: int | None = None  # video prompt over the last N frames
    fps: float = 2.0
    max_tokens: int = 32
    debounce: int = 2
    created: float = field(default_factory=time.time)
    # ---- what happened (written by the model worker) ----
    answer: str | None = None
    answered_at: float | None = None  # wall time
    frame_time: float | None = None  # wall time of the frame the answer is about
    state: str = "unknown"  # alerts: "true" / "false" / "unknown"
    streak_value: str | None = None
    streak: int = 0
    answers: int = 0
    gate_skips: int = 0
    stale_dropped: int = 0
    last_frame_index: int = -1
    stale_frame_index: int = -1
    last_thumb: np.ndarray | None = field(default=None, repr=False)
    next_due: float = 0.0  # monotonic

    def settled(self) -> bool:
        """An alert whose latest answer agrees with its state; prompts are always settled."""
        return self.kind == "prompt" or (self.streak_value == self.state and self.streak >= self.debounce)

    def record_alert(self, answer_text: str) -> str | None:
        """Count one answer; -> the new state when it changed."""
        value = yes_no(answer_text)
        self.streak = self.streak + 1 if value == self.streak_value else 1
        self.streak_value = value
        if value != self.state and self.streak >= self.debounce:
            self.state = value
            return value
        return None

    def as_json(self) -> dict:
        now = time.time()
        out = {"id": self.id, "kind": self.kind, "prompt": self.prompt, "every_s": self.every_s,
               "answer": self.answer, "answered_at": self.answered_at, "frame_time": self.frame_time,
               "age_s": None if self.frame_time is None else round(now - self.frame_time, 3),
               "answers": self.answers, "gate_skips": self.gate_skips, "stale_dropped": self.stale_dropped}
        if self.kind == "prompt":
            out["frames"] = self.frames
        else:
            out["state"] = self.state
            out["debounce"] = self.debounce
        return out


def yes_no(text: str) -> str:
    words = text.strip().lower().split()
    first = words[0].strip(".,!") if words else ""
    return {"yes": "true", "no": "false"}.get(first, "unknown")


def parse_watch(body: object, kind: str, watch_id: str, default_debounce: int) -> Watch:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(400, f"'prompt' must be a non-empty string of at most {MAX_PROMPT_CHARS} characters",
                       param="prompt")
    every_s = _number(body, "every_s", 5.0 if kind == "prompt" else 0.0, 0.0, 86400.0)
    watch = Watch(watch_id, kind, prompt.strip(), every_s,
                  max_tokens=int(_number(body, "max_tokens", 32 if kind == "prompt" else 4, 1, 512)))
    if kind == "prompt":
        frames = body.get("frames")
        if frames is not None:
            if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
                raise ApiError(400, f"'frames' must be an integer from 1 to {MAX_FRAMES}", param="frames")
            watch.frames = frames
        watch.fps = _number(body, "fps", 2.0, *VIDEO_FPS)
    else:
        watch.debounce = int(_number(body, "debounce", default_debounce, 1, 100))
    return watch


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}", param=name)
    return float(value)
