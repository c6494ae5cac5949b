"""TensorRT / TensorRT-RTX backend with the same two interfaces as the ONNX Runtime backend: ``TrtGraph.run(feeds)
-> dict`` for vision and projector, ``TrtDecoder`` (context / reset / step) for the LLM.

Before an engine is deserialized, the TensorRT release and compute capability recorded in the engines manifest
are compared with this machine's; engines are not portable, so a mismatch is refused with the rebuild command.

Decoder memory: one seq-major device buffer per layer for K and one for V, [context, kv_heads, head_dim]. The
graph's ``past_key.i`` [1, P, kv, hd] is the first P rows of that buffer and ``new_key.i`` [1, S, kv, hd] the
next S rows, so both are pointer offsets into one allocation and steps copy no cache data. TensorRT requires
256-byte aligned tensor addresses, so a row (kv_heads * head_dim * itemsize) must be a multiple of 256 bytes;
it is for NVILA's LLMs (512 B for NVILA-Lite-2B FP16, 1 KiB for NVILA-8B FP16).
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvila_edge.errors import ArtifactError, DeviceError, EngineMismatchError, InputError, UnsupportedError
from nvila_edge.runtime.backends.trt_api import (
    BACKEND_NAMES,
    engines_compatible,
    import_trt,
    module_version,
    numpy_dtype,
)
from nvila_edge.runtime.lifecycle import Closeable
from nvila_edge.runtime.manifest import EngineTarget

ALIGNMENT = 256  # bytes; TensorRT's requirement for every tensor address


def check_release(target: EngineTarget, running: str, rebuild: str) -> None:
    if not engines_compatible(target.backend_version, running):
        name = BACKEND_NAMES[target.backend]
        raise EngineMismatchError(f"these engines were built with {name} {target.backend_version}; this machine has "
                                  f"{name} {running} and cannot load them; rebuild with: {rebuild}")


def check_capability(target: EngineTarget, device: tuple[int, int], rebuild: str) -> None:
    here = f"{device[0]}.{device[1]}"
    if target.compute_capability != here:
        raise EngineMismatchError(f"these engines were built for compute capability {target.compute_capability} "
                                  f"(target {target.name}); this GPU has {here}; rebuild with: {rebuild}")


def choose_profile(past: int, seq: int) -> str:
    """One new token after a prefill runs the decode profile; everything else (prompts, chunks) prefill."""
    return "decode" if seq == 1 and past > 0 else "prefill"


@dataclass(frozen=True)
class Binding:
    address: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DecoderLayout:
    """Device addresses and sizes of the decoder's preallocated buffers."""

    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    kv_itemsize: int
    cache: tuple[tuple[int, int], ...]  # per layer: (keys address, values address)
    embeds: int
    positions: int
    mask: int
    logits: int

    @property
    def row_bytes(self) -> int:
        return self.kv_heads * self.head_dim * self.kv_itemsize


def decoder_bindings(layout: DecoderLayout, past: int, seq: int) -> dict[str, Binding]:
    """Address and shape of every LLM graph tensor for a step of ``seq`` positions after ``past`` cached ones."""
    kv = (layout.kv_heads, layout.head_dim)
    bindings = {
        "inputs_embeds": Binding(layout.embeds, (1, seq, layout.hidden)),
        "position_ids": Binding(layout.positions, (1, seq)),
        "attention_mask": Binding(layout.mask, (1, past + seq)),  # all ones: batch 1 has no padding
        "logits": Binding(layout.logits, (1, 1, layout.vocab)),
    }
    offset = past * layout.row_bytes
    for i, (keys, values) in enumerate(layout.cache):
        bindings[f"past_key.{i}"] = Binding(keys, (1, past, *kv))
        bindings[f"past_value.{i}"] = Binding(values, (1, past, *kv))
        bindings[f"new_key.{i}"] = Binding(keys + offset, (1, seq, *kv))
        bindings[f"new_value.{i}"] = Binding(values + offset, (1, seq, *kv))
    return bindings


def volume(shape) -> int:
    return int(np.prod(tuple(shape), dtype=np.int64))


