"""Fusion: where the image meets the instruction (chapter 05's tested reference).

Five small models with one interface, built by :func:`build_model`::

    model = build_model("gated_cross_attention")       # the course's default size
    logits = model(pixel_values, input_ids, attention_mask)   # (B, num_answers)

=========================  ==========================================================
``cross_attention``        the source document's design, corrected: instruction tokens
                           query the image tokens; residual + LayerNorm + MLP; masked
                           mean pooling over real tokens; a classifier
``gated_cross_attention``  Flamingo (Alayrac et al. 2022): ``x + tanh(a) * xattn(x, img)``
                           with ``a = 0`` at init, so the model starts as text only
``llava_projection``       LLaVA (Liu et al. 2023): a projector maps image tokens into the
                           text width; ``[image tokens; instruction]`` is one sequence
``qformer``                BLIP-2 (Li et al. 2023): K learned queries read the image;
                           ``[queries; instruction]`` is one sequence
``late_fusion``            the baseline: pooled image vector and pooled instruction vector
                           meet only in an MLP
=========================  ==========================================================

A sixth kind, ``slot_read`` (:class:`SlotReadFusion`), is not a published family: it is
the design that makes the world's spatial relations learnable (explicit coordinates,
slots read from the instruction, two reads of the grid, pairwise position differences).
``slot_read_minilm`` (:class:`MiniLMSlotReadFusion`) is ``slot_read`` whose words are the
frozen, pretrained all-MiniLM-L6-v2's features (chapter 09: unseen phrasings).

Every model shares the same two encoders: :class:`ImageEncoder` (16-px patches of a 48x48
image -> 9 tokens with learned row/column position embeddings, then a ViT block) and
:class:`InstructionEncoder` (token + position embeddings, then Transformer blocks that
respect the attention mask). Bad inputs raise ``ValueError`` saying what was expected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from course_utils.attention import CrossAttention, MultiHeadAttention, padding_mask
from course_utils.text import mean_pool
from course_utils.vision import Block as VisionBlock
from course_utils.vision import PatchEmbedding, VisionConfig, check_pixel_values

__all__ = [
    "KINDS",
    "FusionConfig",
    "build_model",
    "ImageEncoder",
    "InstructionEncoder",
    "SelfAttentionBlock",
    "CrossAttentionBlock",
    "GatedCrossAttentionBlock",
    "CrossAttentionFusion",
    "GatedCrossAttentionFusion",
    "LlavaProjectionFusion",
    "QFormerFusion",
    "LateFusion",
    "SlotReadFusion",
    "ALL_KINDS",
    "PRETRAINED_TEXT_KINDS",
    "MiniLMSlotReadFusion",
    "trace_shapes",
]


@dataclass
class FusionConfig:
    """Sizes of a fusion model. ``None`` fields come from the data world (:func:`build_model`)."""

    vocab_size: int | None = None  # the world tokenizer's vocabulary
    num_answers: int | None = None  # len(data.answer_vocab())
    pad_token_id: int = 0
    image_size: int = 48
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 64
    num_heads: int = 4
    mlp_ratio: int = 2
    vision_layers: int = 1
    text_layers: int = 1
    fusion_layers: int = 2
    max_length: int = 64
    num_queries: int = 6  # qformer (learned queries); slot_read (slots)
    hops: int = 2  # slot_read only: reads of the grid, each seeing the previous ones
    dropout: float = 0.0
    position_std: float = 1.0  # slot_read only: initial scale of the word-position embeddings

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_image_tokens(self) -> int:
        return self.grid**2


# ---- building blocks ------------------------------------------------------------------


class MLP(nn.Sequential):
    def __init__(self, d: int, ratio: int = 2, out: int | None = None):
        super().__init__(nn.Linear(d, ratio * d), nn.GELU(), nn.Linear(ratio * d, out or d))


class SelfAttentionBlock(nn.Module):
    """Pre-norm Transformer block: ``x + attn(LN(x))``, ``x + mlp(LN(x))``; padding masked."""

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
    """Text tokens read the image: ``x + xattn(LN(x), img)``, then ``x + mlp(LN(x))``."""

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
    """``input_ids (B, T)`` -> ``(B, T, D)``: embeddings + ``text_layers`` masked blocks."""

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


# ---- the models ------------------------------------------------------------------------


class FusionModel(nn.Module):
    """What the five models share: the config, the encoders, input checks and the head."""

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
        return self.fuse(pixel_values, input_ids, attention_mask)  # (B, num_answers)

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
        return self.classifier(self.norm(pooled))  # (B, num_answers)


class CrossAttentionFusion(FusionModel):
    """The source's ``VisualInstructionTuningModel``, corrected (see chapter 05)."""

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
        return self.head(mean_pool(x, attention_mask))  # (B, D) -> (B, num_answers)


