"""Chapter 13's checkers accept the reference solutions and reject realistic mistakes, without
giving the expected values away."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.checks import CheckFailed, StudentCodeError, ch13

# ---- exercise 1: fitting a power law -----------------------------------------------------------


def power_law(n, error):
    slope, intercept = np.polyfit(np.log(np.asarray(n, float)), np.log(np.asarray(error, float)), 1)
    return float(np.exp(intercept)), float(-slope)


def power_law_log10(n, error):  # base 10 throughout: the same law
    slope, intercept = np.polyfit(np.log10(n), np.log10(error), 1)
    return 10**intercept, -slope


def power_law_by_hand(n, error):  # the normal equations, in plain Python
    xs, ys = [math.log(v) for v in n], [math.log(v) for v in error]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - slope * mx), -slope


def test_power_law_accepts_correct_fits(capsys):
    for fn in (power_law, power_law_log10, power_law_by_hand):
        assert ch13.check_power_law(fn)
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (lambda n, e: (power_law(n, e)[0], -power_law(n, e)[1]), "wrong sign"),
    (lambda n, e: (math.log(power_law(n, e)[0]), power_law(n, e)[1]), "still a logarithm"),
    (lambda n, e: (np.polyfit(np.log10(n), np.log10(e), 1)[1], power_law(n, e)[1]), "still a logarithm"),
    (lambda n, e: (math.exp(np.polyfit(np.log10(n), np.log10(e), 1)[1]), power_law(n, e)[1]), "wrong a"),
    (lambda n, e: tuple(np.polyfit(np.asarray(n, float), np.asarray(e, float), 1)), "wrong alpha"),
    (lambda n, e: power_law(n, e)[1], "should be a tuple"),
    (lambda n, e: (1.0, 2.0, 3.0), "a pair"),
    (lambda n, e: (float("nan"), 0.5), "not finite"),
])
def test_power_law_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch13.check_power_law(fn)


def test_power_law_not_attempted_and_student_errors(capsys):
    def stub(n, error):
        raise NotImplementedError()

    assert ch13.check_power_law(stub) is False
    assert "[not attempted]" in capsys.readouterr().out
    with pytest.raises(StudentCodeError):
        ch13.check_power_law(lambda n, e: np.polyfit(n))


# ---- exercise 2: a rank's share ---------------------------------------------------------------------


def sampler_share(n, rank, world_size):
    total = world_size * math.ceil(n / world_size)
    padded = [i % n for i in range(total)]
    return padded[rank::world_size]


def share_chunks(n, rank, world_size):  # contiguous chunks, padded: the right indices, dealt wrong
    total = world_size * math.ceil(n / world_size)
    padded = [i % n for i in range(total)]
    k = total // world_size
    return padded[rank * k:(rank + 1) * k]


def test_sampler_share_accepts_the_reference(capsys):
    assert ch13.check_sampler_share(sampler_share)
    assert ch13.check_sampler_share(lambda n, r, w: range(n)[r::w] if n % w == 0 else sampler_share(n, r, w))
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (lambda n, r, w: list(range(n))[r::w], "different numbers"),  # no padding
    (share_chunks, "deals them out one at a time"),
    (lambda n, r, w: [i + 1 for i in sampler_share(n, r, w)], "wrong shares"),
    (lambda n, r, w: torch.tensor(sampler_share(n, r, w)), "should be a list"),
    (lambda n, r, w: [float(i) for i in sampler_share(n, r, w)], "should hold ints"),
])
def test_sampler_share_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch13.check_sampler_share(fn)


# ---- exercise 3: all-reduce by hand -----------------------------------------------------------------


def all_reduce(rank_grads, counts):
    total = sum(counts)
    return [sum(c * g for c, g in zip(counts, grads)) / total for grads in zip(*rank_grads)]


def all_reduce_stacked(rank_grads, counts):
    w = torch.tensor(counts, dtype=torch.float) / sum(counts)
    return [torch.einsum("r,r...->...", w, torch.stack(g)) for g in zip(*rank_grads)]


def test_all_reduce_accepts_correct_answers(capsys):
    assert ch13.check_all_reduce(all_reduce)
    assert ch13.check_all_reduce(all_reduce_stacked)
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (lambda rg, c: [torch.stack(g).mean(0) for g in zip(*rg)], "plain mean over ranks"),
    (lambda rg, c: [torch.stack(g).sum(0) for g in zip(*rg)], "wrong values"),
    (lambda rg, c: [sum(n * g for n, g in zip(c, grads)) for grads in zip(*rg)], "wrong values"),
    (lambda rg, c: all_reduce(rg, c)[:-1], "one tensor per parameter"),
    (lambda rg, c: [g.tolist() for g in all_reduce(rg, c)], "should be a Tensor"),
    (lambda rg, c: rg[0], "wrong values"),
])
def test_all_reduce_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch13.check_all_reduce(fn)


def test_rank_gradients_average_to_the_batch_gradient_only_when_weighted():
    x, y, counts = ch13._all_reduce_cases()["3 ranks holding 6, 4 and 2 examples"]
    grads = ch13.rank_gradients(x, y, counts)
    assert len(grads) == 3 and all(len(g) == 4 for g in grads)
    weighted, plain = all_reduce(grads, counts), [torch.stack(g).mean(0) for g in zip(*grads)]
    assert not all(torch.allclose(w, p) for w, p in zip(weighted, plain))
