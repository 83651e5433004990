"""Checkers for chapter 08, instruction tuning.

Each one runs the student's code on small seeded models and data, compares with a
reference written here and says what is wrong without printing the answer.

* :func:`check_accumulated_step` — ``fn(model, optimizer, micro_batches, clip_norm)``: ONE
  optimizer step from several micro-batches (gradient accumulation), equal to one step on
  all their examples together, with clipping; returns the mean loss (a float);
* :func:`check_evaluate` — ``fn(model, batches)``: accuracy over every example of an
  iterable of batches (the last one smaller), in eval mode, without building a graph;
* :func:`check_label_smoothing` — ``fn(logits, labels, epsilon)``: the label-smoothed
  cross-entropy of Szegedy et al. (2016), as ``F.cross_entropy(..., label_smoothing=)``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks.core import call_student, checker, expect_close, expect_type

__all__ = ["check_accumulated_step", "check_evaluate", "check_label_smoothing", "ToyModel",
           "toy_batches"]


class ToyModel(nn.Module):
    """A tiny classifier with the course's calling convention: ``model(x=...) -> logits``.

    It records, at every forward, whether it was in training mode and whether autograd was
    recording (``self.calls``), so a checker can see *how* it was called. ``dropout`` > 0
    makes train mode and eval mode give different outputs.

    Used in chapter 08, "Exercise 1 — One optimizer step from several micro-batches (★★☆, ~15 min, 2 points)".
    """

    def __init__(self, d_in: int = 6, classes: int = 4, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = nn.Linear(d_in, 16)
        self.out = nn.Linear(16, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)
        self.drop = nn.Dropout(dropout)
        self.calls: list[dict] = []

    def forward(self, x):
        self.calls.append({"training": self.training, "grad": torch.is_grad_enabled(),
                           "n": len(x)})
        return self.out(self.drop(torch.tanh(self.hidden(x))))  # (B, A)


def toy_batches(sizes, d_in: int = 6, classes: int = 4, seed: int = 0, scale: float = 3.0):
    """A list of ``{"x": (n, d_in), "labels": (n,)}`` batches of the given sizes.

    Used in chapter 08, "Exercise 2 — Accuracy over a whole split (★☆☆, ~10 min, 1 point)"."""
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(n, d_in, generator=g) * scale,
             "labels": torch.randint(0, classes, (n,), generator=g)} for n in sizes]


# ---- exercise 1: one optimizer step from several micro-batches -------------------------


def _reference_step(model, optimizer, micro_batches, clip_norm):
    model.train()
    total = sum(len(b["labels"]) for b in micro_batches)
    optimizer.zero_grad()
    loss_sum = 0.0
    for b in micro_batches:
        logits = model(x=b["x"])
        loss = F.cross_entropy(logits, b["labels"], reduction="sum") / total
        loss.backward()  # gradients add up in .grad
        loss_sum += loss.item()
    nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss_sum


def _stale_grads(model, seed: int = 7):
    """Leftover gradients, as a previous step that forgot to clear them would leave."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


def _step_case(sizes, clip_norm, seed):
    model = ToyModel(seed=seed).eval()  # starts in eval mode, as after an evaluation
    _stale_grads(model)
    return model, toy_batches(sizes, seed=seed), clip_norm


