"""SigLIP vision tower, truncated at NVILA's select layer (-2): no post-LayerNorm, no pooling head.

Parameter names follow the checkpoint's ``vision_model.*`` keys so real weights load without renaming.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nvila_edge.runtime.config import VisionConfig


class SiglipEmbeddings(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.patch_embedding = nn.Conv2d(cfg.num_channels, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)
        self.position_embedding = nn.Embedding(cfg.grid**2, cfg.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))  # [T, D, g, g]
        x = x.flatten(2).transpose(1, 2)  # [T, g*g, D]
        return x + self.position_embedding.weight


class SiglipAttention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))  # [T, heads, n, hd]
        scores = (q @ k.transpose(-1, -2)) * self.head_dim**-0.5
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
        return self.out_proj(out)


class SiglipMLP(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipLayer(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = SiglipMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(SiglipLayer(cfg) for _ in range(num_layers))


class SiglipVisionModel(nn.Module):
    def __init__(self, cfg: VisionConfig, num_layers: int):
        super().__init__()
        self.embeddings = SiglipEmbeddings(cfg)
        self.encoder = SiglipEncoder(cfg, num_layers)


class VisionTower(nn.Module):
    """pixel_values [T, 3, S, S] in [-1, 1] -> features [T, g*g, D] (output of the last kept layer)."""

    def __init__(self, cfg: VisionConfig, num_layers: int):
        super().__init__()
        self.vision_model = SiglipVisionModel(cfg, num_layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.vision_model.embeddings(pixel_values)
        for layer in self.vision_model.encoder.layers:
            x = layer(x)
        return x
