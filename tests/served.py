"""A real ``nvila-edge serve`` process on a free loopback port, for the service tests."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

START_S = 90.0


class ServerProcess:
    def __init__(self, model: Path | str, *args: str, env: dict | None = None, key: str | None = None):
        self.command = [sys.executable, "-m", "nvila_edge", "serve", str(model), "--port", "0", "--threads", "1",
                        *args]
        self.env = env
        self.key = key  # sent as a bearer token with every request unless the request names its own headers
        self.lines: list[str] = []
        self.url = ""
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> ServerProcess:
        self.process = subprocess.Popen(self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                        env=self.env)
        listening = threading.Event()

        def read() -> None:
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                found = re.search(r"listening on (http://[\d.]+:\d+)", line)
                if found and not self.url:
                    self.url = found.group(1)
                    listening.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + START_S
        while not listening.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + self.log())
        while wait_ready and self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready:\n" + self.log())
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return "\n".join(self.lines)

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, object]:
        """-> (status, headers, parsed JSON body or raw bytes)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if headers is None:
            headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, head, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            status, head, raw = err.code, err.headers, err.read()
        head = {name.lower(): value for name, value in head.items()}
        try:
            return status, head, json.loads(raw)
        except ValueError:
            return status, head, raw

    def get(self, path: str, **kw) -> tuple[int, dict, object]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body, **kw) -> tuple[int, dict, object]:
        return self.request("POST", path, body, **kw)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(5)
        return code


class EventReader:
    """Reads ``GET /v1/events`` in a thread: ``events`` fills with the parsed JSON of each event, in order."""

    def __init__(self, server: ServerProcess, last_event_id: int | None = None, query: str = ""):
        import http.client
        from urllib.parse import urlparse

        address = urlparse(server.url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.connection.request("GET", "/v1/events" + query, headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.events: list[dict] = []
        self.ids: list[int] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event_id = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id:"):
                    event_id = int(line[3:].strip())
                elif line.startswith("data:"):
                    self.events.append(json.loads(line[5:].strip()))
                    self.ids.append(event_id)
        except (OSError, ValueError, AttributeError):
            pass  # closed (http.client drops its file object on close)

    def wait_for(self, match, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if match(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no matching event within {timeout} s; got {self.events}")

    def close(self) -> None:
        import socket

        self.connection.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread; close() alone waits for it
        self.connection.close()
        self.thread.join(5)
