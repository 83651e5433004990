"""Texts with their foils as tensors, and NegCLIP fine-tuning on them.

Every scene gets three texts, each with its foil (:mod:`course_utils.world.foils`):

=============  ======================================  ==================================
``brief``      its caption                             two objects' colours or sizes
                                                       swapped (which: drawn per scene)
``detailed``   its detailed caption (with places)      two objects' colours swapped
``relation``   "A above B", true of the scene          "B above A"
=============  ======================================  ==================================

A training batch draws a scene and one of its three texts per row; the loss is
:func:`~course_utils.retrieval.negatives.negclip_loss`. A relation row is mirrored half
the time (``finetune(mirror=0.5)``): the image flipped left-right, "left" and "right"
exchanged in its text and foil (:func:`~course_utils.world.augment.flip_left_right`), so
every scene teaches both horizontal relations.
"""

from __future__ import annotations

import json
import math
import random

import torch
from torch import Tensor

from course_utils.retrieval.negatives import negclip_loss
from course_utils.training import adamw
from course_utils.world import encoding
from course_utils.world.augment import flip_left_right
from course_utils.world.descriptions import caption
from course_utils.world.foils import SWAP_KEYS, relation_pair, swapped_caption

__all__ = ["TEXT_KINDS", "foil_texts", "foil_tensors", "finetune"]

#: The three texts of a scene, in the order of :func:`foil_texts`' columns.
TEXT_KINDS: tuple[str, ...] = ("brief", "detailed", "relation")
RELATION = TEXT_KINDS.index("relation")


def foil_texts(scene: dict, rng: random.Random) -> dict:
    """``{kind: (text, foil or None)}`` for the three :data:`TEXT_KINDS` of a scene (a scene
    without a true relation pair gets ``None`` for ``relation``).

    The brief caption's foil trades sizes or colours, drawn per scene (colours when no size
    swap changes the words): 31 of the 45 caption -> image misses of a colour-only NegCLIP
    found the same coloured shapes in other sizes ("a large yellow cross" for "a small one").

    Used in chapter 11, "5. Bags of words, measured"."""
    brief = swapped_caption(scene, rng, key=rng.choice(SWAP_KEYS)) or swapped_caption(scene, rng)
    return {
        "brief": (caption(scene), brief),
        "detailed": (caption(scene, detailed=True), swapped_caption(scene, rng, detailed=True)),
        "relation": relation_pair(scene, rng),
    }


