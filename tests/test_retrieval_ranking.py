"""Chapter 11's ranking metrics: checked against scikit-learn, by hand, and on bad input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, ndcg_score

from course_utils.retrieval import ranking


def random_case(seed: int, queries: int, gallery: int, relevant: int):
    """Tie-free scores and a relevance with ``relevant`` right items per query (not the top)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(queries, gallery, generator=gen, dtype=torch.float64)
    relevance = torch.zeros(queries, gallery, dtype=torch.bool)
    for q in range(queries):
        relevance[q, torch.randperm(gallery, generator=gen)[:relevant]] = True
    gains = torch.randint(0, 4, (queries, gallery), generator=gen).double()
    assert all(len(set(row.tolist())) == gallery for row in scores)  # no ties
    return scores, relevance, gains


CASES = [(0, 6, 20, 3), (1, 12, 50, 5), (2, 4, 9, 1), (3, 8, 30, 12)]


# ---- against scikit-learn ------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "queries", "gallery", "relevant"), CASES)
def test_average_precision_matches_sklearn(seed, queries, gallery, relevant):
    scores, relevance, _ = random_case(seed, queries, gallery, relevant)
    ours = ranking.average_precision(scores, relevance)
    theirs = [average_precision_score(relevance[q].numpy(), scores[q].numpy()) for q in range(queries)]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12)
    assert ranking.mean_average_precision(scores, relevance) == pytest.approx(np.mean(theirs))


@pytest.mark.parametrize(("seed", "queries", "gallery", "relevant"), CASES)
@pytest.mark.parametrize("k", [None, 1, 5])
def test_ndcg_matches_sklearn(seed, queries, gallery, relevant, k):
    scores, _, gains = random_case(seed, queries, gallery, relevant)
    gains[0] = 0.0  # a query with nothing relevant: 0 in both
    per_query = [ndcg_score(gains[q : q + 1].numpy(), scores[q : q + 1].numpy(), k=k) for q in range(queries)]
    np.testing.assert_allclose(ranking.ndcg(scores, gains, k=k).numpy(), per_query, rtol=1e-12)
    assert ranking.mean_ndcg(scores, gains, k=k) == pytest.approx(
        ndcg_score(gains.numpy(), scores.numpy(), k=k), rel=1e-12)
    assert per_query[0] == 0.0


def test_ndcg_uses_linear_gains_and_a_log2_discount():
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    gains = torch.tensor([[0.0, 3.0, 1.0]])
    dcg = 3 / np.log2(3) + 1 / np.log2(4)
    ideal = 3 / np.log2(2) + 1 / np.log2(3)
    assert ranking.ndcg(scores, gains).item() == pytest.approx(dcg / ideal)
    assert ranking.ndcg(scores, gains, k=1).item() == 0.0
    assert ranking.ndcg(scores, gains.int()).item() == pytest.approx(dcg / ideal)  # integer grades


def test_average_precision_by_hand_and_ties_broken_by_index():
    # ranking 0 1 2 3 with items 1 and 3 relevant: (1/2 + 2/4) / 2
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    relevance = torch.tensor([[False, True, False, True]])
    assert ranking.average_precision(scores, relevance).item() == pytest.approx(0.5)
    # all scores tied: the ranking is the index order, so the same AP
    tied = torch.zeros(1, 4)
    assert ranking.average_precision(tied, relevance).item() == pytest.approx(0.5)
    assert ranking.average_precision(tied, relevance.flip(1)).item() == pytest.approx((1 + 2 / 3) / 2)


# ---- recall: hit against fraction ----------------------------------------------------------


def test_hit_and_fraction_recall_differ_with_several_relevant_items():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                           [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])  # fmt: skip
    relevance = torch.tensor([[True, False, True, True, False, False],   # ranks 1, 3, 4
                              [True, False, False, False, False, False]])  # rank 6
    hit = ranking.recall_at_k(scores, relevance, ks=(1, 3, 6), mode="hit")
    fraction = ranking.recall_at_k(scores, relevance, ks=(1, 3, 6), mode="fraction")
    assert hit == pytest.approx({"R@1": 0.5, "R@3": 0.5, "R@6": 1.0})
    assert fraction == pytest.approx({"R@1": (1 / 3) / 2, "R@3": (2 / 3) / 2, "R@6": 1.0})


def test_hit_and_fraction_agree_with_one_relevant_item_each():
    scores, relevance, _ = random_case(5, 10, 15, 1)
    ks = [1, 2, 5]
    hit = ranking.recall_at_k(scores, relevance, ks=ks)
    assert hit == pytest.approx(ranking.recall_at_k(scores, relevance, ks=ks, mode="fraction"))
    ranks = ranking.first_relevant_rank(scores, relevance)
    assert hit == pytest.approx({f"R@{k}": (ranks <= k).double().mean().item() for k in ks})
    assert list(ranking.recall_at_k(scores, relevance, ks=3)) == ["R@3"]


def test_recall_breaks_ties_by_the_lower_index():
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert ranking.recall_at_k(scores, torch.tensor([[True, False, False, False]]), ks=(1,))["R@1"] == 1.0
    assert ranking.recall_at_k(scores, torch.tensor([[False, False, True, False]]), ks=(1, 2, 3)) == {
        "R@1": 0.0, "R@2": 0.0, "R@3": 1.0}


# ---- first relevant rank and median rank ---------------------------------------------------


