"""Shape of the built-in model: NVILA's architecture at toy widths.

Dynamic-S2 over 64/128 px (tiles of 64 px, 8x8 patches, 4-6 tiles at the top scale), the 2x2 downsample
projector, and a Qwen2 LLM whose linear widths are multiples of 128 so INT4 blocks of 128 fit. Two scales
rather than NVILA's three keep an image at 64-96 visual tokens: a third scale (9-12 tiles) would cost 2.5x
the training compute and make every answer pick its shape out of twice as many tokens. The Lite variant swaps in
NVILA-Lite's dynamic tiling and 3x3 projector.
"""

from __future__ import annotations

from nvila_edge.runtime.presets import NVILA_8B_TOP, QWEN25_7B, SIGLIP_SO400M_448, config_files

VOCAB = 512
TILE = 64

VISION = {**SIGLIP_SO400M_448, "hidden_size": 96, "intermediate_size": 384, "num_hidden_layers": 4,
          "num_attention_heads": 4, "image_size": TILE, "patch_size": 8}
LLM = {**QWEN25_7B, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
       "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": VOCAB, "bos_token_id": None,
       "max_position_embeddings": 2048, "tie_word_embeddings": False}


def builtin_files(variant: str = "nvila") -> dict[str, dict]:
    if variant == "nvila":
        top = {**NVILA_8B_TOP, "s2_scales": "64,128", "s2_max_split_size": TILE, "hidden_size": LLM["hidden_size"],
               "mm_hidden_size": 2 * VISION["hidden_size"], "model_max_length": 1024, "num_video_frames": 8,
               "max_tiles": 6}
        return config_files(top, LLM, VISION, "mlp_downsample")
    if variant == "lite":
        top = {**NVILA_8B_TOP, "dynamic_s2": False, "image_aspect_ratio": "dynamic", "s2_scales": str(TILE),
               "s2_max_split_size": TILE, "hidden_size": LLM["hidden_size"], "mm_hidden_size": VISION["hidden_size"],
               "model_max_length": 1024, "num_video_frames": 8, "max_tiles": 6}
        return config_files(top, LLM, VISION, "mlp_downsample_3x3_fix")
    raise ValueError(f"unknown built-in variant {variant}")
