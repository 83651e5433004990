"""Chapter 11's checkers accept the reference solutions and reject realistic mistakes, without
giving the expected values away."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckFailed, StudentCodeError, ch11
from course_utils.retrieval import negatives, ranking, search

# ---- exercise 1: Recall@K when several images are right ---------------------------------------


def recall_at_k(scores, relevance, k):
    top = scores.topk(k, dim=1).indices  # (Q, k)
    return relevance.gather(1, top).any(dim=1).float().mean().item()


def recall_by_rank(scores, relevance, k):  # a 0-d tensor, from the rank of the best right item
    best = scores.masked_fill(~relevance, float("-inf")).amax(1, keepdim=True)
    return ((scores > best) & ~relevance).sum(1).lt(k).double().mean()


def recall_by_loop(scores, relevance, k):
    hits = 0
    for row, right in zip(scores.tolist(), relevance.tolist()):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        hits += any(right[j] for j in order[:k])
    return hits / len(scores)


def make_recall(offset=0, largest=True, mean=True, per_query=False):
    def recall(scores, relevance, k):
        top = scores.topk(k + offset, dim=1, largest=largest).indices
        hit = relevance.gather(1, top).any(dim=1).float()
        if per_query:
            return hit
        return hit.mean().item() if mean else hit.sum().item()

    return recall


def recall_diagonal(scores, relevance, k):  # chapter 07's Recall@K: one right item, on the diagonal
    right = scores.diagonal()
    return ((scores > right[:, None]).sum(1) < k).float().mean().item()


def recall_fraction(scores, relevance, k):  # the textbook recall of information retrieval
    top = scores.topk(k, dim=1).indices
    return (relevance.gather(1, top).sum(1) / relevance.sum(1)).mean().item()


# ---- exercise 2: NegCLIP's loss -----------------------------------------------------------------


def negclip_loss(image_emb, text_emb, foil_emb, temperature):
    to_texts = image_emb @ text_emb.T / temperature
    to_foils = image_emb @ foil_emb.T / temperature
    target = torch.arange(len(image_emb))
    image_to_text = F.cross_entropy(torch.cat([to_texts, to_foils], dim=1), target)
    return (image_to_text + F.cross_entropy(to_texts.T, target)) / 2


def negclip_from_scratch(image_emb, text_emb, foil_emb, temperature):
    texts = torch.cat([text_emb, foil_emb])  # (2B, E)
    logits = image_emb @ texts.T / temperature  # (B, 2B)
    b = len(image_emb)
    rows = -logits.log_softmax(1)[:, :b].diagonal().mean()
    cols = -logits[:, :b].log_softmax(0).diagonal().mean()
    return 0.5 * (rows + cols)


def make_negclip(foils=True, foil_rows=False, scale="divide", directions="both", target_foil=False,
                 detach=None, factor=1.0):  # fmt: skip
    def loss_fn(image_emb, text_emb, foil_emb, temperature):
        if detach:
            foil_emb = foil_emb.detach()
        t = {"divide": 1 / temperature, "none": 1.0, "multiply": temperature}[scale]
        to_texts, to_foils = image_emb @ text_emb.T * t, image_emb @ foil_emb.T * t
        target = torch.arange(len(image_emb))
        i2t_logits = torch.cat([to_texts, to_foils], dim=1) if foils else to_texts
        i2t = F.cross_entropy(i2t_logits, target + len(image_emb) if target_foil else target)
        if foil_rows:
            t2i = F.cross_entropy(torch.cat([to_texts.T, to_foils.T]), torch.cat([target, target]))
        else:
            t2i = F.cross_entropy(to_texts.T, target)
        out = {"both": (i2t + t2i) / 2, "sum": i2t + t2i, "image": i2t, "text": t2i}[directions]
        return factor * out

    return loss_fn


def negclip_per_row(image_emb, text_emb, foil_emb, temperature):
    to_texts, to_foils = image_emb @ text_emb.T / temperature, image_emb @ foil_emb.T / temperature
    target = torch.arange(len(image_emb))
    i2t = F.cross_entropy(torch.cat([to_texts, to_foils], dim=1), target, reduction="none")
    return (i2t + F.cross_entropy(to_texts.T, target, reduction="none")) / 2


# ---- exercise 3: recall of an approximate index against exact search ----------------------------


def recall_against_exact(approx_indices, exact_indices):
    same = exact_indices[:, :, None] == approx_indices[:, None, :]  # (Q, k, k)
    return same.any(dim=2).float().mean().item()


def recall_with_sets(approx_indices, exact_indices):
    k = exact_indices.shape[1]
    found = [len(set(a) & set(e)) / k for a, e in zip(approx_indices.tolist(), exact_indices.tolist())]
    return sum(found) / len(found)


def recall_with_isin(approx_indices, exact_indices):  # row by row, a 0-d tensor
    rows = [torch.isin(e, a).double().mean() for a, e in zip(approx_indices, exact_indices)]
    return torch.stack(rows).mean()


def make_ann(reduce="mean"):
    def recall(approx_indices, exact_indices):
        hits = (exact_indices[:, :, None] == approx_indices[:, None, :]).any(2).sum(1).double()
        k = exact_indices.shape[1]
        return {"per query": hits / k, "mean count": hits.mean().item(), "sum": (hits / k).sum().item(),
                "count": int(hits.sum())}[reduce]  # fmt: skip

    return recall


def ann_position_wise(approx_indices, exact_indices):
    return (approx_indices == exact_indices).float().mean().item()


def ann_whole_tensor(approx_indices, exact_indices):
    return torch.isin(approx_indices, exact_indices).float().mean().item()


def ann_minus_one_found(approx_indices, exact_indices):  # counts the index's wrong ids only
    k = exact_indices.shape[1]
    in_exact = (approx_indices[:, :, None] == exact_indices[:, None, :]).any(2)
    wrong = ((approx_indices != -1) & ~in_exact).sum(1)
    return (1 - wrong / k).mean().item()


def ann_divided_by_returned(approx_indices, exact_indices):
    hits = (exact_indices[:, :, None] == approx_indices[:, None, :]).any(2).sum(1)
    return (hits / (approx_indices >= 0).sum(1).clamp(min=1)).mean().item()


# ---- the tests ------------------------------------------------------------------------------


def test_reference_solutions_pass(capsys):
    for fn in (recall_at_k, recall_by_rank, recall_by_loop):
        assert ch11.check_recall_at_k(fn) is True
    for fn in (negclip_loss, negclip_from_scratch, negatives.negclip_loss):
        assert ch11.check_negclip_loss(fn) is True
    for fn in (recall_against_exact, recall_with_sets, recall_with_isin, search.recall_against_exact):
        assert ch11.check_recall_against_exact(fn) is True
    assert capsys.readouterr().out.count("[correct]") == 10


@pytest.mark.parametrize(
    ("check", "wrong", "message"),
    [
        (ch11.check_recall_at_k, recall_diagonal, "only the diagonal item counts"),
        (ch11.check_recall_at_k, recall_fraction, "textbook recall"),
        (ch11.check_recall_at_k, make_recall(offset=1), r"one item too many \(K \+ 1\)"),
        (ch11.check_recall_at_k, make_recall(offset=-1), r"one item too few \(K - 1\)"),
        (ch11.check_recall_at_k, make_recall(largest=False), "lowest scores"),
        (ch11.check_recall_at_k, make_recall(mean=False), "a count of queries"),
        (ch11.check_recall_at_k, make_recall(per_query=True), r"shape \(10,\) \(one value per query\)"),
        (ch11.check_recall_at_k, lambda s, r, k: 2 * recall_at_k(s, r, k), "not between 0 and 1"),
        (ch11.check_recall_at_k, lambda s, r, k: 0.42, "wrong Recall@3"),
        (ch11.check_recall_at_k, lambda s, r, k: str(recall_at_k(s, r, k)), "should be a number"),
        (ch11.check_recall_at_k, lambda s, r, k: None, "should be a number"),
        (ch11.check_recall_at_k, lambda s, r, k: float("nan"), "not a finite number"),
        (ch11.check_negclip_loss, make_negclip(foils=False), "plain CLIP's"),
        (ch11.check_negclip_loss, make_negclip(foil_rows=True), "text-to-image direction uses the foils"),
        (ch11.check_negclip_loss, make_negclip(scale="none"), "ignores the temperature"),
        (ch11.check_negclip_loss, make_negclip(scale="multiply"), "multiplies by the temperature"),
        (ch11.check_negclip_loss, make_negclip(directions="image"), "only the image-to-text"),
        (ch11.check_negclip_loss, make_negclip(directions="text"), "only the text-to-image"),
        (ch11.check_negclip_loss, make_negclip(directions="sum"), "adds the two directions"),
        (ch11.check_negclip_loss, make_negclip(target_foil=True), "takes a foil for the right answer"),
        (ch11.check_negclip_loss, lambda i, t, f, tau: negclip_loss(i, f, t, tau),
         "takes a foil for the right answer"),
        (ch11.check_negclip_loss, make_negclip(factor=1.001), "close to NegCLIP's"),
        (ch11.check_negclip_loss, make_negclip(factor=1.3), "wrong loss on case"),
        (ch11.check_negclip_loss, negclip_per_row, r"has shape \(4,\)"),
        (ch11.check_negclip_loss, lambda i, t, f, tau: negclip_loss(i, t, f, tau).item(), "should be a Tensor"),
        (ch11.check_negclip_loss, lambda i, t, f, tau: negclip_loss(i, t, f, tau) / 0, "NaN or inf"),
        (ch11.check_negclip_loss, lambda i, t, f, tau: negclip_loss(i, t, f, tau).detach(), "through autograd"),
        (ch11.check_negclip_loss, make_negclip(detach=True), "no gradient reaches foil_emb"),
        (ch11.check_recall_against_exact, ann_position_wise, "position by position"),
        (ch11.check_recall_against_exact, ann_whole_tensor, "every query"),
        (ch11.check_recall_against_exact, ann_minus_one_found, "counts as found"),
        (ch11.check_recall_against_exact, ann_divided_by_returned, "number of ids the index returned"),
        (ch11.check_recall_against_exact, make_ann("mean count"), "mean number of shared neighbours"),
        (ch11.check_recall_against_exact, make_ann("sum"), "add up the queries"),
        (ch11.check_recall_against_exact, make_ann("count"), "a count of shared neighbours"),
        (ch11.check_recall_against_exact, make_ann("per query"), r"shape \(5,\) \(one value per query\)"),
        (ch11.check_recall_against_exact, lambda a, e: 0.3, "wrong recall on case"),
        (ch11.check_recall_against_exact, lambda a, e: -0.5, "not between 0 and 1"),
        (ch11.check_recall_against_exact, lambda a, e: [recall_against_exact(a, e)], "should be a number"),
    ],
)
def test_wrong_answers_fail(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


def test_each_mistake_differs_from_the_reference_where_it_is_diagnosed():
    """The cases tell every named mistake from the right answer (by more than the tolerance)."""
    for scores, relevance, k in ch11._recall_cases().values():
        want = ranking.recall_at_k(scores, relevance, ks=(k,), mode="hit")[f"R@{k}"]
        assert 0 < want <= 1
    for image, text, foil, t in ch11._negclip_cases().values():
        assert torch.allclose(image.norm(dim=1), torch.ones(len(image)))
        want = negatives.negclip_loss(image, text, foil, t).item()
        for name, value in ch11._negclip_variants(image, text, foil, t).items():
            assert abs(value.item() - want) > 1e-3, name
    for approx, exact in ch11._ann_cases().values():
        assert approx.dtype == exact.dtype == torch.long and approx.shape == exact.shape
        assert all(len(set(row)) == len(row) for row in exact.tolist())
        assert all(len({i for i in row if i >= 0}) == sum(i >= 0 for i in row) for row in approx.tolist())


def _hidden_values() -> set[str]:
    """How the expected values of the hidden cases would read in a message."""
    values = [ranking.recall_at_k(s, r, ks=(k,))[f"R@{k}"] for s, r, k in ch11._recall_cases().values()]
    values += [negatives.negclip_loss(*case).item() for case in ch11._negclip_cases().values()]
    values += [search.recall_against_exact(a, e) for a, e in ch11._ann_cases().values()]
    formats = ("{!r}", "{:.3f}", "{:.4f}", "{:.3g}", "{:.4g}")
    texts = {fmt.format(v) for v in values for fmt in formats}
    return {t for t in texts if len(t) >= 4}


@pytest.mark.parametrize("wrong", [
    (ch11.check_recall_at_k, recall_fraction), (ch11.check_recall_at_k, make_recall(offset=1)),
    (ch11.check_recall_at_k, lambda s, r, k: 0.5), (ch11.check_recall_at_k, lambda s, r, k: 0.0),
    (ch11.check_negclip_loss, make_negclip(foils=False)), (ch11.check_negclip_loss, make_negclip(factor=1.3)),
    (ch11.check_negclip_loss, make_negclip(factor=0.0)), (ch11.check_negclip_loss, make_negclip(factor=1.001)),
    (ch11.check_recall_against_exact, ann_position_wise), (ch11.check_recall_against_exact, make_ann("count")),
    (ch11.check_recall_against_exact, lambda a, e: 0.3), (ch11.check_recall_against_exact, lambda a, e: 0.0),
], ids=lambda w: f"{w[0].__name__}-{getattr(w[1], '__name__', 'lambda')}")
def test_messages_do_not_give_the_expected_values_away(wrong):
    check, fn = wrong
    with pytest.raises(CheckFailed) as info:
        check(fn)
    message = str(info.value)
    assert "tensor(" not in message and "array(" not in message, message
    leaked = [t for t in _hidden_values() if t in message]
    assert not leaked, (message, leaked)


def test_hints_are_three_and_end_with_a_chapter_11_section():
    for check in (ch11.check_recall_at_k, ch11.check_negclip_loss, ch11.check_recall_against_exact):
        assert len(check.hints) == 3 and check.hints[-1].startswith('Reread chapter 11, "'), check.title


def test_placeholders_are_not_attempted(placeholder, not_attempted):
    not_attempted(ch11.check_recall_at_k(placeholder), ch11.check_negclip_loss(placeholder),
                  ch11.check_recall_against_exact(placeholder), ch11.check_recall_at_k(None),
                  ch11.check_recall_against_exact(...))


def test_student_bugs_are_reported_as_theirs(crashes):
    with pytest.raises(StudentCodeError, match="RuntimeError"):
        ch11.check_recall_at_k(crashes)
    with pytest.raises(StudentCodeError, match="RuntimeError"):
        ch11.check_negclip_loss(crashes)
    with pytest.raises(StudentCodeError, match="IndexError"):
        ch11.check_recall_against_exact(lambda a, e: a[:, a.shape[1]])


def test_the_inputs_are_not_the_checkers_own():
    """A student's function that writes into its inputs cannot change the hidden cases."""
    def vandal(scores, relevance, k):
        out = recall_at_k(scores, relevance, k)
        scores.zero_(), relevance.fill_(True)
        return out

    assert ch11.check_recall_at_k(vandal) is True
    assert ch11.check_recall_at_k(recall_at_k) is True


def test_strict_mode_makes_not_attempted_an_error(strict_checks):
    with pytest.raises(strict_checks):
        ch11.check_negclip_loss(None)
