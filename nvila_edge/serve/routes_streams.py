"""Streams, their prompts and alerts, frames and previews: ``/v1/streams/...``."""

from __future__ import annotations

import asyncio

import cv2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nvila_edge.errors import SourceError
from nvila_edge.jetson.demo.overlay import draw_overlay
from nvila_edge.jetson.sources import make_source

from .errors import ApiError
from .routes_chat import read_json
from .service import Service
from .watches import parse_watch

JPEG_QUALITY = 80
PREVIEW_FPS = (0.5, 15.0)  # the range ?fps= may ask for; 5 by default
BOUNDARY = "frame"
FIRST_FRAME_S = 2.0  # a new stream is shown once it has a frame, or after this long


def service_of(request: HttpRequest) -> Service:
    return request.app.state.service


async def create_stream(request: HttpRequest) -> JSONResponse:
    service = service_of(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("source"), str) or not body["source"].strip():
        raise ApiError(400, "'source' is required: a camera (0, /dev/video0, csi://0), rtsp://..., a video file, "
                            "an image folder or test://shapes", param="source")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise ApiError(400, "'name' must be a string of at most 100 characters", param="name")
    try:
        source = await run_in_threadpool(make_source, body["source"])
    except SourceError as err:
        raise ApiError(400, str(err), param="source", code="invalid_source") from None
    stream = service.streams.create(source, name)
    try:
        await run_in_threadpool(stream.start)
        await run_in_threadpool(stream.capture.wait_newer, -1, FIRST_FRAME_S)
    except SourceError as err:
        service.streams.discard(stream.id)
        await run_in_threadpool(stream.close, "the source cannot deliver frames")
        raise ApiError(400, f"the source cannot deliver frames: {err}", param="source",
                       code="source_unavailable") from None
    return JSONResponse(stream.as_json(), status_code=201)


async def list_streams(request: HttpRequest) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [s.as_json() for s in service_of(request).streams.snapshot()]})


async def get_stream(request: HttpRequest) -> JSONResponse:
    return JSONResponse(service_of(request).streams.get(request.path_params["id"]).as_json())


async def delete_stream(request: HttpRequest) -> JSONResponse:
    service = service_of(request)
    stream = service.streams.get(request.path_params["id"])
    service.streams.discard(stream.id)
    await run_in_threadpool(stream.close, "deleted")
    return JSONResponse({"id": stream.id, "deleted": True})


async def frame_jpg(request: HttpRequest) -> Response:
    stream = service_of(request).streams.get(request.path_params["id"])
    frame = stream.capture.latest()
    if frame is None:
        raise ApiError(404, f"stream {stream.id} has no frame yet (state: {stream.state})", code="no_frame")
    data = await run_in_threadpool(encode_jpeg, frame.image)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def encode_jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def preview_jpeg(frame, overlay) -> bytes:
    return encode_jpeg(draw_overlay(frame.image, overlay.view()))


async def preview_mjpg(request: HttpRequest) -> StreamingResponse:
    service = service_of(request)
    stream = service.streams.get(request.path_params["id"])
    fps = request.query_params.get("fps", "5")
    try:
        interval = 1.0 / min(max(float(fps), PREVIEW_FPS[0]), PREVIEW_FPS[1])
    except ValueError:
        raise ApiError(400, f"fps must be a number, got {fps!r}", param="fps") from None

    async def parts():
        shown = -1
        while not service.closing.is_set() and stream.capture.running:
            frame = stream.capture.latest()
            if frame is not None and frame.index != shown:
                shown = frame.index
                image = await run_in_threadpool(preview_jpeg, frame, stream.overlay)
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(image)}\r\n\r\n"
                       ).encode() + image + b"\r\n"
            await asyncio.sleep(interval)

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


def watch_routes(kind: str) -> list[Route]:
    plural = f"{kind}s"

    async def add(request: HttpRequest) -> JSONResponse:
        service = service_of(request)
        stream = service.streams.get(request.path_params["id"])
        watch = parse_watch(await read_json(request), kind, stream.new_watch_id(kind), service.options.debounce)
        stream.add_watch(watch)
        return JSONResponse({"stream_id": stream.id, **watch.as_json()}, status_code=201)

    async def listed(request: HttpRequest) -> JSONResponse:
        stream = service_of(request).streams.get(request.path_params["id"])
        return JSONResponse({"object": "list", "data": stream.listed(kind)})

    async def delete(request: HttpRequest) -> JSONResponse:
        stream = service_of(request).streams.get(request.path_params["id"])
        stream.remove_watch(request.path_params["watch"], kind)
        return JSONResponse({"id": request.path_params["watch"], "deleted": True})

    return [Route(f"/v1/streams/{{id}}/{plural}", add, methods=["POST"]),
            Route(f"/v1/streams/{{id}}/{plural}", listed, methods=["GET"]),
            Route(f"/v1/streams/{{id}}/{plural}/{{watch}}", delete, methods=["DELETE"])]


async def latest(request: HttpRequest) -> JSONResponse:
    stream = service_of(request).streams.get(request.path_params["id"])
    return JSONResponse({"stream_id": stream.id, "state": stream.state, "prompts": stream.listed("prompt"),
                         "alerts": stream.listed("alert")})


ROUTES = [
    Route("/v1/streams", create_stream, methods=["POST"]),
    Route("/v1/streams", list_streams, methods=["GET"]),
    Route("/v1/streams/{id}", get_stream, methods=["GET"]),
    Route("/v1/streams/{id}", delete_stream, methods=["DELETE"]),
    Route("/v1/streams/{id}/frame.jpg", frame_jpg, methods=["GET"]),
    Route("/v1/streams/{id}/preview.mjpg", preview_mjpg, methods=["GET"]),
    Route("/v1/streams/{id}/latest", latest, methods=["GET"]),
    *watch_routes("prompt"),
    *watch_routes("alert"),
]
