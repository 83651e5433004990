"""Checkers for chapter 11 (retrieval: Recall@K when several images are right, NegCLIP's loss,
the recall of an approximate index against exact search).

Each compares the student's answer with :mod:`course_utils.retrieval` on seeded inputs and
says what is wrong without printing the reference values.
"""

from __future__ import annotations

from course_utils.checks.core import as_number, call_student, checker, expect_type


def _first_match(got: float, variants: dict, messages: dict, case: str, tol: float = 1e-6):
    """The message of the first mistake in ``variants`` whose value is ``got`` (or None)."""
    for name, value in variants.items():
        if value is not None and abs(got - value) <= tol:
            return f"on case '{case}' {messages[name]}"
    return None


# ---- Exercise 1: Recall@K when several images are right ------------------------------------


def _recall_cases() -> dict:
    """``case: (scores, relevance, k)``; no ties among the scores, every query has a right item."""
    import torch

    gen = torch.Generator().manual_seed(1101)

    def random_relevance(q: int, n: int, p: float):
        return torch.rand(q, n, generator=gen) < p

    def scored(relevance, boost: float):
        return torch.randn(*relevance.shape, generator=gen) + boost * relevance

    diagonal = torch.eye(10, dtype=torch.bool)
    several = torch.eye(12, dtype=torch.bool) | random_relevance(12, 12, 0.2)
    several_scores = scored(several, 0.8)
    several[0, 5] = True  # query 0: its diagonal item last, another right item first
    several_scores[0, 0], several_scores[0, 5] = -4.0, 4.0
    edge_scores = torch.randn(8, 15, generator=gen)
    order = edge_scores.argsort(dim=1, descending=True)
    edge = random_relevance(8, 15, 0.15)
    edge[:2] = False
    edge[0, order[0, [4, 9]]] = True  # query 0's best right item is 5th: just outside the top 4
    edge[1, order[1, [3, 12]]] = True  # query 1's is 4th: just inside
    edge[torch.arange(2, 8), order[2:, 14]] = True  # every query has a right item
    one_hit = random_relevance(9, 20, 0.15)
    one_hit[:, 19] = True
    everything = random_relevance(5, 7, 0.3)
    everything[:, 0] = True
    return {
        "one right image per query, on the diagonal, K = 3": (scored(diagonal, 1.0), diagonal, 3),
        "several right images per query, K = 3": (several_scores, several, 3),
        "a right image just outside the top K, K = 4": (edge_scores, edge, 4),
        "9 queries, a gallery of 20, K = 1": (scored(one_hit, 1.0), one_hit, 1),
        "K = N, the whole gallery": (scored(everything, 0.5), everything, 7),
    }


def _recall_variants(scores, relevance, k: int) -> dict:
    """What common mistakes give, to name the mistake (never shown as numbers)."""
    import torch

    from course_utils.retrieval import ranking

    q, n = scores.shape

    def hit(s, r, kk: int) -> float:
        return ranking.recall_at_k(s, r, ks=(kk,), mode="hit")[f"R@{kk}"]

    right = hit(scores, relevance, k)
    return {
        "diagonal": hit(scores, torch.eye(n, dtype=torch.bool), k) if q == n else None,
        "fraction": ranking.recall_at_k(scores, relevance, ks=(k,), mode="fraction")[f"R@{k}"],
        "one too many": hit(scores, relevance, k + 1) if k < n else None,
        "one too few": hit(scores, relevance, k - 1) if k > 1 else None,
        "ascending": hit(-scores, relevance, k),
        "count": right * q,
    }


_RECALL_MESSAGES = {
    "diagonal": "only the diagonal item counts as right in your Recall@K; a query can have "
    "several right images, and `relevance` says which",
    "fraction": "you compute the share of each query's right images that reach its top K (the "
    "textbook recall of information retrieval); the Recall@K of CLIP-style papers asks "
    "whether at least one of them does",
    "one too many": "your top K holds one item too many (K + 1): check where you cut each "
    "ranking",
    "one too few": "your top K holds one item too few (K - 1): check where you cut each ranking",
    "ascending": "your top K are the lowest scores; a higher score is a better match",
    "count": "you return a count of queries; return the fraction of the queries (between 0 "
    "and 1)",
}


