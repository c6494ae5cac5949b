"""The project's own SigLIP and Qwen2 modules against transformers' implementations on the same weights."""

import pytest
import torch

from nvila_edge.export.modeling.qwen2 import Qwen2ForCausalLM
from nvila_edge.export.modeling.vision import VisionTower
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.presets import preset_files

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def files():
    return preset_files("tiny")


def randomize(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def test_vision_tower_matches_transformers_hidden_state_minus_2(files):
    config = NvilaConfig.from_files(files)
    hf_config = transformers.SiglipVisionConfig(**{k: v for k, v in files["vision_tower/config.json"].items()
                                                   if k not in ("architectures", "torch_dtype")})
    hf = transformers.SiglipVisionModel(hf_config).eval()
    randomize(hf, 0)
    ours = VisionTower(config.vision, config.vision_layers_used).eval()
    # transformers 5 drops the checkpoint's "vision_model." prefix from the module tree; files keep it.
    state = {k if k.startswith("vision_model.") else f"vision_model.{k}": v for k, v in hf.state_dict().items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not missing
    assert all(k.startswith(("vision_model.post_layernorm", f"vision_model.encoder.layers.{config.vision_layers_used}"))
               or k.startswith("vision_model.head") for k in unexpected)
    pixels = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = hf(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        got = ours(pixels)
    assert got.shape == (3, 64, 64)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_qwen2_prefill_and_cached_decode_match_transformers(files):
    config = NvilaConfig.from_files(files)
    llm_files = {k: v for k, v in files["llm/config.json"].items() if k not in ("architectures", "torch_dtype")}
    hf = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**llm_files)).eval()
    randomize(hf, 1)
    ours = Qwen2ForCausalLM(config.llm).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    ids = torch.randint(0, config.llm.vocab_size, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(input_ids=ids).logits  # [1, 12, V]
        embeds = ours.model.embed_tokens(ids)
        past = ours.empty_cache()
        logits, new = ours(embeds[:, :8], torch.arange(8)[None], torch.ones(1, 8, dtype=torch.int64), past)
        torch.testing.assert_close(logits[:, -1], expected[:, 7], rtol=1e-4, atol=1e-4)
        past = new
        for step in range(8, 12):
            logits, new = ours(embeds[:, step:step + 1], torch.tensor([[step]]),
                               torch.ones(1, step + 1, dtype=torch.int64), past)
            past = [(torch.cat((pk, k), 1), torch.cat((pv, v), 1)) for (pk, pv), (k, v) in zip(past, new)]
            torch.testing.assert_close(logits[:, -1], expected[:, step], rtol=1e-4, atol=1e-4)


def test_left_padding_is_masked(files):
    config = NvilaConfig.from_files(files)
    model = Qwen2ForCausalLM(config.llm).eval()
    randomize(model, 3)
    x = torch.randn(1, 5, config.llm.hidden_size)
    padded = torch.cat((torch.randn(1, 3, config.llm.hidden_size), x), dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        plain, _ = model(x, torch.arange(5)[None], torch.ones(1, 5, dtype=torch.int64), model.empty_cache())
        left, _ = model(padded, torch.tensor([[0, 0, 0, 0, 1, 2, 3, 4]]), mask, model.empty_cache())
    torch.testing.assert_close(left, plain, rtol=1e-4, atol=1e-4)
