"""Frame sampling from a video file or a folder of frames, as NVILA's reference loader picks them.

The default (fps = 0) takes ``num_frames`` indices spread evenly from the first to the last readable frame;
fps > 0 takes one frame every 1/fps seconds from the start, at most ``num_frames``. Asking for more frames
than there are is an error that gives the count (the reference would repeat frames). Container frame counts
can overstate the real length (e.g. a truncated file), so the last frame that can actually be grabbed is
searched for first. A folder's frames follow ``frame_files``, the one rule every folder source uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from nvila_edge.errors import InputError
from nvila_edge.runtime.image import bgr_to_rgb, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def frame_files(folder: Path) -> list[Path]:
    """A folder's frames: its image files (by extension, any case) sorted by name. Hidden files are ignored;
    other files are skipped with one warning that names a few of them."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        log.warning("%s: skipped %d file(s) that are not images (%s%s)", folder, len(others), ", ".join(others[:3]),
                    ", ..." if len(others) > 3 else "")
    return images


def check_frame_count(path: Path, available: int, num_frames: int) -> None:
    if available < num_frames:
        raise InputError(f"{path}: {available} frame(s), fewer than the {num_frames} asked for; "
                         f"ask for {available} or fewer")


def frame_indices(frame_count: int, num_frames: int, fps: float = 0.0, video_fps: float = 0.0) -> list[int]:
    """Which frames of a ``frame_count``-frame video (or folder) to take; may repeat when it is short."""
    if fps > 0:
        duration = frame_count / video_fps if video_fps > 0 else 0.0
        timestamps = np.arange(0.0, duration, 1.0 / fps)[:num_frames]
        return [int(t * video_fps) for t in timestamps]
    return [int(i) for i in np.round(np.linspace(0, frame_count - 1, num_frames))]


def sample_frames(path: str | Path, num_frames: int, fps: float = 0.0) -> list[np.ndarray]:
    """A video file or a folder of image files -> RGB uint8 frames [H, W, 3]."""
    if num_frames < 1:
        raise InputError(f"asked for {num_frames} video frames; use at least 1")
    path = Path(path)
    if path.is_dir():
        return _sample_folder(path, num_frames)
    if not path.is_file():
        raise InputError(f"{path}: no such video file or folder of frames")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: OpenCV cannot open this video (unknown container or codec)")
        count = readable_frame_count(capture)
        if count == 0:
            raise InputError(f"{path}: the video has no readable frames")
        if fps <= 0:
            check_frame_count(path, count, num_frames)
        indices = frame_indices(count, num_frames, fps, capture.get(cv2.CAP_PROP_FPS))
        if not indices:
            raise InputError(f"{path}: the video reports no frame rate, "
                             f"so it cannot be sampled at fps={fps}; use fps=0")
        frames = _read_frames(capture, sorted(set(indices)), path)
    finally:
        capture.release()
    if not frames:
        raise InputError(f"{path}: none of the sampled frames could be decoded; re-encode the video (e.g. H.264 MP4)")
    return [frames[i] for i in indices if i in frames]


def readable_frame_count(capture: cv2.VideoCapture) -> int:
    """One past the last frame that can be grabbed, searching down from the container's claimed count."""
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    while count > 0:
        capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1)
        if capture.grab():
            return count
        count -= 1
    return 0


def _read_frames(capture: cv2.VideoCapture, indices: list[int], path: Path) -> dict[int, np.ndarray]:
    frames = {}
    for index in indices:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if not ok:
            # The reference skips such frames too, so the sampled clip is shorter rather than padded.
            log.warning("%s: frame %d could not be decoded; skipped", path, index)
            continue
        frames[index] = bgr_to_rgb(frame)
    return frames


def _sample_folder(folder: Path, num_frames: int) -> list[np.ndarray]:
    files = frame_files(folder)
    if not files:
        raise InputError(f"{folder}: the folder holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
    check_frame_count(folder, len(files), num_frames)
    return [load_image(files[i]) for i in frame_indices(len(files), num_frames)]