@checker(
    "Exercise 1: Recall@K when several images are right",
    hints=(
        "Here a query can have several right images (relevance is True for each of them). The "
        "Recall@K that CLIP-style papers report asks, for each query: is at least one right "
        "image among its K best-scoring gallery items? It then averages that yes or no over "
        "the queries.",
        "Find the columns of each row's K highest scores (torch.topk along the gallery axis), "
        "look up relevance at those columns (torch.gather) and ask whether any of them is "
        "True. The mean over the queries is a fraction between 0 and 1; do not divide by the "
        "number of right images per query: that is the textbook recall, another metric.",
        'Reread chapter 11, "2. Metrics when several images are right".',
    ),
)
def check_recall_at_k(fn):
    """Check Exercise 1: ``fn(scores, relevance, k)`` is the "hit" Recall@K when a query has
    several relevant gallery items.

    Used in chapter 11, "Exercise 1 — Recall@K when several images are right (★☆☆, ~10 min,
    1 point)"."""
    from course_utils.retrieval import ranking

    for case, (scores, relevance, k) in _recall_cases().items():
        out = call_student(fn, scores.clone(), relevance.clone(), k)
        got = as_number(out, f"the result on case '{case}'", rows=scores.shape[0])
        if abs(got - ranking.recall_at_k(scores, relevance, ks=(k,), mode="hit")[f"R@{k}"]) <= 1e-6:
            continue
        message = _first_match(got, _recall_variants(scores, relevance, k), _RECALL_MESSAGES, case)
        if message:
            raise AssertionError(message)
        if not 0 <= got <= 1:
            raise AssertionError(f"on case '{case}' your Recall@K is not between 0 and 1; it is "
                                 "a fraction of the queries")  # fmt: skip
        raise AssertionError(f"wrong Recall@{k} on case '{case}'")


# ---- Exercise 2: NegCLIP's loss with foils in the batch --------------------------------------


