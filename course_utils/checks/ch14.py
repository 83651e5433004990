"""Checkers for chapter 14 (outlook: the pointing game, FGSM, integrated gradients).

Each compares the student's answer with :mod:`course_utils.outlook` (and, for integrated
gradients, with captum) on seeded inputs and says what is wrong without printing the
reference values.
"""

from __future__ import annotations

from course_utils.checks.core import call_student, checker, expect_close, expect_shape, expect_type

# ---- Exercise 1: the pointing game ------------------------------------------------------------


def _pointing_cases() -> dict:
    """``case: (heat (B, 9), target (B,))``: random maps, and maps with ties."""
    import torch

    gen = torch.Generator().manual_seed(1401)
    heat = torch.rand(20, 9, generator=gen).softmax(-1)
    target = torch.randint(0, 9, (20,), generator=gen)
    target[:8] = heat[:8].argmax(-1)  # some hits
    tied = torch.zeros(4, 9)
    tied[:, [2, 6]] = 0.5  # two cells share the top: the first one counts
    return {"20 random maps": (heat, target),
            "maps whose top is shared by two cells": (tied, torch.tensor([2, 6, 2, 4]))}  # fmt: skip


@checker(
    "Exercise 1: the pointing game",
    hints=(
        "A map 'points' at the cell it gives the most weight. The game is won for an image when "
        "that cell is the one the question's object is in.",
        "`heat.argmax(dim=-1)` gives each image's top cell (the first one when two share the "
        "top); compare it with `target` to get one bool per image, and take the mean of those "
        "as a float for the hit rate.",
        'Reread chapter 14, "1. Are attention maps explanations?".',
    ),
)
def check_pointing_game(fn):
    """Check Exercise 1: ``fn(heat, target)`` returns the pointing game's hit rate, a float.

    Used in chapter 14, "Exercise 1 — The pointing game (★☆☆, ~10 min, 1 point)"."""
    import torch

    from course_utils.outlook.attribution import pointing_game

    for case, (heat, target) in _pointing_cases().items():
        got = call_student(fn, heat.clone(), target.clone())
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise AssertionError(f"on case '{case}' return one number, the hit rate, not one per image")
            got = got.item()
        expect_type(got, (float, int), f"the result on case '{case}'")
        want = pointing_game(heat, target).float().mean().item()
        lowest = (heat.argmin(-1) == target).float().mean().item()
        if abs(got - want) < 1e-6:
            continue
        if abs(got - lowest) < 1e-6:
            raise AssertionError(f"on case '{case}' you point at the cell with the least weight")
        if abs(got - want * len(target)) < 1e-6:
            raise AssertionError(f"on case '{case}' you return the number of hits; return the hit rate")
        raise AssertionError(f"wrong hit rate on case '{case}'")


# ---- Exercise 2: FGSM ------------------------------------------------------------------------


