"""Decode speed on CPU: the LLM in the runtime (export graphs and cpu engines) vs PyTorch eager vs
onnxruntime-genai.

Every backend runs in this one process, with the same thread count, on the same random weights (Qwen2-0.5B
widths, fp32) and the same prompt of random token ids: the runtime and the torch loops take the prompt's
embeddings, onnxruntime-genai takes the ids (its graph embeds them; the lookup costs microseconds). Each
backend is greedy: prefill of the prompt (TTFT includes picking the first token), then ``--steps`` decode
steps; separately, a ``--prefill``-token prompt (512 by default) is run once per run and timed alone.
"engines cpu" backends are ``nvila-edge build --target cpu`` of the runtime's exports, with the build's
default options (INT4 / INT8 lm_head) and once more for fp32 with the head as exported. All backends are
loaded together and run in turn, run after run (a busy machine slows them alike), each ``--sessions`` times
(two sessions of one graph can differ by several percent); figures are medians over every session's ``--runs``
runs after ``--warmup`` runs. Needs the export extras and ``onnxruntime-genai`` (its model builder makes the
genai graphs from the checkpoint's ``llm/`` folder).
``--json`` prints ``{"backends": {NAME: {"tokens_per_s", "ms_per_token", "ttft_ms", "prefill512_ms"}}}``.

    nice -n 19 python bench/llm_decode.py --work out/bench --layers 24
    python bench/llm_decode.py --layers 8 --vocab 32000 --sessions 3 --skip torch project-torch --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Qwen2-0.5B's LLM widths (head_dim 64); the vision tower stays the tiny preset's.
QWEN2_0_5B = {"hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14, "num_key_value_heads": 2,
              "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1000000.0,
              "max_position_embeddings": 32768}
BACKENDS = {  # --skip key -> table label
    "torch": "torch eager fp32 (transformers)",
    "project-torch": "torch eager fp32 (export/modeling)",
    "genai-fp32": "onnxruntime-genai fp32",
    "genai-int4": "onnxruntime-genai int4",
    "runtime-fp32": "runtime OrtDecoder fp32",
    "runtime-int4": "runtime OrtDecoder int4 (W4A16)",
    "engines-int4": "engines cpu int4",
    "engines-fp32": "engines cpu fp32",
    "engines-fp32-float-head": "engines cpu fp32, --lm-head float",
}
CONTEXT = 1024  # positions the runtime's decoders preallocate (the long prompt plus room)


@dataclass
class Run:
    ttft_s: float
    decode_s: float  # all decode steps together
    tokens: list[int]
    prefill_s: float = 0.0  # the long prompt alone


@dataclass
class Result:
    backend: str
    ttft_ms: float
    decode_ms: float  # per token
    tokens: list[int]
    prefill_ms: float  # the long prompt

    @property
    def tokens_per_s(self) -> float:
        return 1000.0 / self.decode_ms

    def figures(self) -> dict[str, float]:
        return {"tokens_per_s": round(self.tokens_per_s, 2), "ms_per_token": round(self.decode_ms, 3),
                "ttft_ms": round(self.ttft_ms, 2), "prefill512_ms": round(self.prefill_ms, 1)}


@dataclass
class Backend:
    generate: Callable[[], Run]  # the short prompt, then the decode steps
    prefill: Callable[[], float]  # seconds for the long prompt's logits


def bench_checkpoint(work: Path, layers: int, vocab: int) -> Path:
    """A random fp32 checkpoint in the NVILA layout whose LLM has Qwen2-0.5B widths (reused when present)."""
    path = work / f"checkpoint-qwen2-0.5b-{layers}l-v{vocab}"
    if path.is_dir():
        return path
    import torch

    from nvila_edge.export.builtin_tokenizer import save_tokenizer, train_tokenizer
    from nvila_edge.export.checkpoint_writer import random_tensors, write_checkpoint
    from nvila_edge.export.random_checkpoint import TOKENIZER_VOCAB, tokenizer_corpus
    from nvila_edge.runtime.presets import preset_files

    files = preset_files("tiny")
    files["llm/config.json"].update(QWEN2_0_5B, num_hidden_layers=layers, vocab_size=vocab)
    files["config.json"]["hidden_size"] = QWEN2_0_5B["hidden_size"]

    def write_tokenizer(llm_dir: Path) -> None:
        save_tokenizer(train_tokenizer(tokenizer_corpus(), vocab_size=TOKENIZER_VOCAB), llm_dir)

    print(f"writing {path}", flush=True, file=sys.stderr)
    return write_checkpoint(path, files, random_tensors(seed=0), write_tokenizer, dtype=torch.float32)


def our_export(checkpoint: Path, work: Path, precision: str, rebuild: bool, calib_size: int) -> Path:
    from nvila_edge.export.exporter import export_checkpoint

    out = work / f"export-{checkpoint.name}-{precision}"
    if rebuild or not (out / "manifest.json").is_file():
        quantized = {"calib_size": calib_size} if calib_size else {}
        export_checkpoint(checkpoint, out, precision=precision, replace=True, **quantized)
    return out


def genai_build(checkpoint: Path, work: Path, precision: str, threads: int) -> Path:
    """onnxruntime-genai's builder on the checkpoint's llm/ folder, CPU; reused when present."""
    out = work / f"genai-{checkpoint.name}-{precision}"
    if not (out / "genai_config.json").is_file():
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        print(f"building {out} (log: {out}.log)", flush=True, file=sys.stderr)
        with open(f"{out}.log", "w") as log:
            subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint / "llm"),
                            "-o", str(partial), "-p", precision, "-e", "cpu", "-c", str(work / "genai-cache")],
                           check=True, stdout=log, stderr=subprocess.STDOUT)
        partial.rename(out)
    config_file = out / "genai_config.json"
    config = json.loads(config_file.read_text())
    decoder = config["model"]["decoder"]
    decoder.setdefault("session_options", {})["intra_op_num_threads"] = threads
    # The builder may add the pad id 0 to the stop ids; keep the checkpoint's own (min_length stops early
    # stops anyway, but the id must be valid).
    config["model"]["eos_token_id"] = json.loads((checkpoint / "llm" / "config.json").read_text())["eos_token_id"]
    config_file.write_text(json.dumps(config, indent=2))
    return out


def greedy(logits) -> int:
    return int(logits.argmax())


def engines_build(export: Path, work: Path, lm_head: str | None = None) -> Path:
    """``nvila-edge build --target cpu`` of an export, default options unless ``lm_head`` (reused when up to
    date)."""
    from nvila_edge.engines.build import build_engines, plan_build
    from nvila_edge.engines.cache import EngineCache
    from nvila_edge.engines.targets import get_target

    out = work / (f"engines-cpu-{export.name}" + (f"-head-{lm_head}" if lm_head else ""))
    plan = plan_build(export, get_target("cpu"), lm_head=lm_head)
    build_engines(plan, out, EngineCache(work / "engine-cache"), progress=False)
    return out


def runtime_backend(folder: Path, prompt_ids: np.ndarray, long_ids: np.ndarray, steps: int, threads: int) -> Backend:
    """OrtDecoder on an export or engines folder, as the Pipeline opens it."""
    from nvila_edge.runtime.backends.onnxruntime import OrtDecoder
    from nvila_edge.runtime.config import NvilaConfig
    from nvila_edge.runtime.manifest import read_manifest

    manifest = read_manifest(folder)
    llm = NvilaConfig.from_files(manifest.model_config).llm
    table = np.load(folder / manifest.embeddings["file"], mmap_mode="r")
    dtype = next(t.dtype for t in manifest.graphs["llm"].inputs if t.name == "inputs_embeds")
    decoder = OrtDecoder(folder / manifest.graphs["llm"].file, llm.num_hidden_layers, llm.num_key_value_heads,
                         llm.head_dim, manifest.token_layout.vocab_size, CONTEXT, np.dtype(dtype), threads,
                         kv_layout=manifest.kv_layout)
    return decoder_backend(decoder, table, prompt_ids, long_ids, steps)


def decoder_backend(decoder, table, prompt_ids: np.ndarray, long_ids: np.ndarray, steps: int) -> Backend:
    """Greedy loops over a decoder (``reset()``, ``step(embeds) -> logits``) fed rows of its embedding table."""
    prompt, long_prompt = table[prompt_ids], table[long_ids]

    def generate() -> Run:
        decoder.reset()
        start = time.perf_counter()
        tokens = [greedy(decoder.step(prompt))]
        first = time.perf_counter()
        for _ in range(steps):
            tokens.append(greedy(decoder.step(table[tokens[-1]][None])))
        return Run(first - start, time.perf_counter() - first, tokens)

    def prefill() -> float:
        decoder.reset()
        start = time.perf_counter()
        decoder.step(long_prompt)
        return time.perf_counter() - start

    return Backend(generate, prefill)


def transformers_backend(checkpoint: Path, prompt_ids: np.ndarray, long_ids: np.ndarray, steps: int,
                         threads: int) -> Backend:
    """transformers' Qwen2ForCausalLM from llm/, a manual loop over its own KV cache (sdpa attention)."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.set_num_threads(threads)
    model = Qwen2ForCausalLM.from_pretrained(checkpoint / "llm", dtype=torch.float32).eval()
    embeddings = model.get_input_embeddings().weight.detach()
    prompt, long_prompt = (embeddings[torch.from_numpy(ids)][None] for ids in (prompt_ids, long_ids))

    @torch.inference_mode()
    def generate() -> Run:
        start = time.perf_counter()
        out = model(inputs_embeds=prompt, use_cache=True, logits_to_keep=1)
        tokens = [greedy(out.logits[0, -1])]
        first = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
            tokens.append(greedy(out.logits[0, -1]))
        return Run(first - start, time.perf_counter() - first, tokens)

    @torch.inference_mode()
    def prefill() -> float:
        start = time.perf_counter()
        model(inputs_embeds=long_prompt, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - start

    return Backend(generate, prefill)


def project_torch_backend(checkpoint: Path, prompt_ids: np.ndarray, long_ids: np.ndarray, steps: int,
                          threads: int) -> Backend:
    """The project's own export/modeling/qwen2.py through the reference decoder (concatenated cache)."""
    import torch

    from nvila_edge.export.checkpoint import load_checkpoint
    from nvila_edge.export.reference import ReferencePipeline

    torch.set_num_threads(threads)
    reference = ReferencePipeline(load_checkpoint(checkpoint))
    return decoder_backend(reference.decoder, reference.embed_table, prompt_ids, long_ids, steps)


def genai_backend(folder: Path, prompt_ids: np.ndarray, long_ids: np.ndarray, steps: int) -> Backend:
    """The first generate_next_token samples the prefill's logits; each later one runs one decode step."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    ids = prompt_ids.astype(np.int32)[None]
    length = len(prompt_ids) + steps + 1

    def generator(max_length: int):
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=max_length, min_length=max_length)
        return og.Generator(model, params)

    def generate() -> Run:
        running = generator(length)
        start = time.perf_counter()
        running.append_tokens(ids)
        running.generate_next_token()
        tokens = [int(running.get_next_tokens()[0])]
        first = time.perf_counter()
        for _ in range(steps):
            running.generate_next_token()
            tokens.append(int(running.get_next_tokens()[0]))
        return Run(first - start, time.perf_counter() - first, tokens)

    def prefill() -> float:
        running = generator(len(long_ids) + 2)
        start = time.perf_counter()
        running.append_tokens(long_ids.astype(np.int32)[None])  # runs the prompt through the model
        return time.perf_counter() - start

    return Backend(generate, prefill)


def measure(makers: dict[str, Callable[[], Backend]], steps: int, warmup: int, runs: int,
            sessions: int = 1) -> list[Result]:
    """Every backend loaded at once (``sessions`` times each) and run in turn, run after run, so a change of
    machine load between runs touches all of them alike. Two sessions of one graph can differ by several
    percent for as long as they live (where their weights landed in memory), so each figure is the median over
    every session's runs."""
    loaded = {}
    for name, make in makers.items():
        print(f"loading {name}", flush=True, file=sys.stderr)
        loaded[name] = [make() for _ in range(sessions)]
    for _ in range(warmup):
        for backend in (b for copies in loaded.values() for b in copies):
            backend.generate()
            backend.prefill()
    timed: dict[str, list[Run]] = {name: [] for name in loaded}
    for index in range(runs):
        for name, copies in loaded.items():
            for backend in copies:
                run = backend.generate()
                run.prefill_s = backend.prefill()
                timed[name].append(run)
        print(f"run {index + 1}/{runs} done", flush=True, file=sys.stderr)
    return [Result(name, 1000 * statistics.median(r.ttft_s for r in runs_),
                   1000 * statistics.median(r.decode_s for r in runs_) / steps, runs_[-1].tokens,
                   1000 * statistics.median(r.prefill_s for r in runs_)) for name, runs_ in timed.items()]


def same_precision_genai(backend: str) -> str:
    return BACKENDS["genai-int4"] if "int4" in backend else BACKENDS["genai-fp32"]


def print_table(results: list[Result], reference: list[int] | None) -> None:
    by_name = {r.backend: r for r in results}
    int4 = by_name.get(BACKENDS["genai-int4"])
    header = (f"{'backend':<34} {'TTFT ms':>8} {'ms/token':>9} {'tokens/s':>9} {'decode x':>9} {'prefill ms':>11} "
              f"{'prefill x':>10} {'greedy = torch':>14}")
    print(header)
    print("-" * len(header))
    for r in results:
        base = by_name.get(same_precision_genai(r.backend))
        decode_x = f"{r.tokens_per_s / base.tokens_per_s:.2f}" if base else "-"
        prefill_x = f"{r.prefill_ms / int4.prefill_ms:.2f}" if int4 else "-"
        agree = f"{sum(a == b for a, b in zip(r.tokens, reference))}/{len(reference)}" if reference else "-"
        print(f"{r.backend:<34} {r.ttft_ms:>8.1f} {r.decode_ms:>9.2f} {r.tokens_per_s:>9.1f} {decode_x:>9} "
              f"{r.prefill_ms:>11.0f} {prefill_x:>10} {agree:>14}")
    print("decode x = tokens/s relative to onnxruntime-genai of the same precision (int4 or fp32; higher is faster); "
          "prefill x = long-prompt time relative to onnxruntime-genai int4 (lower is faster); 'greedy = torch' "
          "counts tokens equal to transformers eager fp32 (int4 and random weights need not agree).")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("out/bench"), help="cache folder for checkpoints and graphs")
    parser.add_argument("--layers", type=int, default=24, help="decoder layers (Qwen2-0.5B has 24; 8 is quicker)")
    parser.add_argument("--vocab", type=int, default=QWEN2_0_5B["vocab_size"], help="vocabulary rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens (prefill)")
    parser.add_argument("--steps", type=int, default=32, help="decode steps after the first token")
    parser.add_argument("--prefill", type=int, default=512, help="tokens of the long prompt timed alone")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=1,
                        help="load each backend this many times; figures are medians over all their runs")
    parser.add_argument("--calib-size", type=int, default=2,
                        help="calibration prompts for the runtime's int4 export (speed does not depend on them; "
                             "AWQ search time grows with them)")
    parser.add_argument("--rebuild", action="store_true", help="re-export the runtime's graphs (after graph changes)")
    parser.add_argument("--skip", nargs="*", default=[], choices=BACKENDS, help="backends to leave out")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    checkpoint = bench_checkpoint(args.work, args.layers, args.vocab)
    prompt_ids = np.random.default_rng(0).integers(0, args.vocab, args.prompt)
    long_ids = np.random.default_rng(1).integers(0, args.vocab, args.prefill)
    n = (args.steps, args.warmup, args.runs, args.sessions)
    ids = (prompt_ids, long_ids, args.steps)

    def export(precision: str) -> Path:
        return our_export(checkpoint, args.work, precision, args.rebuild, args.calib_size if precision != "fp32" else 0)

    makers = {
        "torch": lambda: transformers_backend(checkpoint, *ids, args.threads),
        "project-torch": lambda: project_torch_backend(checkpoint, *ids, args.threads),
        "genai-fp32": lambda: genai_backend(genai_build(checkpoint, args.work, "fp32", args.threads), *ids),
        "genai-int4": lambda: genai_backend(genai_build(checkpoint, args.work, "int4", args.threads), *ids),
        "runtime-fp32": lambda: runtime_backend(export("fp32"), *ids, args.threads),
        "runtime-int4": lambda: runtime_backend(export("int4"), *ids, args.threads),
        "engines-int4": lambda: runtime_backend(engines_build(export("int4"), args.work), *ids, args.threads),
        "engines-fp32": lambda: runtime_backend(engines_build(export("fp32"), args.work), *ids, args.threads),
        "engines-fp32-float-head": lambda: runtime_backend(engines_build(export("fp32"), args.work, "float"), *ids,
                                                           args.threads),
    }
    results = measure({BACKENDS[key]: makers[key] for key in BACKENDS if key not in args.skip}, *n)
    reference = next((r.tokens for r in results if r.backend == BACKENDS["torch"]), None)
    (args.work / f"results-{args.layers}l.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    if args.json:
        print(json.dumps({"backends": {r.backend: r.figures() for r in results}}, indent=2))
        return 0
    sessions = f" in each of {args.sessions} sessions per backend" if args.sessions > 1 else ""
    print(f"\n{args.layers} layers, vocab {args.vocab}, prompt {args.prompt}, {args.steps} decode steps, "
          f"{args.prefill}-token prefill, {args.threads} threads, median of {args.runs} runs{sessions} after "
          f"{args.warmup} warm-up")
    print_table(results, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