def _negclip_cases() -> dict:
    """``case: (image_emb, text_emb, foil_emb, temperature)``: unit vectors ``(B, 8)``, each
    caption near its image and each foil near its caption (a hard negative)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(1106)

    def batch(b: int, e: int = 8):
        image = F.normalize(torch.randn(b, e, generator=gen), dim=1)
        text = F.normalize(image + 0.8 * torch.randn(b, e, generator=gen), dim=1)
        foil = F.normalize(text + 0.6 * torch.randn(b, e, generator=gen), dim=1)
        return image, text, foil

    return {
        "4 triples, temperature 0.07": (*batch(4), 0.07),
        "7 triples, temperature 0.5": (*batch(7), 0.5),
        "7 triples, temperature 0.07": (*batch(7), 0.07),
        "4 triples, temperature 0.5": (*batch(4), 0.5),
    }


def _negclip_variants(image, text, foil, t: float) -> dict:
    """What common mistakes give, to name the mistake (never shown as numbers)."""
    import torch
    import torch.nn.functional as F

    from course_utils.retrieval import negatives

    to_texts, to_foils = image @ text.T, image @ foil.T  # (B, B) each, unscaled
    target = torch.arange(len(image))

    def image_to_text(scale: float, answer=target):
        return F.cross_entropy(torch.cat([to_texts, to_foils], dim=1) * scale, answer)

    def text_to_image(scale: float):
        return F.cross_entropy(to_texts.T * scale, target)

    both = image_to_text(1 / t), text_to_image(1 / t)
    foil_rows = F.cross_entropy(torch.cat([to_texts.T, to_foils.T]) / t, torch.cat([target, target]))
    return {
        "plain CLIP": (F.cross_entropy(to_texts / t, target) + both[1]) / 2,
        "foil rows": (both[0] + foil_rows) / 2,
        "no temperature": (image_to_text(1.0) + text_to_image(1.0)) / 2,
        "temperature multiplied": (image_to_text(t) + text_to_image(t)) / 2,
        "image to text only": both[0],
        "text to image only": both[1],
        "sum": both[0] + both[1],
        "foil as target": (image_to_text(1 / t, target + len(image)) + both[1]) / 2,
        "captions and foils swapped": negatives.negclip_loss(image, foil, text, t),
    }


_NEGCLIP_MESSAGES = {
    "plain CLIP": "your loss is plain CLIP's: the foils play no part in it, but each image must "
    "also rank its caption above the foils",
    "foil rows": "your text-to-image direction uses the foils too; a foil describes no image of "
    "the batch, so that direction is CLIP's, over the true captions only",
    "no temperature": "your loss ignores the temperature argument",
    "temperature multiplied": "your loss multiplies by the temperature; a small temperature must "
    "make the logits larger (a sharper softmax)",
    "image to text only": "your loss has only the image-to-text direction; average it with the "
    "text-to-image direction",
    "text to image only": "your loss has only the text-to-image direction; the foils belong to "
    "the image-to-text direction, which is averaged with it",
    "sum": "your loss adds the two directions; they are averaged",
    "foil as target": "your loss takes a foil for the right answer; image i belongs with its "
    "true caption i, and the foils are negatives",
    "captions and foils swapped": "your loss takes a foil for the right answer; image i belongs "
    "with its true caption i, and the foils are negatives",
}


def _scalar_loss(out, case: str):
    import torch

    expect_type(out, torch.Tensor, f"the loss on case '{case}'")
    if out.numel() != 1:
        raise AssertionError(f"the loss on case '{case}' has shape {tuple(out.shape)}; it should "
                             "be one number (a scalar tensor, averaged over the batch)")  # fmt: skip
    got = out.detach().double().reshape(())
    if not torch.isfinite(got):
        raise AssertionError(f"the loss on case '{case}' is NaN or inf")
    return got.item()


def _check_gradients(fn) -> None:
    """The loss must reach the three embeddings through autograd."""
    image, text, foil, t = _negclip_cases()["4 triples, temperature 0.5"]
    leaves = {name: x.clone().requires_grad_(True) for name, x in
              (("image_emb", image), ("text_emb", text), ("foil_emb", foil))}  # fmt: skip
    out = call_student(fn, *leaves.values(), t)
    if not getattr(out, "requires_grad", False):
        raise AssertionError("the loss does not depend on the embeddings through autograd (was "
                             "something detached or converted to a Python number?)")  # fmt: skip
    out.sum().backward()
    cut = [name for name, x in leaves.items() if x.grad is None]
    if cut:
        raise AssertionError(f"no gradient reaches {', '.join(cut)}: something was detached")


@checker(
    "Exercise 2: NegCLIP's loss with foils in the batch",
    hints=(
        "NegCLIP is CLIP's loss with more candidates: each image must pick its own caption "
        "not only among the batch's captions but also among the foils, the same words in "
        "another order. A foil describes no image, so only one of the two directions changes.",
        "Image to text: the (B, B) similarities to the captions and the (B, B) similarities "
        "to the foils side by side, (B, 2B), divided by the temperature; the right column of "
        "row i is i. Text to image: CLIP's, each caption choosing among the B images. Take the "
        "cross-entropy of each direction and average the two.",
        "Reread chapter 11, \"6. Hard negatives: NegCLIP's fix\".",
    ),
)
def check_negclip_loss(fn):
    """Check Exercise 2: ``fn(image_emb, text_emb, foil_emb, temperature)`` is NegCLIP's loss,
    a scalar tensor through which gradients flow.

    Used in chapter 11, "Exercise 2 — NegCLIP's loss with foils in the batch (★★☆, ~15 min,
    2 points)"."""
    from course_utils.retrieval import negatives

    for case, (image, text, foil, t) in _negclip_cases().items():
        got = _scalar_loss(call_student(fn, image.clone(), text.clone(), foil.clone(), t), case)
        want = negatives.negclip_loss(image, text, foil, t).item()
        if abs(got - want) <= 1e-5 + 1e-5 * abs(want):
            continue
        variants = {k: v.item() for k, v in _negclip_variants(image, text, foil, t).items()}
        message = _first_match(got, variants, _NEGCLIP_MESSAGES, case, tol=1e-4)
        if message:
            raise AssertionError(message)
        if abs(got - want) <= 0.01 * abs(want):
            raise AssertionError(f"on case '{case}' your loss is close to NegCLIP's but not "
                                 "within 1e-5 of it: look for a small difference in a detail")  # fmt: skip
        raise AssertionError(f"wrong loss on case '{case}'")
    _check_gradients(fn)


# ---- Exercise 3: recall of an approximate index against exact search -------------------------


