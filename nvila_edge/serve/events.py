"""The events bus: answers, alert state changes and stream state changes, each with an increasing id.

Publishers are any thread; subscribers are SSE handlers on the event loop. The last ``capacity`` events are
kept so a client that reconnects with ``Last-Event-ID`` gets what it missed; one that asks for something
older first gets an ``events_lost`` notice saying how many are gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    id: int
    type: str  # "answer", "alert", "stream", or "events_lost" (never stored)
    data: dict

    def payload(self) -> dict:
        return {"id": self.id, "type": self.type, **self.data}


class EventBus:
    def __init__(self, capacity: int = 1000):
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._next_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribers wait on ``loop`` (call from that loop)."""
        self._loop, self._changed = loop, asyncio.Event()

    def publish(self, type: str, **data) -> Event:
        with self._lock:
            event = Event(self._next_id, type, {"time": time.time(), **data})
            self._next_id += 1
            self._events.append(event)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                self._loop.call_soon_threadsafe(self._wake)
        return event

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def after(self, last_id: int) -> list[Event]:
        """Events newer than ``last_id``, preceded by an ``events_lost`` notice when some are gone."""
        with self._lock:
            events = [e for e in self._events if e.id > last_id] if self._events else []
            oldest = self._events[0].id if self._events else self._next_id
        if last_id < oldest - 1:
            lost = oldest - 1 - last_id
            notice = Event(oldest - 1, "events_lost",
                           {"time": time.time(), "lost": lost, "oldest_available": oldest,
                            "message": f"{lost} events after id {last_id} are no longer kept (the buffer holds "
                                       f"{self._events.maxlen}); fetch the current state from the REST API"})
            return [notice, *events]
        return events

    def changed(self) -> asyncio.Event:
        """An asyncio.Event set at the next publish (take it before reading ``after``)."""
        assert self._changed is not None, "attach() the bus to the event loop first"
        return self._changed

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
