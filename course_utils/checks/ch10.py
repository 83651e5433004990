"""Checkers for chapter 10 (captioning: BLEU's brevity penalty, CHAIR, one step of beam search).

Each compares the student's answer with :mod:`course_utils.captioning` (or, for beam
search, with a few lines of reference here) on fixed and seeded inputs, and says what is
wrong without printing the reference values.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from course_utils.checks.core import (
    as_number,
    call_student,
    checker,
    expect_close,
    expect_shape,
    expect_type,
)

#: The end of the message for a NaN or infinite answer: what usually causes one here.
DIVIDE_BY_ZERO = "guard against dividing by 0"

# ---- Exercise 1: BLEU's brevity penalty ---------------------------------------------------

#: ``case: (hyp_len, ref_len)``, the corpus totals ``c`` and ``r``.
_BP_CASES = {
    "a hypothesis shorter than the references": (7, 10),
    "a much shorter hypothesis": (3, 17),
    "equal lengths": (9, 9),
    "a hypothesis longer than the references": (12, 10),
    "a zero-length hypothesis": (0, 8),
}


def _bp_mistake(case: str, c: int, r: int, got: float) -> str:
    """The message for a wrong brevity penalty ``got`` on ``case`` (lengths ``c``, ``r``)."""
    if c > r:
        return (f"on case '{case}' the hypothesis is longer than the references: BLEU does not "
                "penalise length, only brevity")
    if c == r:
        return f"on case '{case}' there is nothing to penalise: BLEU should be left unchanged"
    if c == 0:
        return (f"on case '{case}' an output with no tokens at all should get no credit (and "
                "dividing by its length is not possible: test for it first)")
    if abs(got - math.exp(1 - c / r)) <= 1e-6:
        return (f"on case '{case}' the ratio is upside down: the exponent is 1 minus the "
                "reference length over the hypothesis length")
    if got > 1 + 1e-9 or got < -1e-9:
        return (f"on case '{case}' you return {got:.4g}, but a brevity penalty lies between 0 "
                "and 1: it only ever scales BLEU down")
    if abs(got - 1.0) <= 1e-9:
        return f"on case '{case}' a shorter hypothesis is not penalised"
    return f"wrong brevity penalty on case '{case}'"


@checker(
    "Exercise 1: BLEU's brevity penalty",
    hints=(
        "BLEU's n-gram precisions alone reward saying little: a one-word caption can be 100 % "
        "precise. The brevity penalty punishes a hypothesis *shorter* than its references, "
        "never a longer one, so it lies between 0 and 1.",
        "With c the hypothesis length and r the reference length: no penalty (1.0) when c is "
        "larger than r, else the exponential of one minus the ratio r over c (which is <= 0). "
        "A hypothesis with no tokens at all gets 0.0: test for it before dividing by c.",
        'Reread chapter 10, "5. N-gram metrics: BLEU and CIDEr-D".',
    ),
)
def check_brevity_penalty(fn):
    """Check Exercise 1: ``fn(hyp_len, ref_len)`` is BLEU's brevity penalty.

    Used in chapter 10, "Exercise 1 — BLEU's brevity penalty (★☆☆, ~5 min, 1 point)"."""
    from course_utils.captioning import ngram

    for case, (c, r) in _BP_CASES.items():
        got = as_number(call_student(fn, c, r), f"the result on case '{case}'", not_finite=DIVIDE_BY_ZERO)
        want = ngram.brevity_penalty(c, r)
        if abs(got - want) <= 1e-6:
            continue
        raise AssertionError(_bp_mistake(case, c, r, got))


# ---- Exercise 2: CHAIR from parsed objects -------------------------------------------------

_RC, _BS, _LRC = ("small", "red", "circle"), ("large", "blue", "square"), ("large", "red", "circle")
_GT, _YD = ("small", "green", "triangle"), ("large", "yellow", "diamond")


def _random_corpus(seed: int, n: int = 6) -> tuple[list, list]:
    """A corpus of detailed-style objects: true ones, and stated ones with some mistakes."""
    rng = random.Random(seed)
    sizes, colors = ("small", "large"), ("red", "blue", "green", "yellow")
    shapes, places = ("circle", "square", "triangle"), ("top left", "center", "bottom")
    stated, true = [], []
    for _ in range(n):
        truth = [(rng.choice(sizes), rng.choice(colors), rng.choice(shapes), rng.choice(places))
                 for _ in range(rng.randint(1, 4))]  # fmt: skip
        said = [o for o in truth if rng.random() < 0.8]
        said += [(rng.choice(sizes), rng.choice(colors), rng.choice(shapes), rng.choice(places))
                 for _ in range(rng.choice((0, 0, 1, 2)))]  # fmt: skip
        if said and rng.random() < 0.3:
            said.append(said[0])  # the same object twice
        rng.shuffle(said)
        stated.append(said)
        true.append(truth)
    return stated, true


def _chair_cases() -> dict:
    return {
        "a perfect corpus": ([[_RC, _BS], [_GT]], [[_BS, _RC], [_GT]]),
        "a corpus with a duplicated object": ([[_RC, _RC, _BS], [_GT, _YD]],
                                              [[_RC, _BS], [_GT, _YD]]),
        "a corpus with an empty description": ([[], [_LRC, _BS], [_GT]],
                                               [[_RC], [_RC, _BS], [_GT]]),
        "a corpus of six seeded descriptions": _random_corpus(10),
        "another corpus of six seeded descriptions": _random_corpus(11),
        "a corpus in which nothing is stated": ([[], []], [[_RC], [_BS, _GT]]),
    }


def _chair_variants(stated, true) -> dict:
    """What common mistakes give, to name the mistake (never shown as numbers)."""
    as_set = [[o for o in s if o not in t] for s, t in zip(stated, true)]
    left = [Counter(s) - Counter(t) for s, t in zip(stated, true)]
    halls = [sum(c.values()) for c in left]
    said = [(h, len(s)) for h, s in zip(halls, stated) if s]
    n_true = sum(len(t) for t in true)
    return {
        "set": (sum(map(len, as_set)) / max(1, sum(map(len, stated))),
                sum(bool(x) for x in as_set) / len(stated)),
        "per description": sum(h / m for h, m in said) / len(said) if said else 0.0,
        "over true": sum(halls) / n_true if n_true else 0.0,
        "over stated descriptions": sum(h > 0 for h in halls) / len(said) if said else 0.0,
    }


def _chair_mistake(case: str, key: str, got: float, other: float, variants: dict) -> str:
    """The message for a wrong ``chair_i`` or ``chair_s`` on ``case``."""
    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, abs_tol=1e-6)

    if close(got, variants["set"][0 if key == "chair_i" else 1]):
        return (f"on case '{case}' your {key} treats the objects as a set: an object stated twice "
                "where the scene has one is one hallucination (match multisets, e.g. with "
                "collections.Counter)")
    if key == "chair_i" and close(got, other):
        return f"on case '{case}' chair_i and chair_s look swapped"
    if key == "chair_i" and close(got, variants["per description"]):
        return (f"on case '{case}' your chair_i averages per description; it pools the object "
                "mentions of the whole corpus")
    if key == "chair_i" and close(got, variants["over true"]):
        return (f"on case '{case}' your chair_i divides by the true objects; it divides by the "
                "objects the descriptions state")
    if key == "chair_s" and close(got, variants["over stated descriptions"]):
        return (f"on case '{case}' your chair_s leaves out descriptions that state nothing; every "
                "description counts")
    return f"wrong {key} on case '{case}'"


@checker(
    "Exercise 2: CHAIR from parsed objects",
    hints=(
        "CHAIR counts hallucinations two ways: chair_i per object mention (what fraction of "
        "everything stated is false) and chair_s per description (what fraction of "
        "descriptions contain at least one false object).",
        "Match each description's stated objects against its true ones as multisets: "
        "collections.Counter supports subtraction, and taking the true multiset away from the "
        "stated one keeps exactly the stated objects left over. Pool the counts over the "
        "corpus for chair_i, and return 0.0 rather than dividing by zero when nothing at all "
        "is stated.",
        'Reread chapter 10, "6. Grounded metrics: every hallucination, counted".',
    ),
)
def check_chair(fn):
    """Check Exercise 2: ``fn(stated, true)`` returns CHAIR's ``{"chair_i", "chair_s"}``.

    Used in chapter 10, "Exercise 2 — CHAIR from parsed objects (★★☆, ~10 min,
    2 points)"."""
    from course_utils.captioning import grounding

    for case, (stated, true) in _chair_cases().items():
        out = call_student(fn, [list(s) for s in stated], [list(t) for t in true])
        expect_type(out, dict, f"the result on case '{case}'")
        missing = {"chair_i", "chair_s"} - set(out)
        if missing:
            raise AssertionError(f"the result is missing the key(s) {sorted(missing)}")
        got = {k: as_number(out[k], f"{k} on case '{case}'", not_finite=DIVIDE_BY_ZERO) for k in ("chair_i", "chair_s")}
        ref = grounding.chair(stated, true)
        variants = _chair_variants(stated, true)
        for key, other in (("chair_i", "chair_s"), ("chair_s", "chair_i")):
            if abs(got[key] - ref[key]) > 1e-6:
                raise AssertionError(_chair_mistake(case, key, got[key], ref[other], variants))


