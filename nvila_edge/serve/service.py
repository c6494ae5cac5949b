"""The service's parts and their lifecycle: model worker, streams, scheduler, events, metrics.

``Service.start()`` runs on the event loop at start-up (the model loads in the worker thread meanwhile);
``close()`` at shutdown: refuse queued chat, let the answer in progress finish or cancel it, stop every
capture thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nvila_edge.runtime.pipeline import Pipeline

from .chat import GenerationDefaults
from .errors import ApiError
from .events import EventBus
from .images import ImagePolicy
from .metrics import ServeMetrics
from .options import ServeOptions
from .scheduler import StreamScheduler
from .streams import StreamRegistry

log = logging.getLogger("nvila_edge.serve")

CLOSE_GRACE_S = 10.0  # an answer in progress gets this long to finish at shutdown


class Service:
    def __init__(self, options: ServeOptions, model_id: str, load: Callable[[], Pipeline],
                 on_failed: Callable[[str], None] | None = None):
        from .worker import ModelWorker

        self.options, self.model_id = options, model_id
        self.metrics = ServeMetrics()
        self.bus = EventBus(options.event_buffer)
        self.streams = StreamRegistry(self.bus, options.max_streams, options.max_watches)
        self.metrics.add_streams(self.streams.snapshot)
        self.scheduler = StreamScheduler(self.streams, self.bus, self.metrics, options.max_frame_age_s,
                                         options.scene_threshold)
        self.worker = ModelWorker(load, options.chat_queue, self.metrics, self.scheduler.run_next, on_failed,
                                  options.chat_burst)
        self.images = ImagePolicy(options.max_image_pixels, options.max_body_bytes,
                                  tuple(Path(f).resolve() for f in options.allow_files))
        self.closing = threading.Event()  # set when shutdown begins: long-lived responses end
        self.started = time.time()

    def start(self) -> None:
        self.bus.attach(asyncio.get_running_loop())
        self.worker.start()

    def close(self) -> None:
        self.closing.set()
        self.worker.stop(CLOSE_GRACE_S)
        self.streams.close_all()
        log.info("stopped: streams closed, model released")

    def defaults(self) -> GenerationDefaults:
        pipeline = self.worker.pipeline
        if pipeline is None:
            if self.worker.state == "failed":
                raise ApiError(503, f"the model failed to load: {self.worker.error}", code="model_unavailable")
            raise ApiError(503, "the model is still loading; retry shortly", code="model_loading",
                           headers={"Retry-After": "5"})
        generation = pipeline.manifest.generation
        return GenerationDefaults(generation["max_new_tokens"], generation.get("temperature", 0.0),
                                  generation.get("top_p", 1.0), pipeline.decoder.context)

    def check_model(self, model: str) -> None:
        if model != self.model_id:
            raise ApiError(404, f"model {model!r} is not served here; use {self.model_id!r} (GET /v1/models)",
                           param="model", code="model_not_found")