class GatedCrossAttentionFusion(FusionModel):
    """Flamingo-style: gated cross-attention blocks interleaved with text self-attention.

    With every gate at 0 (as initialised), the logits do not depend on the image at all:
    the model is exactly its text-only path, :meth:`text_only`.
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
        return self.head(mean_pool(x, attention_mask))  # (B, num_answers)

    def text_only(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The same network with every cross-attention block removed: ``(B, num_answers)``."""
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
        return self.head(mean_pool(x, mask))  # (B, num_answers)


class QFormerFusion(FusionModel):
    """BLIP-2-style: K learned queries self-attend and cross-attend to the image, then
    ``[queries (K); instruction (T)]`` goes through ``fusion_layers`` self-attention blocks.

    However many image tokens there are, the rest of the model sees K of them.
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
        return self.head(mean_pool(x, mask))  # (B, num_answers)


class LateFusion(FusionModel):
    """The baseline: one vector per modality, combined only at the end by an MLP.

    ``[v; t; v * t]`` (concatenation plus the elementwise product) -> MLP -> classifier.
    No instruction token ever looks at a particular image cell.
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
        return self.head(self.combine(torch.cat([v, t, v * t], dim=-1)))  # (B, num_answers)


# ---- a relational reader: explicit coordinates, text-derived slots, two reads -----------


def grid_coordinates(grid: int) -> Tensor:
    """``(grid*grid, 2*grid + 2)``: row one-hot, column one-hot, row and column in [-1, 1]."""
    rows = torch.arange(grid).repeat_interleave(grid)  # row-major cells
    cols = torch.arange(grid).repeat(grid)
    one_hot = torch.cat([nn.functional.one_hot(rows, grid), nn.functional.one_hot(cols, grid)], 1)
    centred = torch.stack([rows, cols], 1).float() / max(1, grid - 1) * 2 - 1
    return torch.cat([one_hot.float(), centred], 1)


