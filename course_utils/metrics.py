"""Classification metrics, written out so a student can read them (chapter 09 builds them).

All functions take integer class ids (tensors, arrays or lists) and return plain Python
numbers or tensors. They are cross-checked against scikit-learn in the tests.
"""

from __future__ import annotations

import torch


def _as_long(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype.is_floating_point:
        raise ValueError(f"expected integer class ids, got dtype {t.dtype}")
    return t.long().flatten().cpu()


def _pair(y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor]:
    y_true, y_pred = _as_long(y_true), _as_long(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.numel()} labels but y_pred has {y_pred.numel()}")
    if y_true.numel() == 0:
        raise ValueError("no labels to score")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """The fraction of predictions equal to their labels.

    Introduced in chapter 09, "2. Accuracy is not enough: precision, recall and F1 per answer"."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_true == y_pred).float().mean().item()


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> torch.Tensor:
    """``C[i, j]`` = number of examples of true class ``i`` predicted as ``j``.

    Built in chapter 09, "2. Accuracy is not enough: precision, recall and F1 per answer"."""
    y_true, y_pred = _pair(y_true, y_pred)
    n = num_classes or int(max(y_true.max(), y_pred.max())) + 1
    if int(max(y_true.max(), y_pred.max())) >= n or int(min(y_true.min(), y_pred.min())) < 0:
        raise ValueError(f"class ids must lie in [0, {n})")
    flat = y_true * n + y_pred
    return torch.bincount(flat, minlength=n * n).reshape(n, n)


def precision_recall_f1(y_true, y_pred, num_classes: int | None = None) -> dict:
    """Per-class precision, recall, F1 and support, plus macro and micro averages.

    A class that is never predicted has precision 0 (and one never present, recall 0),
    as scikit-learn does with ``zero_division=0``. Macro averages are over classes that
    occur in ``y_true`` or ``y_pred``; micro averages equal accuracy for single-label data.

    Built in chapter 09, "2. Accuracy is not enough: precision, recall and F1 per answer".
    """
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diag()
    predicted, support = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    present = (support + predicted) > 0
    micro = (tp.sum() / cm.sum()).item()
    return {
        "precision": precision.float(),
        "recall": recall.float(),
        "f1": f1.float(),
        "support": support.long(),
        "macro_precision": precision[present].mean().item(),
        "macro_recall": recall[present].mean().item(),
        "macro_f1": f1[present].mean().item(),
        "micro_precision": micro,
        "micro_recall": micro,
        "micro_f1": micro,
    }


def group_accuracy(y_true, y_pred, groups) -> dict[str, float]:
    """Accuracy within each group (e.g. question family): ``{group: accuracy}``.

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %"."""
    y_true, y_pred = _pair(y_true, y_pred)
    groups = list(groups)
    if len(groups) != y_true.numel():
        raise ValueError(f"{len(groups)} group labels for {y_true.numel()} examples")
    correct = (y_true == y_pred).tolist()
    totals: dict[str, list[int]] = {}
    for g, c in zip(groups, correct):
        totals.setdefault(g, []).append(c)
    return {g: sum(v) / len(v) for g, v in sorted(totals.items())}


def bootstrap_ci(correct, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap confidence interval of the mean of ``correct`` (0/1 per example).

    Returns ``(mean, low, high)``.

    Built in chapter 09, "3. Per-family accuracy, with confidence intervals".
    """
    c = torch.as_tensor(correct, dtype=torch.float64).flatten().cpu()
    if c.numel() == 0:
        raise ValueError("no examples to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, c.numel(), (n_boot, c.numel()), generator=gen)
    means = c[idx].mean(dim=1)
    alpha = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return c.mean().item(), low.item(), high.item()
