"""Prometheus metrics: HTTP requests and latencies by endpoint and status, TTFT and decode speed, the chat
queue, and per-stream figures (fps, frame age, dropped frames and work, gate skips, alert states) read from
the streams at scrape time, so a deleted stream's series disappear with it.

Each app has its own registry (several servers can run in one process, e.g. in tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nvila_edge.runtime.pipeline import Answer

log = logging.getLogger("nvila_edge.serve.access")

ALERT_VALUE = {"true": 1.0, "false": 0.0, "unknown": -1.0}
# the method label takes these or "other", so a client inventing methods cannot grow the series without bound
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServeMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("nvila_edge_http_requests", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("nvila_edge_http_request_seconds", "HTTP request time (whole response)",
                                 ["endpoint"], registry=r,
                                 buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.ttft = Histogram("nvila_edge_ttft_seconds", "time to first token by kind (chat, prompt, alert)",
                              ["kind"], registry=r, buckets=(0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30))
        self.decode_speed = Histogram("nvila_edge_decode_tokens_per_second", "decode speed of each answer",
                                      ["kind"], registry=r, buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
        self.queue_depth = Gauge("nvila_edge_chat_queue_depth", "chat requests waiting for the model",
                                 registry=r)

    def observe_answer(self, kind: str, answer: Answer) -> None:
        self.ttft.labels(kind).observe(answer.ttft_ms / 1000)
        if len(answer.token_ids) >= 2:  # one token has no decode step to time
            self.decode_speed.labels(kind).observe(answer.decode_tokens_per_s)

    def add_streams(self, snapshot: Callable[[], Iterable]) -> None:
        self.registry.register(StreamCollector(snapshot))


class StreamCollector(Collector):
    """Per-stream series from ``snapshot()`` -> objects with ``metric_rows()`` (see streams.LiveStream)."""

    def __init__(self, snapshot: Callable[[], Iterable]):
        self.snapshot = snapshot

    def collect(self):
        fps = GaugeMetricFamily("nvila_edge_stream_fps", "measured capture rate", labels=["stream"])
        age = GaugeMetricFamily("nvila_edge_stream_frame_age_seconds", "age of the newest frame", labels=["stream"])
        live = GaugeMetricFamily("nvila_edge_stream_live", "1 when the stream delivers frames", labels=["stream"])
        dropped = CounterMetricFamily("nvila_edge_stream_dropped_frames", "frames replaced before anyone took them",
                                      labels=["stream"])
        stale = CounterMetricFamily("nvila_edge_stream_stale_work", "prompt or alert runs dropped: frame too old",
                                    labels=["stream"])
        skips = CounterMetricFamily("nvila_edge_gate_skips", "runs skipped by the scene-change gate",
                                    labels=["stream"])
        answers = CounterMetricFamily("nvila_edge_stream_answers", "prompt and alert answers", labels=["stream"])
        alerts = GaugeMetricFamily("nvila_edge_alert_state", "alert state: 1 true, 0 false, -1 unknown",
                                   labels=["stream", "alert"])
        for stream in self.snapshot():
            row = stream.metric_rows()
            sid = [stream.id]
            if row["fps"] is not None:
                fps.add_metric(sid, row["fps"])
            if row["frame_age_s"] is not None:
                age.add_metric(sid, row["frame_age_s"])
            live.add_metric(sid, 1.0 if row["state"] == "live" else 0.0)
            dropped.add_metric(sid, row["dropped_frames"])
            stale.add_metric(sid, row["stale_dropped"])
            skips.add_metric(sid, row["gate_skips"])
            answers.add_metric(sid, row["answers"])
            for alert_id, state in row["alerts"]:
                alerts.add_metric([stream.id, alert_id], ALERT_VALUE[state])
        yield from (fps, age, live, dropped, stale, skips, answers, alerts)


class RequestMetrics:
    """ASGI middleware: counts, times and logs every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, routes: list):
        self.app, self.metrics, self.routes = app, metrics, routes

    def endpoint(self, scope: Scope) -> str:
        """The route template; a path whose route refuses the method (405) still counts under that route."""
        partial = "other"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", "other")
            if match == Match.PARTIAL and partial == "other":
                partial = getattr(route, "path", "other")
        return partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            endpoint, elapsed = self.endpoint(scope), time.perf_counter() - start
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            self.metrics.requests.labels(endpoint, method, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, 1000 * elapsed,
                     extra={"method": scope["method"], "path": scope["path"], "status": status,
                            "ms": round(1000 * elapsed, 1)})
