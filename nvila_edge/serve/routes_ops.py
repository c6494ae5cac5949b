"""Operations and the page: ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/events`` (SSE) and ``/``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .errors import ApiError
from .service import Service

STATIC = Path(__file__).parent / "static"
EVENTS_POLL_S = 1.0  # how often an idle events stream checks for shutdown


async def healthz(request: HttpRequest) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JSONResponse:
    service: Service = request.app.state.service
    ready = service.worker.state == "ready" and not service.closing.is_set()
    body = {"ready": ready, "model": {"id": service.model_id, "state": service.worker.state,
                                      "error": service.worker.error},
            "chat_queue": service.worker.queue.qsize(),
            "streams": [{"id": s.id, "name": s.name, "state": s.state} for s in service.streams.snapshot()]}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: HttpRequest) -> Response:
    service: Service = request.app.state.service
    service.metrics.queue_depth.set(service.worker.queue.qsize())
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def last_event_id(request: HttpRequest, newest: int) -> int:
    text = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if text is None or text == "":
        return newest
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"Last-Event-ID must be an event id (an integer), got {text!r}",
                       param="Last-Event-ID") from None
    if value < 0:
        raise ApiError(400, "Last-Event-ID must not be negative", param="Last-Event-ID")
    return value


async def events(request: HttpRequest) -> EventSourceResponse:
    service: Service = request.app.state.service
    bus = service.bus
    after = last_event_id(request, bus.last_id)
    stream_filter = request.query_params.get("stream")

    async def feed():
        nonlocal after
        while not service.closing.is_set():
            changed = bus.changed()
            for event in bus.after(after):
                after = max(after, event.id)
                if stream_filter and event.data.get("stream_id") not in (None, stream_filter):
                    continue
                yield ServerSentEvent(json.dumps(event.payload()), id=str(event.id))
            try:
                await asyncio.wait_for(changed.wait(), EVENTS_POLL_S)
            except asyncio.TimeoutError:
                pass

    return EventSourceResponse(feed(), sep="\n", ping=15)


async def index(request: HttpRequest) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/v1/events", events, methods=["GET"]),
    Route("/", index, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
