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
    def __init__(self, model: Path | str, *args: str, env: dict | None = None):
        self.command = [sys.executable, "-m", "nvila_edge", "serve", str(model), "--port", "0", "--threads", "1",
                        *args]
        self.env = env
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
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, head, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            status, head, raw = err.code, dict(err.headers), err.read()
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
