"""``Pipeline``: open an export or engines folder through its manifest and answer image, multi-image and
video questions, streaming tokens. The pipeline never knows which backend runs the graphs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvila_edge.errors import ArtifactError, EngineMismatchError, InputError
from nvila_edge.runtime.backends import TENSORRT_BACKENDS
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.generation import Timings, decode_rate, generate
from nvila_edge.runtime.lifecycle import Closeable
from nvila_edge.runtime.manifest import (
    EngineTarget,
    Manifest,
    engine_target,
    read_manifest,
    rebuild_command,
    remake_hint,
)
from nvila_edge.runtime.request import Request, check_fits, inputs_embeds, media_kind, prepare
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.tokenizer import Tokenizer, stream_text
from nvila_edge.runtime.visual import GraphEncoder


@dataclass
class Answer:
    text: str
    token_ids: list[int]
    visual_tokens: int
    prompt_positions: int
    preprocess_ms: float  # frames -> tiles (native or numpy, see runtime.preprocess)
    vision_ms: float
    projector_ms: float
    ttft_ms: float
    decode_tokens_per_s: float
    decode_steps: int = 0

    def summary(self) -> str:
        decode = decode_rate(self.decode_tokens_per_s, self.decode_steps)
        return (f"preprocess {self.preprocess_ms:.1f} ms | vision {self.vision_ms:.1f} ms | projector "
                f"{self.projector_ms:.1f} ms | TTFT {self.ttft_ms:.1f} ms | {decode} | {self.visual_tokens} visual "
                f"tokens, {self.prompt_positions} prompt positions, {len(self.token_ids)} generated")


def open_runners(folder: Path, manifest: Manifest, threads: int | None, device: str, max_context: int | None):
    """-> (vision runner, projector runner, decoder), dispatched on the folder's manifest: an export folder runs
    its ONNX files on ONNX Runtime; an engines folder runs on the backend it was built with (ONNX Runtime on the
    saved optimized models, TensorRT / TensorRT-RTX on the engines, after their version and GPU checks)."""
    context = max_context or manifest.dims["total"].max
    model_max = NvilaConfig.from_files(manifest.model_config).model_max_length
    if context > model_max:
        raise InputError(f"a context of {context} positions is more than the model's {model_max} "
                         f"(model_max_length); use --max-context {model_max} or less")
    if manifest.kind == "engines":
        target = engine_target(manifest)
        if context > target.max_context:
            raise InputError(f"these engines hold at most {target.max_context} positions; for {context} rebuild "
                             f"with: {rebuild_command(folder, manifest)} --max-context {context}")
        if target.backend in TENSORRT_BACKENDS:
            from nvila_edge.runtime.backends.tensorrt import open_tensorrt_runners

            return open_tensorrt_runners(folder, manifest, context)
        _check_onnxruntime_release(folder, manifest, target)
    from nvila_edge.runtime.backends.onnxruntime import OrtDecoder, OrtGraph

    llm = NvilaConfig.from_files(manifest.model_config).llm
    # the LLM graph's own input dtype sizes the KV cache and logits (FP16 for the quantized recipes' exports,
    # FP32 for the CPU engines)
    dtype = np.dtype(next(t.dtype for t in manifest.graphs["llm"].inputs if t.name == "inputs_embeds"))
    with contextlib.ExitStack() as opened:  # a failure half-way closes what was opened before it
        vision, projector = (opened.enter_context(OrtGraph(folder / manifest.graphs[name].file, threads, device))
                             for name in ("vision", "projector"))
        decoder = opened.enter_context(OrtDecoder(
            folder / manifest.graphs["llm"].file, llm.num_hidden_layers, llm.num_key_value_heads, llm.head_dim,
            manifest.token_layout.vocab_size, context, dtype, threads, device, kv_layout=manifest.kv_layout))
        opened.pop_all()
    return vision, projector, decoder


def _check_onnxruntime_release(folder: Path, manifest: Manifest, target: EngineTarget) -> None:
    """Saved optimized models may use internal operators of the ONNX Runtime release that wrote them."""
    import onnxruntime

    if target.backend_version.split(".")[:2] != onnxruntime.__version__.split(".")[:2]:
        raise EngineMismatchError(f"these models were optimized by ONNX Runtime {target.backend_version}; this machine "
                                  f"has {onnxruntime.__version__}; rebuild with: {rebuild_command(folder, manifest)}")


def device_tiling(vision, dtype: np.dtype):
    """-> (device buffer or None, tile dtype). A TensorRT vision engine with the native CUDA kernels built gets its
    single-image tiles straight from the GPU in the engine's input type; otherwise tiles are made on the CPU."""
    from nvila_edge.runtime import preprocess

    if not (hasattr(vision, "bind_device") and preprocess.cuda_kernels()):
        return None, dtype
    from nvila_edge.runtime.backends.cuda_device import DeviceBuffer

    return DeviceBuffer(), vision.engine.dtypes["pixel_values"]


