"""Chapter 10's checkers accept the reference solutions and reject realistic mistakes, without
giving the expected values away."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from course_utils.captioning import grounding, ngram
from course_utils.checks import CheckFailed, StudentCodeError, ch10

# ---- exercise 1: BLEU's brevity penalty -----------------------------------------------------


def bp(hyp_len, ref_len):
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


def bp_upside_down(c, r):
    return 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - c / r))


def bp_penalises_longer(c, r):
    return 0.0 if c == 0 else math.exp(1 - r / c)


def bp_no_exp(c, r):
    return 1.0 if c > r else (0.0 if c == 0 else 1 - r / c)


def bp_slightly_off(c, r):
    return 1.0 if c >= r else math.exp(1 - r / max(c, 1)) + 0.01


def bp_crashes_on_empty(c, r):
    return 1.0 if c > r else math.exp(1 - r / c)


# ---- exercise 2: CHAIR --------------------------------------------------------------------


def chair(stated, true):
    left = [Counter(s) - Counter(t) for s, t in zip(stated, true)]
    hallucinated = [sum(c.values()) for c in left]
    mentions = sum(len(s) for s in stated)
    return {"chair_i": sum(hallucinated) / mentions if mentions else 0.0,
            "chair_s": sum(h > 0 for h in hallucinated) / len(stated)}


def chair_as_sets(stated, true):
    halls = [sum(o not in t for o in s) for s, t in zip(stated, true)]
    mentions = sum(map(len, stated))
    return {"chair_i": sum(halls) / mentions if mentions else 0.0,
            "chair_s": sum(h > 0 for h in halls) / len(stated)}


def chair_per_description(stated, true):
    out = chair(stated, true)
    rates = [sum((Counter(s) - Counter(t)).values()) / len(s) for s, t in zip(stated, true) if s]
    return {**out, "chair_i": sum(rates) / len(rates) if rates else 0.0}


def chair_over_true(stated, true):
    out = chair(stated, true)
    halls = sum(sum((Counter(s) - Counter(t)).values()) for s, t in zip(stated, true))
    return {**out, "chair_i": halls / sum(map(len, true))}


def chair_s_skips_empty(stated, true):
    out = chair(stated, true)
    said = [(s, t) for s, t in zip(stated, true) if s]
    bad = sum(bool(Counter(s) - Counter(t)) for s, t in said)
    return {**out, "chair_s": bad / len(said) if said else 0.0}


def chair_swapped(stated, true):
    out = chair(stated, true)
    return {"chair_i": out["chair_s"], "chair_s": out["chair_i"]}


def chair_divides_by_zero(stated, true):
    halls = [sum((Counter(s) - Counter(t)).values()) for s, t in zip(stated, true)]
    return {"chair_i": sum(halls) / sum(map(len, stated)),
            "chair_s": sum(h > 0 for h in halls) / len(stated)}


# ---- exercise 3: one step of beam search ------------------------------------------------------


def beam_step(beam_scores, log_probs, k):
    vocab = log_probs.shape[1]
    scores, flat = (beam_scores[:, None] + log_probs).flatten().topk(k)
    return scores, flat // vocab, flat % vocab


def beam_by_hand(beam_scores, log_probs, k):  # a sort instead of topk, a list instead of a tuple
    total = (beam_scores.unsqueeze(1) + log_probs).reshape(-1)
    order = total.argsort(descending=True)[:k]
    return [total[order], torch.div(order, log_probs.shape[1], rounding_mode="floor"),
            order.remainder(log_probs.shape[1])]


def beam_forgets_scores(beam_scores, log_probs, k):
    return beam_step(torch.zeros_like(beam_scores), log_probs, k)


def beam_indices_swapped(beam_scores, log_probs, k):
    scores, b, t = beam_step(beam_scores, log_probs, k)
    flat = b * log_probs.shape[1] + t
    return scores, flat % log_probs.shape[1], flat // log_probs.shape[1]


def beam_ascending(beam_scores, log_probs, k):
    scores, b, t = beam_step(beam_scores, log_probs, k)
    return scores.flip(0), b.flip(0), t.flip(0)


def beam_per_beam(beam_scores, log_probs, k):  # the k best of each beam, then the first k
    scores, tokens = (beam_scores[:, None] + log_probs).topk(k, dim=-1)
    beams = torch.arange(len(beam_scores))[:, None].expand_as(tokens)
    return scores.flatten()[:k], beams.flatten()[:k], tokens.flatten()[:k]


def beam_float_indices(beam_scores, log_probs, k):
    scores, flat = (beam_scores[:, None] + log_probs).flatten().topk(k)
    return scores, (flat / log_probs.shape[1]).floor(), flat % log_probs.shape[1]


def beam_column_major(beam_scores, log_probs, k):
    vocab = log_probs.shape[1]
    scores, flat = (beam_scores[:, None] + log_probs).T.flatten().topk(k)
    return scores, flat // vocab, flat % vocab


def beam_one_per_beam(beam_scores, log_probs, k):
    scores, tokens = (beam_scores[:, None] + log_probs).max(-1)
    return scores, torch.arange(len(scores)), tokens


# ---- the tests ------------------------------------------------------------------------------


def test_reference_solutions_pass(capsys):
    assert ch10.check_brevity_penalty(bp) is True
    assert ch10.check_brevity_penalty(ngram.brevity_penalty) is True
    assert ch10.check_brevity_penalty(lambda c, r: torch.tensor(bp(c, r))) is True  # a 0-d tensor
    assert ch10.check_chair(chair) is True
    assert ch10.check_chair(grounding.chair) is True
    assert ch10.check_beam_step(beam_step) is True
    assert ch10.check_beam_step(beam_by_hand) is True
    assert capsys.readouterr().out.count("[correct]") == 7


def test_the_beam_reference_is_the_lessons_beam_step():
    decoding = pytest.importorskip("course_utils.captioning.decoding")
    if not hasattr(decoding, "beam_step"):
        pytest.skip("captioning.decoding has no beam_step yet")
    for scores, log_probs, k in ch10._beam_cases().values():
        lesson, here = decoding.beam_step(scores, log_probs, k), beam_step(scores, log_probs, k)
        assert all(torch.equal(a, b) for a, b in zip(lesson, here))


@pytest.mark.parametrize(
    ("check", "wrong", "message"),
    [
        (ch10.check_brevity_penalty, lambda c, r: 1.0, "not penalised"),
        (ch10.check_brevity_penalty, bp_upside_down, "upside down"),
        (ch10.check_brevity_penalty, bp_penalises_longer, "only brevity"),
        (ch10.check_brevity_penalty, bp_no_exp, "between 0 and 1"),
        (ch10.check_brevity_penalty, bp_slightly_off, "wrong brevity penalty"),
        (ch10.check_brevity_penalty, lambda c, r: 1.0 if c > r or c == 0 else math.exp(1 - r / c),
         "no credit"),
        (ch10.check_brevity_penalty, lambda c, r: float("nan"), "NaN|nan"),
        (ch10.check_brevity_penalty, lambda c, r: str(bp(c, r)), "should be a number"),
        (ch10.check_chair, chair_as_sets, "as a set"),
        (ch10.check_chair, chair_per_description, "averages per description"),
        (ch10.check_chair, chair_over_true, "divides by the true objects"),
        (ch10.check_chair, chair_s_skips_empty, "state nothing"),
        (ch10.check_chair, chair_swapped, "swapped"),
        (ch10.check_chair, lambda s, t: tuple(chair(s, t).values()), "should be a dict"),
        (ch10.check_chair, lambda s, t: {"chair_i": chair(s, t)["chair_i"]}, "missing the key"),
        (ch10.check_beam_step, beam_forgets_scores, "beams' scores so far"),
        (ch10.check_beam_step, beam_indices_swapped, "mixed up"),
        (ch10.check_beam_step, beam_ascending, "best first"),
        (ch10.check_beam_step, beam_per_beam, "one beam"),
        (ch10.check_beam_step, beam_float_indices, "integers"),
        (ch10.check_beam_step, beam_column_major, "beam_idx or token_idx is not"),
        (ch10.check_beam_step, beam_one_per_beam, "shape"),
        (ch10.check_beam_step, lambda s, lp, k: beam_step(s, lp, k)[:2], "triple"),
        (ch10.check_beam_step, lambda s, lp, k: beam_step(s * 2, lp, k), "wrong values"),
    ],
)
def test_wrong_answers_fail(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


def _hidden_values() -> set[str]:
    """How the expected values of the hidden cases would read in a message."""
    values = [ngram.brevity_penalty(c, r) for c, r in ch10._BP_CASES.values()]
    values += [v for s, t in ch10._chair_cases().values() for v in grounding.chair(s, t).values()]
    for scores, log_probs, k in ch10._beam_cases().values():
        values += beam_step(scores, log_probs, k)[0].tolist()
    formats = ("{!r}", "{:.3f}", "{:.4f}", "{:.3g}", "{:.4g}")
    texts = {fmt.format(v) for v in values for fmt in formats}
    return {t for t in texts if len(t) >= 4}


@pytest.mark.parametrize("wrong", [
    (ch10.check_brevity_penalty, bp_upside_down), (ch10.check_brevity_penalty, bp_no_exp),
    (ch10.check_brevity_penalty, lambda c, r: 0.5),
    (ch10.check_chair, chair_as_sets), (ch10.check_chair, chair_per_description),
    (ch10.check_chair, lambda s, t: {"chair_i": 0.3, "chair_s": 0.3}),
    (ch10.check_beam_step, beam_forgets_scores), (ch10.check_beam_step, beam_per_beam),
    (ch10.check_beam_step, lambda s, lp, k: beam_step(s * 2, lp, k)),
], ids=lambda w: f"{w[0].__name__}-{getattr(w[1], '__name__', 'lambda')}")
def test_messages_do_not_give_the_expected_values_away(wrong):
    check, fn = wrong
    with pytest.raises(CheckFailed) as info:
        check(fn)
    message = str(info.value)
    assert "tensor(" not in message and "array(" not in message, message
    leaked = [t for t in _hidden_values() if t in message]
    assert not leaked, (message, leaked)


def test_hints_are_three_and_end_with_a_chapter_10_section():
    for check in (ch10.check_brevity_penalty, ch10.check_chair, ch10.check_beam_step):
        assert len(check.hints) == 3 and 'chapter 10, "' in check.hints[-1], check.title


def test_placeholders_are_not_attempted(placeholder, not_attempted):
    not_attempted(ch10.check_brevity_penalty(placeholder), ch10.check_chair(placeholder),
                  ch10.check_beam_step(placeholder), ch10.check_beam_step(None))


def test_student_bugs_are_reported_as_theirs(crashes):
    with pytest.raises(StudentCodeError, match="ZeroDivisionError"):
        ch10.check_brevity_penalty(bp_crashes_on_empty)
    with pytest.raises(StudentCodeError, match="ZeroDivisionError"):
        ch10.check_chair(chair_divides_by_zero)
    with pytest.raises(StudentCodeError, match="RuntimeError"):
        ch10.check_beam_step(crashes)


def test_strict_mode_makes_not_attempted_an_error(strict_checks):
    with pytest.raises(strict_checks):
        ch10.check_chair(None)
