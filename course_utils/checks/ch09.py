"""Checkers for chapter 09 (evaluation: metrics from a confusion matrix, bootstrap intervals).

Each compares the student's answer with :mod:`course_utils.metrics` on seeded inputs and
says what is wrong without printing the reference values.
"""

from __future__ import annotations

import math

from course_utils.checks.core import call_student, checker, expect_close, expect_type


def _confusion_cases() -> dict:
    import torch

    gen = torch.Generator().manual_seed(9)
    noisy = torch.randint(0, 6, (5, 5), generator=gen) + torch.diag(torch.tensor([40, 3, 25, 8, 60]))
    never_predicted = torch.tensor([[30, 0, 2], [5, 0, 1], [3, 0, 20]])  # class 1: no predictions
    absent = torch.tensor([[12, 0, 3, 0], [0, 0, 0, 0], [4, 0, 9, 0], [1, 0, 0, 0]])  # class 1 absent
    perfect = torch.diag(torch.tensor([7, 1, 12]))
    return {"a noisy 5-class matrix": noisy, "a class that is never predicted": never_predicted,
            "a class absent from labels and predictions": absent, "a perfect classifier": perfect}  # fmt: skip


def _reference_from_confusion(cm):
    import torch

    from course_utils import metrics

    n = cm.shape[0]
    y_true = torch.repeat_interleave(torch.arange(n).repeat_interleave(n), cm.flatten())
    y_pred = torch.repeat_interleave(torch.arange(n).repeat(n), cm.flatten())
    return metrics.precision_recall_f1(y_true, y_pred, n)


@checker(
    "Exercise 1: precision, recall and F1 from a confusion matrix",
    hints=(
        "Rows are the true classes, columns the predictions, so the diagonal holds the "
        "correct decisions. Precision asks: of what was predicted as c, how much is c? "
        "Recall: of what is c, how much was found?",
        "The diagonal gives the true positives; a column sum counts a class's predictions, a "
        "row sum its true examples. Where a denominator is 0 the score is 0: use torch.where "
        "with a clamped denominator, never a bare division. Macro F1 averages the per-class F1 "
        "over the classes that appear in a row or a column; micro F1 pools every decision, so "
        "it is the diagonal's share of all entries.",
        'Reread chapter 09, "2. Accuracy is not enough: precision, recall and F1 per answer".',
    ),
)
def check_prf_from_confusion(fn):
    """Check Exercise 1: per-class precision, recall, F1 and the macro/micro F1 of a confusion matrix.

    Used in chapter 09, "Exercise 1 — Precision, recall and F1 from a confusion matrix (★★☆, ~10 min, 2 points)"."""
    import torch

    for case, cm in _confusion_cases().items():
        out = call_student(fn, cm.clone())
        expect_type(out, dict, f"the result on case '{case}'")
        missing = {"precision", "recall", "f1", "macro_f1", "micro_f1"} - set(out)
        if missing:
            raise AssertionError(f"the result is missing the key(s) {sorted(missing)}")
        ref = _reference_from_confusion(cm)
        p, r = out["precision"], out["recall"]
        if (isinstance(p, torch.Tensor) and isinstance(r, torch.Tensor) and p.shape == r.shape
                and not torch.allclose(p.float(), ref["precision"], atol=1e-4)
                and torch.allclose(p.float(), ref["recall"], atol=1e-4)):  # fmt: skip
            raise AssertionError(
                f"on case '{case}' your precision equals the reference *recall*: precision "
                "divides by what was predicted as the class (a column), recall by what truly is "
                "the class (a row)")
        for key in ("precision", "recall", "f1"):
            expect_close(out[key], ref[key], f"{case}: {key}", atol=1e-4)
        for key in ("macro_f1", "micro_f1"):
            got = out[key]
            expect_type(got, (float, int, torch.Tensor), f"{key} on case '{case}'")
            got = float(got)
            if not math.isfinite(got):
                raise AssertionError(f"{key} on case '{case}' is {got}; guard against dividing by 0")
            if abs(got - ref[key]) > 1e-4:
                extra = ""
                if key == "macro_f1" and abs(got - ref["micro_f1"]) < 1e-4:
                    extra = " (it equals the micro average: macro averages per-class F1 scores)"
                elif key == "macro_f1" and abs(got - ref["f1"].mean().item()) < 1e-4:
                    extra = " (a class with no examples and no predictions should not count)"
                raise AssertionError(f"wrong {key} on case '{case}'{extra}")


