"""NegCLIP's recipe: contrastive fine-tuning with hard negatives (foils) in the batch.

CLIP's loss asks each image to pick its caption among the batch's captions. Random
captions differ in their words, so a bag of words is enough to win, and the encoder never
learns what the order of the words means (Yuksekgonul et al. 2023). NegCLIP adds, for each
image, a *foil*: its caption with two attributes swapped or a relation reversed. The foils
join the captions as extra columns of the image-to-text softmax, so an image must now
prefer its caption over the same words in another order. The text-to-image direction is
CLIP's, over the true captions only (a foil describes no image in the batch)::

    loss = negclip_loss(image_emb, text_emb, foil_emb, temperature, foil_mask)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["negclip_loss", "foil_accuracy"]


def _check_embeddings(**named: Tensor) -> None:
    shape = None
    for name, t in named.items():
        if not isinstance(t, Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (B, E), got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
        if shape is not None and t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)} like the others")
        shape = t.shape


def negclip_loss(image_emb: Tensor, text_emb: Tensor, foil_emb: Tensor, temperature,
                 foil_mask: Tensor | None = None) -> Tensor:
    """NegCLIP's loss on ``B`` (image, caption, foil) triples of unit vectors ``(B, E)``.

    image -> text: cross-entropy over the ``2B`` columns ``[captions; foils]`` (row ``i``'s
    answer is column ``i``); text -> image: CLIP's, over the ``B`` true captions. The two
    are averaged. ``foil_mask`` (``(B,)`` bool) marks the rows that have a foil; a row
    without one (a scene where no swap changes the words) drops its foil column.

    Built in chapter 11, "6. Hard negatives: NegCLIP's fix"."""
    _check_embeddings(image_emb=image_emb, text_emb=text_emb, foil_emb=foil_emb)
    t = torch.as_tensor(temperature, dtype=image_emb.dtype, device=image_emb.device)
    if t.numel() != 1 or not bool(t.detach() > 0):
        raise ValueError(f"temperature must be one positive number, got {temperature!r}")
    b = image_emb.shape[0]
    if foil_mask is None:
        foil_mask = torch.ones(b, dtype=torch.bool, device=image_emb.device)
    if not isinstance(foil_mask, Tensor) or foil_mask.shape != (b,) or foil_mask.dtype != torch.bool:
        raise ValueError(f"foil_mask must be a bool tensor of shape ({b},)")
    to_texts = image_emb @ text_emb.T / t  # (B, B)
    to_foils = (image_emb @ foil_emb.T / t).masked_fill(~foil_mask[None, :], float("-inf"))  # (B, B)
    target = torch.arange(b, device=image_emb.device)
    image_to_text = F.cross_entropy(torch.cat([to_texts, to_foils], dim=1), target)  # (B, 2B)
    text_to_image = F.cross_entropy(to_texts.T, target)  # each caption picks its image
    return (image_to_text + text_to_image) / 2


def foil_accuracy(image_emb: Tensor, text_emb: Tensor, foil_emb: Tensor) -> float:
    """The fraction of images that score their true text above its foil (chance: 0.5).

    Used in chapter 11, "5. Bags of words, measured"."""
    _check_embeddings(image_emb=image_emb, text_emb=text_emb, foil_emb=foil_emb)
    true = (image_emb * text_emb).sum(-1)  # (N,)
    foil = (image_emb * foil_emb).sum(-1)  # (N,)
    return (true > foil).float().mean().item()
