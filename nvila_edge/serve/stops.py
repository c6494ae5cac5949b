"""Stop strings over streamed text: text is passed on as soon as it can no longer be the start of a stop
string, and everything from the first stop string on is cut."""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: list[str]):
        self.stops = stops
        self._pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """-> (text safe to emit, whether a stop string was reached)."""
        text = self._pending + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._pending = ""
            return text[:min(hits)], True
        keep = self._held_back(text)
        self._pending = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text

    def _held_back(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop string."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-n:]):
                    longest = n
                    break
        return longest
