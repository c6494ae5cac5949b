"""Checkpoint folders in the published NVILA layout: loading, media tokens, and every broken-folder error."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from nvila_edge.errors import CheckpointError
from nvila_edge.export.checkpoint import load_checkpoint, validate_checkpoint
from nvila_edge.export.random_checkpoint import make_random_checkpoint


def test_layout_is_the_published_one(tiny_checkpoint):
    names = {p.relative_to(tiny_checkpoint).as_posix() for p in tiny_checkpoint.rglob("*") if p.is_file()}
    for required in ("config.json", "llm/config.json", "llm/model.safetensors", "llm/tokenizer.json",
                     "vision_tower/config.json", "vision_tower/preprocessor_config.json",
                     "vision_tower/model.safetensors", "mm_projector/config.json", "mm_projector/model.safetensors"):
        assert required in names
    top = json.loads((tiny_checkpoint / "config.json").read_text())
    assert top["model_type"] == "llava_llama" and "llm_cfg" in top
    vision = load_file(tiny_checkpoint / "vision_tower" / "model.safetensors")
    assert vision["vision_model.encoder.layers.2.mlp.fc1.weight"].dtype == torch.bfloat16
    assert "vision_model.post_layernorm.weight" in vision  # published files keep the unused parts


@pytest.mark.parametrize("fixture", ["tiny_checkpoint", "tiny_lite_checkpoint"])
def test_load_both_variants_and_media_tokens(fixture, request):
    ckpt = load_checkpoint(request.getfixturevalue(fixture))
    tok = ckpt.tokenizer
    base = tok.base_vocab_size
    assert (tok.sentinel_token_id, tok.image_token_id, tok.video_token_id) == (base, base + 1, base + 2)
    rows = ckpt.model.llm.model.embed_tokens.weight.shape[0]
    assert rows == max(len(tok), ckpt.config.llm.vocab_size)
    expected_type = "mlp_downsample" if fixture == "tiny_checkpoint" else "mlp_downsample_3x3_fix"
    assert ckpt.config.projector_type == expected_type


def test_real_size_vocab_resize(tmp_path):
    """A checkpoint whose tokenizer fills the vocabulary (like NVILA's 151648) grows by the 3 media rows."""
    from nvila_edge.export.builtin_tokenizer import save_tokenizer, train_tokenizer
    from nvila_edge.export.checkpoint_writer import random_tensors, write_checkpoint
    from nvila_edge.runtime.presets import preset_files

    files = preset_files("tiny")
    files["llm/config.json"]["vocab_size"] = 300
    out = write_checkpoint(tmp_path / "full", files, random_tensors(0),
                           lambda d: save_tokenizer(train_tokenizer(["red circle", "blue square"] * 50, 300), d))
    ckpt = load_checkpoint(out)
    assert ckpt.model.llm.model.embed_tokens.weight.shape[0] == 303
    assert ckpt.model.llm.lm_head.weight.shape[0] == 303
    assert ckpt.tokenizer.image_token_id == 301


def broken_copy(src, tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    return dst


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


BROKEN = {
    "missing subfolder": (lambda d: shutil.rmtree(d / "mm_projector"), "missing subfolder 'mm_projector/'"),
    "missing config": (lambda d: (d / "vision_tower" / "preprocessor_config.json").unlink(),
                       "missing file 'vision_tower/preprocessor_config.json'"),
    "missing weights": (lambda d: (d / "llm" / "model.safetensors").unlink(), "no weights"),
    "unknown projector": (lambda d: edit_json(d / "mm_projector" / "config.json", mm_projector_type="mlp_magic"),
                          "unknown mm_projector_type 'mlp_magic'"),
    "impossible heads": (lambda d: edit_json(d / "llm" / "config.json", num_key_value_heads=3),
                         "impossible value num_key_value_heads=3"),
    "bad select layer": (lambda d: edit_json(d / "config.json", mm_vision_select_layer=-9),
                         "impossible value mm_vision_select_layer=-9"),
    "config disagrees with tensor": (lambda d: edit_json(d / "vision_tower" / "config.json", intermediate_size=96),
                                     "tensor 'vision_model.encoder.layers.0.mlp.fc1.weight' has shape [128, 64]"),
    "corrupt json": (lambda d: (d / "llm" / "config.json").write_text("{not json"), "not valid JSON"),
    "truncated weights": (lambda d: (d / "mm_projector" / "model.safetensors").write_bytes(b"\x10\x00"),
                          "unreadable safetensors file"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_folder_is_one_clear_line(kind, tiny_checkpoint, tmp_path):
    folder = broken_copy(tiny_checkpoint, tmp_path)
    damage, message = BROKEN[kind]
    damage(folder)
    with pytest.raises(CheckpointError) as err:
        validate_checkpoint(folder)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_tensor_shape_is_named(tiny_checkpoint, tmp_path):
    folder = broken_copy(tiny_checkpoint, tmp_path)
    path = folder / "mm_projector" / "model.safetensors"
    tensors = load_file(path)
    tensors["layers.4.weight"] = torch.zeros(128, 64)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"tensor 'layers.4.weight' has shape \[128, 64\]"):
        validate_checkpoint(folder)


def test_sharded_llm_loads(tmp_path):
    out = make_random_checkpoint(tmp_path / "sharded", "tiny", seed=3, llm_shard_bytes=200_000)
    assert (out / "llm" / "model.safetensors.index.json").is_file()
    assert len(list((out / "llm").glob("model-*-of-*.safetensors"))) > 1
    sharded = load_checkpoint(out).model.llm.state_dict()
    single = load_checkpoint(make_random_checkpoint(tmp_path / "single", "tiny", seed=3)).model.llm.state_dict()
    for name, tensor in single.items():
        torch.testing.assert_close(sharded[name], tensor)
