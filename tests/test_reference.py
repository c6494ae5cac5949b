"""The PyTorch reference pipeline on real files: one image, several images, a video file written here."""

import cv2
import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.runtime.image import load_image
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.tiling import count_visual_tokens
from nvila_edge.runtime.video import sample_frames
from nvila_edge.runtime.world.clip import random_clip, render_clip
from nvila_edge.runtime.world.scene import random_scene, render_scene

PARAMS = SamplingParams(max_new_tokens=8)


@pytest.fixture(scope="module", params=["tiny_checkpoint", "tiny_lite_checkpoint"])
def reference(request):
    return ReferencePipeline(load_checkpoint(request.getfixturevalue(request.param)))


def write_png(path, seed, size=(180, 100)):
    image = render_scene(random_scene(np.random.default_rng(seed), width=size[0], height=size[1]))
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_one_image_uses_the_published_token_count(reference, tmp_path):
    image = load_image(write_png(tmp_path / "a.png", 1))
    prepared = reference.prepare(Request("Describe the image.", images=[image]))
    count = count_visual_tokens(reference.config, image.shape[1], image.shape[0])
    assert prepared.visual_tokens == count.visual_tokens
    media_positions = sum(len(item) for item in prepared.items)  # visual tokens + "\n" end embeddings
    lite_text_newlines = len(prepared.items) if reference.config.image_mode == "dynamic" else 0
    assert media_positions + lite_text_newlines == count.llm_positions
    assert len(list(reference.generate(Request("Describe the image.", images=[image]), PARAMS))) > 0


def test_several_images_take_one_tile_each(reference, tmp_path):
    images = [load_image(write_png(tmp_path / f"{i}.png", i)) for i in range(3)]
    prepared = reference.prepare(Request("Compare.", images=images))
    assert prepared.visual_tokens == 3 * reference.config.tokens_per_tile
    assert len(prepared.items) == 3


def test_video_file_written_with_opencv(reference, tmp_path):
    frames = render_clip(random_clip(np.random.default_rng(4), num_frames=12))
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    video = sample_frames(path, 8)
    assert len(video) == 8
    prepared = reference.prepare(Request("Which way does it move?", video=video))
    assert prepared.visual_tokens == 8 * reference.config.tokens_per_tile
    assert len(prepared.items) == 1  # one <vila/video> token carries every frame
    assert len(list(reference.generate(Request("Which way?", video=video), PARAMS))) > 0


def test_sampling_is_seeded(reference):
    image = render_scene(random_scene(np.random.default_rng(9)))
    params = SamplingParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=3)
    first = list(reference.generate(Request("Describe.", images=[image]), params))
    assert first == list(reference.generate(Request("Describe.", images=[image]), params))


def test_context_overflow_names_the_part_that_is_too_long(reference):
    frames = [render_scene(random_scene(np.random.default_rng(s), width=64, height=64)) for s in range(8)]
    reference.decoder.context = 50
    try:
        with pytest.raises(InputError, match=r"needs \d+ positions but the context holds 50: \d+ prompt tokens \+ "
                                             r"\d+ visual tokens \(8 frames\); the visual tokens alone overflow it: "
                                             r"ask about fewer frames"):
            list(reference.generate(Request("Describe.", video=frames), PARAMS))
    finally:
        reference.decoder.context = reference.config.model_max_length


def test_ask_prints_the_streamed_answer_and_its_token_count(tiny_checkpoint, capsys):
    from nvila_edge.cli import main

    assert main(["ask", str(tiny_checkpoint), "--scene", "7", "--max-new-tokens", "8"]) == 0
    out, err = capsys.readouterr()
    reference = ReferencePipeline(load_checkpoint(tiny_checkpoint))
    image = render_scene(random_scene(np.random.default_rng(7)))
    tokens = list(reference.generate(Request("Describe the image.", images=[image]), PARAMS))
    assert out == reference.tokenizer.decode(tokens) + "\n"
    assert f"[{len(tokens)} tokens in " in err
