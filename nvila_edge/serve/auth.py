"""API key: with a key set, every endpoint except /healthz and the web page itself (``/``, ``/static/``,
which hold no data) needs ``Authorization: Bearer KEY``.

Browsers cannot add headers to ``<img>`` or ``EventSource`` requests, so the web page may send the same key
in the ``nvila_edge_key`` cookie instead.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError

OPEN_PATHS = {"/healthz", "/"}
OPEN_PREFIX = "/static/"
COOKIE = "nvila_edge_key"


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    try:
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    except CookieError:  # a malformed cookie header carries no key
        return None
    return cookie[COOKIE].value if COOKIE in cookie else None


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        key = presented_key(dict(scope["headers"]))
        if key is None:
            error = ApiError(401, "this server needs an API key: send 'Authorization: Bearer KEY'",
                             code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
        elif not hmac.compare_digest(key.encode(), self.key):
            error = ApiError(401, "wrong API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        else:
            await self.app(scope, receive, send)
            return
        await error.response()(scope, receive, send)
