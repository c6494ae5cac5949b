"""The model worker: the one thread that owns the model. It loads it, then answers chat requests first
(a bounded queue: a full queue is a 429 with Retry-After) and otherwise runs the stream scheduler's next
prompt or alert; after ``chat_burst`` chat answers in a row, due stream work gets one turn, so clients
asking back to back cannot starve the streams. HTTP handlers only hand jobs over and read their results
from an asyncio queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nvila_edge.errors import InputError, NvilaEdgeError
from nvila_edge.runtime.pipeline import Answer, Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.tokenizer import StreamDecoder

from .errors import ApiError
from .metrics import ServeMetrics
from .stops import StopMatcher

log = logging.getLogger("nvila_edge.serve")

POLL_S = 0.05  # how long an idle worker waits for chat before looking at the streams again
CHAT_SECONDS_GUESS = 2.0  # Retry-After before any chat answer has been timed
CANCEL_S = 2.0  # how long a cancelled answer gets to stop at shutdown


@dataclass
class TextPiece:
    text: str


@dataclass
class Finished:
    answer: Answer
    finish_reason: str  # "stop" or "length"


@dataclass
class Failed:
    error: ApiError


@dataclass
class ChatJob:
    request: Request
    params: SamplingParams
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    results: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, item: TextPiece | Finished | Failed) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop already closed: nobody is listening
            self.loop.call_soon_threadsafe(self.results.put_nowait, item)


class ModelWorker:
    def __init__(self, load: Callable[[], Pipeline], chat_queue: int, metrics: ServeMetrics,
                 run_stream_work: Callable[[Pipeline], bool] | None = None,
                 on_failed: Callable[[str], None] | None = None, chat_burst: int = 0):
        self.load = load
        self.chat_burst = chat_burst  # chat answers in a row before due stream work gets a turn (0: never)
        self.metrics = metrics
        self.run_stream_work = run_stream_work  # runs one due prompt or alert; False when none was due
        self.on_failed = on_failed
        self.queue: queue.Queue[ChatJob] = queue.Queue(maxsize=chat_queue)
        self.state = "loading"  # -> "ready" | "failed"; "stopped" after stop()
        self.error: str | None = None
        self.pipeline: Pipeline | None = None
        self._stopping = threading.Event()
        self._cancel_current = threading.Event()
        self._chat_seconds: float | None = None  # running mean of chat answer times, for Retry-After
        self._thread = threading.Thread(target=self._run, name="model worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: ChatJob) -> None:
        if self.state == "loading":
            raise ApiError(503, "the model is still loading; retry shortly", code="model_loading",
                           headers={"Retry-After": "5"})
        if self.state != "ready":
            raise ApiError(503, f"the model is not available ({self.state})", code="model_unavailable")
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            wait = math.ceil((self.queue.qsize() + 1) * (self._chat_seconds or CHAT_SECONDS_GUESS))
            raise ApiError(429, f"{self.queue.qsize()} chat requests are already waiting for the model; retry in "
                                f"{wait} s", code="queue_full", headers={"Retry-After": str(wait)}) from None
        self.metrics.queue_depth.set(self.queue.qsize())

    def stop(self, grace_s: float) -> None:
        """Refuse queued chat, let the answer in progress finish for up to ``grace_s``, then cancel it."""
        self._stopping.set()
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            job.emit(Failed(ApiError(503, "the server is shutting down", code="shutting_down")))
        if self._thread.is_alive():
            self._thread.join(grace_s)
            self._cancel_current.set()  # a chat answer stops at its next token
            self._thread.join(CANCEL_S)
        if self.state == "ready":
            self.state = "stopped"
        if self.pipeline is not None and hasattr(self.pipeline, "close"):
            self.pipeline.close()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ---- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.pipeline = self.load()
        except Exception as err:
            self.state, self.error = "failed", str(err) if isinstance(err, NvilaEdgeError) else repr(err)
            log.error("the model could not be loaded: %s", self.error, exc_info=not isinstance(err, NvilaEdgeError))
            if self.on_failed:
                self.on_failed(self.error)
            return
        self.state = "ready"
        log.info("model ready: %s", self.pipeline.folder)
        chats_in_a_row = 0
        while not self._stopping.is_set():
            if self.chat_burst and chats_in_a_row >= self.chat_burst and self._stream_turn():
                chats_in_a_row = 0  # busy chat must not starve the streams
                continue
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                chats_in_a_row = 0
                if self._stream_turn():
                    continue
                try:
                    job = self.queue.get(timeout=POLL_S)
                except queue.Empty:
                    continue
            self.metrics.queue_depth.set(self.queue.qsize())
            if not job.cancelled.is_set():
                chats_in_a_row += 1
                self._answer_chat(job)

    def _stream_turn(self) -> bool:
        return self.run_stream_work is not None and self.run_stream_work(self.pipeline)

    def _answer_chat(self, job: ChatJob) -> None:
        started = time.monotonic()
        try:
            answer, finish = self._generate(job)
        except InputError as err:
            job.emit(Failed(ApiError(400, str(err), code="invalid_input")))
            return
        except Exception:
            log.exception("chat answer failed")
            job.emit(Failed(ApiError(500, "internal server error (logged on the server)")))
            return
        elapsed = time.monotonic() - started
        self._chat_seconds = elapsed if self._chat_seconds is None else 0.8 * self._chat_seconds + 0.2 * elapsed
        self.metrics.observe_answer("chat", answer)
        job.emit(Finished(answer, finish))

    def _generate(self, job: ChatJob) -> tuple[Answer, str]:
        pipeline = self.pipeline
        matcher, decoder = StopMatcher(job.stop), StreamDecoder(pipeline.tokenizer)
        stopped = False
        tokens = pipeline.generate(job.request, job.params)
        with contextlib.closing(tokens):
            for token in tokens:
                text, stopped = matcher.feed(decoder.feed(token))
                if text:
                    job.emit(TextPiece(text))
                if stopped or job.cancelled.is_set() or self._cancel_current.is_set():
                    break
        if not stopped:
            text, stopped = matcher.feed(decoder.flush())
            text += "" if stopped else matcher.flush()
            if text:
                job.emit(TextPiece(text))
        answer = pipeline.last
        budget = min(job.params.max_new_tokens, pipeline.decoder.context - answer.prompt_positions)
        return answer, "length" if not stopped and len(answer.token_ids) >= budget else "stop"
