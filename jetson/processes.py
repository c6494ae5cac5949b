"""Child processes the Jetson side starts (gst-launch pipelines, tegrastats)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Terminate, wait up to ``timeout`` seconds, then kill: a child never outlives its owner."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
