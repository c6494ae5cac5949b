"""`nvila-edge build` and `validate` end to end on the built-in model: TensorRT-RTX engines built without a
GPU, ONNX Runtime engines that answer like the export, the engine cache, killed builds, and bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nvila_edge.cli import main
from nvila_edge.engines.recipes import QUANTIZED, RECIPES, get_recipe
from nvila_edge.errors import ArtifactError, EngineMismatchError, InputError, UnsupportedError
from nvila_edge.runtime.manifest import engine_build, engine_target, read_manifest, sha256_file
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.world.scene import random_scene, render_scene


@pytest.fixture(scope="module")
def export_of(builtin_exports):
    """The built-in model exported with a recipe, once per recipe (shared with the other test modules)."""
    return builtin_exports


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def build(export, out, *options, cache=None) -> int:
    extra = ["--cache-dir", str(cache)] if cache else []
    return main(["build", str(export), "-o", str(out), "--no-progress", *extra, *map(str, options)])


@pytest.fixture(scope="module")
def rtx_engines(export_of, cache, tmp_path_factory):
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    out = tmp_path_factory.mktemp("rtx") / "engines"
    assert build(export_of("fp32"), out, "--target", "rtx", cache=cache) == 0
    return out


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_tensorrt_rtx_builds_every_graph_of_the_recipe(recipe, export_of, cache, tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    out = tmp_path / "engines"
    assert build(export_of(recipe), out, "--target", "rtx", cache=cache) == 0
    manifest = read_manifest(out, "engines", verify_hashes=True)
    target = engine_target(manifest)
    assert (target.backend, target.compute_capability, target.max_context) == ("tensorrt-rtx", "8.9", 1024)
    assert manifest.precision == recipe and manifest.source["path"] == str(export_of(recipe).resolve())
    for name, graph in manifest.graphs.items():
        assert graph.file == f"{name}.engine" and (out / graph.file).stat().st_size > 100_000
        built = engine_build(manifest, name)
        assert built.precision_check.startswith("not run: ")  # no GPU here to load the engine
        wanted = get_recipe(recipe).precision_of(name)
        # the Q/DQ layers reached the strongly typed network, counted per type
        assert set(built.quantized_layers) == ({wanted} if wanted in QUANTIZED else set())
    assert [p.name for p in engine_build(manifest, "llm").profiles] == ["prefill", "decode"]
    assert manifest.dims["total"].max == 1024 and (out / "tokenizer" / "tokenizer.json").is_file()


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_second_identical_build_does_nothing_and_says_so(rtx_engines, export_of, cache, capsys):
    engines, entries = snapshot(rtx_engines), snapshot(cache)
    capsys.readouterr()
    assert build(export_of("fp32"), rtx_engines, "--target", "rtx", cache=cache) == 0
    assert "is up to date" in capsys.readouterr().out
    assert snapshot(rtx_engines) == engines and snapshot(cache) == entries


def test_a_new_engines_folder_comes_from_the_cache(rtx_engines, export_of, cache, tmp_path, capsys):
    entries = set(cache.rglob("*"))
    capsys.readouterr()
    assert build(export_of("fp32"), tmp_path / "again", "--target", "rtx", cache=cache) == 0
    assert capsys.readouterr().out.count("from the cache") == 3 and set(cache.rglob("*")) == entries
    assert (tmp_path / "again" / "llm.engine").read_bytes() == (rtx_engines / "llm.engine").read_bytes()


def test_tensorrt_engines_need_their_gpu(rtx_engines, capsys):
    with pytest.raises(UnsupportedError, match="no CUDA device is usable here"):
        Pipeline.open(rtx_engines)
    capsys.readouterr()
    assert main(["validate", str(rtx_engines)]) == 1
    assert capsys.readouterr().err.strip().startswith("error: no CUDA device")


def test_engines_of_another_tensorrt_release_are_refused_with_the_rebuild_command(rtx_engines, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(rtx_engines, old)
    data = json.loads((old / "manifest.json").read_text())
    data["target"]["backend_version"] = "1.6.0.4"
    (old / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT-RTX 1\.6\.0\.4; this machine has TensorRT-RTX "
                                                  r"1\.7\.1.* rebuild with: nvila-edge build .* --target rtx"):
        Pipeline.open(old)
    capsys.readouterr()
    assert main(["validate", str(old)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TensorRT-RTX 1.6.0.4" in err


def scene_request():
    return Request("What shapes are in the picture?", [render_scene(random_scene(np.random.default_rng(3), 160, 120))])


@pytest.fixture(scope="module")
def cpu_engines(export_of, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("cpu") / "engines"
    assert build(export_of("fp32"), out, "--target", "cpu", "--max-context", 1024, cache=cache) == 0
    return out


def test_onnxruntime_engines_answer_like_the_export_and_validate(cpu_engines, export_of, capsys):
    manifest = read_manifest(cpu_engines, "engines", verify_hashes=True)
    assert {g.file for g in manifest.graphs.values()} == {"vision.ort.onnx", "projector.ort.onnx", "llm.ort.onnx"}
    assert engine_target(manifest).max_context == 1024
    params = SamplingParams(max_new_tokens=8)
    want = Pipeline.open(export_of("fp32"), threads=2).ask(scene_request(), params).token_ids
    got = Pipeline.open(cpu_engines, threads=2).ask(scene_request(), params).token_ids
    assert got == want and len(want) > 0
    capsys.readouterr()
    assert main(["validate", str(cpu_engines), "--threads", "2"]) == 0
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines()[1:5]]
    assert [row[-1] for row in rows] == ["pass"] * 4
    # the build's default INT8 lm_head: the LLM is judged at that precision's tolerance
    assert engine_build(manifest, "llm").options["cpu"]["lm_head"] == "int8"
    assert [row[-7] for row in rows] == ["fp32", "fp32", "int8", "int8"]  # precision: 7th column from the end
    # comparing the CUDA preprocessing with the CPU library needs a GPU; here it says why it did not run
    assert "preprocessing GPU vs CPU fp16: not run (" in table and table.rstrip().endswith("checks passed")
    # 2048 is beyond the model itself (a rebuild could not help); the engines' own bound is in the bad-input table
    with pytest.raises(InputError, match=r"context of 2048 positions is more than the model's 1024 \(model_max_len"):
        Pipeline.open(cpu_engines, max_context=2048)


def test_onnxruntime_builds_the_fp8_recipe_and_answers_like_its_export(export_of, tmp_path):
    out = tmp_path / "engines"
    assert build(export_of("fp8"), out, "--target", "cpu") == 0
    params = SamplingParams(max_new_tokens=8)
    want = Pipeline.open(export_of("fp8"), threads=2).ask(scene_request(), params).token_ids
    assert Pipeline.open(out, threads=2).ask(scene_request(), params).token_ids == want and len(want) > 0


def test_broken_engines_manifests_are_refused(cpu_engines, export_of, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(cpu_engines, broken)
    edit_manifest(broken, lambda data: data["target"].pop("max_context"))
    with pytest.raises(ArtifactError, match=r"manifest\.target: missing field\(s\) max_context"):
        Pipeline.open(broken)
    capsys.readouterr()
    assert main(["validate", str(export_of("fp32"))]) == 1
    assert "a folder of kind 'export', expected 'engines'" in capsys.readouterr().err


def test_killed_build_leaves_nothing_that_looks_built(export_of, tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    cache, out = tmp_path / "cache", tmp_path / "engines"
    command = [sys.executable, "-m", "nvila_edge", "build", str(export_of("fp32")), "-o", str(out), "--target", "rtx",
               "--cache-dir", str(cache), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not list(cache.glob("engines/.llm-*.partial-*")):
        time.sleep(0.002)
    assert proc.poll() is None, "the build ended before the LLM engine started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and not (cache / "engines" / "llm").exists()
    finished = [p for p in cache.glob("engines/*/*.engine")]
    assert {p.name for p in finished} <= {"vision.engine", "projector.engine"}  # complete entries only
    assert all((p.parent / "entry.json").is_file() for p in finished)
    assert build(export_of("fp32"), out, "--target", "rtx", cache=cache) == 0
    assert not list(cache.glob("engines/.*")) and read_manifest(out, "engines", verify_hashes=True)


def edit_manifest(folder, change):
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def corrupt_vision(folder):
    (folder / "vision.onnx").write_bytes(b"not a protobuf" * 100)
    edit_manifest(folder, lambda d: d["graphs"]["vision"].update(sha256=sha256_file(folder / "vision.onnx"), sizes={}))


def longer_model(data):
    for dim in ("seq", "past", "total"):
        data["dims"][dim]["max"] = 2**17


def set_manifest(**fields):
    return lambda folder: edit_manifest(folder, lambda data: data.update(fields))


# case -> (damage to a copy of the export, build options, regular expression the one error line must match)
BAD_INPUT = {
    "truncated onnx": (lambda f: os.truncate(f / "llm.onnx", 1000), ["--target", "cpu"],
                       r"llm\.onnx: 1000 bytes, the manifest says \d+ \(truncated or replaced\)"),
    "unparsable onnx (onnxruntime)": (corrupt_vision, ["--target", "cpu"], r"ONNX Runtime cannot load this graph"),
    "unparsable onnx (tensorrt-rtx)": (corrupt_vision, ["--target", "rtx"],
                                       r"TensorRT-RTX cannot parse this ONNX graph"),
    "other schema version": (set_manifest(schema_version=0), ["--target", "cpu"],
                             r"schema version 0, this nvila-edge reads version \d+"),
    "target typo": (None, ["--target", "orin-nano-8g"],
                    r"unknown target 'orin-nano-8g'; did you mean 'orin-nano-8gb'\?"),
    "fp8 on orin": (set_manifest(precision="fp8"), ["--target", "orin-nx-16gb"],
                    r"cannot run fp8: FP8 needs compute capability 8\.9 or newer"),
    "context over the model's": (None, ["--target", "cpu", "--max-context", 4096],
                                 r"outside this model's range of 2\.\.1024"),
    "context over the target's memory": (
        lambda f: edit_manifest(f, longer_model),
        ["--target", "orin-nano-4gb", "--backend", "onnxruntime", "--max-context", 2**17],
        (r"max context 131072 needs \d+\.\d\d GiB .* but target 'orin-nano-4gb' has 2\.00 GiB for engines; "
         r"use --max-context \d+ or less")),
    "tensorrt-rtx on a jetson": (None, ["--target", "orin-nx-16gb", "--backend", "tensorrt-rtx"],
                                 r"TensorRT-RTX does not run on Jetson"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_writes_nothing(case, export_of, tmp_path, capsys):
    damage, options, message = BAD_INPUT[case]
    if "tensorrt-rtx)" in case:
        pytest.importorskip("tensorrt_rtx_bindings", reason="needs the tensorrt-rtx extra")
    export = tmp_path / "export"
    shutil.copytree(export_of("fp32"), export)
    if damage:
        damage(export)
    cache, out = tmp_path / "cache", tmp_path / "engines"
    capsys.readouterr()
    assert build(export, out, *options, cache=cache) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0]), err[0]
    assert not out.exists() and not list(tmp_path.glob(".engines*"))
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".cache")]
