"""Composed retrieval: a picture plus a change ("this picture, but with the circle blue").

The query is an image embedding and the embedding of an instruction; the answer is the
edited scene's image. A *combiner* turns the two into one query vector, which is searched
like any other against the gallery's image embeddings. Side by side (chapter 11, "7.
Composed retrieval: an image plus a change"):

==================  ==================================================================
``image``           the query image alone: finds the unedited picture itself
``text``            the instruction alone: finds some scene where the change holds
``sum``             ``normalize(image + text)``: no learning, the naive composition
``concat``          an MLP on ``[image; text]``: learns anything, keeps nothing for free
``tirg``            TIRG (Vo et al. 2019): a gate on the image plus a residual,
                    ``w_g * sigmoid(G[image; text]) * image + w_r * R[image; text]``
==================  ==================================================================

Combiners see embeddings only, so they are sized by their caller (``dim``) and never
import the world. :func:`train_combiner` fits one contrastively: each query must pick its
target among the batch's targets and sources; it can also fine-tune the encoder of the
instructions along with it (an encoder trained on captions has never read "move ... down").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.training import adamw, contrastive_temperature

__all__ = ["COMBINERS", "Combiner", "build_combiner", "combiner_loss", "train_combiner"]

#: The combiners, in the chapter's order (the first three have nothing to learn but a scale).
COMBINERS: tuple[str, ...] = ("image", "text", "sum", "concat", "tirg")


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class Combiner(nn.Module):
    """``(image (B, E), text (B, E)) -> query (B, E)``, a unit vector per row.

    ``kind`` is one of :data:`COMBINERS`; ``hidden`` the width of the MLPs of ``concat`` and
    ``tirg``. Every kind has a learnable ``logit_scale`` (the contrastive temperature).

    Built in chapter 11, "7. Composed retrieval: an image plus a change"."""

    def __init__(self, kind: str, dim: int, hidden: int = 256):
        super().__init__()
        if kind not in COMBINERS:
            raise ValueError(f"kind must be one of {COMBINERS}, got {kind!r}")
        for name, value in (("dim", dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.kind, self.dim, self.hidden = kind, dim, hidden
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if kind == "concat":
            self.mlp = _mlp(2 * dim, hidden, dim)
        elif kind == "tirg":
            self.gate = _mlp(2 * dim, hidden, dim)
            self.residual = _mlp(2 * dim, hidden, dim)
            self.weights = nn.Parameter(torch.tensor([1.0, 0.1]))  # (w_gate, w_residual), TIRG's init

    @property
    def config(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "hidden": self.hidden}

    @property
    def temperature(self) -> Tensor:
        return contrastive_temperature(self.logit_scale)  # CLIP's clamped 1 / exp(scale)

    def forward(self, image: Tensor, text: Tensor) -> Tensor:
        if image.dim() != 2 or image.shape != text.shape or image.shape[1] != self.dim:
            raise ValueError(f"image and text must both be (B, {self.dim}), got "
                             f"{tuple(image.shape)} and {tuple(text.shape)}")
        if self.kind == "image":
            out = image
        elif self.kind == "text":
            out = text
        elif self.kind == "sum":
            out = image + text
        elif self.kind == "concat":
            out = self.mlp(torch.cat([image, text], dim=-1))  # (B, E)
        else:  # TIRG: keep the image where the change does not reach it, add what changes
            both = torch.cat([image, text], dim=-1)  # (B, 2E)
            gated = torch.sigmoid(self.gate(both)) * image  # (B, E)
            out = self.weights[0] * gated + self.weights[1] * self.residual(both)
        return F.normalize(out, dim=-1)  # (B, E)


def build_combiner(kind: str, dim: int, hidden: int = 256) -> Combiner:
    """A :class:`Combiner` of ``kind`` (one of :data:`COMBINERS`) for ``dim``-dimensional embeddings.

    Used in chapter 11, "7. Composed retrieval: an image plus a change"."""
    return Combiner(kind, dim, hidden)


def combiner_loss(query: Tensor, target: Tensor, temperature, source: Tensor | None = None) -> Tensor:
    """Each composed query must pick its own target among the batch's targets and, given
    ``source``, the batch's unedited source images too: cross-entropy over
    ``query @ [target; source].T / temperature`` (``(B, E)`` unit rows each).

    Without the sources a combiner can win by staying near its query image (no other
    target is that close) and never learn the change; with them, the source is the hardest
    negative, as a foil is for NegCLIP.

    Used in chapter 11, "7. Composed retrieval: an image plus a change"."""
    columns = target if source is None else torch.cat([target, source])  # (B or 2B, E)
    logits = query @ columns.T / temperature  # (B, B or 2B)
    return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))


def train_combiner(combiner: Combiner, image: Tensor, text, target: Tensor,
                   steps: int = 1000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
                   sources: bool = True, text_encoder=None, progress: bool = False) -> list[float]:
    """Fit a combiner on precomputed ``(N, E)`` embeddings of query images and target images
    (AdamW, warm-up then cosine decay); ``sources`` puts the batch's query images among the
    negatives (:func:`combiner_loss`). ``text`` is ``(N, E)`` instruction embeddings, or,
    with ``text_encoder`` (anything with ``encode_text(input_ids, attention_mask)``), a pair
    ``(input_ids, attention_mask)`` that it embeds, trained along with the combiner.
    Returns the loss of every step.

    Used in chapter 11, "7. Composed retrieval: an image plus a change"."""
    from tqdm.auto import tqdm

    n = image.shape[0]
    text_rows = text[0].shape[0] if text_encoder is not None else text.shape[0]
    if image.shape != target.shape or text_rows != n:
        raise ValueError(f"image, text and target must have one row per edit, got {tuple(image.shape)}, "
                         f"{text_rows} texts and {tuple(target.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if not 1 < batch_size:
        raise ValueError(f"batch_size must be at least 2 (a batch's other targets are the negatives), got {batch_size!r}")
    modules = [combiner] + ([text_encoder] if text_encoder is not None else [])
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = adamw(params, lr)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, steps // 20)
    losses = []
    for m in modules:
        m.train()
    for step in tqdm(range(steps), desc=f"combiner: {combiner.kind}", disable=not progress,
                     leave=False, mininterval=0.5):
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).to(image.device)
        words = text_encoder.encode_text(text[0][idx], text[1][idx]) if text_encoder is not None else text[idx]
        loss = combiner_loss(combiner(image[idx], words), target[idx], combiner.temperature,
                             source=image[idx] if sources else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    for m in modules:
        m.eval()
    return losses
