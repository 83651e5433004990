"""The course's metrics agree with scikit-learn and reject bad input clearly."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from course_utils import metrics


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, size=500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 7, size=500))  # class 6: never true
    return y_true, y_pred


def test_accuracy_and_confusion_match_sklearn(labels):
    y_true, y_pred = labels
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=7)
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(y_true, y_pred, labels=range(7)))


def test_precision_recall_f1_match_sklearn(labels):
    y_true, y_pred = labels
    ours = metrics.precision_recall_f1(y_true, y_pred, num_classes=7)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(7), zero_division=0)
    np.testing.assert_allclose(ours["precision"].numpy(), p, atol=1e-6)
    np.testing.assert_allclose(ours["recall"].numpy(), r, atol=1e-6)
    np.testing.assert_allclose(ours["f1"].numpy(), f, atol=1e-6)
    np.testing.assert_array_equal(ours["support"].numpy(), s)
    for avg in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        assert ours[f"{avg}_precision"] == pytest.approx(p)
        assert ours[f"{avg}_recall"] == pytest.approx(r)
        assert ours[f"{avg}_f1"] == pytest.approx(f)


def test_group_accuracy():
    acc = metrics.group_accuracy([0, 1, 1, 0], [0, 1, 0, 1], ["a", "a", "b", "b"])
    assert acc == {"a": 1.0, "b": 0.0}


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(1)
    small = rng.random(100) < 0.8
    large = rng.random(10_000) < 0.8
    m, lo, hi = metrics.bootstrap_ci(small, seed=0)
    assert lo < m < hi
    _, lo2, hi2 = metrics.bootstrap_ci(large, seed=0)
    assert hi2 - lo2 < (hi - lo) / 5
    assert metrics.bootstrap_ci(small, seed=3) == metrics.bootstrap_ci(small, seed=3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.accuracy([0, 1], [0]), "2 labels but y_pred has 1"),
        (lambda: metrics.accuracy(torch.tensor([0.5]), torch.tensor([1])), "integer class ids"),
        (lambda: metrics.confusion_matrix([0, 5], [0, 1], num_classes=3), r"\[0, 3\)"),
        (lambda: metrics.group_accuracy([0], [0], ["a", "b"]), "2 group labels for 1"),
        (lambda: metrics.bootstrap_ci([], n_boot=10), "no examples"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