def foil_tensors(split, tokenizer, seed: int = 0, max_length: int = 64) -> dict:
    """A split's images and, per text kind, token ids of texts and foils.

    Returns ``pixel_values (N, 3, H, W)``; ``input_ids`` and ``foil_ids`` ``(3, N, L)``
    (kinds in :data:`TEXT_KINDS` order, padded to ``max_length``); ``mirror_ids`` and
    ``mirror_foil_ids`` ``(N, L)``, the relation and its foil with "left" and "right"
    exchanged (for a mirrored image); ``has_text`` and ``has_foil`` ``(3, N)`` bool (a
    scene may lack a relation or a changing swap). Text without a foil gets its own text as
    foil (masked out by ``has_foil``).

    Used in chapter 11, "6. Hard negatives: NegCLIP's fix"."""
    rng = random.Random(seed)
    rows = [foil_texts(json.loads(s), rng) for s in split["scene"]]
    texts, foils, has_text, has_foil = [], [], [], []
    for kind in TEXT_KINDS:
        pairs = [r[kind] or ("", None) for r in rows]
        has_text.append([bool(p[0]) for p in pairs])
        has_foil.append([p[1] is not None for p in pairs])
        texts.append([p[0] or "." for p in pairs])
        foils.append([p[1] or p[0] or "." for p in pairs])

    def ids(batch):
        enc = tokenizer(batch, padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt")
        return enc["input_ids"]

    return {
        "pixel_values": encoding.normalize_images(encoding.images_to_array(split)),
        "input_ids": torch.stack([ids(t) for t in texts]),  # (3, N, L)
        "foil_ids": torch.stack([ids(f) for f in foils]),  # (3, N, L)
        "mirror_ids": ids([flip_left_right(t) for t in texts[RELATION]]),  # (N, L) relations mirrored
        "mirror_foil_ids": ids([flip_left_right(f) for f in foils[RELATION]]),  # (N, L)
        "has_text": torch.tensor(has_text),  # (3, N)
        "has_foil": torch.tensor(has_foil),  # (3, N)
    }


def _batch(data: dict, gen: torch.Generator, batch_size: int, device,
           weights: Tensor, pad_token_id: int, mirror: float) -> tuple[Tensor, ...]:
    n = data["pixel_values"].shape[0]
    idx = torch.randint(0, n, (4 * batch_size,), generator=gen)
    kind = torch.multinomial(weights, 4 * batch_size, replacement=True, generator=gen)
    keep = data["has_text"][kind, idx]  # rows whose drawn text exists
    idx, kind = idx[keep][:batch_size], kind[keep][:batch_size]
    pixels = data["pixel_values"][idx]  # (B, 3, H, W)
    ids, foil = data["input_ids"][kind, idx], data["foil_ids"][kind, idx]  # (B, L)
    flip = (kind == RELATION) & (torch.rand(len(idx), generator=gen) < mirror)  # (B,)
    pixels[flip] = pixels[flip].flip(-1)  # mirrored left-right, with "left" <-> "right" below
    ids[flip], foil[flip] = data["mirror_ids"][idx[flip]], data["mirror_foil_ids"][idx[flip]]
    # drop the columns that are padding in every row: masked anyway, and a relation is 8
    # tokens of the 64 (right padding, so the kept columns are a prefix)
    used = ((ids != pad_token_id) | (foil != pad_token_id)).any(0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    ids, foil = ids[:, :length], foil[:, :length]  # (B, L')
    return pixels.to(device), ids.to(device), foil.to(device), data["has_foil"][kind, idx].to(device)


def finetune(model, data: dict, steps: int = 1000, batch_size: int = 128, lr: float = 2e-3,
             seed: int = 0, foils: bool = True, pad_token_id: int = 0, progress: bool = False,
             callback=None, every: int = 0, kind_weights=(1.0, 1.0, 1.0),
             mirror: float = 0.0) -> list[float]:
    """NegCLIP fine-tuning: AdamW, warm-up then cosine decay, gradients clipped at 1.

    ``model`` has ``encode_image``, ``encode_text`` and ``temperature`` (a
    :class:`~course_utils.retrieval.model.RetrievalEncoder` or a
    ``pretraining.ContrastiveModel``); ``data`` is :func:`foil_tensors`' output.
    ``foils=False`` trains with CLIP's loss on the same texts (the ablation); ``mirror`` is
    the chance that a relation row is mirrored (image and words). Every ``every``
    steps ``callback(step)`` is called (for a curve). Returns the loss of every step.

    Used in chapter 11, "6. Hard negatives: NegCLIP's fix"."""
    from tqdm.auto import tqdm

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    weights = torch.as_tensor(kind_weights, dtype=torch.float)
    if weights.shape != (len(TEXT_KINDS),) or not bool((weights >= 0).all() and weights.sum() > 0):
        raise ValueError(f"kind_weights must be {len(TEXT_KINDS)} non-negative odds, not all 0, "
                         f"got {kind_weights!r}")
    if isinstance(mirror, bool) or not isinstance(mirror, (int, float)) or not 0 <= mirror <= 1:
        raise ValueError(f"mirror must be a chance in [0, 1], got {mirror!r}")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, steps // 20)
    losses: list[float] = []
    model.train()
    for step in tqdm(range(steps), desc="NegCLIP fine-tuning", disable=not progress, leave=False,
                     mininterval=0.5):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        pixels, ids, foil, has_foil = _batch(data, gen, batch_size, device, weights, pad_token_id, mirror)
        image = model.encode_image(pixels)  # (B, E)
        text = model.encode_text(ids, (ids != pad_token_id).long())  # (B, E)
        foil_emb = model.encode_text(foil, (foil != pad_token_id).long())  # (B, E)
        mask = has_foil if foils else torch.zeros_like(has_foil)
        loss = negclip_loss(image, text, foil_emb, model.temperature, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if callback is not None and every and (step + 1) % every == 0:
            model.eval()
            callback(step + 1)
            model.train()
    model.eval()
    return losses
