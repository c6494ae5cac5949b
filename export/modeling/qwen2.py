"""Qwen2 decoder over ``inputs_embeds`` with an explicit KV cache, written for clean ONNX export.

Parameter names follow the checkpoint's ``model.*`` / ``lm_head.*`` keys. The cache layout is seq-major,
``[batch, seq, kv_heads, head_dim]``: for batch 1 the first P positions of a preallocated buffer are one
contiguous block, so a runtime can bind ``past`` and ``new`` K/V as views of one buffer without copies.
The graph returns only the new positions' K/V; the caller owns the cache.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nvila_edge.runtime.config import LlmConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """position_ids [B, S] -> cos, sin [B, S, 1, head_dim] (halves duplicated, rotate-half convention)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = position_ids.to(torch.float32)[..., None] * inv_freq  # [B, S, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Qwen2Attention(nn.Module):
    def __init__(self, cfg: LlmConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.heads * self.head_dim)
        self.k_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim)
        self.v_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim)
        self.o_proj = nn.Linear(self.heads * self.head_dim, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        b, s, _ = x.shape
        weights, k = self.attention_weights(x, cos, sin, bias, past_k)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim)
        values = torch.cat((past_v, v), dim=1).transpose(1, 2)  # [B, kv, P+S, hd]
        group = self.heads // self.kv_heads
        out = (weights.view(b, self.kv_heads, group * s, -1) @ values).view(b, self.heads, s, self.head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1)), k, v

    def attention_weights(self, x, cos, sin, bias, past_k):
        """-> softmax weights [B, heads, S, P+S] and this step's rotated keys [B, S, kv, hd]."""
        b, s, _ = x.shape
        q = apply_rope(self.q_proj(x).view(b, s, self.heads, self.head_dim), cos, sin)
        k = apply_rope(self.k_proj(x).view(b, s, self.kv_heads, self.head_dim), cos, sin)
        keys = torch.cat((past_k, k), dim=1).transpose(1, 2)  # [B, kv, P+S, hd]
        group = self.heads // self.kv_heads
        q = q.transpose(1, 2).reshape(b, self.kv_heads, group * s, self.head_dim)  # GQA without repeat_kv
        scores = (q @ keys.transpose(-1, -2)).view(b, self.heads, s, -1) * self.head_dim**-0.5
        return torch.softmax(scores.float() + bias, dim=-1).to(x.dtype), k


class Qwen2MLP(nn.Module):
    def __init__(self, cfg: LlmConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2Layer(nn.Module):
    def __init__(self, cfg: LlmConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Qwen2Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Qwen2MLP(cfg)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        attn, k, v = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


# A large finite value (not -inf) keeps fully padded rows finite, and fits fp16 if a builder casts it.
MASKED = -30000.0


def attention_bias(attention_mask: torch.Tensor, seq_len: int) -> torch.Tensor:
    """attention_mask [B, P+S] (1 = real token) -> additive fp32 bias [B, 1, S, P+S], causal over positions."""
    total = attention_mask.shape[1]
    query_pos = torch.arange(seq_len, device=attention_mask.device) + (total - seq_len)
    key_pos = torch.arange(total, device=attention_mask.device)
    allowed = (key_pos[None, :] <= query_pos[:, None])[None, None] & (attention_mask[:, None, None, :] > 0)
    return (~allowed).to(torch.float32) * MASKED


class Qwen2Model(nn.Module):
    def __init__(self, cfg: LlmConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Qwen2Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Qwen2ForCausalLM(nn.Module):
    def __init__(self, cfg: LlmConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Qwen2Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def empty_cache(self, batch: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (batch, 0, self.cfg.num_key_value_heads, self.cfg.head_dim)
        dtype = self.lm_head.weight.dtype
        return [(torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)) for _ in self.model.layers]

    def hidden_states(self, inputs_embeds, position_ids, attention_mask, past, bias=None):
        """-> final-norm hidden states [B, S, H] and the new K/V per layer ([B, S, kv, hd] each).

        ``bias`` [B, 1, S, P+S] replaces the causal mask built from ``attention_mask`` (training packs several
        questions after one image, each seeing only the image and itself).
        """
        x = inputs_embeds.to(self.lm_head.weight.dtype)
        cos, sin = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)
        if bias is None:
            bias = attention_bias(attention_mask, x.shape[1])
        new = []
        for layer, (past_k, past_v) in zip(self.model.layers, past):
            x, k, v = layer(x, cos, sin, bias, past_k, past_v)
            new.append((k, v))
        return self.model.norm(x), new

    def forward(self, inputs_embeds, position_ids, attention_mask, past):
        """-> logits of the last position [B, 1, V] and the new K/V per layer.

        Only the checkpoint's own vocabulary gets logits: rows added for media tokens are never generated.
        """
        hidden, new = self.hidden_states(inputs_embeds, position_ids, attention_mask, past)
        return F.linear(hidden[:, -1:, :], self.lm_head.weight[: self.cfg.vocab_size]), new
