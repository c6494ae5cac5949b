"""Calibration data: preprocessed vision tiles and LLM prefill sequences from real prompts.

By default the images and questions come from the built-in synthetic world (with the true answers appended,
so the LLM also sees answer tokens); ``--calib DIR`` swaps in the user's own images, each asked to be
described. Files in DIR that do not decode as images are skipped with one warning naming them.
Everything is computed by the FP32 PyTorch reference, before any graph is converted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvila_edge.engines.recipes import DEFAULT_CALIBRATION_SIZE
from nvila_edge.errors import InputError
from nvila_edge.export.checkpoint import LoadedCheckpoint
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.runtime.evaluation import example_request
from nvila_edge.runtime.image import load_image
from nvila_edge.runtime.request import Request, inputs_embeds, tile_request
from nvila_edge.runtime.world.questions import TEMPLATES, example_stream

log = logging.getLogger(__name__)

TILES_PER_IMAGE = 4  # the vision tower sees up to this many tiles per calibration image, spread over all images
WORLD_SEED = 99  # not the evaluation suite's default seed (1234), so calibration never sees test questions


@dataclass
class CalibrationSet:
    pixel_values: np.ndarray  # [N, 3, S, S] float32 vision tiles
    inputs_embeds: np.ndarray  # [M, L, H] float32 prefill sequences, cut to the shortest one's length L
    source: str


def read_folder_images(folder: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` decodable images (sorted by path) from ``folder`` and its subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such calibration folder")
    images, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if len(images) == limit:
            break
        try:
            images.append((str(path.relative_to(folder)), load_image(path)))
        except InputError:
            skipped.append(str(path.relative_to(folder)))
    if skipped:
        log.warning("calibration: skipped %d file(s) in %s that are not readable images: %s",
                    len(skipped), folder, ", ".join(skipped))
    if not images:
        raise InputError(f"{folder}: no readable images to calibrate with (JPEG, PNG, BMP, WebP, ...)")
    return images


def folder_requests(folder: Path, size: int) -> list[tuple[Request, list[int]]]:
    prompts = TEMPLATES["caption"]
    return [(Request(prompts[i % len(prompts)], images=[rgb]), [])
            for i, (_, rgb) in enumerate(read_folder_images(folder, size))]


def world_requests(reference: ReferencePipeline, size: int) -> list[tuple[Request, list[int]]]:
    """Built-in world questions with their answers (+ end of turn) as teacher-forced continuation tokens."""
    tokenizer = reference.tokenizer
    stream = example_stream(WORLD_SEED)
    requests = []
    for _ in range(size):
        example = next(stream)
        answer = tokenizer.encode(example.answer) + [tokenizer.im_end_id]
        requests.append((example_request(example), answer))
    return requests


def spread(count: int, limit: int) -> np.ndarray:
    """Indices of ``limit`` items evenly spread over ``count`` (all of them if there are fewer)."""
    return np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(int))


def build_calibration(ckpt: LoadedCheckpoint, folder: Path | None = None,
                      size: int = DEFAULT_CALIBRATION_SIZE) -> CalibrationSet:
    """``size`` images/prompts through the FP32 reference; the checkpoint's model must still be FP32."""
    if size < 1:
        raise InputError(f"--calib-size must be at least 1, not {size}")
    reference = ReferencePipeline(ckpt)
    requests = folder_requests(folder, size) if folder else world_requests(reference, size)
    tiles, sequences = [], []
    for request, continuation in requests:
        tiles.extend(t.pixel_values for t in tile_request(ckpt.config, request).tiles)
        prompt = inputs_embeds(reference.prepare(request), reference.tokenizer, reference.embed_table)
        sequences.append(np.concatenate((prompt, reference.embed_table[continuation])))
    pixels = np.concatenate(tiles)
    length = min(len(s) for s in sequences)
    source = f"images in {folder}" if folder else f"built-in world (seed {WORLD_SEED})"
    log.info("calibration: %d prompts of %d positions, %d vision tiles, from %s",
             len(sequences), length, min(len(pixels), TILES_PER_IMAGE * len(requests)), source)
    return CalibrationSet(pixels[spread(len(pixels), TILES_PER_IMAGE * len(requests))],
                          np.stack([s[:length] for s in sequences]).astype(np.float32), source)
