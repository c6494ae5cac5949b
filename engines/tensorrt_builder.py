"""Build one TensorRT / TensorRT-RTX engine from an ONNX graph.

Strongly typed network (precision from the graph's casts and Q/DQ), one optimization profile per phase, the
target's workspace limit, the timing cache reused across builds (TensorRT only), detailed layer information
kept in the plan, and the layer precision check afterwards when a GPU can load the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nvila_edge.atomic import atomic_file
from nvila_edge.engines.layer_precision import check_layer_precision, engine_layer_types, network_quantized_layers
from nvila_edge.errors import ArtifactError, NvilaEdgeError, UnsupportedError
from nvila_edge.runtime.backends.trt_api import (
    BACKEND_NAMES,
    import_trt,
    module_version,
    network_flags,
    set_compute_capability,
    set_optimization_level,
    targets_compute_capability,
)
from nvila_edge.runtime.manifest import OptimizationProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrtBuildOptions:
    backend: str
    compute_capability: tuple[int, int]
    workspace_bytes: int
    optimization_level: int
    profiles: list[OptimizationProfile]
    timing_cache: Path | None  # None: the backend keeps no timing cache


@dataclass(frozen=True)
class TrtBuildResult:
    quantized_layers: dict[str, int]
    precision_check: str


def _logger(trt):
    class CollectingLogger(trt.ILogger):
        """Keeps errors for the exception message; everything else goes to debug logging."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, message):
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(message.strip())
            log.debug("[%s] %s", getattr(severity, "name", severity), message)

    return CollectingLogger()


def _progress_monitor(trt, bar):
    class BarMonitor(trt.IProgressMonitor):
        """The top-level build phase drives the bar; nested phases show as its text."""

        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.top: str | None = None

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self.top = phase_name
                bar.reset(total=num_steps)
            bar.set_postfix_str(phase_name)

        def step_complete(self, phase_name, step):
            if phase_name == self.top:
                bar.update(1)
            return True

        def phase_finish(self, phase_name):
            pass

    return BarMonitor()


def parse_onnx(trt, builder, logger, onnx_path: Path, backend: str):
    network = builder.create_network(network_flags(trt, backend))
    parser = trt.OnnxParser(network, logger)
    # parse_from_file resolves external data next to the model.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors or ["no details"]
        raise ArtifactError(f"{onnx_path}: {BACKEND_NAMES[backend]} cannot parse this ONNX graph ({errors[0]}); "
                            "re-run `nvila-edge export`")
    return network, parser


def build_trt_engine(onnx_path: Path, plan_path: Path, graph: str, options: TrtBuildOptions,
                     bar=None) -> TrtBuildResult:
    trt = import_trt(options.backend)
    name = f"{BACKEND_NAMES[options.backend]} {module_version(trt)}"
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network, parser = parse_onnx(trt, builder, logger, onnx_path, options.backend)  # the parser owns the weights
    expected = network_quantized_layers(trt, network)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    set_optimization_level(config, options.optimization_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the precision check reads layer formats
    if targets_compute_capability(options.backend):
        set_compute_capability(trt, config, options.compute_capability)
    for profile in options.profiles:
        shapes = builder.create_optimization_profile()
        for tensor, (low, opt, high) in profile.shapes.items():
            shapes.set_shape(tensor, low, opt, high)
        config.add_optimization_profile(shapes)
    timing = _attach_timing_cache(config, options.timing_cache) if options.timing_cache else None
    monitor = _progress_monitor(trt, bar) if bar is not None else None  # must outlive the build
    if monitor is not None:
        config.progress_monitor = monitor
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        detail = logger.errors[-1] if logger.errors else "no error message"
        raise UnsupportedError(f"{name} could not build {graph} from {onnx_path.name}: {detail}")
    if bar is not None:
        bar.update(bar.total - bar.n)  # TensorRT does not report the last step of its top phase
    with atomic_file(plan_path) as tmp, open(tmp, "wb") as f:
        f.write(memoryview(plan))
    if timing is not None:
        with atomic_file(options.timing_cache) as tmp, open(tmp, "wb") as f:
            f.write(memoryview(config.get_timing_cache().serialize()))
    # Free the network and builder before loading the engine: on Jetson the GPU shares the board's RAM.
    del network, parser, config, builder, monitor
    return TrtBuildResult(expected, precision_check(trt, plan, graph, expected))


def _attach_timing_cache(config, path: Path):
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):  # a cache from another GPU or release is not used
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def precision_check(trt, plan, graph: str, expected: dict[str, int]) -> str:
    """Load the engine and run the layer precision check; on a machine that cannot load it, say why not."""
    from nvila_edge.runtime.backends.cuda_device import device_capability

    try:
        capability = device_capability()
    except NvilaEdgeError as err:
        return f"not run: {err}"
    if capability is None:
        return "not run: no CUDA device here to load the engine; `nvila-edge validate` runs it on the device"
    runtime = trt.Runtime(_logger(trt))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        return f"not run: this GPU (compute capability {capability[0]}.{capability[1]}) cannot load the engine"
    information = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return check_layer_precision(graph, expected, engine_layer_types(information))
