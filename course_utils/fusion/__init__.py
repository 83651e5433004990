"""Fusion: where the image meets the instruction (chapter 05's tested reference).

Five small models with one interface, built by :func:`build_model`::

    model = build_model("gated_cross_attention")       # the course's default size
    logits = model(pixel_values, input_ids, attention_mask)   # (B, A)

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

The package: :mod:`~course_utils.fusion.config` (sizes), :mod:`~course_utils.fusion.blocks`
(the shared encoders and attention blocks), :mod:`~course_utils.fusion.families` (the five
families), :mod:`~course_utils.fusion.slot_read` (the relational reader); this module
builds them by name.

Every model shares the same two encoders: :class:`ImageEncoder` (16-px patches of a 48x48
image -> 9 tokens with learned row/column position embeddings, then a ViT block) and
:class:`InstructionEncoder` (token + position embeddings, then Transformer blocks that
respect the attention mask). Bad inputs raise ``ValueError`` saying what was expected.
"""

from __future__ import annotations

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
from course_utils.fusion.config import FusionConfig, make_config
from course_utils.fusion.families import (
    CrossAttentionFusion,
    FusionModel,
    GatedCrossAttentionFusion,
    LateFusion,
    LlavaProjectionFusion,
    QFormerFusion,
)
from course_utils.fusion.slot_read import MiniLMSlotReadFusion, SlotReadFusion, grid_coordinates

__all__ = [
    "KINDS",
    "ALL_KINDS",
    "PRETRAINED_TEXT_KINDS",
    "MINILM_VOCAB",
    "KIND_DEFAULTS",
    "MODELS",
    "FusionConfig",
    "make_config",
    "build_model",
    "trace_shapes",
    "MLP",
    "ImageEncoder",
    "InstructionEncoder",
    "SelfAttentionBlock",
    "CrossAttentionBlock",
    "GatedCrossAttentionBlock",
    "FusionModel",
    "CrossAttentionFusion",
    "GatedCrossAttentionFusion",
    "LlavaProjectionFusion",
    "QFormerFusion",
    "LateFusion",
    "SlotReadFusion",
    "MiniLMSlotReadFusion",
    "grid_coordinates",
]

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


def build_model(kind: str = "cross_attention", **config) -> FusionModel:
    """A fusion model of the given ``kind`` (one of :data:`ALL_KINDS` or :data:`PRETRAINED_TEXT_KINDS`).

    Keyword arguments set :class:`FusionConfig`'s fields; ``vocab_size`` and
    ``num_answers`` are required (``**world.encoding.model_sizes()`` gives the world's).
    ``build_model(**model.config)`` rebuilds a model (e.g. before ``load_checkpoint``).

    Built in chapter 05, "4. Four other ways to fuse".
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
    children and their children, in call order (a forward hook on each).

    Used in chapter 05, "5. Side by side: parameters, latency, shapes"."""
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