def _bootstrap_cases() -> dict:
    import torch

    gen = torch.Generator().manual_seed(90)
    return {
        "200 answers, 80 % correct, 95 % level": ((torch.rand(200, generator=gen) < 0.8).long(), 0.95),
        "120 answers, 60 % correct, 95 % level": ((torch.rand(120, generator=gen) < 0.6).long(), 0.95),
        "300 answers, 90 % correct, 80 % level": ((torch.rand(300, generator=gen) < 0.9).long(), 0.80),
    }


@checker(
    "Exercise 2: a percentile bootstrap confidence interval",
    hints=(
        "The bootstrap resamples the data itself: many resamples of the same size, drawn WITH "
        "replacement, each give one mean; the interval comes from the spread of those means.",
        "Seed a torch.Generator with `seed` and draw all n_boot x len(correct) random indices "
        "at once with torch.randint; index a float copy of the data and take each row's mean. "
        "Return the (1 - level) / 2 and 1 - (1 - level) / 2 quantiles of those means: "
        "torch.quantile takes fractions (0.025), not percents, and needs a float tensor.",
        'Reread chapter 09, "3. Per-family accuracy, with confidence intervals".',
    ),
)
def check_bootstrap(fn):
    """Check Exercise 2: a percentile bootstrap interval ``(low, high)`` of a mean.

    Used in chapter 09, "Exercise 2 — A percentile bootstrap confidence interval (★★☆, ~10 min, 2 points)"."""
    import torch

    from course_utils import metrics

    for case, (correct, level) in _bootstrap_cases().items():
        out = call_student(fn, correct.clone(), 4000, level, 0)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise AssertionError(f"on case '{case}' return a pair (low, high)")
        low, high = (float(v) for v in out)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise AssertionError(f"on case '{case}' the interval is not finite: ({low}, {high})")
        if abs(high - low) < 1e-6:
            raise AssertionError(f"on case '{case}' the interval has zero width: every resample has "
                                 "the same mean. Are you resampling WITH replacement?")
        mean = correct.float().mean().item()
        if not low - 1e-9 <= mean <= high + 1e-9:
            raise AssertionError(f"on case '{case}' the interval ({low:.3f}, {high:.3f}) does not "
                                 f"contain the accuracy {mean:.3f}; return (low, high) in order")
        _, ref_low, ref_high = metrics.bootstrap_ci(correct, n_boot=20_000, level=level, seed=1)
        width, ref_width = high - low, ref_high - ref_low
        if abs(width / ref_width - 1) > 0.1:
            raise AssertionError(
                f"on case '{case}' your interval is {width / ref_width:.0%} as wide as it should be "
                f"for a {level:.0%} interval; check the sampling and which quantiles you take")
        if max(abs(low - ref_low), abs(high - ref_high)) > 0.15 * ref_width:
            raise AssertionError(f"on case '{case}' the interval is shifted; take the quantiles of "
                                 "the resampled means, centred on the data's accuracy")
        again = call_student(fn, correct.clone(), 4000, level, 0)
        if tuple(float(v) for v in again) != (low, high):
            raise AssertionError("two calls with the same seed gave different intervals; seed your "
                                 "generator (torch.Generator().manual_seed(seed))")
    perfect = torch.ones(50, dtype=torch.long)
    low, high = (float(v) for v in call_student(fn, perfect, 500, 0.95, 0))
    if abs(low - 1) > 1e-9 or abs(high - 1) > 1e-9:
        raise AssertionError("when every answer is correct every resample's mean is 1, so the "
                             "percentile interval should be (1.0, 1.0)")
