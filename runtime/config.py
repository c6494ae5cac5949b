"""NVILA model configuration, read from a checkpoint folder's JSON files without torch.

A checkpoint folder has the published NVILA layout: ``config.json`` at the top, ``llm/config.json``
(Qwen2), ``vision_tower/config.json`` + ``preprocessor_config.json`` (SigLIP) and ``mm_projector/config.json``.
The same parser serves weightless presets (``nvila_edge.runtime.presets``), so token accounting and
checkpoint loading agree by construction.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from nvila_edge.errors import CheckpointError

CONFIG_FILES = (
    "config.json",
    "llm/config.json",
    "vision_tower/config.json",
    "vision_tower/preprocessor_config.json",
    "mm_projector/config.json",
)

# mm_projector_type -> space-to-channel factor (see the projector module for the layer stacks).
PROJECTOR_DOWNSAMPLE = {
    "mlp_downsample": 2,
    "mlp_downsample_2x2_fix": 2,
    "mlp_downsample_3x3_fix": 3,
}
IMAGE_MODES = ("dynamic_s2", "dynamic", "resize")


@dataclass(frozen=True)
class VisionConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    image_size: int
    patch_size: int
    layer_norm_eps: float
    num_channels: int = 3

    @property
    def grid(self) -> int:
        """Patch grid side: 448 / 14 = 32 for SigLIP so400m."""
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class LlmConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class NvilaConfig:
    vision: VisionConfig
    llm: LlmConfig
    projector_type: str
    image_mode: str
    s2_scales: tuple[int, ...]
    tile_size: int
    min_tiles: int
    max_tiles: int
    select_layer: int
    num_video_frames: int
    fps: float
    video_pool: int
    model_max_length: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @property
    def downsample(self) -> int:
        return PROJECTOR_DOWNSAMPLE[self.projector_type]

    @property
    def is_dynamic_s2(self) -> bool:
        return self.image_mode == "dynamic_s2"

    @property
    def num_scales(self) -> int:
        return len(self.s2_scales) if self.is_dynamic_s2 else 1

    @property
    def mm_hidden_size(self) -> int:
        """Channels into the projector: vision width x number of S2 scales."""
        return self.vision.hidden_size * self.num_scales

    @property
    def grid_out(self) -> int:
        """Token grid side after space-to-channel; the grid is zero-padded up to a multiple first."""
        return math.ceil(self.vision.grid / self.downsample)

    @property
    def tokens_per_tile(self) -> int:
        return self.grid_out**2

    @property
    def vision_layers_used(self) -> int:
        """Encoder layers that run: select layer -2 of 27 means layers 0..25, i.e. 26."""
        return self.vision.num_hidden_layers + self.select_layer + 1

    @classmethod
    def from_dir(cls, path: str | Path) -> NvilaConfig:
        return cls.from_files(read_config_files(path), source=str(path))

    @classmethod
    def from_files(cls, files: dict[str, dict], source: str = "config") -> NvilaConfig:
        return parse_config(files, source)


def read_config_files(path: str | Path) -> dict[str, dict]:
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a folder; expected an NVILA checkpoint folder "
                              "(config.json, llm/, vision_tower/, mm_projector/)")
    for sub in ("llm", "vision_tower", "mm_projector"):
        if not (root / sub).is_dir():
            raise CheckpointError(f"{root}: missing subfolder '{sub}/'; "
                                  "an NVILA checkpoint has llm/, vision_tower/ and mm_projector/")
    files = {}
    for name in CONFIG_FILES:
        file = root / name
        if not file.is_file():
            raise CheckpointError(f"{root}: missing file '{name}'")
        try:
            files[name] = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{file}: not valid JSON ({err})") from None
    return files


def _get(cfg: dict, key: str, where: str, default=None):
    if key in cfg:
        return cfg[key]
    if default is None:
        raise CheckpointError(f"{where}: missing key '{key}'")
    return default


def require_keys(cfg: dict, keys: tuple[str, ...], where: str) -> None:
    """Every missing key named at once, before anything (weights included) is read with a default instead."""
    missing = [key for key in keys if key not in cfg]
    if missing:
        raise CheckpointError(f"{where}: missing key(s) {', '.join(missing)}; restore the checkpoint's original "
                              "config files")


# Keys whose defaults would silently change the architecture (and later blame a weight's shape).
VISION_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
               "patch_size")
LLM_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
TOP_KEYS = ("image_aspect_ratio", "model_max_length")


def _require(ok: bool, where: str, key: str, value, why: str) -> None:
    if not ok:
        raise CheckpointError(f"{where}: impossible value {key}={value!r} ({why})")


def parse_vision(cfg: dict, where: str) -> VisionConfig:
    require_keys(cfg, VISION_KEYS, where)
    v = VisionConfig(
        hidden_size=int(_get(cfg, "hidden_size", where)),
        intermediate_size=int(_get(cfg, "intermediate_size", where)),
        num_hidden_layers=int(_get(cfg, "num_hidden_layers", where)),
        num_attention_heads=int(_get(cfg, "num_attention_heads", where)),
        image_size=int(_get(cfg, "image_size", where)),
        patch_size=int(_get(cfg, "patch_size", where)),
        layer_norm_eps=float(_get(cfg, "layer_norm_eps", where, 1e-6)),
        num_channels=int(_get(cfg, "num_channels", where, 3)),
    )
    _require(v.patch_size > 0 and v.image_size % v.patch_size == 0, where, "patch_size", v.patch_size,
             f"must divide image_size {v.image_size}")
    _require(v.num_attention_heads > 0 and v.hidden_size % v.num_attention_heads == 0, where,
             "num_attention_heads", v.num_attention_heads, f"must divide hidden_size {v.hidden_size}")
    _require(v.num_hidden_layers > 0, where, "num_hidden_layers", v.num_hidden_layers, "must be positive")
    return v


def parse_llm(cfg: dict, where: str) -> LlmConfig:
    require_keys(cfg, LLM_KEYS, where)
    heads = int(_get(cfg, "num_attention_heads", where))
    eos = cfg.get("eos_token_id")
    llm = LlmConfig(
        hidden_size=int(_get(cfg, "hidden_size", where)),
        intermediate_size=int(_get(cfg, "intermediate_size", where)),
        num_hidden_layers=int(_get(cfg, "num_hidden_layers", where)),
        num_attention_heads=heads,
        num_key_value_heads=int(_get(cfg, "num_key_value_heads", where, heads)),
        vocab_size=int(_get(cfg, "vocab_size", where)),
        rms_norm_eps=float(_get(cfg, "rms_norm_eps", where, 1e-6)),
        rope_theta=float(_get(cfg, "rope_theta", where, 1e6)),
        max_position_embeddings=int(_get(cfg, "max_position_embeddings", where, 32768)),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_id=eos[0] if isinstance(eos, list) else eos,
    )
    _require(heads > 0 and llm.hidden_size % heads == 0, where, "num_attention_heads", heads,
             f"must divide hidden_size {llm.hidden_size}")
    _require(llm.num_key_value_heads > 0 and heads % llm.num_key_value_heads == 0, where,
             "num_key_value_heads", llm.num_key_value_heads, f"must divide num_attention_heads {heads}")
    _require(llm.vocab_size > 0, where, "vocab_size", llm.vocab_size, "must be positive")
    _require(llm.head_dim % 2 == 0, where, "hidden_size", llm.hidden_size, "head_dim must be even for RoPE")
    return llm


def _video_pool(top: dict) -> int:
    """Temporal pooling of NVILA-Video's TSPVideoEncoder (pool_sizes [[8,1,1]]); 1 means none."""
    encoder = top.get("video_encoder")
    if isinstance(encoder, str):
        try:
            encoder = json.loads(encoder)
        except json.JSONDecodeError:
            encoder = None
    if isinstance(encoder, dict) and "TSPVideoEncoder" in str(encoder.get("_target_", "")):
        pools = encoder.get("pool_sizes") or [[8, 1, 1]]
        return int(pools[0][0])
    return 1