class TrtEngine(Closeable):
    """A deserialized engine with one execution context and its own CUDA stream."""

    def __init__(self, path: Path, backend: str):
        from nvila_edge.runtime.backends.cuda_device import Stream

        trt = self.trt = import_trt(backend)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)  # must outlive the engine
        if Path(path).stat().st_size == 0:  # mmap cannot map an empty file
            raise ArtifactError(f"{path} is empty (an interrupted copy?); rebuild it with `nvila-edge build`")
        # A mapped file instead of bytes: no second copy of a multi-GB plan in the board's shared RAM.
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as plan:
            self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineMismatchError(f"{path}: {BACKEND_NAMES[backend]} {module_version(trt)} could not load this "
                                      "engine (see the messages above); rebuild it with `nvila-edge build`")
        self.context = self.engine.create_execution_context()
        self.stream = Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: numpy_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.path = Path(path)

    def max_shape(self, name: str, profile: int) -> tuple[int, ...]:
        return tuple(self.engine.get_tensor_profile_shape(name, profile)[2])

    def set_profile(self, index: int) -> None:
        if not self.context.set_optimization_profile_async(index, self.stream.address):
            raise DeviceError(f"{self.path.name}: TensorRT cannot switch to optimization profile {index}")

    def bind(self, name: str, binding: Binding) -> None:
        if name in self.inputs and not self.context.set_input_shape(name, binding.shape):
            raise InputError(f"{self.path.name}: input '{name}' of shape {list(binding.shape)} is outside the "
                             "engine's optimization profile; rebuild with larger limits")
        if not self.context.set_tensor_address(name, binding.address):
            if name not in self.dtypes:
                raise EngineMismatchError(f"{self.path.name}: the engine has no tensor '{name}'; rebuild it with "
                                          "`nvila-edge build`")
            raise DeviceError(f"{self.path.name}: TensorRT refused the address {binding.address:#x} of '{name}' "
                              f"(tensor addresses must be {ALIGNMENT}-byte aligned; see the messages above)")

    def output_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.context.get_tensor_shape(name))

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.address):
            raise DeviceError(f"{self.path.name}: TensorRT could not enqueue the engine (see the messages above)")

    def layer_information(self) -> str:
        """The engine inspector's JSON (per-layer formats and types; built with detailed profiling verbosity)."""
        inspector = self.engine.create_engine_inspector()
        return inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)

    def close(self) -> None:
        self.stream.close()
        self.context = self.engine = None


class TrtGraph(Closeable):
    """An engine as a graph runner: numpy feeds in, numpy outputs out, staged through pinned host buffers. A feed
    that is already in device memory (``preprocess.DeviceTiles``) is bound where it is."""

    def __init__(self, engine: TrtEngine, profile: int = 0):
        from nvila_edge.runtime.backends.cuda_device import DeviceBuffer, PinnedBuffer

        self.engine, self.output_names = engine, engine.outputs
        names = engine.inputs + engine.outputs
        self.device = {n: DeviceBuffer() for n in names}
        self.host = {n: PinnedBuffer() for n in names}
        try:
            engine.set_profile(profile)
            for name in engine.inputs:  # the profile's largest inputs; outputs grow on first use
                nbytes = volume(engine.max_shape(name, profile)) * engine.dtypes[name].itemsize
                self.device[name].reserve(nbytes)
                self.host[name].reserve(nbytes)
        except BaseException:
            self.close()
            raise

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        engine = self.engine
        missing = [n for n in engine.inputs if n not in feeds]
        if missing:
            raise InputError(f"{engine.path.name}: missing input(s) {', '.join(missing)}")
        for name in engine.inputs:
            if hasattr(feeds[name], "address"):  # preprocess.DeviceTiles: already in device memory
                self.bind_device(name, feeds[name])
                continue
            array = np.asarray(feeds[name], dtype=engine.dtypes[name])
            staged = self.host[name].view(array.dtype, array.shape)
            staged[...] = array
            address = self.device[name].reserve(staged.nbytes)
            engine.bind(name, Binding(address, array.shape))
            engine.stream.upload(address, staged)
        results = {}
        for name in engine.outputs:
            results[name] = self.host[name].view(engine.dtypes[name], engine.output_shape(name))
            engine.bind(name, Binding(self.device[name].reserve(results[name].nbytes), results[name].shape))
        engine.execute()
        for name, staged in results.items():
            engine.stream.download(staged, self.device[name].ptr)
        engine.stream.synchronize()
        return {name: staged.copy() for name, staged in results.items()}

    def bind_device(self, name: str, tiles) -> None:
        if np.dtype(tiles.dtype) != self.engine.dtypes[name]:
            raise InputError(f"{self.engine.path.name}: input '{name}' is {self.engine.dtypes[name]}, the device "
                             f"tiles are {np.dtype(tiles.dtype)}")
        self.engine.bind(name, Binding(tiles.address, tuple(tiles.shape)))

    def close(self) -> None:
        for buffer in [*self.device.values(), *self.host.values()]:
            buffer.close()
        self.engine.close()


