"""Everything ``nvila-edge serve`` can be told, with its defaults, in one place."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

API_KEY_ENV = "NVILA_EDGE_API_KEY"


@dataclass
class ServeOptions:
    model: str = "builtin"  # engines folder, export folder, checkpoint or "builtin"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allow_files: list[Path] = field(default_factory=list)  # folders file:// image URLs may read from
    threads: int | None = None  # ONNX Runtime threads (None: all cores)
    cache_dir: Path | None = None
    max_body_mb: float = 20.0
    max_image_mp: float = 40.0  # megapixels per image
    max_images: int = 16  # images per chat request
    chat_queue: int = 8  # chat requests waiting for the model before 429
    chat_burst: int = 4  # chat answers in a row before due stream work gets a turn; 0 = chat always first
    max_streams: int = 16
    max_watches: int = 8  # prompts + alerts per stream
    max_frame_age_s: float = 2.0  # stream work on an older frame is dropped, not queued
    scene_threshold: float = 2.0  # mean grey-level change (0-255) that counts as a new scene; 0 = gate off
    debounce: int = 2  # agreeing alert answers before the state changes
    event_buffer: int = 1000  # events kept for clients reconnecting with Last-Event-ID
    log_json: bool = False

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_image_pixels(self) -> int:
        return int(self.max_image_mp * 1_000_000)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
