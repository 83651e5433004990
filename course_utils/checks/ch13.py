"""Checkers for chapter 13 (the FAQ, measured: fitting a power law, a rank's share of a global
batch, all-reduce by hand).

Each compares the student's answer with :mod:`course_utils.scaling` and
:mod:`course_utils.distributed` on seeded inputs and says what is wrong without printing the
reference values.
"""

from __future__ import annotations

import math

from course_utils.checks.core import call_student, checker, expect_close, expect_type

# ---- Exercise 1: fitting a power law --------------------------------------------------------


def _power_law_cases() -> dict:
    """``case: (n, error)``: exact power laws, a noisy one, and one with a single decade."""
    import numpy as np

    rng = np.random.default_rng(1301)
    n = np.array([500, 1000, 2000, 4000, 8000, 16000], dtype=float)
    noisy = 3.0 * n**-0.45 * np.exp(rng.normal(0, 0.08, len(n)))
    return {"an exact power law, alpha = 0.5": (n, 20.0 * n**-0.5),
            "a noisy power law": (n, noisy),
            "three points, as plain lists": ([100, 300, 1000], [0.4, 0.21, 0.1])}  # fmt: skip


def _as_pair(got, case: str) -> tuple[float, float]:
    expect_type(got, tuple, f"the result on case '{case}'")
    if len(got) != 2:
        raise AssertionError(f"the result on case '{case}' should be a pair (a, alpha), got {len(got)} values")
    try:
        a, alpha = (float(v) for v in got)
    except (TypeError, ValueError):
        raise AssertionError(f"the result on case '{case}' should hold two numbers") from None
    if not (math.isfinite(a) and math.isfinite(alpha)):
        raise AssertionError(f"the result on case '{case}' is not finite")
    return a, alpha


@checker(
    "Exercise 1: fitting a power law",
    hints=(
        "A power law error = a * n ** -alpha is a straight line on log-log axes: "
        "log(error) = log(a) - alpha * log(n). Fit that line by least squares.",
        "`slope, intercept = np.polyfit(np.log(n), np.log(error), 1)`; then alpha is minus the "
        "slope and a is `exp(intercept)` (the natural exponential if you took natural logs).",
        'Reread chapter 13, "1. More data: error against examples (FAQ 9.2)".',
    ),
)
def check_power_law(fn):
    """Check Exercise 1: ``fn(n, error)`` returns ``(a, alpha)`` of ``error = a * n ** -alpha``.

    Used in chapter 13, "Exercise 1 — Fitting a power law (★★☆, ~15 min, 2 points)"."""
    from course_utils.scaling import fit_power_law

    for case, (n, error) in _power_law_cases().items():
        a, alpha = _as_pair(call_student(fn, n, error), case)
        ref_a, ref_alpha = fit_power_law(n, error)
        if math.isclose(alpha, -ref_alpha, rel_tol=1e-3) and not math.isclose(alpha, ref_alpha, rel_tol=1e-3):
            raise AssertionError(f"on case '{case}' your alpha has the wrong sign: the law is "
                                 "a * n ** -alpha, so alpha is minus the slope")  # fmt: skip
        if not math.isclose(alpha, ref_alpha, rel_tol=1e-3, abs_tol=1e-6):
            raise AssertionError(f"wrong alpha on case '{case}' (fit a line to the logs of both n and error)")
        if math.isclose(a, math.log(ref_a), rel_tol=1e-3) or math.isclose(a, math.log10(ref_a), rel_tol=1e-3):
            raise AssertionError(f"on case '{case}' your a is still a logarithm: return the "
                                 "exponential of the intercept")  # fmt: skip
        if not math.isclose(a, ref_a, rel_tol=1e-3):
            raise AssertionError(f"wrong a on case '{case}' (alpha is right; check how you turn the "
                                 "intercept back into a, with the same base as your logs)")  # fmt: skip


# ---- Exercise 2: a rank's share ---------------------------------------------------------------

#: ``(n, world_size)`` of the cases: divisible, and not (the sampler pads by wrapping around).
_SHARE_CASES = ((8, 2), (10, 3), (7, 4), (5, 1), (3, 4))


