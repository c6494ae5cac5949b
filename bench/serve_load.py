"""Load on ``nvila-edge serve``: K chat clients and N live streams sharing one model for T seconds.

Each chat client is the official ``openai`` client asking streamed questions about rendered shapes images
(one at a time, back to back). Each stream is a ``test://shapes`` camera with one scheduled prompt and one
alert. One more client follows ``/v1/events`` and reconnects with ``Last-Event-ID`` every
``--reconnect-every`` seconds, so "events lost" counts gaps in the event ids across reconnects too.

The server is started here (``--model``, default the built-in model, built on first use) unless ``--url``
points at a running one (the alert evaluation rate then counts its other streams too). RSS is the server's
resident memory (with its child processes), taken after the warm-up and at the end; the warm-up (first
answers of every kind) is left out of every figure.

    nice -n 10 python bench/serve_load.py --clients 8 --streams 4 --seconds 120
    nice -n 10 python bench/serve_load.py --clients 0 --serve-args '--scene-threshold 0'   # streams alone, no gate
    python bench/serve_load.py --url http://127.0.0.1:8000 --api-key "$KEY" --seconds 30 --json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import psutil

from nvila_edge.runtime.world.questions import example_stream, normalize_answer

CHAT_FAMILIES = ("color", "shape", "count", "exists")
STREAM_SOURCE = "test://shapes?width=320&height=240&fps=10&seed={seed}"
STREAM_PROMPT = "Describe the image."
STREAM_ALERT = "Is there a red circle?"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the server ------------------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    api_key: str | None
    process: subprocess.Popen | None = None

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if raw and response.headers.get_content_type() == "application/json" else raw

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def rss_bytes(self) -> int | None:
        if self.process is None:
            return None
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, serve_args: list[str], log_path: Path, ready_timeout_s: float) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "nvila_edge", "serve", model, "--port", str(port), *serve_args]
    with open(log_path, "wb") as log:  # the server keeps its own handle
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", None, process)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}; its log: {log_path}")
        try:
            server.request("GET", "/readyz", timeout=5)
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1.0)
    server.stop()
    raise SystemExit(f"the server was not ready after {ready_timeout_s:.0f} s; its log: {log_path}")


# --- chat clients ----------------------------------------------------------------------------------------
@dataclass
class ChatFigures:
    requests: int = 0
    correct: int = 0
    errors: list[str] = field(default_factory=list)
    busy: int = 0  # 429 answers: the bounded chat queue was full (by design, not an error)
    ttft_ms: list[float] = field(default_factory=list)


def png_data_url(rgb) -> str:
    _, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def chat_client(server: Server, seed: int, start_at: float, stop_at: float, figures: ChatFigures,
                lock: threading.Lock, max_tokens: int) -> None:
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.api_key or "none", max_retries=0,
                           timeout=120.0)
    model = client.models.list().data[0].id
    for example in example_stream(seed, families=CHAT_FAMILIES):
        if time.monotonic() >= stop_at:
            return
        measured = time.monotonic() >= start_at
        content = [{"type": "text", "text": example.question},
                   {"type": "image_url", "image_url": {"url": png_data_url(example.frames[0])}}]
        sent = time.perf_counter()
        ttft, text = None, ""
        try:
            stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                                    stream=True, max_tokens=max_tokens, temperature=0)
            for chunk in stream:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    ttft = ttft if ttft is not None else time.perf_counter() - sent
                    text += delta
        except openai.RateLimitError as err:
            with lock:
                figures.busy += 1
            retry = float(err.response.headers.get("Retry-After", "1"))
            time.sleep(min(retry, max(0.0, stop_at - time.monotonic())))
            continue
        except openai.OpenAIError as err:  # counted in the warm-up too: no request may fail
            with lock:
                figures.errors.append(f"{type(err).__name__}: {err}"[:300])
            continue
        if not measured:
            continue
        with lock:
            figures.requests += 1
            figures.correct += normalize_answer(text) == normalize_answer(example.answer)
            if ttft is not None:
                figures.ttft_ms.append(1000 * ttft)


# --- the event feed --------------------------------------------------------------------------------------
@dataclass
class EventFigures:
    received: int = 0
    lost: int = 0  # ids skipped, across reconnects too
    too_old: int = 0  # events_lost events: the replay buffer no longer held what was asked for
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    by_type: Counter = field(default_factory=Counter)
    frame_age_ms: dict[str, list[float]] = field(default_factory=dict)  # per stream: answer time - frame time
    last_id: int | None = None


def follow_events(server: Server, figures: EventFigures, start_at: float, stop_at: float,
                  reconnect_every_s: float, stop: threading.Event) -> None:
    """Follow /v1/events until ``stop``; drop the connection every ``reconnect_every_s`` and resume by id."""
    while not stop.is_set():
        headers = {**server.headers(), "Accept": "text/event-stream"}
        if figures.last_id is not None:
            headers["Last-Event-ID"] = str(figures.last_id)
            figures.reconnects += 1
        reconnect_at = time.monotonic() + reconnect_every_s
        try:
            req = urllib.request.Request(server.url + "/v1/events", headers=headers)
            with urllib.request.urlopen(req, timeout=10) as response:
                for event_id, data in sse_events(response):
                    note_event(figures, event_id, data, measured=start_at <= time.monotonic() < stop_at)
                    if stop.is_set() or time.monotonic() >= reconnect_at:
                        break
        except TimeoutError:
            continue  # no event for 10 s: reconnect and resume
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            if not stop.is_set():
                figures.errors.append(f"events: {err}")
                time.sleep(1.0)


def sse_events(response):
    """(id, parsed JSON data) per server-sent event; comments (keep-alives) are skipped."""
    event_id, data = None, []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, json.loads("\n".join(data))
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def note_event(figures: EventFigures, event_id: str | None, data: dict, measured: bool) -> None:
    if event_id is not None:
        number = int(event_id)
        if figures.last_id is not None and number > figures.last_id + 1:
            figures.lost += number - figures.last_id - 1
        figures.last_id = max(number, figures.last_id or 0)
    if data["type"] == "events_lost":
        figures.too_old += 1
    if not measured:
        return
    figures.received += 1
    figures.by_type[data["type"]] += 1
    if data["type"] == "answer":
        age_ms = 1000 * (data["time"] - data["frame_time"])
        figures.frame_age_ms.setdefault(data["stream_id"], []).append(age_ms)


# --- metrics ---------------------------------------------------------------------------------------------
def scrape(server: Server) -> list:
    """Every sample of ``/metrics`` (name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(server.request("GET", "/metrics").decode())
    return [sample for family in families for sample in family.samples]


def metric_sum(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def metric_by(samples: list, name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples if s.name == name and label in s.labels}


# --- the run ---------------------------------------------------------------------------------------------
def add_streams(server: Server, count: int, prompt_every_s: float) -> list[str]:
    ids = []
    for i in range(count):
        stream = server.request("POST", "/v1/streams", {"source": STREAM_SOURCE.format(seed=i), "name": f"shapes-{i}"})
        prompt = {"prompt": STREAM_PROMPT, "every_s": prompt_every_s}
        server.request("POST", f"/v1/streams/{stream['id']}/prompts", prompt)
        server.request("POST", f"/v1/streams/{stream['id']}/alerts", {"prompt": STREAM_ALERT})
        ids.append(stream["id"])
    return ids


def run_load(server: Server, args: argparse.Namespace) -> dict:
    stream_ids = add_streams(server, args.streams, args.prompt_every)
    start_at = time.monotonic() + args.warmup
    stop_at = start_at + args.seconds
    chat, events, lock, stop = ChatFigures(), EventFigures(), threading.Lock(), threading.Event()
    follower = threading.Thread(target=follow_events, daemon=True,
                                args=(server, events, start_at, stop_at, args.reconnect_every, stop))
    follower.start()
    clients = [threading.Thread(target=chat_client, args=(server, seed, start_at, stop_at, chat, lock, args.max_tokens))
               for seed in range(args.clients)]
    for client in clients:
        client.start()
    time.sleep(max(0.0, start_at - time.monotonic()))
    rss_start, before = server.rss_bytes(), scrape(server)
    time.sleep(max(0.0, stop_at - time.monotonic()))
    rss_end, after = server.rss_bytes(), scrape(server)
    for client in clients:
        client.join()
    time.sleep(1.0)  # let the follower read what was sent up to the end
    stop.set()
    follower.join(timeout=15)
    for stream_id in stream_ids:
        server.request("DELETE", f"/v1/streams/{stream_id}")

    def delta(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    def delta_by_stream(name: str) -> dict[str, float]:
        start = metric_by(before, name, "stream")
        return {s: v - start.get(s, 0.0) for s, v in metric_by(after, name, "stream").items() if s in stream_ids}

    answers = delta_by_stream("nvila_edge_stream_answers_total")
    server_errors = sum(s.value for s in after if s.name == "nvila_edge_http_requests_total"
                        and s.labels.get("status", "").startswith("5"))
    server_errors -= sum(s.value for s in before if s.name == "nvila_edge_http_requests_total"
                         and s.labels.get("status", "").startswith("5"))
    errors = chat.errors + events.errors + [f"{server_errors:.0f} responses 5xx"] * (server_errors > 0)
    return {
        "clients": args.clients, "streams": args.streams, "seconds": args.seconds,
        "chat_requests": chat.requests, "requests_per_s": chat.requests / args.seconds,
        "chat_correct": chat.correct, "chat_busy_429": chat.busy,
        "ttft_ms_p50": percentile(chat.ttft_ms, 0.5), "ttft_ms_p95": percentile(chat.ttft_ms, 0.95),
        "stream_answers": answers,
        "stream_answer_ratio": max(answers.values()) / min(answers.values()) if answers and min(answers.values())
        else None,
        "stream_gate_skips": delta_by_stream("nvila_edge_gate_skips_total"),
        "stream_stale_dropped": delta_by_stream("nvila_edge_stream_stale_work_total"),
        "frame_age_ms_p95": {s: percentile(events.frame_age_ms.get(s, []), 0.95) for s in stream_ids},
        "alert_evaluations_per_min": delta("nvila_edge_ttft_seconds_count", kind="alert") * 60 / args.seconds,
        "gate_skips": sum(delta_by_stream("nvila_edge_gate_skips_total").values()),
        "errors": len(chat.errors) + len(events.errors) + int(server_errors), "error_samples": errors[:5],
        "events_received": events.received, "events_lost": events.lost, "events_too_old": events.too_old,
        "event_reconnects": events.reconnects, "events_by_type": dict(events.by_type),
        "rss_start_mb": rss_start / 2**20 if rss_start else None, "rss_end_mb": rss_end / 2**20 if rss_end else None,
        "rss_growth": (rss_end / rss_start - 1) if rss_start and rss_end else None,
    }


def print_table(r: dict) -> None:
    def ms(value):
        return "-" if value is None else f"{value:.0f} ms"

    print(f"serve load: {r['clients']} chat clients, {r['streams']} test://shapes streams, {r['seconds']:.0f} s")
    print(f"  chat requests        {r['chat_requests']} ({r['requests_per_s']:.2f}/s), {r['chat_correct']} correct, "
          f"{r['chat_busy_429']} refused busy (429)")
    print(f"  TTFT                 p50 {ms(r['ttft_ms_p50'])}, p95 {ms(r['ttft_ms_p95'])}")
    for stream_id, count in r["stream_answers"].items():
        print(f"  stream {stream_id:<12}  {count:.0f} answers, {r['stream_gate_skips'][stream_id]:.0f} gate skips, "
              f"{r['stream_stale_dropped'][stream_id]:.0f} stale, "
              f"answered frame age p95 {ms(r['frame_age_ms_p95'][stream_id])}")
    ratio = r["stream_answer_ratio"]
    print(f"  answer count ratio   {'-' if ratio is None else f'{ratio:.2f}'} (most / fewest answers per stream)")
    print(f"  alert evaluations    {r['alert_evaluations_per_min']:.1f} per minute")
    print(f"  gate skips           {r['gate_skips']:.0f}")
    print(f"  errors               {r['errors']}" + "".join(f"\n    {e}" for e in r["error_samples"]))
    print(f"  events               {r['events_received']} received, {r['events_lost']} lost, "
          f"{r['event_reconnects']} reconnects with Last-Event-ID, {r['events_too_old']} beyond the buffer")
    if r["rss_start_mb"] is not None:
        print(f"  server RSS           {r['rss_start_mb']:.0f} MB -> {r['rss_end_mb']:.0f} MB "
              f"({100 * r['rss_growth']:+.1f}%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--model", default="builtin", help="what `nvila-edge serve` loads (default: builtin)")
    target.add_argument("--url", help="a running server instead of starting one (RSS is then not measured)")
    parser.add_argument("--api-key", default=os.environ.get("NVILA_EDGE_API_KEY"), help="for --url")
    parser.add_argument("--serve-args", default="", help="more options for the server started here, e.g. "
                        "'--scene-threshold 0' (gate off)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent chat clients (K)")
    parser.add_argument("--streams", type=int, default=4, help="test://shapes streams (N)")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time (T)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of load before measuring")
    parser.add_argument("--prompt-every", type=float, default=5.0, help="each stream prompt's every_s")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of each chat question")
    parser.add_argument("--reconnect-every", type=float, default=30.0, help="seconds between event reconnects")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for the first build")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    for name in ("clients", "streams", "seconds", "prompt_every", "max_tokens", "reconnect_every"):
        if getattr(args, name) <= 0 and not (name in ("clients", "streams") and getattr(args, name) == 0):
            parser.error(f"--{name.replace('_', '-')} must be positive")

    if args.url:
        server = Server(args.url.rstrip("/"), args.api_key)
    else:
        log_path = Path(tempfile.gettempdir()) / f"serve_load-{os.getpid()}.log"
        server = start_server(args.model, shlex.split(args.serve_args), log_path, args.ready_timeout)
    try:
        figures = run_load(server, args)
    except BaseException:
        if not args.url:
            print(f"the server's log: {log_path}", file=sys.stderr)
        raise
    finally:
        server.stop()
    if not args.url:
        log_path.unlink()  # kept only when the run failed
    if args.json:
        print(json.dumps(figures))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
