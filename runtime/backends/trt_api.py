"""The one place that knows how TensorRT releases differ: 10.3 (JetPack 6), 10.13-10.16 (JetPack 7), 11.x, and
TensorRT-RTX (same network API, builds without a GPU).

Everything is built strongly typed, so precision comes from the graph's casts and Q/DQ nodes and no release
needs precision builder flags (11.x removed them; on 10.x they would allow silent FP32 fallbacks).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

from nvila_edge.errors import UnsupportedError

BACKEND_NAMES = {"tensorrt": "TensorRT", "tensorrt-rtx": "TensorRT-RTX"}
# Import names tried in order: the TensorRT-RTX front-end package is `tensorrt_rtx`, its standalone
# bindings wheel `tensorrt_rtx_bindings`.
MODULES = {"tensorrt": ("tensorrt",), "tensorrt-rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings")}
INSTALL_HINTS = {
    "tensorrt": "on a Jetson it comes with JetPack (run jetson/install.sh, never pip-install it there); on an x86 "
                "host install the TensorRT Python package matching its CUDA",
    "tensorrt-rtx": "pip install 'nvila-edge[tensorrt-rtx]'",
}
STRONGLY_TYPED_ALWAYS = (11, 0)  # from 11.0 every network is strongly typed and the flag is deprecated


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0
    build: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        """``10.3.0``, ``10.3.0.30``, ``10.14.1.48.post1``, ``1.7.1.116`` -> version; anything else raises."""
        numbers = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
        if not numbers:
            raise ValueError(f"not a TensorRT version: {text!r}")
        return cls(*(int(n) if n else 0 for n in numbers.groups()))

    @property
    def release(self) -> tuple[int, int, int]:
        return self.major, self.minor, self.patch

    def __str__(self) -> str:
        return ".".join(map(str, self.release + ((self.build,) if self.build else ())))


def engines_compatible(built: str, running: str) -> bool:
    """A serialized engine loads only on the release it was built with (the build number may differ)."""
    return TrtVersion.parse(built).release == TrtVersion.parse(running).release


def import_trt(backend: str):
    """The TensorRT module of ``backend``; a missing or broken install is one line with the fix."""
    if backend not in MODULES:
        raise UnsupportedError(f"'{backend}' is not a TensorRT backend (choose from: {', '.join(MODULES)})")
    failure = "not installed"
    for name in MODULES[backend]:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            failure = str(err).splitlines()[0] if str(err) else type(err).__name__
    raise UnsupportedError(f"{BACKEND_NAMES[backend]} cannot be imported here ({failure}); {INSTALL_HINTS[backend]}")


def module_version(trt) -> str:
    return str(trt.__version__)


def network_flags(trt, backend: str) -> int:
    """Creation flags for a strongly typed network on every release."""
    if backend == "tensorrt" and TrtVersion.parse(module_version(trt)) >= TrtVersion(*STRONGLY_TYPED_ALWAYS):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def uses_timing_cache(backend: str) -> bool:
    """TensorRT-RTX keeps the timing-cache calls only as no-ops (deprecated since RTX 1.2)."""
    return backend == "tensorrt"


def targets_compute_capability(backend: str) -> bool:
    """TensorRT-RTX builds ahead of time for a named GPU architecture, without that GPU; TensorRT builds for
    the GPU it runs on."""
    return backend == "tensorrt-rtx"


def set_compute_capability(trt, config, capability: tuple[int, int]) -> None:
    member = f"SM{capability[0]}{capability[1]}"
    if not hasattr(trt.ComputeCapability, member):
        known = [m for m in trt.ComputeCapability.__members__ if m.startswith("SM")]
        raise UnsupportedError(f"TensorRT-RTX {module_version(trt)} cannot build for sm_{member[2:]} "
                               f"(it knows: {', '.join(known)})")
    config.num_compute_capabilities = 1
    config.set_compute_capability(getattr(trt.ComputeCapability, member), 0)


def set_optimization_level(config, level: int) -> None:
    """``builder_optimization_level``, in TensorRT 10.x and TensorRT-RTX 1.7; a binding without it keeps its
    default."""
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = level


def numpy_dtype(trt, dtype):
    import numpy as np

    return np.dtype(trt.nptype(dtype))
