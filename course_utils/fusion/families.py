"""The five fusion families of chapter 05 behind one interface: cross-attention (the source's
design, corrected), Flamingo's gated cross-attention, LLaVA's projection, BLIP-2's
Q-Former queries, and late fusion."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor, nn

from course_utils.fusion.blocks import (
    MLP,
    CrossAttentionBlock,
    GatedCrossAttentionBlock,
    ImageEncoder,
    InstructionEncoder,
    SelfAttentionBlock,
)
from course_utils.fusion.config import FusionConfig
from course_utils.text import mean_pool
from course_utils.vision import check_pixel_values

# ---- the models ------------------------------------------------------------------------


class FusionModel(nn.Module):
    """What the five models share: the config, the encoders, input checks and the head.

    Introduced in chapter 05, "4. Four other ways to fuse"."""

    kind = ""

    def __init__(self, cfg: FusionConfig, shared_encoders: bool = True):
        super().__init__()
        self.cfg = cfg
        if shared_encoders:
            self.image_encoder = ImageEncoder(cfg)
            self.text_encoder = InstructionEncoder(cfg)
            self.norm = nn.LayerNorm(cfg.hidden_size)
            self.classifier = nn.Linear(cfg.hidden_size, cfg.num_answers)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the model: ``build_model(**model.config)``."""
        return {"kind": self.kind, **asdict(self.cfg)}

    def forward(self, pixel_values: Tensor, input_ids: Tensor,
                attention_mask: Tensor | None = None) -> Tensor:
        attention_mask = self.check_inputs(pixel_values, input_ids, attention_mask)
        return self.fuse(pixel_values, input_ids, attention_mask)  # (B, A)

    def fuse(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        raise NotImplementedError

    def check_inputs(self, pixel_values, input_ids, attention_mask) -> Tensor:
        """Raise ``ValueError`` unless the batch is what the model expects; return the mask."""
        c = self.cfg
        check_pixel_values(pixel_values, c.num_channels, c.patch_size, c.image_size)
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be floating point (normalised), got {pixel_values.dtype}")
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be an integer tensor (B, T), got {got}")
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"batch sizes differ: pixel_values has {pixel_values.shape[0]} images but "
                f"input_ids has {input_ids.shape[0]} instructions; expected one per image")
        if input_ids.shape[1] > c.max_length:
            raise ValueError(f"instructions may have at most max_length={c.max_length} tokens, "
                             f"got {input_ids.shape[1]}")
        if attention_mask is None:
            return (input_ids != c.pad_token_id).long()
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape:
            got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
        if not bool(attention_mask.bool().any(1).all()):
            raise ValueError("every instruction needs at least one real token (attention_mask all 0 in a row)")
        return attention_mask

    def head(self, pooled: Tensor) -> Tensor:
        return self.classifier(self.norm(pooled))  # (B, A)


class CrossAttentionFusion(FusionModel):
    """The source's ``VisualInstructionTuningModel``, corrected (see chapter 05).

    Built in chapter 05, "3. Residual, normalisation, and a real block"."""

    kind = "cross_attention"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.fusion = nn.ModuleList(CrossAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio)
                                    for _ in range(cfg.fusion_layers))

    def fuse(self, pixel_values, input_ids, attention_mask):
        image = self.image_encoder(pixel_values)  # (B, N_img, D)
        x = self.text_encoder(input_ids, attention_mask)  # (B, T, D)
        for block in self.fusion:
            x = block(x, image)  # (B, T, D): each instruction token read the image
        return self.head(mean_pool(x, attention_mask))  # (B, D) -> (B, A)


