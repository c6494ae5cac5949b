"""Weightless model presets in the published NVILA config-file layout.

``nvila-8b`` and ``nvila-lite-2b`` carry the real released configs' values (NVILA-Lite-2B's LLM widths are
the stock Qwen2.5-1.5B ones); ``tiny`` and ``tiny-lite`` are scaled-down shapes for tests and benchmarks.
A preset is the dict of config files a checkpoint folder would contain, so ``NvilaConfig.from_files``
parses presets and folders the same way.
"""

from __future__ import annotations

import copy
import json

from nvila_edge.errors import InputError

SIGLIP_SO400M_448 = {
    "architectures": ["SiglipVisionModel"],
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 448,
    "patch_size": 14,
    "num_channels": 3,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
    "vision_use_head": False,
    "torch_dtype": "bfloat16",
}

SIGLIP_PREPROCESSOR = {
    "do_resize": True,
    "size": {"height": 448, "width": 448},
    "resample": 3,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor",
}

QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": None,
    "max_position_embeddings": 32768,
    "sliding_window": None,
    "use_sliding_window": False,
    "tie_word_embeddings": False,
    "vocab_size": 151648,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "torch_dtype": "bfloat16",
}

QWEN25_1_5B = {**QWEN25_7B, "hidden_size": 1536, "intermediate_size": 8960, "num_attention_heads": 12,
               "num_key_value_heads": 2, "tie_word_embeddings": True}

NVILA_8B_TOP = {
    "architectures": ["LlavaLlamaModel"],
    "model_type": "llava_llama",
    "chat_template": None,
    "dynamic_s2": True,
    "s2": False,
    "s2_scales": "448,896,1344",
    "s2_max_split_size": 448,
    "s2_resize_output_to_scale_idx": -1,
    "image_aspect_ratio": "dynamic_s2",
    "fps": 0.0,
    "num_video_frames": 8,
    "hidden_size": 3584,
    "mm_hidden_size": 3456,
    "mm_vision_select_layer": -2,
    "mm_vision_select_feature": "cls_patch",
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": True,
    "model_dtype": "torch.bfloat16",
    "model_max_length": 8192,
    "min_tiles": 1,
    "max_tiles": 12,
}

NVILA_LITE_TOP = {**NVILA_8B_TOP, "dynamic_s2": False, "s2_scales": "448", "image_aspect_ratio": "dynamic",
                  "hidden_size": 1536, "mm_hidden_size": 1152, "model_max_length": 4096}


def config_files(top: dict, llm: dict, vision: dict, projector_type: str) -> dict[str, dict]:
    pre = copy.deepcopy(SIGLIP_PREPROCESSOR)
    pre["size"] = {"height": vision["image_size"], "width": vision["image_size"]}
    return {
        "config.json": copy.deepcopy(top),
        "llm/config.json": copy.deepcopy(llm),
        "vision_tower/config.json": copy.deepcopy(vision),
        "vision_tower/preprocessor_config.json": pre,
        "mm_projector/config.json": {
            "architectures": ["MultimodalProjector"],
            "model_type": "v2l_projector",
            "mm_projector_type": projector_type,
        },
    }


def _tiny(projector_type: str, image_mode: str) -> dict[str, dict]:
    """Random-weight test shape: 64 px tiles of 8x8 patches; LLM widths multiples of 128 (INT4 block)."""
    vision = {**SIGLIP_SO400M_448, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
              "num_attention_heads": 2, "image_size": 64, "patch_size": 8}
    llm = {**QWEN25_7B, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "bos_token_id": None,
           "eos_token_id": 3, "max_position_embeddings": 2048}
    dynamic = image_mode == "dynamic_s2"
    top = {**NVILA_8B_TOP, "dynamic_s2": dynamic, "image_aspect_ratio": image_mode,
           "s2_scales": "64,128,192" if dynamic else "64", "s2_max_split_size": 64, "hidden_size": 128,
           "mm_hidden_size": 64 * (3 if dynamic else 1), "model_max_length": 2048}
    return config_files(top, llm, vision, projector_type)


PRESETS = {
    "nvila-8b": lambda: config_files(NVILA_8B_TOP, QWEN25_7B, SIGLIP_SO400M_448, "mlp_downsample"),
    "nvila-lite-2b": lambda: config_files(NVILA_LITE_TOP, QWEN25_1_5B, SIGLIP_SO400M_448, "mlp_downsample_3x3_fix"),
    "tiny": lambda: _tiny("mlp_downsample", "dynamic_s2"),
    "tiny-lite": lambda: _tiny("mlp_downsample_3x3_fix", "dynamic"),
}


def preset_files(name: str) -> dict[str, dict]:
    """The config files of a preset, fresh copies the caller may edit."""
    if name not in PRESETS:
        raise InputError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS)})")
    return json.loads(json.dumps(PRESETS[name]()))