class SlotReadFusion(FusionModel):
    """Relations made easy to learn: the model *reads* the grid with explicit coordinates.

    1. A convolutional stem turns each 16-px cell into a token, plus a projection of its
       fixed (row, column) coordinates; a joint Transformer mixes ``[cells; instruction]``.
    2. ``num_queries`` learned slots attend over the instruction tokens: each slot becomes
       a question about one object ("the red circle", "the object left of ...").
    3. Each slot reads the cells (attention over the 9 cells) ``hops`` times; a read returns
       *what* is there, *where* it is (the attention-weighted coordinates) and *how many*
       cells match (a soft count). Later hops see earlier reads, so "left of X" can be
       looked up relative to where X was found.
    4. The head sees the slots, the reads and, for each pair of slots, the differences of
       their positions and counts ("is A left of B" is the sign of a column difference),
       through a question-gated MLP.

    Not one of chapter 05's five families (:data:`KINDS`): a design measured for the data
    world's spatial questions (see chapter 08), built with the same interface.
    """

    kind = "slot_read"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg, shared_encoders=False)
        d, k = cfg.hidden_size, cfg.num_queries
        grid = cfg.grid
        ch = max(8, d // 2)
        self.stem = nn.Sequential(  # (B, 3, H, W) -> (B, d, grid, grid)
            nn.Conv2d(cfg.num_channels, ch, cfg.patch_size // 4, stride=cfg.patch_size // 4),
            nn.GELU(),
            nn.Conv2d(ch, d, 4, stride=4),
        )
        self.stem_norm = nn.LayerNorm(d)
        self.register_buffer("coords", grid_coordinates(grid), persistent=False)  # (N, C)
        n_coord = self.coords.shape[1]
        self.coord_proj = nn.Linear(n_coord, d)
        self.tokens = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.positions = nn.Embedding(cfg.max_length, d)
        # Word order visible from the start (std 1.0, the tokens' scale): "more X than Y"
        # differs from "more Y than X" only in order. At 0.02 the model starts nearly
        # bag-of-words and binds the second noun late and seed-dependently (chapter 08) -- but
        # generalises better to unseen sentence frames (chapter 09).
        nn.init.normal_(self.positions.weight, std=cfg.position_std)
        self.types = nn.Parameter(torch.randn(2, d) * 0.02)  # 0: image cell, 1: word
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.fusion_layers))
        self.norm = nn.LayerNorm(d)
        self.slots = nn.Parameter(torch.randn(k, d) * 0.1)
        self.slot_keys = nn.Linear(d, d)
        read = d + n_coord + 1  # value, coordinates, soft count
        self.read_q = nn.ModuleList(nn.Linear(d + (k * read if h else 0), d) for h in range(cfg.hops))
        self.read_k = nn.ModuleList(nn.Linear(d + n_coord, d) for _ in range(cfg.hops))
        self.read_v = nn.ModuleList(nn.Linear(d, d) for _ in range(cfg.hops))
        self.count_bias = nn.Parameter(torch.zeros(cfg.hops))
        pi, pj = torch.triu_indices(k, k, 1)
        self.register_buffer("pair_i", pi, persistent=False)
        self.register_buffer("pair_j", pj, persistent=False)
        n_pairs = len(pi)
        width = 4 * d
        head_in = k * d + cfg.hops * k * read + d + cfg.hops * n_pairs * 3
        self.hidden = nn.Linear(head_in, width)
        self.gate = nn.Linear(k * d + d, width)
        self.classifier = nn.Linear(width, cfg.num_answers)

    def fuse(self, pixel_values, input_ids, attention_mask):
        return self._fuse(pixel_values, input_ids, attention_mask)[0]

    @torch.no_grad()
    def read_weights(self, pixel_values: Tensor, input_ids: Tensor,
                     attention_mask: Tensor | None = None) -> Tensor:
        """The reads' attention over the cells: ``(B, hops, num_queries, grid*grid)``.

        Row-major cells (cell ``r * grid + c``); each row sums to 1. This is the model's
        cross-attention heatmap: where each slot looked on each hop (chapter 09).
        """
        attention_mask = self.check_inputs(pixel_values, input_ids, attention_mask)
        return torch.stack(self._fuse(pixel_values, input_ids, attention_mask)[1], 1)

    def embed_words(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Instruction tokens as vectors: ``(B, T) -> (B, T, D)``."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.tokens(input_ids) + self.positions(pos) + self.types[1]

    def _fuse(self, pixel_values, input_ids, attention_mask):
        cfg = self.cfg
        n = cfg.grid**2
        cells = self.stem(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D), row-major
        cells = self.stem_norm(cells) + self.coord_proj(self.coords) + self.types[0]
        words = self.embed_words(input_ids, attention_mask)  # (B, T, D)
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], n), attention_mask], 1)
        x = torch.cat([cells, words], 1)  # (B, N + T, D)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        cells, words = x[:, :n], x[:, n:]  # (B, N, D), (B, T, D)
        real = attention_mask.bool()  # (B, T)
        scores = torch.einsum("kd,btd->bkt", self.slots, self.slot_keys(words))
        slots = scores.masked_fill(~real[:, None], float("-inf")).softmax(-1) @ words  # (B, K, D)
        text = mean_pool(words, attention_mask)  # (B, D)
        coords = self.coords.expand(x.shape[0], -1, -1)  # (B, N, C)
        keys_in = torch.cat([cells, coords], -1)  # (B, N, D + C)
        reads, read_weights, previous = [], [], None
        for h in range(cfg.hops):
            query_in = slots if previous is None else torch.cat(
                [slots, previous.flatten(1)[:, None].expand(-1, cfg.num_queries, -1)], -1)
            logits = self.read_q[h](query_in) @ self.read_k[h](keys_in).transpose(1, 2)
            logits = logits / cfg.hidden_size**0.5  # (B, K, N)
            weights = logits.softmax(-1)
            read_weights.append(weights)  # (B, K, N)
            count = torch.sigmoid(logits + self.count_bias[h]).sum(-1, keepdim=True) / cfg.grid
            previous = torch.cat([weights @ self.read_v[h](cells), weights @ coords, count], -1)
            reads.append(previous)  # (B, K, D + C + 1)
        diffs = [(r[:, self.pair_i, -3:] - r[:, self.pair_j, -3:]).flatten(1) for r in reads]
        features = torch.cat([slots.flatten(1), *[r.flatten(1) for r in reads], text, *diffs], 1)
        z = nn.functional.gelu(self.hidden(features))
        z = z * (1 + self.gate(torch.cat([slots.flatten(1), text], 1)))  # question-gated
        return self.classifier(nn.functional.gelu(z)), read_weights  # (B, num_answers)


