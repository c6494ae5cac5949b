"""Request-size limits: a body over the limit is refused with 413 without being kept in memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body over the {limit / 2**20:.0f} MB limit; send smaller or fewer images "
                         "(or start the server with a larger --max-body-mb)", code="body_too_large")


class BodySizeLimit:
    """Refuses by Content-Length up front, and counts the bytes of a body sent without one (chunked)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            # Read and discard the body first: a client still sending when the answer comes sees a broken pipe.
            message = await receive()
            while message["type"] == "http.request" and message.get("more_body"):
                message = await receive()
            await body_too_large(self.limit).response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise body_too_large(self.limit)
            return message

        await self.app(scope, counted, send)