@checker(
    "Exercise 1: one optimizer step from several micro-batches",
    hints=(
        "The result must be exactly one optimizer step on all the examples together: clear "
        "the gradients once, let several backward passes add up, then clip and step once. "
        "The model may arrive in eval mode.",
        "backward() ADDS to .grad: clear it before the loop, never inside it. Weight each "
        "micro-batch's mean loss by its share of the examples, n_i / N (or use "
        "reduction='sum' and divide by N), so unequal sizes count right. Clip after the last "
        "backward and before the step, and return the mean loss as a float.",
        """Reread chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`", """
        "for the order of clearing, backward, clipping and stepping.",
    ),
)
def check_accumulated_step(fn):
    """Check Exercise 1: one clipped optimizer step from gradients accumulated over micro-batches.

    Used in chapter 08, "Exercise 1 — One optimizer step from several micro-batches (★★☆, ~15 min, 2 points)"."""
    cases = [
        ("2 equal micro-batches, loose clipping", (8, 8), 100.0, 0),
        ("3 unequal micro-batches (8, 8, 3), loose clipping", (8, 8, 3), 100.0, 1),
        ("3 micro-batches, clip_norm 0.05", (6, 6, 6), 0.05, 2),
    ]
    for name, sizes, clip, seed in cases:
        model, batches, clip = _step_case(sizes, clip, seed)
        ref_model = copy.deepcopy(model)
        before = copy.deepcopy(model.state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.5)
        expected_loss = _reference_step(ref_model, ref_opt, batches, clip)
        result = call_student(fn, model, opt, [dict(b) for b in batches], clip)
        calls = model.calls
        if not calls:
            raise AssertionError(f"case '{name}': the model was never called")
        if not all(c["training"] for c in calls):
            raise AssertionError(
                f"case '{name}': the model ran in eval mode (it arrives in eval mode, as after an "
                "evaluation); training needs train mode (dropout on, batch statistics updated)")
        if sum(c["n"] for c in calls) != sum(sizes):
            raise AssertionError(
                f"case '{name}': the model saw {sum(c['n'] for c in calls)} examples; the "
                f"micro-batches hold {sum(sizes)}: each should go through the model once")
        if all(torch.equal(v, before[k]) for k, v in model.state_dict().items()):
            raise AssertionError(
                f"case '{name}': the weights did not change; did the optimizer step, after "
                "backward and with the gradients still there?")
        try:
            loss = float(result)
        except (TypeError, ValueError):
            raise AssertionError(
                f"case '{name}': return the mean loss as a number, got {type(result).__name__}") from None
        for k, v in ref_model.state_dict().items():
            got = model.state_dict()[k]
            if not torch.allclose(got, v, atol=1e-5, rtol=1e-4):
                err = (got - v).abs().max().item()
                raise AssertionError(
                    f"case '{name}': the weights after your step differ from one step on all "
                    f"{sum(sizes)} examples together (largest difference {err:.3g}, in `{k}`). "
                    "Check: gradients cleared once before accumulating, each micro-batch weighted "
                    "by its share of the examples, clipping after all backward passes and before "
                    "the single step")
        if not math.isclose(loss, expected_loss, rel_tol=1e-4, abs_tol=1e-5):
            raise AssertionError(
                f"case '{name}': the returned loss is off ({loss:.4g}); return the mean loss "
                "over all examples of all micro-batches")


# ---- exercise 2: evaluation over a whole split -----------------------------------------


def _reference_evaluate(model, batches):
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for b in batches:
            correct += (model(x=b["x"]).argmax(-1) == b["labels"]).sum().item()
            total += len(b["labels"])
    return correct / total