class Pipeline(Closeable):
    """Use it in a ``with`` block (or call ``close()``): closing frees the graph runners and the KV cache."""

    def __init__(self, folder: Path, manifest: Manifest, threads: int | None = None, device: str = "cpu",
                 max_context: int | None = None):
        self.folder, self.manifest = folder, manifest
        self.config = NvilaConfig.from_files(manifest.model_config)
        self.tokenizer = Tokenizer.from_dir(folder / manifest.tokenizer_dir)
        self.embed_table = np.load(folder / manifest.embeddings["file"], mmap_mode="r")
        self.newline = np.asarray(self.embed_table[manifest.token_layout.newline_token_id])[None]
        try:
            vision, projector, self.decoder = open_runners(folder, manifest, threads, device, max_context)
        except ArtifactError as err:
            raise ArtifactError(f"{err}; {remake_hint(manifest.kind)}") from err
        self.encoder = GraphEncoder(self.config, vision, projector, self.embed_table.dtype)
        self.device_tiles, self.pixel_dtype = device_tiling(vision, self.embed_table.dtype)
        self.stop_ids = set(manifest.generation["stop_token_ids"])
        self.last: Answer | None = None

    @classmethod
    def open(cls, folder: str | Path, **options) -> Pipeline:
        folder = Path(folder)
        return cls(folder, read_manifest(folder, verify_hashes=True), **options)

    def close(self) -> None:
        for runner in (self.encoder.vision, self.encoder.projector, self.decoder):
            runner.close()
        if self.device_tiles is not None:
            self.device_tiles.close()

    def embed(self, token: int) -> np.ndarray:
        return np.asarray(self.embed_table[token])[None]

    def generate(self, request: Request, params: SamplingParams | None = None) -> Iterator[int]:
        """Yield token ids; afterwards ``self.last`` holds the answer with its timings, also when the consumer
        stopped early (a stop string, a cancelled request): it then holds the tokens produced so far."""
        start = time.perf_counter()
        self.encoder.vision_ms = self.encoder.projector_ms = 0.0
        prepared = prepare(self.config, self.tokenizer, self.encoder, self.newline, request, self.pixel_dtype,
                           self.device_tiles)
        check_fits(prepared, self.decoder.context, media_kind(request))
        embeds = inputs_embeds(prepared, self.tokenizer, self.embed_table)
        timings, tokens, first = Timings(), [], None
        params = params or SamplingParams(max_new_tokens=self.manifest.generation["max_new_tokens"])
        try:
            for token in generate(self.decoder, embeds, self.embed, params, self.stop_ids, timings):
                first = first or time.perf_counter()
                tokens.append(token)
                yield token
        finally:
            ttft = 1000 * ((first or time.perf_counter()) - start)
            self.last = Answer(self.tokenizer.decode(tokens), tokens, prepared.visual_tokens, prepared.positions,
                               prepared.preprocess_ms, self.encoder.vision_ms, self.encoder.projector_ms, ttft,
                               timings.decode_tokens_per_s, len(timings.decode_ms))

    def stream(self, request: Request, params: SamplingParams | None = None,
               on_text: Callable[[str], None] | None = None) -> Iterator[str]:
        """Yield text pieces as tokens arrive (never half a UTF-8 character); ``on_text`` sees each piece too."""
        yield from stream_text(self.generate(request, params), self.tokenizer, on_text)

    def ask(self, request: Request, params: SamplingParams | None = None) -> Answer:
        for _ in self.generate(request, params):
            pass
        return self.last

    def answer_example(self, example) -> str:
        from nvila_edge.runtime.evaluation import example_request

        return self.ask(example_request(example), SamplingParams(max_new_tokens=32)).text