class TrtDecoder(Closeable):
    """The LLM engine with a preallocated device KV cache (batch 1), switching between its prefill and decode
    optimization profiles."""

    def __init__(self, engine: TrtEngine, profiles: dict[str, int], layers: int, kv_heads: int, head_dim: int,
                 hidden: int, vocab: int, context: int):
        self.engine, self.profiles, self.context = engine, profiles, context
        self.buffers, self.staging = [], {}
        try:
            self._allocate(layers, kv_heads, head_dim, hidden, vocab)
        except BaseException:
            self.close()
            raise
        self.length, self.active = 0, None

    def _allocate(self, layers: int, kv_heads: int, head_dim: int, hidden: int, vocab: int) -> None:
        from nvila_edge.runtime.backends.cuda_device import DeviceBuffer, PinnedBuffer

        engine, context = self.engine, self.context
        self.dtype = engine.dtypes["inputs_embeds"]
        kv_itemsize = engine.dtypes["past_key.0"].itemsize
        row = kv_heads * head_dim * kv_itemsize
        if row % ALIGNMENT:
            raise UnsupportedError(f"a KV cache row of {row} bytes ({kv_heads} heads x {head_dim} x {kv_itemsize} B) "
                                   f"is not a multiple of {ALIGNMENT}; TensorRT needs aligned cache offsets")
        sizes = [context * row] * (2 * layers) + [context * hidden * self.dtype.itemsize, context * 8, context * 8,
                                                  vocab * engine.dtypes["logits"].itemsize]
        for size in sizes:  # appended one by one so that a failed allocation frees the earlier ones
            self.buffers.append(DeviceBuffer(size))
        named = dict(zip(("embeds", "positions", "mask", "logits"), self.buffers[2 * layers:]))
        for name, size in (("embeds", sizes[-4]), ("positions", context * 8), ("logits", 0)):
            self.staging[name] = PinnedBuffer(size)
        self.layout = DecoderLayout(hidden, kv_heads, head_dim, vocab, kv_itemsize,
                                    tuple((self.buffers[2 * i].ptr, self.buffers[2 * i + 1].ptr)
                                          for i in range(layers)),
                                    named["embeds"].ptr, named["positions"].ptr, named["mask"].ptr, named["logits"].ptr)
        ones = self.staging["positions"].view(np.int64, (1, context))
        ones[...] = 1
        engine.stream.upload(self.layout.mask, ones)
        engine.stream.synchronize()

    def reset(self) -> None:
        self.length = 0

    def step(self, inputs_embeds: np.ndarray) -> np.ndarray:
        s, p = len(inputs_embeds), self.length
        if p + s > self.context:
            raise InputError(f"{p + s} positions do not fit the context of {self.context}")
        engine, stream = self.engine, self.engine.stream
        profile = choose_profile(p, s)
        if profile != self.active:
            engine.set_profile(self.profiles[profile])
            self.active = profile
        embeds = self.staging["embeds"].view(self.dtype, (1, s, self.layout.hidden))
        embeds[0] = inputs_embeds
        positions = self.staging["positions"].view(np.int64, (1, s))
        positions[0] = np.arange(p, p + s)
        for name, binding in decoder_bindings(self.layout, p, s).items():
            engine.bind(name, binding)
        stream.upload(self.layout.embeds, embeds)
        stream.upload(self.layout.positions, positions)
        engine.execute()
        logits = self.staging["logits"].view(engine.dtypes["logits"], (1, 1, self.layout.vocab))
        stream.download(logits, self.layout.logits)
        stream.synchronize()
        self.length = p + s
        return logits[0, 0].astype(np.float32)

    def close(self) -> None:
        for buffer in [*self.buffers, *self.staging.values()]:
            buffer.close()
        self.engine.close()


def open_tensorrt_runners(folder: Path, manifest, context: int):
    """-> (vision, projector, decoder) on the engines of a TensorRT / TensorRT-RTX engines folder."""
    from nvila_edge.runtime.backends.cuda_device import require_device
    from nvila_edge.runtime.config import NvilaConfig
    from nvila_edge.runtime.manifest import engine_build, engine_target, rebuild_command

    target, rebuild = engine_target(manifest), rebuild_command(folder, manifest)
    check_release(target, module_version(import_trt(target.backend)), rebuild)
    check_capability(target, require_device(), rebuild)
    llm = NvilaConfig.from_files(manifest.model_config).llm
    profiles = {p.name: i for i, p in enumerate(engine_build(manifest, "llm").profiles)}
    with contextlib.ExitStack() as opened:  # a failure half-way frees what was opened before it
        vision, projector = (opened.enter_context(TrtGraph(TrtEngine(folder / manifest.graphs[name].file,
                                                                     target.backend)))
                             for name in ("vision", "projector"))
        decoder = opened.enter_context(TrtDecoder(TrtEngine(folder / manifest.graphs["llm"].file, target.backend),
                                                  profiles, llm.num_hidden_layers, llm.num_key_value_heads,
                                                  llm.head_dim, llm.hidden_size, manifest.token_layout.vocab_size,
                                                  context))
        opened.pop_all()
    return vision, projector, decoder
