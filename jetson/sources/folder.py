"""A folder of still images played as a video: sorted by name, paced, optionally looped."""

from __future__ import annotations

from pathlib import Path

import cv2

from nvila_edge.errors import SourceError
from nvila_edge.runtime.video import IMAGE_SUFFIXES, frame_files

from .base import Frame, FramePacer, Source


class ImageFolderSource(Source):
    """Images read one by one at ``fps`` (0 = as fast as they decode); ``loop`` starts over at the end."""

    def __init__(self, folder: str | Path, fps: float = 5.0, loop: bool = False):
        super().__init__(name=f"image folder {folder}", is_live=False, fps=fps or None)
        self.folder = Path(folder)
        self.loop = loop
        self._paths: list[Path] = []
        self._position = 0
        self._pacer: FramePacer | None = None

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._paths = frame_files(self.folder)
        if not self._paths:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        self._position = 0
        self._pacer = FramePacer(self.fps) if self.fps else None

    def _read(self) -> Frame | None:
        if self._position == len(self._paths):
            if not self.loop:
                return None
            self._position = 0
        if self._pacer is not None:
            self._pacer.wait()
        path = self._paths[self._position]
        self._position += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image {path} (missing, or not an image OpenCV can decode)")
        return self._stamp(image)

    def _close(self) -> None:
        self._paths = []