# ---- Exercise 3: one step of beam search ---------------------------------------------------


def _beam_cases() -> dict:
    import torch

    gen = torch.Generator().manual_seed(1010)

    def case(beams: int, vocab: int, k: int):
        scores = -torch.rand(beams, generator=gen, dtype=torch.float64) * 6
        logits = 2 * torch.randn(beams, vocab, generator=gen, dtype=torch.float64)
        log_probs = logits.log_softmax(-1)
        return scores.sort(descending=True).values, log_probs, k

    return {
        "the first step (one beam, K = 1)": case(1, 12, 4),
        "three beams, k = 3": case(3, 9, 3),
        "two beams widened to k = 5 (k > K)": case(2, 7, 5),
        "four beams, k = 2": case(4, 11, 2),
        "five beams over a vocabulary of 30, k = 5": case(5, 30, 5),
    }


def _reference_beam_step(beam_scores, log_probs, k: int):
    vocab = log_probs.shape[-1]
    total = (beam_scores[:, None] + log_probs).flatten()
    scores, flat = total.topk(k)
    return scores, flat // vocab, flat % vocab


def _beam_output(out, k: int, case: str) -> tuple:
    """The student's triple, checked for its form: three ``(k,)`` tensors, integer indices."""
    import torch

    if not (isinstance(out, tuple | list) and len(out) == 3):
        raise AssertionError(f"on case '{case}' return a triple (scores, beam_idx, token_idx)")
    for name, t in zip(("scores", "beam_idx", "token_idx"), out):
        expect_type(t, torch.Tensor, f"{name} on case '{case}'")
        expect_shape(t, (k,), f"{name} on case '{case}'")
    for name, t in zip(("beam_idx", "token_idx"), out[1:]):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise AssertionError(f"{name} on case '{case}' has dtype {t.dtype}; indices are "
                                 "integers (torch.long), e.g. from integer division")
    return tuple(out)


