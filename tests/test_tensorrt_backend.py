"""The TensorRT backend's own code (engine loading, bindings, profiles, KV-cache addressing, device memory) run
end to end on the emulator, with engines folders that `nvila-edge build` made for orin-nano-8gb."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from trt_emulator import Emulator

from nvila_edge.cli import main
from nvila_edge.errors import ArtifactError, DeviceError, EngineMismatchError, InputError
from nvila_edge.runtime.manifest import engine_build, engine_target, read_manifest
from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.video import sample_frames
from nvila_edge.runtime.world.clip import random_clip, render_clip
from nvila_edge.runtime.world.scene import random_scene, render_scene

SCENES = 20
PARAMS = SamplingParams(max_new_tokens=12)


def scene(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    return render_scene(random_scene(np.random.default_rng(seed), width, height))


def image_file(folder) -> str:
    import cv2

    cv2.imwrite(str(folder / "scene.png"), scene(5)[..., ::-1])
    return str(folder / "scene.png")


def requests() -> list[Request]:
    questions = ["Describe the image.", "What is in the image?", "How many shapes are there?"]
    asked = [Request(questions[seed % 3], [scene(seed, 160 + 40 * (seed % 2), 120)]) for seed in range(SCENES)]
    asked.append(Request("What differs between the pictures?", [scene(100), scene(101)]))
    clip = render_clip(random_clip(np.random.default_rng(7), num_frames=8, width=96, height=96))
    asked.append(Request("What happens in the video?", video=list(clip)))
    return asked


def replace_engine(folder, name: str, data: bytes) -> None:
    """Write ``data`` as graph ``name``'s engine and record its hash, as a build that produced it would: the
    folder check passes and what follows is TensorRT's own verdict on the plan."""
    path = folder / f"{name}.engine"
    path.write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["graphs"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest["graphs"][name].get("sizes", {}).pop(path.name, None)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def answers(folder, asked) -> list[list[int]]:
    with Pipeline.open(folder, threads=2) as pipeline:
        return [pipeline.ask(request, PARAMS).token_ids for request in asked]


@pytest.fixture(scope="module")
def onnxruntime_answers(builtin_exports):
    """The ONNX Runtime backend's answers on the export, once per recipe for both CUDA bindings' runs."""
    made = {}

    def get(recipe: str) -> list[list[int]]:
        if recipe not in made:
            made[recipe] = answers(builtin_exports(recipe), requests())
        return made[recipe]

    return get


@pytest.mark.parametrize("recipe", ["fp16", "int4"])
def test_greedy_tokens_equal_the_onnxruntime_backend(recipe, trt_engines, onnxruntime_answers, emulator):
    engines = trt_engines(recipe)
    target = engine_target(read_manifest(engines, "engines"))
    assert (target.name, target.backend, target.backend_version, target.compute_capability) == \
        ("orin-nano-8gb", "tensorrt", "10.3.0.30", "8.7")
    assert [p.name for p in engine_build(read_manifest(engines, "engines"), "llm").profiles] == ["prefill", "decode"]
    got = answers(engines, requests())
    assert got == onnxruntime_answers(recipe)
    assert sum(len(tokens) >= 2 for tokens in got) >= SCENES // 2  # decode profile steps, not just prefills
    assert emulator.device.executions > 0


def test_last_context_position_works_and_one_more_is_refused(trt_engines, builtin_exports, emulator):
    context = 64
    rows = np.random.default_rng(0).standard_normal((context, 256)).astype(np.float16)
    with Pipeline.open(trt_engines("fp16"), max_context=context) as engines, \
            Pipeline.open(builtin_exports("fp16"), max_context=context, threads=2) as reference:
        for decoder in (engines.decoder, reference.decoder):
            decoder.reset()
        assert np.array_equal(engines.decoder.step(rows[:-1]), reference.decoder.step(rows[:-1]))
        assert np.array_equal(engines.decoder.step(rows[-1:]), reference.decoder.step(rows[-1:]))
        with pytest.raises(InputError, match=f"^{context + 1} positions do not fit the context of {context}$"):
            engines.decoder.step(rows[-1:])
        with pytest.raises(InputError, match=f"but the context holds {context}: .* visual tokens"):
            engines.ask(Request("What shapes are in the picture?", [scene(1, 640, 480)]))


@pytest.mark.parametrize("recipe", ["fp16", "int4"])
def test_validate_passes_and_frees_both_sets_of_runners(recipe, trt_engines, emulator, capsys):
    assert main(["validate", str(trt_engines(recipe)), "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("all 7 checks passed") and "layer precision llm: passed" in out
    if recipe == "int4":
        assert "INT4 layers" in out
    assert emulator.device.leaks() == []


@pytest.mark.parametrize("steps", [200, pytest.param(1000, marks=pytest.mark.slow)])
def test_decode_steps_leave_device_memory_where_it_was(steps, trt_engines, builtin_exports, emulator):
    embed_rows = np.load(builtin_exports("fp16") / "embeddings.npy", mmap_mode="r")
    with Pipeline.open(trt_engines("fp16"), max_context=1024) as pipeline:
        decoder, device = pipeline.decoder, emulator.device
        decoder.reset()
        logits = decoder.step(np.asarray(embed_rows[:3]))
        held = (device.device_bytes, device.pinned_bytes, len(device.live), len(device.streams))
        for step in range(steps):
            logits = decoder.step(np.asarray(embed_rows[int(logits.argmax())])[None])
            if step % 50 == 0:
                assert (device.device_bytes, device.pinned_bytes, len(device.live), len(device.streams)) == held
        assert decoder.length == 3 + steps and np.isfinite(logits).all()
        assert (device.device_bytes, device.pinned_bytes, len(device.live), len(device.streams)) == held
    assert device.leaks() == []


def test_engines_of_another_tensorrt_release_are_refused_with_the_rebuild_command(trt_engines, tmp_path, emulator,
                                                                                  capsys):
    old = tmp_path / "old"
    shutil.copytree(trt_engines("fp16"), old)
    data = json.loads((old / "manifest.json").read_text())
    data["target"]["backend_version"] = "10.16.2.10"
    (old / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT 10\.16\.2\.10; this machine has TensorRT "
                                                  r"10\.3\.0\.30 .*rebuild with: nvila-edge build .* --target "
                                                  r"orin-nano-8gb"):
        Pipeline.open(old)
    assert main(["run", str(old), "--image", image_file(tmp_path)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_engines_for_another_gpu_are_refused_with_the_rebuild_command(trt_engines, monkeypatch):
    thor = Emulator(capability=(11, 0))
    thor.install(monkeypatch)
    with pytest.raises(EngineMismatchError, match=r"compute capability 8\.7 \(target orin-nano-8gb\); this GPU has "
                                                  r"11\.0; rebuild with: nvila-edge build"):
        Pipeline.open(trt_engines("fp16"))
    thor.check_released()


def test_a_plan_the_installed_tensorrt_cannot_load_is_refused(trt_engines, tmp_path, monkeypatch):
    """The manifest says 10.3 but the plan itself came from another release: TensorRT returns no engine."""
    newer = Emulator(version="10.3.0.30")
    newer.install(monkeypatch)
    copy = tmp_path / "copy"
    shutil.copytree(trt_engines("fp16"), copy)
    replace_engine(copy, "vision", (copy / "vision.engine").read_bytes().replace(b"10.3.0.30", b"10.16.0.1"))
    with pytest.raises(EngineMismatchError, match="vision.engine: TensorRT 10.3.0.30 could not load this engine"):
        Pipeline.open(copy)
    newer.check_released()


def test_out_of_device_memory_is_a_device_error_and_frees_what_was_opened(trt_engines, monkeypatch):
    small = Emulator(total_memory=1 << 20)
    small.install(monkeypatch)
    with pytest.raises(DeviceError, match=r"^CUDA cudaMalloc\(\d+\) failed: cudaErrorMemoryAllocation$"):
        Pipeline.open(trt_engines("fp16"))
    small.check_released()


def test_run_answers_through_the_cli(trt_engines, tmp_path, emulator, capsys):
    assert main(["run", str(trt_engines("int4")), "--image", image_file(tmp_path), "--threads", "2",
                 "--max-new-tokens", "8"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() and "TTFT" in captured.err


def test_video_frames_from_a_folder_run_too(trt_engines, tmp_path, emulator):
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(render_clip(random_clip(np.random.default_rng(2), num_frames=8, width=96, height=96))):
        cv2.imwrite(str(frames / f"{i:03d}.png"), frame[..., ::-1])
    with Pipeline.open(trt_engines("fp16"), threads=2) as pipeline:
        video = sample_frames(frames, pipeline.config.num_video_frames, pipeline.config.fps)
        assert pipeline.ask(Request("What happens?", video=video), SamplingParams(max_new_tokens=4)).token_ids


def test_an_empty_engine_file_is_one_line_with_the_fix(trt_engines, tmp_path, emulator):
    copy = tmp_path / "copy"
    shutil.copytree(trt_engines("fp16"), copy)
    replace_engine(copy, "projector", b"")
    with pytest.raises(ArtifactError, match=r"projector\.engine is empty .*rebuild it with `nvila-edge build`"):
        Pipeline.open(copy)