def parse_config(files: dict[str, dict], source: str) -> NvilaConfig:
    top = files["config.json"]
    where = f"{source}/config.json"
    dynamic_s2 = top.get("image_aspect_ratio") == "dynamic_s2" or bool(top.get("dynamic_s2"))
    require_keys(top, TOP_KEYS + (("s2_scales",) if dynamic_s2 else ()), where)
    vision = parse_vision(files["vision_tower/config.json"], f"{source}/vision_tower/config.json")
    llm = parse_llm(files["llm/config.json"], f"{source}/llm/config.json")
    proj_where = f"{source}/mm_projector/config.json"
    projector_type = _get(files["mm_projector/config.json"], "mm_projector_type", proj_where)
    if projector_type not in PROJECTOR_DOWNSAMPLE:
        known = ", ".join(PROJECTOR_DOWNSAMPLE)
        raise CheckpointError(f"{proj_where}: unknown mm_projector_type '{projector_type}' (supported: {known})")
    image_mode = top.get("image_aspect_ratio", "resize")
    _require(image_mode in IMAGE_MODES, where, "image_aspect_ratio", image_mode, f"supported: {', '.join(IMAGE_MODES)}")
    tile = int(top.get("s2_max_split_size") or vision.image_size)
    _require(tile == vision.image_size, where, "s2_max_split_size", tile,
             f"must equal the vision tower's image_size {vision.image_size}")
    scales = top.get("s2_scales") or str(tile)
    scales = tuple(int(s) for s in (scales.split(",") if isinstance(scales, str) else scales))
    if image_mode == "dynamic_s2":
        _require(len(scales) >= 2 and scales[0] == tile and all(s % tile == 0 for s in scales)
                 and list(scales) == sorted(scales), where, "s2_scales", ",".join(map(str, scales)),
                 f"ascending multiples of the tile size {tile}, starting at it")
    select_layer = int(top.get("mm_vision_select_layer", -2))
    used = vision.num_hidden_layers + select_layer + 1 if select_layer < 0 else select_layer + 1
    _require(0 < used <= vision.num_hidden_layers, where, "mm_vision_select_layer", select_layer,
             f"the vision tower has {vision.num_hidden_layers} layers")
    min_tiles, max_tiles = int(top.get("min_tiles", 1)), int(top.get("max_tiles", 12))
    _require(1 <= min_tiles <= max_tiles, where, "max_tiles", max_tiles,
             f"needs 1 <= min_tiles ({min_tiles}) <= max_tiles")
    frames = int(top.get("num_video_frames", 8))
    _require(frames > 0, where, "num_video_frames", frames, "must be positive")
    pre = files["vision_tower/preprocessor_config.json"]
    config = NvilaConfig(
        vision=vision,
        llm=llm,
        projector_type=projector_type,
        image_mode=image_mode,
        s2_scales=scales if image_mode == "dynamic_s2" else (tile,),
        tile_size=tile,
        min_tiles=min_tiles,
        max_tiles=max_tiles,
        select_layer=select_layer if select_layer < 0 else select_layer - vision.num_hidden_layers,
        num_video_frames=frames,
        fps=float(top.get("fps", 0.0)),
        video_pool=_video_pool(top),
        model_max_length=int(top.get("model_max_length", llm.max_position_embeddings)),
        image_mean=tuple(float(x) for x in pre.get("image_mean", (0.5, 0.5, 0.5))),
        image_std=tuple(float(x) for x in pre.get("image_std", (0.5, 0.5, 0.5))),
    )
    # mm_hidden_size in config.json is not trusted: like the reference loader we recompute it from the
    # vision width and the number of scales, and the projector weights' shapes are checked against that.
    return config