@checker(
    "Exercise 2: accuracy over a whole split",
    hints=(
        "Evaluate as at test time (dropout off, no graph recorded), and count: accuracy is "
        "the number of correct answers over the number of examples, over every batch.",
        "Put the model in eval mode and run the forward passes under torch.inference_mode. "
        "Keep two integer counters (correct answers, examples), add to them batch by batch "
        "(the prediction is the argmax over the classes), and divide once at the end: "
        "averaging per-batch accuracies weighs the short last batch like a full one.",
        """Reread chapter 08, "1. The source's training loop, and what is wrong with it": """
        "its table of defects covers the mode, the gradients and the accuracy per batch.",
    ),
)
def check_evaluate(fn):
    """Check Exercise 2: accuracy over every batch of a split, in eval and inference mode.

    Used in chapter 08, "Exercise 2 — Accuracy over a whole split (★☆☆, ~10 min, 1 point)"."""
    cases = [
        ("batches of 32, 32 and a last one of 3", (32, 32, 3), 0),
        ("one batch of 10", (10,), 1),
        ("batches of 50 and a last one of 1", (50, 1), 2),
    ]
    for name, sizes, seed in cases:
        batches = toy_batches(sizes, seed=seed)
        model = ToyModel(dropout=0.5, seed=seed).train()  # arrives in train mode, dropout on
        expected = _reference_evaluate(copy.deepcopy(model), batches)
        torch.manual_seed(seed)
        result = call_student(fn, model, [dict(b) for b in batches])
        if not model.calls:
            raise AssertionError(f"case '{name}': the model was never called")
        if any(c["training"] for c in model.calls):
            raise AssertionError(
                f"case '{name}': the model ran in train mode, so dropout changed its answers; "
                "evaluate in eval mode")
        if any(c["grad"] for c in model.calls):
            raise AssertionError(
                f"case '{name}': autograd recorded a graph during evaluation (memory and time "
                "for nothing); run the forward passes without gradient tracking")
        if isinstance(result, torch.Tensor):
            if result.numel() != 1:
                raise AssertionError(f"case '{name}': return one number, got a tensor of shape "
                                     f"{tuple(result.shape)}")
            result = result.item()
        expect_type(result, (float, int), f"the accuracy on case '{name}'")
        if not math.isclose(result, expected, abs_tol=1e-6):
            raise AssertionError(
                f"case '{name}': your accuracy is {result:.4f}, which is not the fraction of "
                "correct answers among all the examples (is every example weighed equally, "
                "whatever the size of its batch? is the prediction the argmax over classes?)")


# ---- exercise 3: label smoothing -------------------------------------------------------


def _logits_case(n, k, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * scale, torch.randint(0, k, (n,), generator=g)


@checker(
    "Exercise 3: label-smoothed cross-entropy",
    hints=(
        "Label smoothing replaces the one-hot target by a softer one; the loss is still a "
        "cross-entropy, -sum(target * log p) per example, averaged over the batch.",
        "The target is (1 - eps) on the true class plus eps / K on EVERY class, the true one "
        "included. Take log-probabilities with F.log_softmax (safer than softmax(...).log()) "
        "and keep everything a tensor, so the loss stays differentiable.",
        "Reread "
        'chapter 08, "4. Losses: cross-entropy, MSE on one-hot targets, label smoothing".',
    ),
)
def check_label_smoothing(fn):
    """Check Exercise 3: label-smoothed cross-entropy, averaged over the batch.

    Used in chapter 08, "Exercise 3 — Label smoothing from scratch (★★☆, ~10 min, 2 points)"."""
    cases = [
        ("8 examples, 5 classes, eps 0.1", *_logits_case(8, 5, 0), 0.1),
        ("16 examples, 34 classes, eps 0.2", *_logits_case(16, 34, 1), 0.2),
        ("4 examples, 3 classes, eps 0 (plain cross-entropy)", *_logits_case(4, 3, 2), 0.0),
        ("6 confident examples, 4 classes, eps 0.3", *_logits_case(6, 4, 3, scale=12.0), 0.3),
    ]
    for name, logits, labels, eps in cases:
        expected = F.cross_entropy(logits, labels, label_smoothing=eps)
        result = call_student(fn, logits.clone(), labels.clone(), eps)
        expect_type(result, torch.Tensor, f"the loss on case '{name}'")
        if result.numel() != 1:
            raise AssertionError(f"case '{name}': the loss should be one number (the batch mean), "
                                 f"got shape {tuple(result.shape)}")
        expect_close(result.reshape(()), expected, name, atol=1e-5)
    logits, labels = _logits_case(5, 4, 4)
    logits.requires_grad_(True)
    out = call_student(fn, logits, labels, 0.1)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise AssertionError("the loss must stay differentiable (no .item(), .detach() or NumPy)")
