"""Run the service on uvicorn: check the bind address and the model up front, then serve until SIGTERM or
Ctrl-C, which end long-lived responses, let the answer in progress finish and close every stream."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import uvicorn

from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.builtin import resolve_model
from nvila_edge.runtime.manifest import MANIFEST, read_manifest
from nvila_edge.runtime.pipeline import Pipeline

from .app import create_app
from .logs import configure_logging
from .options import API_KEY_ENV, ServeOptions, is_loopback
from .service import Service

log = logging.getLogger("nvila_edge.serve")

GRACEFUL_S = 15  # open responses get this long to end after SIGTERM


class ServiceServer(uvicorn.Server):
    """uvicorn's server, telling the service when shutdown starts and logging the address it bound."""

    def __init__(self, config: uvicorn.Config, service: Service):
        super().__init__(config)
        self.service = service

    def handle_exit(self, *args) -> None:
        self.service.closing.set()
        super().handle_exit(*args)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                url = f"http://{host}:{port}"
                log.info("listening on %s (model %s: %s)", url, self.service.model_id, self.service.worker.state,
                         extra={"url": url})


def model_loader(options: ServeOptions):
    """-> (model id, a function that opens the model); the MODEL argument is checked here, before binding."""
    path = resolve_model(options.model)
    if (path / MANIFEST).is_file():
        read_manifest(path)

    def load() -> Pipeline:
        from nvila_edge.first_use import demo_model_folder

        folder = demo_model_folder(None, options.model, options.cache_dir, log.info)
        return Pipeline.open(folder, threads=options.threads)

    return path.name, load


def serve(options: ServeOptions, debug: bool = False) -> int:
    configure_logging(options.log_json, debug)
    options.api_key = options.api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(options.host) and not options.api_key:
        raise UnsupportedError(f"binding {options.host} exposes the service beyond this machine: set an API key "
                               f"with --api-key KEY or {API_KEY_ENV}=KEY, or bind 127.0.0.1")
    for folder in options.allow_files:
        if not Path(folder).is_dir():
            raise UnsupportedError(f"--allow-files {folder}: no such folder")
    model_id, load = model_loader(options)
    failed: list[str] = []
    server: ServiceServer | None = None

    def on_failed(reason: str) -> None:
        failed.append(reason)
        if server is not None:
            server.should_exit = True

    service = Service(options, model_id, load, on_failed)
    config = uvicorn.Config(create_app(service), host=options.host, port=options.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=GRACEFUL_S, lifespan="on")
    server = ServiceServer(config, service)
    # uvicorn re-raises the signal that stopped it once it is done; a graceful SIGTERM stop then exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    if failed:
        log.error("stopped: the model could not be loaded (%s)", failed[0])
        return 1
    return 0