@checker(
    "Exercise 2: a rank's share of the data",
    hints=(
        "Every rank must get the same number of examples, or the ranks would take different "
        "numbers of steps and wait for each other forever. So the sampler first makes the list "
        "of indices a multiple of the number of ranks, then deals it out.",
        "Pad `list(range(n))` with its own first indices (wrapping around) up to "
        "`world_size * ceil(n / world_size)`; then deal the padded list out like cards: rank "
        "`r` takes the indices at positions r, r + world_size, r + 2 * world_size, ...",
        'Reread chapter 13, "6. From one laptop to many machines: distributed data parallel".',
    ),
)
def check_sampler_share(fn):
    """Check Exercise 2: ``fn(n, rank, world_size)`` lists the indices PyTorch's
    ``DistributedSampler`` (``shuffle=False``) gives rank ``rank`` of ``world_size`` over ``n`` examples.

    Used in chapter 13, "Exercise 2 — A rank's share of the data (★☆☆, ~10 min, 1 point)"."""
    from torch.utils.data import DistributedSampler

    for n, world in _SHARE_CASES:
        case = f"{n} examples, {world} rank{'s' * (world > 1)}"
        got = [call_student(fn, n, rank, world) for rank in range(world)]
        want = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
        for rank, g in enumerate(got):
            expect_type(g, (list, tuple, range), f"the share of rank {rank} on case '{case}'")
            if any(isinstance(i, bool) or not isinstance(i, int) for i in g):
                raise AssertionError(f"the share of rank {rank} on case '{case}' should hold ints (indices)")
        got = [list(g) for g in got]
        if got == want:
            continue
        if len({len(g) for g in got}) > 1:
            raise AssertionError(f"on case '{case}' the ranks get different numbers of examples; "
                                 "every rank must get as many")  # fmt: skip
        if sorted(i for g in got for i in g) == sorted(i for g in want for i in g):
            raise AssertionError(f"on case '{case}' each rank holds the right number of indices, but not "
                                 "the sampler's: it deals them out one at a time, it does not cut chunks")  # fmt: skip
        raise AssertionError(f"wrong shares on case '{case}'")


# ---- Exercise 3: all-reduce by hand ---------------------------------------------------------


def _all_reduce_cases() -> dict:
    """``case: (x, y, counts)``: a batch split across ranks, equally and unequally."""
    import torch

    gen = torch.Generator().manual_seed(1303)
    x, y = torch.randn(12, 5, generator=gen), torch.randint(0, 3, (12,), generator=gen)
    return {"2 ranks, 6 examples each": (x, y, [6, 6]),
            "3 ranks holding 6, 4 and 2 examples": (x, y, [6, 4, 2]),
            "4 ranks, the last holding one example": (x[:10], y[:10], [3, 3, 3, 1])}  # fmt: skip


def _small_model():
    import torch
    from torch import nn

    torch.manual_seed(1303)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def rank_gradients(x, y, counts) -> list:
    """Each rank's gradients of its own mean loss: ``[[grad per parameter] per rank]``.

    Used in chapter 13, "Exercise 3 — All-reduce by hand (★★☆, ~10 min, 2 points)"."""
    import torch.nn.functional as F

    out = []
    for xs, ys in zip(x.split(counts), y.split(counts)):
        model = _small_model()
        F.cross_entropy(model(xs), ys).backward()
        out.append([p.grad.clone() for p in model.parameters()])
    return out


@checker(
    "Exercise 3: all-reduce by hand",
    hints=(
        "Each rank's gradient is the gradient of the mean loss over its own examples. The "
        "global batch's gradient is the gradient of the mean over all examples: weigh each "
        "rank by how many examples it holds.",
        "For each parameter: `sum(count_r * grad_r) / sum(counts)`. DDP itself takes the plain "
        "mean over ranks, which is the same thing only when every rank holds as many examples "
        "(that is why a distributed sampler pads the data to equal shards).",
        'Reread chapter 13, "6. From one laptop to many machines: distributed data parallel".',
    ),
)
def check_all_reduce(fn):
    """Check Exercise 3: ``fn(rank_grads, counts)`` is the global batch's gradient, one tensor
    per parameter, from each rank's gradients of its own mean loss.

    Used in chapter 13, "Exercise 3 — All-reduce by hand (★★☆, ~10 min, 2 points)"."""
    import torch
    import torch.nn.functional as F

    for case, (x, y, counts) in _all_reduce_cases().items():
        model = _small_model()
        F.cross_entropy(model(x), y).backward()
        want = [p.grad for p in model.parameters()]
        grads = rank_gradients(x, y, counts)
        got = call_student(fn, [[g.clone() for g in rank] for rank in grads], list(counts))
        if not isinstance(got, list | tuple) or len(got) != len(want):
            raise AssertionError(f"on case '{case}' return one tensor per parameter ({len(want)}), "
                                 "in the order of the parameters")  # fmt: skip
        plain = [torch.stack(g).mean(0) for g in zip(*grads)]
        for i, (g, w, p) in enumerate(zip(got, want, plain)):
            expect_type(g, torch.Tensor, f"gradient {i} on case '{case}'")
            if len(set(counts)) > 1 and not torch.allclose(g, w, atol=1e-6) and torch.allclose(g, p, atol=1e-6):
                raise AssertionError(f"on case '{case}' you take the plain mean over ranks; the ranks "
                                     "hold different numbers of examples")  # fmt: skip
            expect_close(g, w, f"{case}: gradient {i}", atol=1e-6)
