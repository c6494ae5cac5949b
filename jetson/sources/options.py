"""Typed access to a source's options, which come as keyword arguments and/or a SPEC's query string.

``test://shapes?width=320&fps=5`` and ``open_source("test://shapes", width=320, fps=5)`` mean the same;
a misspelt option is an error naming the ones that exist rather than being silently ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from nvila_edge.errors import SourceError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SourceOptions:
    def __init__(self, kind: str, values: dict[str, Any]):
        self.kind = kind  # what the options are for, as the user named it (for messages)
        # None means "not given", so a CLI can pass every flag's value straight through.
        self._values = {name: value for name, value in values.items() if value is not None}
        self._known: set[str] = set()

    @classmethod
    def with_query(cls, kind: str, query: str, values: dict[str, Any]) -> SourceOptions:
        """Options from keyword arguments, overridden by the SPEC's own ``?key=value&...``."""
        merged = {name: value for name, value in values.items() if value is not None}
        merged.update(parse_qsl(query, keep_blank_values=True))
        return cls(kind, merged)

    def _take(self, name: str, default: Any) -> Any:
        self._known.add(name)
        return self._values.get(name, default)

    def _bad(self, name: str, value: Any, wanted: str) -> SourceError:
        return SourceError(f"option {name}={value!r} for {self.kind} must be {wanted}")

    def integer(self, name: str, default: int | None, minimum: int = 0) -> int | None:
        value = self._take(name, default)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self._bad(name, value, "an integer") from None
        if number < minimum:
            raise self._bad(name, value, f"an integer >= {minimum}")
        return number

    def number(self, name: str, default: float | None, minimum: float = 0.0) -> float | None:
        value = self._take(name, default)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._bad(name, value, "a number") from None
        if number < minimum:
            raise self._bad(name, value, f"a number >= {minimum}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self._take(name, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._bad(name, value, "1/0, true/false, yes/no or on/off")

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = str(self._take(name, default)).lower()
        if value not in choices:
            raise self._bad(name, value, "one of " + ", ".join(choices))
        return value

    def text(self, name: str, default: str | None) -> str | None:
        value = self._take(name, default)
        return None if value is None else str(value)

    def reject_unknown(self) -> None:
        """Call after reading every option: anything left over was misspelt or does not apply here."""
        unknown = sorted(set(self._values) - self._known)
        if unknown:
            known = ", ".join(sorted(self._known)) or "none"
            raise SourceError(f"unknown option {unknown[0]!r} for {self.kind} (options: {known})")