def _attack_model():
    """A small image classifier with the VQA model's call signature."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1402)
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 5))

        def forward(self, pixel_values, input_ids, attention_mask=None):
            return self.net(pixel_values) + 0.01 * input_ids.float().sum(1, keepdim=True)  # (B, 5)

    return Tiny().eval()


def _fgsm_cases() -> dict:
    import torch

    gen = torch.Generator().manual_seed(1402)
    x = torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1
    x[0, :, :2] = 1.0  # saturated pixels: the result must stay a valid image
    ids, labels = torch.randint(1, 9, (6, 4), generator=gen), torch.randint(0, 5, (6,), generator=gen)
    return {"epsilon 4 levels": (x, ids, labels, 4.0), "epsilon 16 levels": (x, ids, labels, 16.0),
            "epsilon 0": (x[:2], ids[:2], labels[:2], 0.0)}  # fmt: skip


@checker(
    "Exercise 2: FGSM",
    hints=(
        "Make the pixels a leaf tensor that requires grad, compute the cross-entropy of the "
        "model's logits against the labels, and take its gradient with respect to the pixels.",
        "Step every pixel by epsilon in the direction of the gradient's sign. Epsilon is in pixel "
        "levels (0-255), and the images are normalised so that one level is 2 / 255; clamp the "
        "result to [-1, 1] so that it is still an image.",
        'Reread chapter 14, "2. Adversarial pixels: FGSM and PGD".',
    ),
)
def check_fgsm(fn):
    """Check Exercise 2: ``fn(model, pixel_values, input_ids, attention_mask, labels, epsilon)``
    is the untargeted FGSM image, epsilon in pixel levels, clamped to [-1, 1].

    Used in chapter 14, "Exercise 2 — FGSM (★★☆, ~15 min, 2 points)"."""
    import torch

    from course_utils.outlook.attacks import fgsm

    model = _attack_model()
    for case, (x, ids, labels, eps) in _fgsm_cases().items():
        got = call_student(fn, model, x.clone(), ids, None, labels, eps)
        want = fgsm(model, x, ids, None, labels, eps)
        expect_type(got, type(want), f"the result on case '{case}'")
        expect_shape(got, want.shape, f"the result on case '{case}'")
        got = got.detach()
        if got.max() > 1 + 1e-6 or got.min() < -1 - 1e-6:
            raise AssertionError(f"on case '{case}' some pixels leave [-1, 1]: clamp the result")
        scaled = {eps * 255 / 2: "you step by epsilon on the normalised scale; epsilon is in pixel "
                                 "levels (one level is 2 / 255 there)",
                  eps / 2: "one pixel level is 2 / 255 on the normalised scale, not 1 / 255"}
        for wrong_eps, message in scaled.items():
            if eps and torch.allclose(got, fgsm(model, x, ids, None, labels, wrong_eps), atol=1e-5):
                raise AssertionError(f"on case '{case}' {message}")
        inside = (x.abs() < 1 - 2 * eps / 255) & ((want - x).abs() > 0)  # pixels no clamp touched
        if eps and inside.any() and torch.allclose(got[inside], (2 * x - want)[inside], atol=1e-5):
            raise AssertionError(f"on case '{case}' you step against the gradient: that lowers the "
                                 "loss; an attack raises it")  # fmt: skip
        expect_close(got, want, case, atol=1e-5)


# ---- Exercise 3: integrated gradients -----------------------------------------------------------


def _ig_cases() -> dict:
    """``case: (f, x, baseline, steps)``: smooth functions of a batch, one scalar each."""
    import torch

    gen = torch.Generator().manual_seed(1403)
    w = torch.randn(4, 5, generator=gen)
    x = torch.randn(3, 4, 5, generator=gen)

    def bumpy(v):  # (B, 4, 5) -> (B,)
        return torch.tanh((v * w).sum((1, 2))) + (v**2).mean((1, 2))

    def product(v):  # (B, 4, 5) -> (B,): the gradient changes along the path
        return v[:, 0, 0] * v[:, 1, 1] + v[:, 2].sin().sum(1)

    return {"a tanh of a linear map, zero baseline, 16 steps": (bumpy, x, torch.zeros_like(x), 16),
            "a product, a random baseline, 7 steps": (product, x, torch.randn(x.shape, generator=gen), 7),
            "two steps, one image": (product, x[:1], torch.zeros_like(x[:1]), 2)}  # fmt: skip


@checker(
    "Exercise 3: integrated gradients",
    hints=(
        "Integrated gradients averages the gradient of f along the straight line from the "
        "baseline to the input, then multiplies by (input - baseline). Use the midpoints "
        "alpha = (k + 0.5) / steps for k = 0 .. steps - 1.",
        "For each alpha, build `point = baseline + alpha * (x - baseline)` as a leaf that "
        "requires grad, take `torch.autograd.grad(f(point).sum(), point)`, and add it up; divide "
        "the sum by `steps` and multiply by `x - baseline`.",
        'Reread chapter 14, "1. Are attention maps explanations?".',
    ),
)
def check_integrated_gradients(fn):
    """Check Exercise 3: ``fn(f, x, baseline, steps)`` is the integrated-gradients attribution of
    ``f`` (a batch of inputs to one number each), with midpoint steps, as captum computes it.

    Used in chapter 14, "Exercise 3 — Integrated gradients (★★☆, ~15 min, 2 points)"."""
    import torch
    from captum.attr import IntegratedGradients

    for case, (f, x, baseline, steps) in _ig_cases().items():
        got = call_student(fn, f, x.clone(), baseline.clone(), steps)
        want = IntegratedGradients(f).attribute(x, baselines=baseline, n_steps=steps,
                                                method="riemann_middle")
        expect_type(got, torch.Tensor, f"the result on case '{case}'")
        expect_shape(got, want.shape, f"the result on case '{case}'")
        got = got.detach()
        if steps > 1:
            if torch.allclose(got, _gradient(f, x) * (x - baseline), atol=1e-5):
                raise AssertionError(f"on case '{case}' you take the gradient at the input only "
                                     "(gradient x input); average it along the path")  # fmt: skip
            left = sum(_gradient(f, baseline + k / steps * (x - baseline)) for k in range(steps))
            if torch.allclose(got, left / steps * (x - baseline), atol=1e-5):
                raise AssertionError(f"on case '{case}' your points start at the baseline (alpha = k / steps); "
                                     "use the midpoints (k + 0.5) / steps")  # fmt: skip
        expect_close(got, want, case, atol=1e-5, rtol=1e-4)


def _gradient(f, point):
    """The gradient of ``f(point).sum()`` with respect to ``point`` (each example's own)."""
    import torch

    point = point.detach().clone().requires_grad_(True)
    return torch.autograd.grad(f(point).sum(), point)[0]
