"""``--record OUT.mp4``: the frames with their overlay, written to a hidden temporary file that takes its real
name only when the recording is finalised (an MP4 is unplayable until its index is written at the end)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from nvila_edge.errors import InputError, UnsupportedError

from .options import RECORD_CODECS


class VideoRecorder:
    """Opens its writer on the first frame (the frame size is known only then); later frames of another size
    (a camera that came back at another resolution) are resized to the first one's."""

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self.fourcc = RECORD_CODECS[self.path.suffix.lower()]
        # The extension stays last: OpenCV picks the container from it.
        self.partial = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"--record {self.path}: cannot create its folder ({err.strerror})") from None
        if not os.access(self.path.parent, os.W_OK):
            raise InputError(f"--record {self.path}: the folder is not writable; pick another path")
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._open(image)
        height, width = image.shape[:2]
        if (width, height) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1

    def _open(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self._size = (width, height)
        writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self._size)
        if not writer.isOpened():
            other = ".avi" if self.path.suffix.lower() == ".mp4" else ".mp4"
            raise UnsupportedError(f"--record {self.path}: this OpenCV cannot encode {self.fourcc} video; try a "
                                   f"{other} file name")
        self._writer = writer

    def close(self) -> Path | None:
        """Finalise the file and give it its name; None when no frame was written (then no file is left)."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        if self.frames_written == 0:
            self.partial.unlink(missing_ok=True)
            return None
        os.replace(self.partial, self.path)
        return self.path
