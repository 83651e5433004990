"""The fusion models' configuration: :class:`FusionConfig` and its validation."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class FusionConfig:
    """Sizes of a fusion model. The caller fills in what depends on the data: the
    tokenizer's ``vocab_size`` and ``pad_token_id`` and the number of answers
    (``world.encoding.model_sizes()`` gives the world's).

    Introduced in chapter 05, "3. Residual, normalisation, and a real block"."""

    vocab_size: int | None = None  # tokens the instruction encoder embeds (the tokenizer's)
    num_answers: int | None = None  # classes of the answer head
    pad_token_id: int = 0  # the tokenizer's [PAD] id, masked out of attention
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


def make_config(**config) -> FusionConfig:
    """A validated :class:`FusionConfig`. ``vocab_size`` and ``num_answers`` are required
    (the caller knows its data: ``world.encoding.model_sizes()``); unknown fields and bad
    values raise ``ValueError`` naming them.

    Used in chapter 05, "3. Residual, normalisation, and a real block"."""
    known = {f.name for f in fields(FusionConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; known fields: {sorted(known)}")
    missing = [k for k in ("vocab_size", "num_answers") if config.get(k) is None]
    if missing:
        raise ValueError(f"{' and '.join(missing)} must be given: the model is sized for its data "
                         "(pass **course_utils.world.encoding.model_sizes(tokenizer))")
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