class MiniLMSlotReadFusion(SlotReadFusion):
    """``slot_read`` whose instruction tokens come from the frozen, pretrained all-MiniLM-L6-v2.

    The only change is :meth:`embed_words`: instead of learned token embeddings, each word
    is MiniLM's contextual feature (384-d, the last layer, frozen, computed once per
    distinct instruction by :func:`course_utils.text.minilm_features`), normalised and
    projected to the model width. ``input_ids`` must come from MiniLM's tokenizer
    (``vocab_size`` 30,522). MiniLM's weights are not part of the state dict; only the
    0.55 M trained parameters are saved. (Adding MiniLM's pooled sentence embedding to every
    word was tried and measured no better on unseen phrasings.)
    """

    kind = "slot_read_minilm"
    text_dim = 384

    def __init__(self, cfg: FusionConfig, features=None):
        super().__init__(cfg)
        from course_utils.text import minilm_features

        del self.tokens  # the vocabulary is MiniLM's; its embeddings stay frozen inside MiniLM
        d = cfg.hidden_size
        self.text_in = nn.Sequential(nn.LayerNorm(self.text_dim), nn.Linear(self.text_dim, d))
        object.__setattr__(self, "features", features or minilm_features())  # not a submodule

    def embed_words(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        feats = self.features(input_ids, attention_mask)  # (B, T, 384), frozen, cached
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.text_in(feats) + self.positions(pos) + self.types[1]  # (B, T, D)


MODELS = {m.kind: m for m in (CrossAttentionFusion, GatedCrossAttentionFusion,
                               LlavaProjectionFusion, QFormerFusion, LateFusion, SlotReadFusion,
                               MiniLMSlotReadFusion)}
#: The five fusion families of chapter 05.
KINDS: tuple[str, ...] = tuple(k for k, m in MODELS.items() if not issubclass(m, SlotReadFusion))
#: The kinds trained from scratch (and raced in chapter 08): the five families and ``slot_read``.
ALL_KINDS: tuple[str, ...] = (*KINDS, "slot_read")
#: Kinds whose instruction encoder is a frozen pretrained model (loaded from its package).
PRETRAINED_TEXT_KINDS: tuple[str, ...] = ("slot_read_minilm",)
#: MiniLM's tokenizer: 30,522 word pieces, [PAD] = 0.
MINILM_VOCAB = {"vocab_size": 30522, "pad_token_id": 0}
#: Per-kind defaults that differ from :class:`FusionConfig`'s. slot_read: six slots rather
#: than four (more chances that one binds the second noun of "more X than Y": compare
#: questions learned by ~1,000 steps on every seed measured).
KIND_DEFAULTS = {"slot_read": {"num_queries": 6, "mlp_ratio": 4},
                 # MiniLM's features already carry word order: small added positions
                 "slot_read_minilm": {"num_queries": 4, "mlp_ratio": 4, "position_std": 0.02,
                                      **MINILM_VOCAB}}


def make_config(**config) -> FusionConfig:
    """A validated :class:`FusionConfig`; ``vocab_size``/``num_answers`` default to the
    data world's tokenizer and answer vocabulary. Unknown fields raise ``ValueError``."""
    known = {f.name for f in fields(FusionConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; known fields: {sorted(known)}")
    if config.get("vocab_size") is None or config.get("num_answers") is None:
        from course_utils import data

        if config.get("vocab_size") is None:
            config["vocab_size"] = len(data.load_tokenizer())
        if config.get("num_answers") is None:
            config["num_answers"] = len(data.answer_vocab())
    cfg = FusionConfig(**config)
    for name in ("vocab_size", "num_answers", "hidden_size", "num_heads", "max_length",
                 "num_queries", "image_size", "patch_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(cfg.position_std, int | float) or not cfg.position_std > 0:
        raise ValueError(f"position_std must be a positive number, got {cfg.position_std!r}")
    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"hidden_size ({cfg.hidden_size}) must be divisible by num_heads ({cfg.num_heads})")
    if cfg.image_size % cfg.patch_size:
        raise ValueError(f"image_size ({cfg.image_size}) must be divisible by patch_size ({cfg.patch_size})")
    return cfg


def build_model(kind: str = "cross_attention", **config) -> FusionModel:
    """A fusion model of the given ``kind`` (one of :data:`ALL_KINDS` or :data:`PRETRAINED_TEXT_KINDS`).

    Keyword arguments override :class:`FusionConfig`'s fields; ``vocab_size`` and
    ``num_answers`` default to the world tokenizer's vocabulary and ``data.answer_vocab()``.
    ``build_model(**model.config)`` rebuilds a model (e.g. before ``load_checkpoint``).
    """
    if kind not in MODELS:
        raise ValueError(f"unknown fusion kind {kind!r}; known kinds: {', '.join(MODELS)}")
    cfg = make_config(**{**KIND_DEFAULTS.get(kind, {}), **config})
    if issubclass(MODELS[kind], SlotReadFusion) and cfg.patch_size % 4:
        raise ValueError(f"slot_read's stem needs patch_size divisible by 4, got {cfg.patch_size}")
    return MODELS[kind](cfg)


# ---- seeing the shapes -----------------------------------------------------------------


def trace_shapes(model: nn.Module, *args, **kwargs) -> list[tuple[str, tuple]]:
    """Run ``model`` once and list ``(submodule name, output shape)`` for its direct
    children and their children, in call order (a forward hook on each)."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if name and name.count(".") <= 1 and not isinstance(module, nn.ModuleList):
            def hook(mod, inp, out, name=name):
                out = out[0] if isinstance(out, tuple) else out
                if isinstance(out, Tensor):
                    rows.append((name, tuple(out.shape)))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    return rows
