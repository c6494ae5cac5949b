"""Memory, GPU load and power figures for the demo and the benchmarks.

On a Jetson, ``tegrastats`` prints one line per interval: RAM and swap, per-core CPU load, GPU (GR3D) load
and clocks, temperatures and the power rails (``VDD_IN`` on Orin Nano / NX; ``VDD_GPU_SOC``, ``VDD_CPU_CV``,
``VIN_SYS_5V0`` on AGX Orin; ``VDD_GPU``, ``VDD_CPU_SOC_MSS``, ``VIN_SYS_5V0`` on Thor). JetPack 7.2 adds a
peak column to rails and temperatures, and Thor's GR3D field carries clocks but no load. Everywhere else
(and for the process's own memory, which tegrastats does not report) the figures come from ``/proc``.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nvila_edge.jetson.device import read_meminfo
from nvila_edge.jetson.processes import stop_process

MIB = 2**20
_TIMESTAMP = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GR3D = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)mW/(\d+)mW(?:/(\d+)mW)?")


@dataclass(frozen=True)
class PowerRail:
    current_mw: int
    average_mw: int
    peak_mw: int | None = None  # JetPack 7.2 prints current/average/peak


@dataclass(frozen=True)
class TegraSample:
    ram_used_mb: int
    ram_total_mb: int
    swap_used_mb: int | None
    swap_total_mb: int | None
    cpu_load_pct: tuple[int | None, ...]  # None = core powered off
    gpu_load_pct: int | None  # None where GR3D_FREQ has no load figure (Thor, JetPack 7)
    gpu_freq_mhz: tuple[int, ...]
    temperatures_c: dict[str, float]
    rails: dict[str, PowerRail]
    timestamp: str | None = None

    @property
    def module_power_mw(self) -> int | None:
        """Module input power: VDD_IN where the board reports it (Orin Nano / NX), else the rails' sum."""
        if "VDD_IN" in self.rails:
            return self.rails["VDD_IN"].current_mw
        return sum(r.current_mw for r in self.rails.values()) if self.rails else None


def _cpu_loads(field_text: str) -> tuple[int | None, ...]:
    loads = []
    for entry in field_text.split(","):
        match = re.match(r"\s*(\d+)%", entry)
        loads.append(int(match.group(1)) if match else None)
    return tuple(loads)


def parse_tegrastats_line(line: str) -> TegraSample | None:
    """One ``tegrastats`` line -> sample; None for lines that carry no RAM figure (warnings, blanks)."""
    ram = _RAM.search(line)
    if ram is None:
        return None
    swap, cpu, gr3d = _SWAP.search(line), _CPU.search(line), _GR3D.search(line)
    stamp = _TIMESTAMP.match(line)
    rails = {name: PowerRail(int(cur), int(avg), int(peak) if peak else None)
             for name, cur, avg, peak in _RAIL.findall(line)}
    return TegraSample(
        ram_used_mb=int(ram.group(1)),
        ram_total_mb=int(ram.group(2)),
        swap_used_mb=int(swap.group(1)) if swap else None,
        swap_total_mb=int(swap.group(2)) if swap else None,
        cpu_load_pct=_cpu_loads(cpu.group(1)) if cpu else (),
        gpu_load_pct=int(gr3d.group(1)) if gr3d and gr3d.group(1) else None,
        gpu_freq_mhz=tuple(int(f) for f in gr3d.group(2).split(",")) if gr3d and gr3d.group(2) else (),
        temperatures_c={name: float(value) for name, value in _TEMP.findall(line)},
        rails=rails,
        timestamp=stamp.group(1) if stamp else None,
    )


@dataclass(frozen=True)
class Metrics:
    source: str  # "tegrastats" or "proc"
    ram_used_mb: float | None
    ram_total_mb: float | None
    process_rss_mb: float | None
    process_peak_rss_mb: float | None
    gpu_load_pct: float | None = None
    power_mw: int | None = None
    rails_mw: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def read_process_memory(root: Path = Path("/"), pid: str = "self") -> tuple[int | None, int | None]:
    """(resident, peak resident) bytes of a process from ``/proc/<pid>/status`` (VmRSS, VmHWM)."""
    try:
        text = (Path(root) / "proc" / pid / "status").read_text()
    except OSError:
        return None, None
    fields = {k: int(v) * 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.MULTILINE)}
    return fields.get("VmRSS"), fields.get("VmHWM")