def _ann_cases() -> dict:
    """``case: (approx_indices, exact_indices)``, ``(Q, k)`` int64; an exact row holds k
    distinct ids, an approximate row distinct ids then FAISS's ``-1`` where it found nothing."""
    import torch

    gen = torch.Generator().manual_seed(1104)

    def exact(q: int, k: int, n: int):
        return torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(q)])

    def approx(ex, n: int, found: list, kept: list):
        rows = []
        for row, n_found, n_kept in zip(ex.tolist(), found, kept):
            others = [i for i in torch.randperm(n, generator=gen).tolist() if i not in row]
            ids = row[:n_kept] + others[: n_found - n_kept]
            ids = [ids[i] for i in torch.randperm(len(ids), generator=gen).tolist()]
            rows.append(ids + [-1] * (len(row) - n_found))
        return torch.tensor(rows, dtype=torch.long)

    same, shuffled = exact(5, 4, 30), exact(6, 5, 40)
    rolled = torch.stack([r.roll(i % 4 + 1) for i, r in enumerate(shuffled)])  # no id in place
    missed, short, single = exact(8, 10, 50), exact(6, 8, 40), exact(10, 1, 20)
    return {
        "the exact lists themselves": (same.clone(), same),
        "the same neighbours in another order": (rolled, shuffled),
        "an index that misses some neighbours": (approx(missed, 50, [10] * 8, [9, 7, 3, 10, 5, 8, 6, 4]), missed),
        "an index that found fewer than k (-1 at the end)": (approx(short, 40, [8, 5, 3, 8, 6, 2],
                                                                    [6, 4, 1, 8, 3, 2]), short),
        "k = 1": (approx(single, 20, [1, 1, 1, 1, 1, 1, 1, 1, 0, 1], [1, 0, 1, 1, 0, 1, 0, 1, 0, 1]), single),
    }  # fmt: skip


def _ann_variants(approx, exact) -> dict:
    """What common mistakes give, to name the mistake (never shown as numbers)."""
    import torch

    k = exact.shape[1]
    hits = (exact[:, :, None] == approx[:, None, :]).any(-1).sum(1).double()  # (Q,)
    returned = (approx >= 0).sum(1).double()  # (Q,) ids the index found
    wrong = ((approx >= 0) & ~(approx[:, :, None] == exact[:, None, :]).any(-1)).sum(1)  # (Q,)
    return {
        "position-wise": (approx == exact).double().mean().item(),
        "whole tensor": torch.isin(approx, exact).double().mean().item(),
        "-1 found": (1 - wrong.double() / k).mean().item(),
        "divided by returned": (hits / returned.clamp(min=1)).mean().item(),
        "mean count": hits.mean().item(),
        "sum over queries": (hits / k).sum().item(),
        "count": hits.sum().item(),
    }


_ANN_MESSAGES = {
    "position-wise": "you compare the two lists position by position; recall asks which exact "
    "neighbours were found, in any order (an index may rank its finds differently)",
    "whole tensor": "you look for each id among the exact neighbours of every query; compare "
    "each query with its own row only",
    "-1 found": "a -1 (FAISS found nothing there) counts as found in your recall; it is a miss",
    "divided by returned": "you divide by the number of ids the index returned; each query's "
    "recall is out of its k exact neighbours, so a -1 (nothing found) is a miss",
    "mean count": "you return the mean number of shared neighbours per query; divide by k too: "
    "recall is a fraction between 0 and 1",
    "sum over queries": "you add up the queries' recalls; take their mean",
    "count": "you return a count of shared neighbours; return the mean over the queries of the "
    "fraction of each query's k exact neighbours found",
}


@checker(
    "Exercise 3: Recall of an approximate index against exact search",
    hints=(
        "For each query: how many of the k neighbours that exact search returned did the index "
        "return too, in any order? Divide by k and average over the queries. It measures how "
        "faithful the index is to exact search, not how good the embeddings are.",
        "Compare every approximate id of a row with every exact id of the same row (broadcast "
        "a (Q, k, 1) tensor against a (Q, 1, k) one, or use Python sets row by row); an exact "
        "neighbour is found when some approximate id equals it. FAISS's -1 means nothing was "
        "found: it never equals an exact id, and it still counts among the k you divide by.",
        'Reread chapter 11, "4. Approximate search at scale".',
    ),
)
def check_recall_against_exact(fn):
    """Check Exercise 3: ``fn(approx_indices, exact_indices)`` is the mean fraction of each
    query's exact top k that the approximate top k found.

    Used in chapter 11, "Exercise 3 — Recall of an approximate index against exact search
    (★★☆, ~10 min, 2 points)"."""
    from course_utils.retrieval import search

    for case, (approx, exact) in _ann_cases().items():
        out = call_student(fn, approx.clone(), exact.clone())
        got = as_number(out, f"the result on case '{case}'", rows=exact.shape[0])
        if abs(got - search.recall_against_exact(approx, exact)) <= 1e-6:
            continue
        message = _first_match(got, _ann_variants(approx, exact), _ANN_MESSAGES, case)
        if message:
            raise AssertionError(message)
        if not 0 <= got <= 1:
            raise AssertionError(f"on case '{case}' your recall is not between 0 and 1; it is a "
                                 "mean of fractions")  # fmt: skip
        raise AssertionError(f"wrong recall on case '{case}'")