def _beam_mistake(case: str, got: tuple, ref: tuple, beam_scores, log_probs) -> str | None:
    """Name a common mistake on ``case`` from the student's triple (None if none is seen)."""
    import torch

    s, b, t = got
    rs, rb, rt = ref
    vocab = log_probs.shape[-1]
    if torch.allclose(s, rs, atol=1e-6):
        if torch.equal(b, rb) and torch.equal(t, rt):
            return None
        if torch.equal(b * vocab + t, rt * vocab + rb):
            return (f"on case '{case}' beam_idx and token_idx are mixed up: the flat index i of "
                    "a (K, V) table is row i // V, column i % V")
        return (f"on case '{case}' the scores are right but beam_idx or token_idx is not: each "
                "must say which beam and which token gave that score")
    if torch.allclose(s.sort(descending=True).values, rs, atol=1e-6):
        return f"on case '{case}' your scores are not sorted best first (descending)"
    if torch.allclose(s, log_probs.flatten().topk(len(rs)).values, atol=1e-6):
        return (f"on case '{case}' your scores leave out the beams' scores so far: a "
                "continuation's score is its beam's summed log-probability plus the token's")
    if len(beam_scores) > 1 and bool((b == b[0]).all()) and not bool((rb == rb[0]).all()):
        return (f"on case '{case}' all your continuations come from one beam; the k best are "
                "taken over all K * V candidates at once")
    return None


@checker(
    "Exercise 3: One step of beam search",
    hints=(
        "Every beam can be continued by every token, so there are K * V candidates; the score "
        "of a candidate is its beam's summed log-probability plus the token's log-probability. "
        "Keep the k best, wherever they come from: one beam may give several, another none.",
        "Broadcast the (K,) beam scores against the (K, V) table with beam_scores[:, None], "
        "flatten it to K * V values and take torch.topk (sorted, largest first). Each flat "
        "index then splits into a beam (integer division by V) and a token (the remainder).",
        'Reread chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling": '
        "what a beam's score is, and how the K best continuations are kept.",
    ),
)
def check_beam_step(fn):
    """Check Exercise 3: ``fn(beam_scores, log_probs, k)`` keeps the k best continuations.

    Used in chapter 10, "Exercise 3 — One step of beam search (★★☆, ~15 min, 2 points)"."""
    for case, (scores, log_probs, k) in _beam_cases().items():
        out = _beam_output(call_student(fn, scores.clone(), log_probs.clone(), k), k, case)
        got = (out[0].detach().cpu().double(), out[1].detach().cpu().long(),
               out[2].detach().cpu().long())  # fmt: skip
        ref = _reference_beam_step(scores, log_probs, k)
        message = _beam_mistake(case, got, ref, scores, log_probs)
        if message:
            raise AssertionError(message)
        expect_close(got[0], ref[0], case, atol=1e-5)