def test_first_relevant_rank_ignores_ties_and_other_relevant_items():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6],    # relevant 1 and 3: one non-relevant above -> 2
                           [0.5, 0.5, 0.5, 0.1],    # relevant 2 tied with two others -> 1
                           [0.9, 0.8, 0.7, 0.95],   # relevant 0, 1, 2; item 3 above them -> 2
                           [0.1, 0.2, 0.3, 0.4]])   # relevant 0, last -> 4
    relevance = torch.tensor([[False, True, False, True],
                              [False, False, True, False],
                              [True, True, True, False],
                              [True, False, False, False]])  # fmt: skip
    ranks = ranking.first_relevant_rank(scores, relevance)
    assert ranks.dtype == torch.int64 and ranks.tolist() == [2, 1, 2, 4]


def test_first_relevant_rank_matches_chapter_07_on_pairs():
    from course_utils.pretraining import retrieval_accuracy

    gen = torch.Generator().manual_seed(0)
    images, texts = torch.randn(12, 8, generator=gen), torch.randn(12, 8, generator=gen)
    images, texts = torch.nn.functional.normalize(images, dim=-1), torch.nn.functional.normalize(texts, dim=-1)
    ranks = ranking.first_relevant_rank(images @ texts.T, torch.eye(12, dtype=torch.bool))
    chapter_07 = retrieval_accuracy(images, texts, k=(1, 5))
    assert (ranks <= 1).double().mean().item() == pytest.approx(chapter_07["image_to_text@1"])
    assert (ranks <= 5).double().mean().item() == pytest.approx(chapter_07["image_to_text@5"])


def test_median_rank_is_the_lower_median():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.9, 0.1, 0.5], [0.1, 0.5, 0.9], [0.5, 0.9, 0.1]])
    relevance = torch.tensor([[True, False, False]] * 4)  # ranks 3, 1, 3, 2
    assert ranking.first_relevant_rank(scores, relevance).tolist() == [3, 1, 3, 2]
    assert ranking.median_rank(scores, relevance) == 2.0  # lower of 2 and 3
    assert ranking.median_rank(scores[:3], relevance[:3]) == 3.0


# ---- bad input ------------------------------------------------------------------------------


GOOD_SCORES = torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
GOOD_RELEVANCE = torch.tensor([[True, False, False], [False, True, True]])


@pytest.mark.parametrize(
    ("scores", "relevance", "message"),
    [
        ([[0.1, 0.2]], GOOD_RELEVANCE, "scores must be a torch.Tensor"),
        (torch.rand(3), GOOD_RELEVANCE, r"scores must be 2-D"),
        (torch.ones(2, 3, dtype=torch.long), GOOD_RELEVANCE, "scores must be a floating-point"),
        (torch.ones(0, 3), torch.ones(0, 3, dtype=torch.bool), "at least one query"),
        (torch.tensor([[0.1, 0.2, 0.3], [0.1, float("nan"), 0.3]]), GOOD_RELEVANCE, r"NaN \(first in query 1\)"),
        (GOOD_SCORES, GOOD_RELEVANCE[:, :2], r"relevance has shape \(2, 2\) but scores has \(2, 3\)"),
        (GOOD_SCORES, GOOD_RELEVANCE[0], "relevance must be 2-D"),
        (GOOD_SCORES, GOOD_RELEVANCE.tolist(), "relevance must be a torch.Tensor"),
        (GOOD_SCORES, GOOD_RELEVANCE.int(), "relevance must be a bool tensor"),
        (GOOD_SCORES, torch.tensor([[True, False, False], [False] * 3]), "query 1 has no relevant item"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "metric",
    [ranking.first_relevant_rank, ranking.median_rank, ranking.average_precision,
     ranking.mean_average_precision, lambda s, r: ranking.recall_at_k(s, r, ks=(1,)),
     lambda s, r: ranking.recall_at_k(s, r, ks=(1,), mode="fraction")],
)  # fmt: skip
def test_bad_scores_or_relevance_raise(metric, scores, relevance, message):
    with pytest.raises(ValueError, match=message):
        metric(scores, relevance)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": (1, 4)}, r"every K in ks must be an int in \[1, N=3\], got 4"),
        ({"ks": (0,)}, "got 0"),
        ({"ks": (1.0,)}, "got 1.0"),
        ({"ks": (True,)}, "got True"),
        ({"ks": ()}, "ks must name at least one K"),
        ({"ks": (1,), "mode": "textbook"}, "mode must be one of"),
    ],
)
def test_bad_recall_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ranking.recall_at_k(GOOD_SCORES, GOOD_RELEVANCE, **kwargs)


@pytest.mark.parametrize(
    ("gains", "k", "message"),
    [
        (torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]]), None, "gains must be non-negative, got a minimum of -1"),
        (torch.tensor([[1.0, 0.0, float("nan")], [0.0] * 3]), None, "gains must be finite"),
        (torch.tensor([[1.0, 0.0, float("inf")], [0.0] * 3]), None, "gains must be finite"),
        (torch.ones(2, 2), None, r"gains has shape \(2, 2\)"),
        (torch.ones(2, 3, dtype=torch.complex64), None, "gains must be real"),
        ([[1.0, 0.0, 2.0]] * 2, None, "gains must be a torch.Tensor"),
        (torch.ones(2, 3), 0, r"k must be an int in \[1, N=3\], got 0"),
        (torch.ones(2, 3), 4, r"k must be an int in \[1, N=3\], got 4"),
        (torch.ones(2, 3), 2.0, "got 2.0"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("metric", [ranking.ndcg, ranking.mean_ndcg])
def test_bad_gains_or_k_raise(metric, gains, k, message):
    with pytest.raises(ValueError, match=message):
        metric(GOOD_SCORES, gains, k=k)


def test_ndcg_needs_no_relevant_item_and_accepts_infinite_scores():
    scores = torch.tensor([[float("inf"), 0.0, float("-inf")]])
    assert ranking.ndcg(scores, torch.zeros(1, 3)).item() == 0.0
    assert ranking.ndcg(scores, torch.tensor([[0.0, 0.0, 1.0]])).item() == pytest.approx(0.5)
