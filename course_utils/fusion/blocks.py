"""The parts every fusion model shares: an MLP, self-, cross- and gated cross-attention blocks,
the image encoder and the instruction encoder (chapter 05,
"3. Residual, normalisation, and a real block")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_utils.attention import CrossAttention, MultiHeadAttention, padding_mask
from course_utils.fusion.config import FusionConfig
from course_utils.vision import Block as VisionBlock
from course_utils.vision import PatchEmbedding, VisionConfig

# ---- building blocks ------------------------------------------------------------------


class MLP(nn.Sequential):
    """``Linear(d, ratio*d) -> GELU -> Linear(ratio*d, out or d)``, applied to each token.

    Used in chapter 05, "3. Residual, normalisation, and a real block"."""
    def __init__(self, d: int, ratio: int = 2, out: int | None = None):
        super().__init__(nn.Linear(d, ratio * d), nn.GELU(), nn.Linear(ratio * d, out or d))


class SelfAttentionBlock(nn.Module):
    """Pre-norm Transformer block: ``x + attn(LN(x))``, ``x + mlp(LN(x))``; padding masked.

    Used in chapter 05, "4. Four other ways to fuse"."""

    def __init__(self, d: int, heads: int, ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, heads, dropout=dropout)
        self.mlp = MLP(d, ratio)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        key_mask = None if mask is None else padding_mask(mask)  # (B, 1, 1, N)
        x = x + self.attn(self.norm1(x), mask=key_mask, need_weights=False)[0]  # (B, N, D)
        return x + self.mlp(self.norm2(x))  # (B, N, D)


class CrossAttentionBlock(nn.Module):
    """Text tokens read the image: ``x + xattn(LN(x), img)``, then ``x + mlp(LN(x))``.

    Built in chapter 05, "3. Residual, normalisation, and a real block"."""

    def __init__(self, d: int, heads: int, ratio: int = 2, vision_dim: int | None = None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.xattn = CrossAttention(d, heads, vision_dim=vision_dim)
        self.mlp = MLP(d, ratio)

    def forward(self, x: Tensor, image: Tensor, need_weights: bool = False):
        fused, weights = self.xattn(self.norm1(x), image, need_weights=need_weights)  # (B, T, D)
        x = x + fused  # the residual keeps the instruction; attention adds what it read
        x = x + self.mlp(self.norm2(x))  # (B, T, D)
        return (x, weights) if need_weights else x


class GatedCrossAttentionBlock(CrossAttentionBlock):
    """Flamingo's block: ``x + tanh(a_attn) * xattn(LN(x), img)``, ``x + tanh(a_mlp) * mlp(LN(x))``.

    Both gates start at 0, so at initialisation the block is the identity: the language
    path is untouched, and the image is let in gradually as the gates open.

    Introduced in chapter 05, "4. Four other ways to fuse"; built in
    chapter 05, "Exercise 1 — Flamingo's gated cross-attention block (★★☆, ~10 min, 2 points)".
    """

    def __init__(self, d: int, heads: int, ratio: int = 2, vision_dim: int | None = None):
        super().__init__(d, heads, ratio, vision_dim)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.mlp_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, image: Tensor, need_weights: bool = False):
        fused, weights = self.xattn(self.norm1(x), image, need_weights=need_weights)  # (B, T, D)
        x = x + torch.tanh(self.attn_gate) * fused  # (B, T, D)
        x = x + torch.tanh(self.mlp_gate) * self.mlp(self.norm2(x))  # (B, T, D)
        return (x, weights) if need_weights else x


class ImageEncoder(nn.Module):
    """``(B, 3, 48, 48)`` -> ``(B, 9, D)``: one token per 16-px cell, no ``[CLS]``.

    Position = a learned row embedding + a learned column embedding (2-D, so "left of"
    is the same direction on every row), then ``vision_layers`` ViT blocks and a LayerNorm.

    Used in chapter 05, "3. Residual, normalisation, and a real block".
    """

    def __init__(self, cfg: FusionConfig):
        super().__init__()
        vcfg = VisionConfig(image_size=cfg.image_size, patch_size=cfg.patch_size,
                            num_channels=cfg.num_channels, hidden_size=cfg.hidden_size,
                            num_attention_heads=cfg.num_heads,
                            intermediate_size=cfg.mlp_ratio * cfg.hidden_size, layer_norm_eps=1e-5)
        self.grid = cfg.grid
        self.patch = PatchEmbedding(vcfg)
        self.row = nn.Parameter(torch.randn(cfg.grid, 1, cfg.hidden_size) * 0.02)
        self.col = nn.Parameter(torch.randn(1, cfg.grid, cfg.hidden_size) * 0.02)
        self.blocks = nn.ModuleList(VisionBlock(vcfg) for _ in range(cfg.vision_layers))
        self.norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.patch(pixel_values)  # (B, N_img, D), row-major cells
        x = x + (self.row + self.col).flatten(0, 1)  # (N_img, D) broadcast over B
        for block in self.blocks:
            x = block(x)  # (B, N_img, D)
        return self.norm(x)  # (B, N_img, D)


class InstructionEncoder(nn.Module):
    """``input_ids (B, T)`` -> ``(B, T, D)``: embeddings + ``text_layers`` masked blocks.

    Used in chapter 05, "3. Residual, normalisation, and a real block"."""

    def __init__(self, cfg: FusionConfig):
        super().__init__()
        d = cfg.hidden_size
        self.tokens = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.positions = nn.Embedding(cfg.max_length, d)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.text_layers))

    def embed(self, input_ids: Tensor) -> Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.tokens(input_ids) + self.positions(pos)  # (B, T, D)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embed(input_ids)  # (B, T, D)
        for block in self.blocks:
            x = block(x, attention_mask)  # (B, T, D)
        return x


