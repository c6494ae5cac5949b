"""OpenAI-shaped errors: every 4xx says what was wrong in ``{"error": {"message", "type", "param", "code"}}``.

Anything unexpected becomes a 500 with a generic message (the traceback goes to the log, never to the
client); a 500 is always a bug.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("nvila_edge.serve")

TYPE_OF_STATUS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                  405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
                  503: "service_unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.message, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = TYPE_OF_STATUS.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


async def on_api_error(request: Request, err: ApiError) -> JSONResponse:
    return err.response()


async def on_http_exception(request: Request, err: HTTPException) -> JSONResponse:
    if err.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif err.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(err.detail)
    return JSONResponse(error_body(err.status_code, message), status_code=err.status_code,
                        headers=getattr(err, "headers", None))


async def on_unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(500, "internal server error (logged on the server)"), status_code=500)


EXCEPTION_HANDLERS = {ApiError: on_api_error, HTTPException: on_http_exception, Exception: on_unexpected}
