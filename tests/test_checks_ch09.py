"""Chapter 09's checkers accept the reference solutions and reject realistic mistakes."""

from __future__ import annotations

import pytest
import torch

from course_utils.checks import CheckFailed, StudentCodeError, ch09


def prf(cm):
    cm = cm.double()
    tp, predicted, support = cm.diag(), cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0.0)
    present = (support + predicted) > 0
    return {"precision": precision.float(), "recall": recall.float(), "f1": f1.float(),
            "macro_f1": f1[present].mean().item(), "micro_f1": (tp.sum() / cm.sum()).item()}


def bootstrap(correct, n_boot, level, seed):
    c = torch.as_tensor(correct, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    means = c[torch.randint(0, len(c), (n_boot, len(c)), generator=gen)].mean(1)
    a = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([a, 1 - a], dtype=torch.float64))
    return low.item(), high.item()


def swapped(cm):
    out = prf(cm)
    out["precision"], out["recall"] = out["recall"], out["precision"]
    return out


def macro_is_micro(cm):
    return {**prf(cm), "macro_f1": prf(cm)["micro_f1"]}


def macro_over_all_classes(cm):
    return {**prf(cm), "macro_f1": prf(cm)["f1"].mean().item()}


def divides_by_zero(cm):  # NaN on a class never predicted / absent
    cm = cm.double()
    tp = cm.diag()
    precision, recall = tp / cm.sum(0), tp / cm.sum(1)
    f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision.float(), "recall": recall.float(), "f1": f1.float(),
            "macro_f1": f1.mean().item(), "micro_f1": (tp.sum() / cm.sum()).item()}


def transposed(cm):
    return prf(cm.T)


def without_replacement(correct, n_boot, level, seed):
    c = torch.as_tensor(correct, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    means = torch.stack([c[torch.randperm(len(c), generator=gen)].mean() for _ in range(n_boot)])
    a = (1 - level) / 2
    return torch.quantile(means, a).item(), torch.quantile(means, 1 - a).item()


def ninety_percent(correct, n_boot, level, seed):  # ignores level, always 5 and 95
    return bootstrap(correct, n_boot, 0.90 if level == 0.95 else level - 0.1, seed)


def std_of_data(correct, n_boot, level, seed):  # the spread of the data, not of the mean
    c = torch.as_tensor(correct, dtype=torch.float64)
    m, s = c.mean().item(), c.std().item()
    return m - 1.96 * s, m + 1.96 * s


def unseeded(correct, n_boot, level, seed):
    return bootstrap(correct, n_boot, level, int(torch.randint(0, 10**6, ())))


def test_reference_solutions_pass():
    assert ch09.check_prf_from_confusion(prf) is True
    assert ch09.check_bootstrap(bootstrap) is True


@pytest.mark.parametrize(
    ("check", "wrong", "message"),
    [
        (ch09.check_prf_from_confusion, swapped, "precision equals the reference"),
        (ch09.check_prf_from_confusion, transposed, "precision equals the reference"),
        (ch09.check_prf_from_confusion, macro_is_micro, "equals the micro average"),
        (ch09.check_prf_from_confusion, macro_over_all_classes, "should not count"),
        (ch09.check_prf_from_confusion, divides_by_zero, "NaN"),
        (ch09.check_prf_from_confusion, lambda cm: prf(cm)["f1"], "should be a dict"),
        (ch09.check_bootstrap, without_replacement, "WITH replacement"),
        (ch09.check_bootstrap, ninety_percent, "as wide"),
        (ch09.check_bootstrap, std_of_data, "as wide"),
        (ch09.check_bootstrap, lambda c, n, lv, s: bootstrap(c, n, lv, s)[::-1], "in order"),
        (ch09.check_bootstrap, unseeded, "same seed"),
        (ch09.check_bootstrap, lambda c, n, lv, s: bootstrap(c, n, lv, s)[0], "pair"),
    ],
)
def test_wrong_answers_fail(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


def test_placeholders_are_not_attempted(placeholder, not_attempted):
    not_attempted(ch09.check_prf_from_confusion(placeholder), ch09.check_bootstrap(placeholder),
                  ch09.check_bootstrap(None))


def test_student_bugs_are_reported_as_theirs():
    def buggy(cm):
        return cm.sum(2)

    with pytest.raises(StudentCodeError, match="IndexError"):
        ch09.check_prf_from_confusion(buggy)
