"""Polygraphy's runner pattern: whatever holds device memory, sessions or engines is used in a ``with`` block
(or closed explicitly), so memory is freed when the caller is done with it and not whenever the garbage
collector runs. ``close()`` may be called any number of times."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Closeable(ABC):
    @abstractmethod
    def close(self) -> None:
        """Free what the object holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