def proc_metrics(root: Path = Path("/"), pid: str = "self") -> Metrics:
    """System memory in use (MemTotal - MemAvailable) and the process's resident memory."""
    meminfo = read_meminfo(Path(root))
    total, available = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    rss, peak = read_process_memory(root, pid)
    return Metrics(
        source="proc",
        ram_used_mb=(total - available) / MIB if total is not None and available is not None else None,
        ram_total_mb=total / MIB if total is not None else None,
        process_rss_mb=rss / MIB if rss is not None else None,
        process_peak_rss_mb=peak / MIB if peak is not None else None,
    )


class TegrastatsMonitor:
    """Runs ``tegrastats`` in the background and keeps its recent samples with their arrival times."""

    def __init__(self, interval_ms: int = 500, command: Sequence[str] | None = None, keep: int = 7200):
        self.command = list(command) if command else ["tegrastats", "--interval", str(interval_ms)]
        self._samples: collections.deque[tuple[float, TegraSample]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> TegrastatsMonitor:
        self._process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), name="tegrastats",
                                        daemon=True)
        self._reader.start()
        return self

    def _read(self, stdout: Iterable[str]) -> None:
        for line in stdout:
            sample = parse_tegrastats_line(line)
            if sample is not None:
                with self._lock:
                    self._samples.append((time.monotonic(), sample))

    def latest(self) -> TegraSample | None:
        with self._lock:
            return self._samples[-1][1] if self._samples else None

    def samples_since(self, since: float) -> list[TegraSample]:
        """Samples that arrived at or after ``since`` (a ``time.monotonic()`` value)."""
        with self._lock:
            return [sample for arrived, sample in self._samples if arrived >= since]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> TegrastatsMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def summarize(samples: Sequence[TegraSample]) -> dict[str, float | None]:
    """Peak RAM, mean GPU load and mean / peak module power over a benchmark window."""
    loads = [s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]
    powers = [s.module_power_mw for s in samples if s.module_power_mw is not None]
    return {
        "samples": len(samples),
        "ram_peak_mb": max((s.ram_used_mb for s in samples), default=None),
        "gpu_load_mean_pct": sum(loads) / len(loads) if loads else None,
        "power_mean_mw": sum(powers) / len(powers) if powers else None,
        "power_peak_mw": max(powers, default=None),
    }


class Telemetry:
    """One ``snapshot()`` call for the demo overlay and benchmark records, whatever the machine."""

    def __init__(self, root: Path = Path("/"), tegrastats: TegrastatsMonitor | None = None):
        self.root = Path(root)
        self.tegrastats = tegrastats

    @classmethod
    def open(cls, root: Path = Path("/"), interval_ms: int = 500) -> Telemetry:
        """Start ``tegrastats`` when it is on PATH (Jetson); otherwise report from ``/proc`` only."""
        # snapshot() reads only the latest sample: keeping one holds the memory flat in a months-long demo
        monitor = TegrastatsMonitor(interval_ms, keep=1).start() if shutil.which("tegrastats") else None
        return cls(root, monitor)

    def snapshot(self) -> Metrics:
        base = proc_metrics(self.root)
        sample = self.tegrastats.latest() if self.tegrastats else None
        if sample is None:
            return base
        return Metrics(
            source="tegrastats",
            ram_used_mb=float(sample.ram_used_mb),
            ram_total_mb=float(sample.ram_total_mb),
            process_rss_mb=base.process_rss_mb,
            process_peak_rss_mb=base.process_peak_rss_mb,
            gpu_load_pct=float(sample.gpu_load_pct) if sample.gpu_load_pct is not None else None,
            power_mw=sample.module_power_mw,
            rails_mw={name: rail.current_mw for name, rail in sample.rails.items()},
        )

    def close(self) -> None:
        if self.tegrastats is not None:
            self.tegrastats.stop()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