class GatedCrossAttentionFusion(FusionModel):
    """Flamingo-style: gated cross-attention blocks interleaved with text self-attention.

    With every gate at 0 (as initialised), the logits do not depend on the image at all:
    the model is exactly its text-only path, :meth:`text_only`.

    Introduced in chapter 05, "4. Four other ways to fuse".
    """

    kind = "gated_cross_attention"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.xattn = nn.ModuleList(GatedCrossAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio)
                                   for _ in range(cfg.fusion_layers))
        self.lm = nn.ModuleList(SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
                                for _ in range(cfg.fusion_layers))

    def fuse(self, pixel_values, input_ids, attention_mask):
        image = self.image_encoder(pixel_values)  # (B, N_img, D)
        x = self.text_encoder(input_ids, attention_mask)  # (B, T, D)
        for xattn, lm in zip(self.xattn, self.lm):
            x = xattn(x, image)  # (B, T, D): the gate decides how much image gets in
            x = lm(x, attention_mask)  # (B, T, D): the "language model" layer
        return self.head(mean_pool(x, attention_mask))  # (B, A)

    def text_only(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The same network with every cross-attention block removed: ``(B, A)``."""
        if attention_mask is None:
            attention_mask = (input_ids != self.cfg.pad_token_id).long()
        x = self.text_encoder(input_ids, attention_mask)  # (B, T, D)
        for lm in self.lm:
            x = lm(x, attention_mask)  # (B, T, D)
        return self.head(mean_pool(x, attention_mask))

    def gates(self) -> dict:
        """``tanh`` of every gate: how open each one is (0 = closed)."""
        return {f"layer{i}.{n}": torch.tanh(getattr(b, f"{n}_gate")).item()
                for i, b in enumerate(self.xattn) for n in ("attn", "mlp")}


class LlavaProjectionFusion(FusionModel):
    """LLaVA-style: a projector maps image tokens to the text width; one joint sequence.

    ``[image tokens (N_img); instruction tokens (T)]`` -> ``fusion_layers`` self-attention
    blocks; image tokens are always attended, padding never. (LLaVA's LLM is a causal
    decoder that generates the answer; here an encoder reads it out as a class.)

    Introduced in chapter 05, "4. Four other ways to fuse".
    """

    kind = "llava_projection"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.projector = MLP(d, cfg.mlp_ratio)  # LLaVA-1.5: Linear-GELU-Linear
        self.modality = nn.Parameter(torch.zeros(2, d))  # image / text type embeddings
        self.blocks = nn.ModuleList(SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.fusion_layers))

    def fuse(self, pixel_values, input_ids, attention_mask):
        image = self.projector(self.image_encoder(pixel_values)) + self.modality[0]  # (B, N_img, D)
        text = self.text_encoder(input_ids, attention_mask) + self.modality[1]  # (B, T, D)
        x = torch.cat([image, text], dim=1)  # (B, N_img + T, D)
        image_mask = attention_mask.new_ones(image.shape[:2])  # (B, N_img): always attended
        mask = torch.cat([image_mask, attention_mask], dim=1)  # (B, N_img + T)
        for block in self.blocks:
            x = block(x, mask)  # (B, N_img + T, D)
        return self.head(mean_pool(x, mask))  # (B, A)


class QFormerFusion(FusionModel):
    """BLIP-2-style: K learned queries self-attend and cross-attend to the image, then
    ``[queries (K); instruction (T)]`` goes through ``fusion_layers`` self-attention blocks.

    However many image tokens there are, the rest of the model sees K of them.

    Introduced in chapter 05, "4. Four other ways to fuse".
    """

    kind = "qformer"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, d) * 0.02)
        self.q_self = SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
        self.q_cross = CrossAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio)
        self.blocks = nn.ModuleList(SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.fusion_layers))

    def fuse(self, pixel_values, input_ids, attention_mask):
        image = self.image_encoder(pixel_values)  # (B, N_img, D)
        q = self.queries.expand(image.shape[0], -1, -1)  # (B, K, D)
        q = self.q_cross(self.q_self(q), image)  # (B, K, D): the image, summarised in K tokens
        text = self.text_encoder(input_ids, attention_mask)  # (B, T, D)
        x = torch.cat([q, text], dim=1)  # (B, K + T, D)
        mask = torch.cat([attention_mask.new_ones(q.shape[:2]), attention_mask], dim=1)  # (B, K + T)
        for block in self.blocks:
            x = block(x, mask)  # (B, K + T, D)
        return self.head(mean_pool(x, mask))  # (B, A)


class LateFusion(FusionModel):
    """The baseline: one vector per modality, combined only at the end by an MLP.

    ``[v; t; v * t]`` (concatenation plus the elementwise product) -> MLP -> classifier.
    No instruction token ever looks at a particular image cell.

    Introduced in chapter 05, "4. Four other ways to fuse".
    """

    kind = "late_fusion"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg)
        d = cfg.hidden_size
        self.combine = nn.Sequential(nn.Linear(3 * d, cfg.mlp_ratio * d), nn.GELU(),
                                     nn.Linear(cfg.mlp_ratio * d, d))

    def fuse(self, pixel_values, input_ids, attention_mask):
        v = self.image_encoder(pixel_values).mean(1)  # (B, D): the whole image, pooled
        t = mean_pool(self.text_encoder(input_ids, attention_mask), attention_mask)  # (B, D)
        return self.head(self.combine(torch.cat([v, t, v * t], dim=-1)))  # (B, A)


