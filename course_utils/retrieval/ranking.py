"""Ranking metrics when a query has several right answers: Recall@K, median rank, mAP, nDCG.

``scores`` is ``(Q, N)``: one row per query, one column per gallery item (a similarity,
higher is better). ``relevance`` is a bool ``(Q, N)`` saying which items are right for
which query; ``gains`` (for nDCG) a non-negative ``(Q, N)`` grade of how right they are.

Every metric but :func:`first_relevant_rank` (and so :func:`median_rank`) reads one
deterministic ranking of each row: scores from high to low, **ties broken by the lower
gallery index** (a stable sort), so a metric never depends on how a sort happened to
order equal scores. On tie-free scores, all of them agree with scikit-learn's
``average_precision_score`` and ``ndcg_score`` (which average over tied items instead).
"""

from __future__ import annotations

import torch
from torch import Tensor

RECALL_MODES = ("hit", "fraction")


# ---- validation ---------------------------------------------------------------------------


def _check_scores(scores) -> Tensor:
    if not isinstance(scores, Tensor):
        raise ValueError(f"scores must be a torch.Tensor of shape (Q, N), got {type(scores).__name__}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (Q, N), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores needs at least one query and one gallery item, got shape {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        row = int(torch.isnan(scores).any(1).nonzero()[0])
        raise ValueError(f"scores contains NaN (first in query {row})")
    return scores.detach()


def _check_same_shape(name: str, values, scores: Tensor) -> None:
    if not isinstance(values, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (Q, N), got {type(values).__name__}")
    if values.dim() != 2:
        raise ValueError(f"{name} must be 2-D (Q, N), got shape {tuple(values.shape)}")
    if values.shape != scores.shape:
        raise ValueError(f"{name} has shape {tuple(values.shape)} but scores has {tuple(scores.shape)}; "
                         "they must match (one entry per query and gallery item)")


def _check_relevance(relevance, scores: Tensor, need_one: bool = True) -> Tensor:
    _check_same_shape("relevance", relevance, scores)
    if relevance.dtype != torch.bool:
        raise ValueError(f"relevance must be a bool tensor (True = a right item), got dtype "
                         f"{relevance.dtype}; for 0/1 values pass relevance.bool()")
    relevance = relevance.detach().to(scores.device)
    if need_one and not relevance.any(1).all():
        row = int((~relevance.any(1)).nonzero()[0])
        raise ValueError(f"relevance: query {row} has no relevant item; this metric needs at "
                         "least one per query (drop such queries first)")
    return relevance


def _check_gains(gains, scores: Tensor) -> Tensor:
    _check_same_shape("gains", gains, scores)
    if gains.is_complex():
        raise ValueError(f"gains must be real, got dtype {gains.dtype}")
    gains = gains.detach().to(scores.device, torch.float64)
    if not torch.isfinite(gains).all():
        raise ValueError("gains must be finite (no NaN or inf)")
    if (gains < 0).any():
        raise ValueError(f"gains must be non-negative, got a minimum of {gains.min().item():g}")
    return gains


def _check_k(name: str, k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"{name} must be an int in [1, N={n}], got {k!r}")
    return k


def _ranked(values: Tensor, scores: Tensor) -> Tensor:
    """``values`` reordered as each row's ranking: scores high to low, ties by lower index."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # (Q, N)
    return values.gather(1, order)


# ---- ranks ------------------------------------------------------------------------------


def first_relevant_rank(scores: Tensor, relevance: Tensor) -> Tensor:
    """The 1-based rank of each query's best-ranked relevant item, ``(Q,)`` int64.

    The rank is 1 + the number of **non-relevant** items that score **strictly higher**
    than the query's best relevant item: ties never count against it, and neither do the
    other relevant items (a query whose five right images fill the top five has rank 1).
    This is the convention of chapter 07's ``pretraining.retrieval_accuracy``, extended to
    several relevant items; it does not use the tie-breaking by index of the other metrics.

    Used in chapter 11, "2. Metrics when several images are right".
    """
    scores = _check_scores(scores)
    relevance = _check_relevance(relevance, scores)
    best = scores.masked_fill(~relevance, float("-inf")).amax(1)  # (Q,) best relevant score
    beaten_by = (scores > best[:, None]) & ~relevance  # (Q, N) non-relevant items above it
    return 1 + beaten_by.sum(1)


def median_rank(scores: Tensor, relevance: Tensor) -> float:
    """The median over queries of :func:`first_relevant_rank`, as CLIP and the retrieval
    papers report it (``MedR``, lower is better).

    With an even number of queries it is the **lower** of the two middle ranks, as
    ``torch.median`` returns (not their mean, as ``numpy.median`` would).

    Used in chapter 11, "2. Metrics when several images are right".
    """
    return float(torch.median(first_relevant_rank(scores, relevance).double()))


# ---- recall ------------------------------------------------------------------------------


def recall_at_k(scores: Tensor, relevance: Tensor, ks=(1, 5, 10), mode: str = "hit") -> dict:
    """Recall@K for each K in ``ks``: ``{"R@1": ..., "R@5": ..., ...}``, floats in [0, 1].

    The top K of a query are its K highest scores, ties broken by the lower gallery index.

    - ``mode="hit"``: the fraction of queries with **at least one** relevant item in their
      top K. This is what CLIP-style image-text papers report as Recall@K.
    - ``mode="fraction"``: the textbook recall of information retrieval, the mean over
      queries of (relevant items in the top K) / (relevant items of the query).

    The two agree when every query has exactly one relevant item, and disagree exactly
    when a query has several: a query with 5 right images and 1 of them in its top 1
    scores 1 in "hit" and 1/5 in "fraction". Published evaluation scripts differ here, so
    a Recall@K is comparable only with the same mode. On tie-free scores, "hit" equals
    ``(first_relevant_rank(scores, relevance) <= K).mean()``.

    Used in chapter 11, "2. Metrics when several images are right".
    """
    scores = _check_scores(scores)
    relevance = _check_relevance(relevance, scores)
    if mode not in RECALL_MODES:
        raise ValueError(f"mode must be one of {RECALL_MODES}, got {mode!r}")
    ks = tuple(ks) if isinstance(ks, list | tuple) else (ks,)
    if not ks:
        raise ValueError("ks must name at least one K")
    n = scores.shape[1]
    for k in ks:
        _check_k("every K in ks", k, n)
    found = _ranked(relevance, scores).cumsum(1)  # (Q, N) relevant items in the top 1..N
    total = relevance.sum(1)  # (Q,)
    out = {}
    for k in ks:
        in_top = found[:, k - 1]  # (Q,)
        per_query = (in_top > 0).double() if mode == "hit" else in_top.double() / total
        out[f"R@{k}"] = per_query.mean().item()
    return out


# ---- average precision ------------------------------------------------------------------


def average_precision(scores: Tensor, relevance: Tensor) -> Tensor:
    """Each query's average precision over its full ranking, ``(Q,)`` float64.

    AP = (1 / R) * sum over the ranks i of the R relevant items of precision@i, the
    area under the query's precision-recall curve. Ties are broken by the lower gallery
    index; on tie-free scores it equals ``sklearn.metrics.average_precision_score``.

    Used in chapter 11, "2. Metrics when several images are right".
    """
    scores = _check_scores(scores)
    relevance = _check_relevance(relevance, scores)
    ranked = _ranked(relevance, scores).double()  # (Q, N) 1.0 where a relevant item sits
    positions = torch.arange(1, ranked.shape[1] + 1, device=ranked.device, dtype=torch.float64)
    precision = ranked.cumsum(1) / positions  # (Q, N) precision@i
    return (precision * ranked).sum(1) / ranked.sum(1)


def mean_average_precision(scores: Tensor, relevance: Tensor) -> float:
    """mAP: the mean over queries of :func:`average_precision`.

    Used in chapter 11, "2. Metrics when several images are right".
    """
    return average_precision(scores, relevance).mean().item()


# ---- graded relevance ------------------------------------------------------------------


def ndcg(scores: Tensor, gains: Tensor, k: int | None = None) -> Tensor:
    """Each query's normalised discounted cumulative gain, ``(Q,)`` float64 in [0, 1].

    DCG@k = sum over the top k ranks i of gain_i / log2(i + 1) (linear gains, not
    ``2**gain - 1``), nDCG = DCG / the DCG of the ideal ordering; ``k=None`` reads the
    whole ranking. A query whose gains are all zero has nDCG 0 (scikit-learn's
    convention). Ties are broken by the lower gallery index; on tie-free scores it equals
    ``sklearn.metrics.ndcg_score`` per query.

    Used in chapter 11, "2. Metrics when several images are right".
    """
    scores = _check_scores(scores)
    gains = _check_gains(gains, scores)
    n = scores.shape[1]
    k = n if k is None else _check_k("k", k, n)
    discount = 1 / torch.log2(torch.arange(2, k + 2, device=gains.device, dtype=torch.float64))
    dcg = (_ranked(gains, scores)[:, :k] * discount).sum(1)  # (Q,)
    ideal = (gains.sort(1, descending=True).values[:, :k] * discount).sum(1)  # (Q,)
    return torch.where(ideal > 0, dcg / ideal.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def mean_ndcg(scores: Tensor, gains: Tensor, k: int | None = None) -> float:
    """The mean over queries of :func:`ndcg` (what ``sklearn.metrics.ndcg_score`` returns).

    Used in chapter 11, "2. Metrics when several images are right".
    """
    return ndcg(scores, gains, k).mean().item()
