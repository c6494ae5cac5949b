"""What one demo run does: the source, the model, the question, how often to ask, where the results go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nvila_edge.errors import InputError

DEFAULT_SOURCE = "test://shapes"
DEFAULT_PROMPT = "Describe the image."
DEFAULT_VIDEO_FPS = 2.0
RECORD_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}  # container (by extension) -> FOURCC OpenCV encodes with


@dataclass
class DemoOptions:
    source: str = DEFAULT_SOURCE
    engines: Path | None = None  # an export or engines folder; None: the model below, exported once and cached
    model: str = "builtin"  # checkpoint folder or "builtin", used when no engines folder is given
    prompt: str = DEFAULT_PROMPT
    every: float = 0.0  # seconds between question starts; 0: ask again as soon as an answer ends
    frames: int | None = None  # ask a video question over the last N frames instead of the newest frame
    fps: float | None = None  # sampling rate of those frames (default DEFAULT_VIDEO_FPS)
    display: bool | None = None  # None: a window when there is a screen and OpenCV can open one
    record: Path | None = None  # a video file of the camera with the overlay burnt in
    jsonl: Path | None = None  # one JSON object per answer
    max_answers: int | None = None  # stop after this many answers; None: run until stopped
    max_new_tokens: int = 64
    threads: int | None = None  # ONNX Runtime CPU threads; None: all cores
    cache_dir: Path | None = None  # where first-use exports are kept; None: the engine cache dir

    def __post_init__(self) -> None:
        if self.every < 0:
            raise InputError(f"--every {self.every}: give 0 (ask continuously) or a positive number of seconds")
        if self.frames is None and self.fps is not None:
            raise InputError("--fps sets the sampling rate of a video question: give --frames N as well")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames {self.frames}: a video question needs at least 1 frame")
        if self.fps is not None and self.fps <= 0:
            raise InputError(f"--fps {self.fps}: give a positive frame rate, e.g. --fps 2")
        if self.max_answers is not None and self.max_answers < 1:
            raise InputError(f"--max-answers {self.max_answers}: give 1 or more (or leave it out to run until stopped)")
        if self.max_new_tokens < 1:
            raise InputError(f"--max-new-tokens {self.max_new_tokens}: give 1 or more")
        if self.record is not None and Path(self.record).suffix.lower() not in RECORD_CODECS:
            raise InputError(f"--record {self.record}: name the file .mp4 or .avi (the extension picks the container)")
        if not self.prompt.strip():
            raise InputError("--prompt is empty: give the question to ask about the camera")

    @property
    def video_fps(self) -> float:
        return self.fps or DEFAULT_VIDEO_FPS

    @property
    def kind(self) -> str:
        """"video" (the last N frames) or "image" (the newest frame)."""
        return "image" if self.frames is None else "video"
