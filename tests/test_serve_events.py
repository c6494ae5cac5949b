"""The events bus on its own: increasing ids, replay after an id, and the notice for ids no longer kept."""

from __future__ import annotations

import asyncio

from nvila_edge.serve.events import EventBus


def test_replay_after_an_id_and_the_notice_when_it_is_too_old():
    bus = EventBus(capacity=10)
    for i in range(15):
        bus.publish("answer", n=i)
    assert bus.last_id == 15
    assert [e.id for e in bus.after(9)] == list(range(10, 16))  # inside the buffer: nothing lost, no notice
    assert bus.after(15) == []
    notice, *kept = bus.after(2)
    assert notice.type == "events_lost" and notice.data["lost"] == 3 and notice.data["oldest_available"] == 6
    assert notice.id == 5  # a client that takes it as its Last-Event-ID resumes at the oldest kept event
    assert [e.id for e in kept] == list(range(6, 16)) and [e.data["n"] for e in kept] == list(range(5, 15))
    assert [e.type for e in bus.after(5)] == ["answer"] * 10


def test_subscribers_wake_on_a_publish_from_another_thread():
    async def wait_for_one() -> list[int]:
        bus = EventBus()
        bus.attach(asyncio.get_running_loop())
        changed = bus.changed()
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, lambda: bus.publish("stream", state="live"))
        await asyncio.wait_for(changed.wait(), 5)
        return [e.id for e in bus.after(0)]

    assert asyncio.run(wait_for_one()) == [1]
