"""Chapter 14's checkers accept the reference solutions and reject realistic mistakes, without
giving the expected values away."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckFailed, StudentCodeError, ch14

# ---- exercise 1: the pointing game ----------------------------------------------------------------


def pointing(heat, target):
    return (heat.argmax(-1) == target).float().mean().item()


def test_pointing_game_accepts_the_reference(capsys):
    assert ch14.check_pointing_game(pointing)
    assert ch14.check_pointing_game(lambda h, t: (h.argmax(-1) == t).float().mean())  # a 0-d tensor is fine
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (lambda h, t: (h.argmin(-1) == t).float().mean().item(), "least weight"),
    (lambda h, t: int((h.argmax(-1) == t).sum()), "number of hits"),
    (lambda h, t: (h.argmax(-1) == t).float(), "one number"),
    (lambda h, t: (h.flip(-1).argmax(-1) == (8 - t)).float().mean().item(), "wrong hit rate"),  # last of ties
    (lambda h, t: "0.4", "should be a float"),
])
def test_pointing_game_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch14.check_pointing_game(fn)


# ---- exercise 2: FGSM --------------------------------------------------------------------------------


def fgsm(model, pixel_values, input_ids, attention_mask, labels, epsilon):
    x = pixel_values.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x, input_ids, attention_mask), labels)
    (grad,) = torch.autograd.grad(loss, x)
    return (pixel_values + epsilon * 2 / 255 * grad.sign()).clamp(-1, 1)


def test_fgsm_accepts_the_reference(capsys):
    assert ch14.check_fgsm(fgsm)
    assert "[correct]" in capsys.readouterr().out


def _fgsm_with(scale=2 / 255, sign=1, clamp=True):
    def fn(model, pixel_values, input_ids, attention_mask, labels, epsilon):
        x = pixel_values.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x, input_ids, attention_mask), labels), x)
        out = pixel_values + sign * epsilon * scale * grad.sign()
        return out.clamp(-1, 1) if clamp else out
    return fn


@pytest.mark.parametrize(("fn", "message"), [
    (_fgsm_with(scale=1.0), "normalised scale"),
    (_fgsm_with(scale=1 / 255), "not 1 / 255"),
    (_fgsm_with(sign=-1), "against the gradient"),
    (_fgsm_with(clamp=False), "leave \\[-1, 1\\]"),
    (lambda m, x, i, a, y, e: x, "wrong values"),
    (lambda m, x, i, a, y, e: x[0], "has shape"),
])
def test_fgsm_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch14.check_fgsm(fn)


# ---- exercise 3: integrated gradients ----------------------------------------------------------------


def integrated_gradients(f, x, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(steps):
        point = (baseline + (k + 0.5) / steps * (x - baseline)).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(point).sum(), point)
        total += grad
    return (x - baseline) * total / steps


def integrated_gradients_batched(f, x, baseline, steps):  # every path point in one batch
    alphas = (torch.arange(steps) + 0.5) / steps
    points = baseline[None] + alphas.view(-1, *[1] * x.dim()) * (x - baseline)[None]  # (S, B, ...)
    points = points.reshape(-1, *x.shape[1:]).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(points).sum(), points)
    return (x - baseline) * grad.view(steps, *x.shape).mean(0)


def test_integrated_gradients_accepts_correct_answers(capsys):
    assert ch14.check_integrated_gradients(integrated_gradients)
    assert ch14.check_integrated_gradients(integrated_gradients_batched)
    assert "[correct]" in capsys.readouterr().out


def _ig_left(f, x, baseline, steps):  # alpha = k / steps: the left Riemann sum
    total = torch.zeros_like(x)
    for k in range(steps):
        point = (baseline + k / steps * (x - baseline)).detach().requires_grad_(True)
        total += torch.autograd.grad(f(point).sum(), point)[0]
    return (x - baseline) * total / steps


def _gradient_times_input(f, x, baseline, steps):
    point = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(f(point).sum(), point)[0] * (x - baseline)


@pytest.mark.parametrize(("fn", "message"), [
    (_ig_left, "midpoints"),
    (_gradient_times_input, "gradient at the input only"),
    (lambda f, x, b, s: integrated_gradients(f, x, b, s) * 2, "wrong values"),
    (lambda f, x, b, s: integrated_gradients(f, x, b, s).sum(-1), "has shape"),
])
def test_integrated_gradients_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch14.check_integrated_gradients(fn)


def test_not_attempted_and_student_errors(capsys):
    def stub(*args):
        raise NotImplementedError()

    for check in (ch14.check_pointing_game, ch14.check_fgsm, ch14.check_integrated_gradients):
        assert check(stub) is False
    assert capsys.readouterr().out.count("[not attempted]") == 3
    with pytest.raises(StudentCodeError):
        ch14.check_fgsm(lambda m, x, i, a, y, e: x.nonexistent)
