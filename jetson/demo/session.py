"""One demo run: open the source (a bad one fails here, before any model work), get the model folder from the
caller's ``model_folder`` (which may export and build on first use), then run capture, the model loop and the
presenter (window and/or recording) until done or interrupted.

Threads: capture (sources.CaptureThread) -> newest frame; the model loop in a worker thread; the main
thread shows and records frames with the overlay, and is where Ctrl-C and SIGTERM land. Whatever ends the run
(answer limit, end of a file, q in the window, Ctrl-C, SIGTERM, an error), the recording is finalised, the
JSONL closed and the summary printed. Nothing the session keeps grows with the number of answers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nvila_edge.errors import SourceError
from nvila_edge.jetson.sources import CaptureThread, Source, open_source
from nvila_edge.jetson.telemetry import Telemetry
from nvila_edge.runtime.pipeline import Pipeline

from .display import Window, choose_display
from .model_loop import POLL_S, ModelLoop
from .options import DemoOptions
from .overlay import OverlayState, draw_overlay
from .recorder import VideoRecorder
from .records import AnswerRecord, JsonlWriter
from .result import DemoResult
from .terminal import TerminalPrinter

RECORD_FPS = 15.0  # when the source does not report its frame rate
WORKER_STOP_S = 30.0  # an answer stops at its next token; vision encoding cannot be interrupted
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}  # -> how the run ended

# Given a callback that hears progress notes, returns the export or engines folder to open.
ModelFolder = Callable[[Callable[[str], None]], Path]


def run_demo(options: DemoOptions, printer: TerminalPrinter | None = None, *,
             model_folder: ModelFolder) -> DemoResult:
    printer = printer or TerminalPrinter()
    show = choose_display(options.display)
    source = open_source(options.source)
    try:
        printer.note(f"source: {source.name}")
        folder = model_folder(printer.note)
        pipeline = Pipeline.open(folder, threads=options.threads)
    except BaseException:
        source.close()
        raise
    session = DemoSession(options, pipeline, source, show, printer)
    try:
        return session.run()
    finally:
        if not session.loop_left_behind:  # a model loop still running may be inside the runners
            pipeline.close()


class DemoSession:
    def __init__(self, options: DemoOptions, pipeline: Pipeline, source: Source, show: bool,
                 printer: TerminalPrinter):
        self.options = options
        self.pipeline = pipeline
        self.show = show
        self.printer = printer
        self.overlay = OverlayState(options.prompt)
        video = options.frames is not None
        self.capture = CaptureThread(source, ring_size=max(16, (options.frames or 0) + 2),
                                     ring_fps=options.video_fps if video else None,
                                     on_status=self.overlay.set_source_status)
        self.stop = threading.Event()
        self.result = DemoResult()
        self._error: BaseException | None = None
        self.loop_left_behind = False

    def run(self) -> DemoResult:
        try:
            with stop_on_signals(self._stop_by_signal):
                self._run_threads()
        except KeyboardInterrupt:
            self.result.ended = self.result.ended if self.result.ended in STOP_SIGNALS.values() else "interrupted"
            self._report()
            raise
        if self.result.ended in STOP_SIGNALS.values():
            self._report()
            raise KeyboardInterrupt  # the caller sees the same as for an interrupted run: the CLI exits 130
        if self._error is not None:
            raise self._error
        status = self.capture.status
        if status.startswith("failed"):
            raise SourceError(f"{self.capture.source.name} {status}")
        self._report()
        return self.result

    def _stop_by_signal(self, ended: str) -> None:
        self.result.ended = ended
        self.stop.set()

    def _report(self) -> None:
        self.printer.summary(self.result)
        if self.result.recording:
            self.printer.note(f"recording: {self.result.recording}")

    def _run_threads(self) -> None:
        with contextlib.ExitStack() as stack:
            stack.callback(self.capture.source.close)  # the capture closes it too, but only once it started
            telemetry = stack.enter_context(Telemetry.open())
            jsonl = stack.enter_context(JsonlWriter(self.options.jsonl)) if self.options.jsonl else None
            recorder = self._recorder(stack)
            window = self._window(stack)
            stack.enter_context(self.capture)

            def keep(record: AnswerRecord) -> None:
                self.result.add(record)
                if jsonl is not None:
                    jsonl.write(record)

            loop = ModelLoop(self.pipeline, self.capture, self.options, self.overlay, self.printer, telemetry, keep)
            worker = threading.Thread(target=self._run_loop, args=(loop,), name="model loop", daemon=True)
            worker.start()
            stack.callback(self._stop_worker, worker)
            self._present(worker, recorder, window)

    def _recorder(self, stack: contextlib.ExitStack) -> VideoRecorder | None:
        if self.options.record is None:
            return None
        recorder = VideoRecorder(self.options.record, self.capture.source.fps or RECORD_FPS)

        def finish() -> None:
            self.result.recording = recorder.close()

        stack.callback(finish)
        return recorder

    def _window(self, stack: contextlib.ExitStack) -> Window | None:
        if not self.show:
            return None
        window = Window()
        stack.callback(window.close)
        return window

    def _run_loop(self, loop: ModelLoop) -> None:
        self.result.started = time.monotonic()
        try:
            ended = loop.run(self.stop)
            self.result.ended = self.result.ended or ended
        except BaseException as err:  # handed to the main thread, which raises it after cleaning up
            self._error = err
        finally:
            self.result.finished = time.monotonic()

    def _stop_worker(self, worker: threading.Thread) -> None:
        self.stop.set()
        worker.join(WORKER_STOP_S)
        self.loop_left_behind = worker.is_alive()
        if self.loop_left_behind:
            self.printer.note(f"the model loop did not stop within {WORKER_STOP_S:.0f} s; leaving it behind")

    def _present(self, worker: threading.Thread, recorder: VideoRecorder | None, window: Window | None) -> None:
        """Until the model loop ends: draw the overlay on every new frame, record it and show it."""
        if recorder is None and window is None:
            while worker.is_alive():
                worker.join(POLL_S)  # a timed join, so Ctrl-C is not held up
            return
        shown = -1
        while worker.is_alive():
            frame = self.capture.wait_newer(shown, timeout=POLL_S)
            if frame is None:
                if not self.capture.running:
                    worker.join(POLL_S)
                continue
            shown = frame.index
            image = draw_overlay(frame.image, self.overlay.view())
            if recorder is not None:
                recorder.write(image)
            if window is not None and not window.show(image):
                self.result.ended = "window closed"
                return


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """While the demo runs, the first SIGINT or SIGTERM calls ``stop(how the run ended)`` and the run winds
    down as after its last answer; a second one raises KeyboardInterrupt at once. A KeyboardInterrupt raised
    inside the main thread's ``Thread.join`` would mark the still-running model loop as ended (CPython
    releases the thread's lock on the way out), so the summary would miss its figures. A signal the process
    ignores (a background job's SIGINT) stays ignored; off the main thread, signals are left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handle(signum: int, frame) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        stop(STOP_SIGNALS[signum])

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(signum, handler)
