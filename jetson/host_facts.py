"""What ``nvila-edge doctor`` knows about this machine, gathered once: files under a root folder (``/proc``,
``/etc``, ``/dev``, ``/sys``; a fake tree in tests) plus real imports of TensorRT, the CUDA bindings, OpenCV and
ONNX Runtime. The checks (``jetson/doctor.py``) are pure functions of these facts."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nvila_edge.engines.cache import engine_cache_dir
from nvila_edge.jetson.device import (
    DeviceInfo,
    PowerMode,
    SwapArea,
    VideoDevice,
    detect_device,
    is_process_running,
    list_video_devices,
    read_meminfo,
    read_power_mode,
    read_swaps,
)
from nvila_edge.runtime.backends.cuda_bindings import BINDINGS as CUDA_BINDINGS
from nvila_edge.runtime.backends.trt_api import MODULES as TRT_MODULES

# Import names tried in order for each probed package; the TensorRT ones are the runtime's own.
MODULES = {
    **TRT_MODULES,
    **CUDA_BINDINGS,
    "opencv": ("cv2",),
    "onnxruntime": ("onnxruntime",),
}
DISTRIBUTIONS = {"cuda-python": ("cuda-python", "cuda-bindings"), "pycuda": ("pycuda",)}


@dataclass(frozen=True)
class ModuleProbe:
    version: str | None
    error: str | None = None

    @property
    def found(self) -> bool:
        return self.error is None


def probe_module(package: str) -> ModuleProbe:
    """Import the package for real; any failure (missing .so, driver, ABI) counts as not usable."""
    error = "not installed"
    for import_name in MODULES[package]:
        try:
            module = importlib.import_module(import_name)
        except Exception as err:  # third-party imports fail in many ways; all mean "not usable here"
            error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:160]
            continue
        return ModuleProbe(str(getattr(module, "__version__", "") or _distribution_version(package) or "") or None)
    return ModuleProbe(None, error)


def _distribution_version(package: str) -> str | None:
    """Version from the installed distribution, for modules without ``__version__`` (cuda.bindings, pycuda)."""
    for dist in DISTRIBUTIONS.get(package, ()):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def parse_opencv_gstreamer(build_information: str) -> bool | None:
    """``GStreamer: YES (1.20.3)`` / ``NO`` from ``cv2.getBuildInformation()``; None when absent."""
    match = re.search(r"^\s*GStreamer:\s*(\w+)", build_information, re.MULTILINE)
    return match.group(1).upper() == "YES" if match else None


@dataclass(frozen=True)
class HostFacts:
    device: DeviceInfo
    python: tuple[int, int, int]
    modules: dict[str, ModuleProbe]
    opencv_gstreamer: bool | None
    ort_providers: tuple[str, ...]
    cameras: tuple[VideoDevice, ...]
    argus_running: bool
    power: PowerMode | None
    meminfo: dict[str, int]
    swaps: tuple[SwapArea, ...]
    cache_dir: Path
    disk_free_bytes: int | None
    preprocess: tuple[str, str] = ("numpy", "")  # (active path, runtime.preprocess.describe_path())


def _disk_free(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def _nvpmodel_query(root: Path) -> str | None:
    if root != Path("/") or not shutil.which("nvpmodel"):
        return None
    done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    return done.stdout if done.returncode == 0 else None


def gather_facts(root: Path = Path("/"), cache_dir: Path | None = None) -> HostFacts:
    from nvila_edge.runtime import preprocess

    root = Path(root)
    modules = {name: probe_module(name) for name in MODULES}
    gstreamer, providers = None, ()
    if modules["opencv"].found:
        import cv2

        gstreamer = parse_opencv_gstreamer(cv2.getBuildInformation())
    if modules["onnxruntime"].found:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    cache_dir = Path(cache_dir) if cache_dir else engine_cache_dir()
    return HostFacts(
        device=detect_device(root),
        python=tuple(sys.version_info[:3]),
        modules=modules,
        opencv_gstreamer=gstreamer,
        ort_providers=providers,
        cameras=tuple(list_video_devices(root)),
        argus_running=is_process_running(root, "nvargus-daemon"),
        power=read_power_mode(root, _nvpmodel_query(root)),
        meminfo=read_meminfo(root),
        swaps=tuple(read_swaps(root)),
        cache_dir=cache_dir,
        disk_free_bytes=_disk_free(cache_dir),
        preprocess=(preprocess.active_path(), preprocess.describe_path()),
    )
