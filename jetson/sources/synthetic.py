"""``test://shapes``: a live synthetic camera filming the shapes world, for demos and tests without hardware.

The picture depends on the time since the first frame, not on how many frames were read, so it behaves like
a real camera: sample it at any rate and the shapes have moved by the same amount per second.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from nvila_edge.runtime.world.clip import Clip, clip_frame, random_clip

from .base import Frame, FramePacer, Source


class ShapesSource(Source):
    """Moving shapes at ``width`` x ``height``, delivered at ``fps`` (0 = as fast as rendered).

    The world moves ``speed`` clip frames per second; every ``scene_seconds`` (0 = never) a new random clip
    replaces the scene. ``clip`` is the scene on screen, i.e. the ground truth of what the camera shows.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, seed: int = 0,
                 speed: float = 2.0, scene_seconds: float = 20.0):
        super().__init__(name="test://shapes", is_live=True, fps=fps or None)
        self.width = width
        self.height = height
        self.seed = seed
        self.speed = speed
        self.scene_seconds = scene_seconds
        self.clip: Clip | None = None
        self._rng = np.random.default_rng(seed)
        self._scene_start: float | None = None
        self._pacer: FramePacer | None = None

    def _open(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.clip = random_clip(self._rng, width=self.width, height=self.height)
        self._scene_start = None
        self._pacer = FramePacer(self.fps) if self.fps else None

    def _read(self) -> Frame:
        if self._pacer is not None:
            self._pacer.wait()
        now = time.monotonic()
        if self._scene_start is None:
            self._scene_start = now
        if self.scene_seconds and now - self._scene_start >= self.scene_seconds:
            self.clip = random_clip(self._rng, width=self.width, height=self.height)
            self._scene_start = now
        rgb = clip_frame(self.clip, (now - self._scene_start) * self.speed)
        return self._stamp(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _close(self) -> None:
        self._pacer = None
