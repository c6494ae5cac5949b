"""Progress bars only where someone watches them: on a terminal, and not when a command is asked to be quiet."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **options) -> tqdm:
    """A tqdm bar; ``disable=None`` makes tqdm switch itself off when stderr is not a terminal, so logs and
    pipes never collect its carriage-return frames."""
    return tqdm(iterable, disable=None if enabled else True, **options)
