"""The ASGI app: routes, OpenAI-shaped error handlers and the middleware stack (outermost first: request
metrics and access log, API key, body-size limit)."""

from __future__ import annotations

import contextlib

from starlette.applications import Starlette
from starlette.middleware import Middleware

from .auth import ApiKeyAuth
from .errors import EXCEPTION_HANDLERS
from .limits import BodySizeLimit
from .metrics import RequestMetrics
from .routes_chat import ROUTES as CHAT_ROUTES
from .routes_ops import ROUTES as OPS_ROUTES
from .routes_streams import ROUTES as STREAM_ROUTES
from .service import Service


def create_app(service: Service) -> Starlette:
    routes = [*OPS_ROUTES, *CHAT_ROUTES, *STREAM_ROUTES]
    middleware = [Middleware(RequestMetrics, metrics=service.metrics, routes=routes)]
    if service.options.api_key:
        middleware.append(Middleware(ApiKeyAuth, key=service.options.api_key))
    middleware.append(Middleware(BodySizeLimit, limit=service.options.max_body_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        service.start()
        try:
            yield
        finally:
            service.close()

    app = Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS,
                    lifespan=lifespan)
    app.state.service = service
    return app
