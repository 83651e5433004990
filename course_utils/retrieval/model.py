"""The retrieval encoder: chapter 07's dual encoder with pooling that keeps *where* and *who*.

``clip-stage1`` pools both sides by a mean: the image's nine cell tokens and the caption's
word states. A mean keeps which objects and words occur and loses where each object is and
which word plays which role, so "a purple diamond above a green cross" and "a green cross
above a purple diamond" score alike (chapter 11, "5. Bags of words, measured"). This model
keeps the two encoders and changes only the pooling:

* image: one projection per cell, ``cell_proj([h_1; ...; h_9])``: initialised to the mean's
  projection divided by nine, so it starts as exactly ``clip-stage1``'s embedding;
* text: ``num_queries`` learned queries attend over the word states (attention pooling),
  and their readouts are projected together. Random queries weigh each position
  differently from the start, so reversed texts already differ and hard negatives have a
  gradient to follow (zero queries would be a mean, and a saddle).

Sized by its caller: ``RetrievalEncoder(RetrievalConfig(**fusion_config))``, and
:meth:`from_contrastive` starts it from a trained ``pretraining.ContrastiveModel``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.fusion import ImageEncoder, InstructionEncoder, make_config
from course_utils.training import contrastive_temperature

__all__ = ["RetrievalConfig", "RetrievalEncoder"]


@dataclass
class RetrievalConfig:
    """The retrieval encoder's sizes.

    Used in chapter 11, "6. Hard negatives: NegCLIP's fix"."""

    embed_dim: int = 64  # the shared space: both sides' unit vectors have this length
    num_queries: int = 4  # learned queries of the text's attention pooling
    query_std: float = 1.0  # their initial spread (0 would be a plain mean: a saddle)
    fusion: dict = field(default_factory=dict)  # FusionConfig fields of the two encoders

    def __post_init__(self):
        for name in ("embed_dim", "num_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.query_std >= 0:
            raise ValueError(f"query_std must be >= 0, got {self.query_std!r}")


class RetrievalEncoder(nn.Module):
    """``encode_image(pixel_values) -> (B, E)``, ``encode_text(input_ids, mask) -> (B, E)``:
    unit vectors in one space, compared by their inner product.

    Built in chapter 11, "6. Hard negatives: NegCLIP's fix"."""

    def __init__(self, config: RetrievalConfig):
        super().__init__()
        self.config = config
        self.cfg = make_config(**config.fusion)
        d, e, k = self.cfg.hidden_size, config.embed_dim, config.num_queries
        self.image_encoder = ImageEncoder(self.cfg)
        self.text_encoder = InstructionEncoder(self.cfg)
        cells = self.cfg.grid * self.cfg.grid
        self.cell_proj = nn.Linear(cells * d, e, bias=False)  # a projection per cell
        self.queries = nn.Parameter(torch.randn(k, d) * config.query_std)  # (K, D)
        self.query_proj = nn.Linear(k * d, e, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_contrastive(cls, model, num_queries: int = 4, query_std: float = 1.0,
                         text_layers: int | None = None, seed: int = 0,
                         embed_dim: int | None = None) -> RetrievalEncoder:
        """Start from a ``pretraining.ContrastiveModel``: its encoders, and heads that begin as
        its mean-pooled projections (``text_layers`` above the model's adds fresh layers).

        ``embed_dim`` above the model's widens the shared space: the new image dimensions
        start at zero, so images embed exactly as before, and the new text dimensions start
        small and random, so both get a gradient (zeros on both sides would be a saddle).

        Used in chapter 11, "6. Hard negatives: NegCLIP's fix"."""
        fusion = dict(model.fusion_config)
        if text_layers is not None:
            fusion["text_layers"] = text_layers
        old = model.embed_dim
        embed_dim = old if embed_dim is None else embed_dim
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < old:
            raise ValueError(f"embed_dim must be an int of at least the model's {old}, got {embed_dim!r}")
        torch.manual_seed(seed)
        new = cls(RetrievalConfig(embed_dim, num_queries, query_std, fusion))
        new.image_encoder.load_state_dict(model.image_encoder.state_dict())
        new.text_encoder.load_state_dict(model.text_encoder.state_dict(), strict=text_layers is None)
        cells = new.cfg.grid * new.cfg.grid
        with torch.no_grad():
            new.cell_proj.weight.zero_()
            new.cell_proj.weight[:old].copy_(model.image_proj.weight.repeat(1, cells) / cells)
            new.query_proj.weight[old:].mul_(0.1)  # small: the start stays near the model's
            new.query_proj.weight[:old].copy_(model.text_proj.weight.repeat(1, num_queries) / num_queries)
            new.logit_scale.copy_(model.logit_scale)
        return new

    @property
    def temperature(self) -> Tensor:
        return contrastive_temperature(self.logit_scale)  # CLIP's clamped 1 / exp(scale)

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        tokens = self.image_encoder(pixel_values)  # (B, N_img, D)
        return F.normalize(self.cell_proj(tokens.flatten(1)), dim=-1)  # (B, E)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        if attention_mask is None:
            attention_mask = (input_ids != self.cfg.pad_token_id).long()
        words = self.text_encoder(input_ids, attention_mask)  # (B, T, D)
        scores = torch.einsum("kd,btd->bkt", self.queries, words) / math.sqrt(words.shape[-1])
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))  # (B, K, T)
        read = torch.einsum("bkt,btd->bkd", scores.softmax(-1), words)  # (B, K, D)
        return F.normalize(self.query_proj(read.flatten(1)), dim=-1)  # (B, E)

    def forward(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> dict:
        """``{"image_embeds": (B, E), "text_embeds": (B, E), "temperature": ()}``."""
        return {"image_embeds": self.encode_image(pixel_values),
                "text_embeds": self.encode_text(input_ids, attention_mask),
                "temperature": self.temperature}

    def header(self) -> dict:
        """The config as JSON-able values (for a safetensors header)."""
        return asdict(self.config)
