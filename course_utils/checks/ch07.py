"""Checkers for chapter 07, pretraining.

Each one runs the student's code on seeded inputs, compares with
:mod:`course_utils.pretraining` and says what is wrong without printing the answer.

* :func:`check_clip_loss` — ``fn(image_features, text_features, temperature)``: CLIP's
  symmetric loss from *raw* (unnormalised) features, a scalar tensor;
* :func:`check_recall_at_k` — ``fn(similarity, k)``: image->text Recall@K from an
  ``(N_images, N_texts)`` similarity matrix whose true pairs lie on the diagonal;
* :func:`check_chance_loss` — a number: the loss of a model that cannot tell the
  captions of a batch of :data:`CHANCE_BATCH` apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_utils.checks.core import call_student, checker, expect_type
from course_utils.pretraining import clip_loss

__all__ = ["check_clip_loss", "check_recall_at_k", "check_chance_loss", "CHANCE_BATCH"]


def _features(n: int, e: int, seed: int, scale: float = 3.0, aligned: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, e, generator=g) * scale  # raw features: rows far from unit length
    txt = torch.randn(n, e, generator=g) * scale * 0.5 + aligned * img
    return img, txt


def _clip_variants(img, txt, t) -> dict:
    """What common mistakes compute."""
    a, b = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = a @ b.T / t
    labels = torch.arange(len(a))
    one_way = F.cross_entropy(logits, labels)
    other_way = F.cross_entropy(logits.T, labels)
    raw = img @ txt.T / t
    times = a @ b.T * t
    return {
        "no normalisation": (F.cross_entropy(raw, labels) + F.cross_entropy(raw.T, labels)) / 2,
        "one direction": one_way,
        "other direction": other_way,
        "sum of directions": one_way + other_way,
        "temperature multiplied": (F.cross_entropy(times, labels) + F.cross_entropy(times.T, labels)) / 2,
        "no temperature": (F.cross_entropy(a @ b.T, labels) + F.cross_entropy((a @ b.T).T, labels)) / 2,
        "labels not the diagonal": (F.cross_entropy(logits, torch.zeros_like(labels))
                                    + F.cross_entropy(logits.T, torch.zeros_like(labels))) / 2,
    }


_CLIP_MESSAGES = {
    "no normalisation": "your loss uses the raw features; CLIP compares directions (cosine "
    "similarity), so each row must have unit length before the dot products",
    "one direction": "your loss only asks 'which caption for this image?' (rows); CLIP's loss is "
    "symmetric: average it with 'which image for this caption?' (columns)",
    "other direction": "your loss only asks 'which image for this caption?' (columns); average it "
    "with the rows' direction too",
    "sum of directions": "your loss adds the two directions; CLIP averages them",
    "temperature multiplied": "your loss multiplies by the temperature; a small temperature must "
    "make the logits larger (sharper softmax)",
    "no temperature": "your loss ignores the temperature argument",
    "labels not the diagonal": "your targets are not the pairs: image i belongs with caption i, "
    "so the right class of row i is i",
}


@checker(
    "Exercise 1: CLIP's contrastive loss from raw features",
    hints=(
        "CLIP compares directions, not lengths: make every feature vector unit length first. "
        "Then row i of the logits asks which caption belongs to image i, and column j which "
        "image belongs to caption j.",
        "Normalise both inputs along the last axis (F.normalize); the (N, N) logits are the "
        "image embeddings times the transposed text embeddings, divided by the temperature (a "
        "smaller temperature must give larger logits); the right class of row i is i. Take "
        "the cross-entropy of the logits and of their transpose, and average the two.",
        'Reread chapter 07, "2. The contrastive loss, from scratch".',
    ),
)
def check_clip_loss(fn):
    """Check Exercise 1: CLIP's symmetric loss computed from raw (unnormalised) features.

    Used in chapter 07, "Exercise 1 — CLIP's loss from raw features (★★☆, ~10 min, 2 points)"."""
    cases = [
        ("8 random pairs, temperature 0.07", *_features(8, 16, 0), 0.07),
        ("5 partly aligned pairs, temperature 0.5", *_features(5, 12, 1, aligned=1.0), 0.5),
        ("12 pairs, temperature 1", *_features(12, 8, 2, aligned=0.5), 1.0),
    ]
    for case, img, txt, t in cases:
        out = call_student(fn, img.clone(), txt.clone(), t)
        expect_type(out, torch.Tensor, f"the loss on case '{case}'")
        if out.numel() != 1:
            raise AssertionError(f"the loss on case '{case}' has shape {tuple(out.shape)}; it "
                                 "should be one number (average over the batch)")
        got = out.detach().float().reshape(())
        if not torch.isfinite(got):
            raise AssertionError(f"the loss on case '{case}' is NaN or inf")
        want = clip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), t)
        if torch.allclose(got, want, atol=1e-4, rtol=1e-4):
            continue
        for name, value in _clip_variants(img, txt, t).items():
            if torch.allclose(got, value, atol=1e-4, rtol=1e-4):
                raise AssertionError(f"on case '{case}': {_CLIP_MESSAGES[name]}")
        raise AssertionError(f"wrong loss on case '{case}' (off by {abs(got - want).item():.3g})")
    # gradients must flow back to the features (no .item(), no detach)
    img, txt = _features(6, 8, 3)
    img.requires_grad_(True)
    out = call_student(fn, img, txt, 0.1)
    if not out.requires_grad:
        raise AssertionError("the loss does not depend on the features through autograd (was "
                             "something detached or converted to a Python number?)")


# ---- Exercise 2 ---------------------------------------------------------------------


def recall_at_k(similarity: torch.Tensor, k: int) -> float:
    """Reference: image->text Recall@K, ties not counted against the true pair.

    Used in chapter 07, "Exercise 2 — Recall@K (★☆☆, ~10 min, 1 point)"."""
    right = similarity.diagonal()
    rank = (similarity > right[:, None]).sum(1)
    return (rank < k).float().mean().item()


def _recall_variants(sim: torch.Tensor, k: int) -> dict:
    right = sim.diagonal()
    rank_rows = (sim > right[:, None]).sum(1)
    rank_cols = (sim > right[None, :]).sum(0)
    return {
        "off by one (k+1)": (rank_rows < k + 1).float().mean().item(),
        "off by one (k-1)": (rank_rows < k - 1).float().mean().item(),
        "wrong axis": (rank_cols < k).float().mean().item(),
        "argmax only": (rank_rows < 1).float().mean().item(),
        "count": float((rank_rows < k).sum().item()),
    }


_RECALL_MESSAGES = {
    "off by one (k+1)": "your Recall@K counts the true caption when it is in the top K+1; check "
    "how you compare its rank (rank 0 = best) with K",
    "off by one (k-1)": "your Recall@K only counts the true caption in the top K-1; check how you "
    "compare its rank (rank 0 = best) with K",
    "wrong axis": "you ranked the images for each caption (columns); image->text ranks the "
    "captions for each image, i.e. along each row",
    "argmax only": "your result does not change with K; Recall@K asks whether the true caption "
    "is among the K best, not only the best",
    "count": "return a fraction of the images (between 0 and 1), not a count",
}


def _similarities():
    g = torch.Generator().manual_seed(7)
    sims = []
    for n, boost in ((10, 1.0), (25, 0.6), (40, 1.5)):
        s = torch.randn(n, n, generator=g) + boost * torch.eye(n)  # (N_img, N_txt), not symmetric
        sims.append(s)
    return sims


@checker(
    "Exercise 2: Recall@K for image->text retrieval",
    hints=(
        "Image->text: for each image (a row), is its own caption (the diagonal entry) among "
        "the k highest scores of that row? Return the fraction of images for which it is.",
        "The rank of the true caption in row i is the number of captions of that row that "
        "score higher than similarity[i, i] (0 = best); it is a hit when that rank is below "
        "k. Ranking down a column answers the other question (text->image). Return a float "
        "between 0 and 1 (torch.topk along the right axis works too).",
        'Reread chapter 07, "5. Retrieval: a caption finds its images".',
    ),
)
def check_recall_at_k(fn):
    """Check Exercise 2: image->text Recall@K of a similarity matrix, as a float.

    Used in chapter 07, "Exercise 2 — Recall@K (★☆☆, ~10 min, 1 point)"."""
    for sim in _similarities():
        n = sim.shape[0]
        for k in (1, 3, 5):
            got = call_student(fn, sim.clone(), k)
            if isinstance(got, torch.Tensor):
                if got.numel() != 1:
                    raise AssertionError(f"return one number, got a tensor of shape {tuple(got.shape)}")
                got = got.item()
            expect_type(got, (float, int), "your Recall@K")
            want = recall_at_k(sim, k)
            if abs(got - want) < 1e-6:
                continue
            for name, value in _recall_variants(sim, k).items():
                if abs(got - value) < 1e-6:
                    raise AssertionError(f"with N={n}, k={k}: {_RECALL_MESSAGES[name]}")
            raise AssertionError(f"wrong Recall@{k} on a {n}x{n} similarity matrix")


# ---- Exercise 3 ---------------------------------------------------------------------

CHANCE_BATCH = 256


@checker(
    "Exercise 3: the loss of a model that knows nothing",
    hints=(
        "If the model cannot tell the captions apart, what probability does its softmax give "
        "each of the CHANCE_BATCH candidates?",
        "Equal logits make the softmax uniform over the N captions. The loss is a "
        "cross-entropy: minus the natural log of the right caption's probability. Both "
        "directions give the same value, and they are averaged, not added.",
        'Reread chapter 07, "2. The contrastive loss, from scratch", on the loss of a model '
        "that cannot tell the captions apart.",
    ),
)
def check_chance_loss(answer):
    """Check Exercise 3: the contrastive loss of a model whose logits are all equal.

    Used in chapter 07, "Exercise 3 — the loss of a model that knows nothing (★☆☆, ~5 min, 1 point)"."""
    if isinstance(answer, torch.Tensor):
        answer = answer.item()
    expect_type(answer, (float, int), "your answer")
    want = math.log(CHANCE_BATCH)
    if abs(answer - want) < 1e-3:
        return
    if abs(answer - 2 * want) < 1e-3:
        raise AssertionError("the two directions are averaged, not added")
    if abs(answer - 1 / CHANCE_BATCH) < 1e-4 or abs(answer - math.log2(CHANCE_BATCH)) < 1e-3:
        raise AssertionError("the loss is a cross-entropy in nats: -ln(probability of the right caption)")
    if abs(answer - math.log(CHANCE_BATCH - 1)) < 1e-3:
        raise AssertionError("the right caption is one of the N candidates too")
    raise AssertionError(f"{answer!r} is not the loss of uniform predictions over a batch of "
                         f"{CHANCE_BATCH}")
