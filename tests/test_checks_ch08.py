"""The chapter 08 checkers: the reference passes, realistic mistakes fail, placeholders and
crashes in student code are reported as such."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckFailed, StudentCodeError, ch08

# ---- exercise 1: gradient accumulation --------------------------------------------------


def make_step(train=True, zero="once", weight="share", clip="before_step", step="once",
              todo=False, crash=False, detach_return=False):
    def accumulated_step(model, optimizer, micro_batches, clip_norm):
        if todo:
            raise NotImplementedError()
        if train:
            model.train()
        if zero == "once":
            optimizer.zero_grad()
        total = sum(len(b["labels"]) for b in micro_batches)
        mean_loss = 0.0
        for b in micro_batches:
            if zero == "each":
                optimizer.zero_grad()
            if crash:
                logits = model(x=b["x"].T)  # the student's transpose bug
            logits = model(x=b["x"])
            if weight == "share":
                loss = F.cross_entropy(logits, b["labels"]) * len(b["labels"]) / total
            elif weight == "per_batch":
                loss = F.cross_entropy(logits, b["labels"]) / len(micro_batches)
            else:  # "none": the micro-batch means are added up
                loss = F.cross_entropy(logits, b["labels"])
            loss.backward()
            mean_loss += loss.item()
            if step == "each":
                optimizer.step()
        if clip == "before_step":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        if step == "once":
            optimizer.step()
        if clip == "after_step":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        return torch.tensor(mean_loss) if detach_return else mean_loss

    return accumulated_step


def test_reference_step_passes():
    assert ch08.check_accumulated_step(make_step()) is True
    assert ch08.check_accumulated_step(make_step(detach_return=True)) is True  # a 0-d tensor is fine


@pytest.mark.parametrize("mistake, match", [
    ({"zero": "never"}, "differ from one step"),  # stale gradients accumulate
    ({"zero": "each"}, "differ from one step"),  # only the last micro-batch counts
    ({"train": False}, "eval mode"),
    ({"clip": "after_step"}, "differ from one step"),
    ({"clip": "none"}, "differ from one step"),
    ({"weight": "per_batch"}, "differ from one step"),  # wrong with unequal micro-batches
    ({"weight": "none"}, "differ from one step"),
    ({"step": "each"}, "differ from one step"),
    ({"step": "never"}, "did not change"),
])
def test_step_mistakes_fail(mistake, match):
    with pytest.raises(CheckFailed, match=match):
        ch08.check_accumulated_step(make_step(**mistake))


def test_step_not_attempted_and_crash(not_attempted):
    not_attempted(ch08.check_accumulated_step(make_step(todo=True)), ch08.check_accumulated_step(None))
    with pytest.raises(StudentCodeError, match="RuntimeError"):
        ch08.check_accumulated_step(make_step(crash=True))


def test_strict_mode_raises_when_not_attempted(strict_checks):
    with pytest.raises(strict_checks):
        ch08.check_accumulated_step(make_step(todo=True))


# ---- exercise 2: evaluation -------------------------------------------------------------


def make_eval(mode="eval", grad="inference", aggregate="count", dim=-1, todo=False, crash=False):
    def evaluate(model, batches):
        if todo:
            raise NotImplementedError()
        if mode == "eval":
            model.eval()
        ctx = {"inference": torch.inference_mode, "no_grad": torch.no_grad}.get(grad)
        correct = total = 0
        accs = []
        with (ctx() if ctx else torch.enable_grad()):
            for b in batches:
                if crash:
                    b["x"] = b["x"][:, :3]  # the student sliced the features
                pred = model(x=b["x"]).argmax(dim)
                hits = (pred == b["labels"]).float() if dim == -1 else (pred[: len(b["labels"])] == b["labels"][: len(pred)]).float()
                correct += hits.sum().item()
                total += len(b["labels"])
                accs.append(hits.mean().item())
        return correct / total if aggregate == "count" else sum(accs) / len(accs)

    return evaluate


def test_reference_eval_passes():
    assert ch08.check_evaluate(make_eval()) is True
    assert ch08.check_evaluate(make_eval(grad="no_grad")) is True


@pytest.mark.parametrize("mistake, match", [
    ({"aggregate": "mean_of_batches"}, "fraction of correct"),
    ({"mode": "train"}, "train mode"),
    ({"grad": None}, "autograd"),
    ({"dim": 0}, "fraction of correct"),
])
def test_eval_mistakes_fail(mistake, match):
    with pytest.raises(CheckFailed, match=match):
        ch08.check_evaluate(make_eval(**mistake))


def test_eval_not_attempted_and_crash():
    assert ch08.check_evaluate(make_eval(todo=True)) is False
    with pytest.raises(StudentCodeError):
        ch08.check_evaluate(make_eval(crash=True))


# ---- exercise 3: label smoothing ---------------------------------------------------------


def make_ls(spread="all", mean=True, detach=False, todo=False, crash=False, probs=False):
    def smoothed(logits, labels, epsilon):
        if todo:
            raise NotImplementedError()
        k = logits.shape[-1]
        if crash:
            return logits[labels, :, 0]
        onehot = F.one_hot(labels, k).float()
        if spread == "all":
            target = (1 - epsilon) * onehot + epsilon / k
        else:  # the other K - 1 classes only
            target = (1 - epsilon) * onehot + epsilon / (k - 1) * (1 - onehot)
        logp = logits.softmax(-1).log() if not probs else logits.softmax(-1)
        per = -(target * logp).sum(-1)
        out = per.mean() if mean else per.sum()
        return out.detach() if detach else out

    return smoothed


def test_reference_label_smoothing_passes():
    assert ch08.check_label_smoothing(make_ls()) is True


@pytest.mark.parametrize("mistake", [{"spread": "others"}, {"mean": False}, {"detach": True},
                                     {"probs": True}])
def test_label_smoothing_mistakes_fail(mistake):
    with pytest.raises(CheckFailed):
        ch08.check_label_smoothing(make_ls(**mistake))


def test_label_smoothing_not_attempted_and_crash():
    assert ch08.check_label_smoothing(make_ls(todo=True)) is False
    with pytest.raises(StudentCodeError):
        ch08.check_label_smoothing(make_ls(crash=True))


def test_toy_batches_are_seeded():
    a, b = ch08.toy_batches((3, 2), seed=5), ch08.toy_batches((3, 2), seed=5)
    assert all(torch.equal(x["x"], y["x"]) for x, y in zip(a, b))
