"""The chapter 07 checkers: the reference passes, realistic mistakes fail, placeholders and
crashes in student code are reported as such."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckFailed, StudentCodeError, ch07


def make_loss(normalize=True, both=True, average=True, divide=True, diagonal=True, detach=False,
              todo=False, crash=False):
    def loss_fn(image_features, text_features, temperature):
        if todo:
            raise NotImplementedError()
        if crash:
            return image_features @ text_features  # (N, E) @ (N, E): the student's shape bug
        a, b = image_features, text_features
        if normalize:
            a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        sim = a @ b.T  # (N, N)
        logits = sim / temperature if divide else sim * temperature
        labels = torch.arange(len(a)) if diagonal else torch.zeros(len(a), dtype=torch.long)
        rows = F.cross_entropy(logits, labels)
        if not both:
            out = rows
        else:
            cols = F.cross_entropy(logits.T, labels)
            out = (rows + cols) / 2 if average else rows + cols
        return out.detach() if detach else out

    return loss_fn


def from_scratch(image_features, text_features, temperature):
    a = image_features / image_features.norm(dim=-1, keepdim=True)
    b = text_features / text_features.norm(dim=-1, keepdim=True)
    logits = a @ b.T / temperature
    return -(logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2


def make_recall(axis=1, offset=0, fraction=True, strict=True, todo=False, crash=False):
    def recall(similarity, k):
        if todo:
            raise NotImplementedError()
        if crash:
            return similarity.topk(k, dim=2)  # no third axis
        right = similarity.diagonal()
        if axis == 1:
            beats = similarity > right[:, None] if strict else similarity >= right[:, None]
            rank = beats.sum(1) - (0 if strict else 1)
        else:
            rank = (similarity > right[None, :]).sum(0)
        hits = rank < k + offset
        return hits.float().mean().item() if fraction else int(hits.sum())

    return recall


def topk_recall(similarity, k):
    top = similarity.topk(k, dim=1).indices  # (N, k)
    return (top == torch.arange(len(similarity))[:, None]).any(1).float().mean()


def test_reference_solutions_pass(capsys):
    assert ch07.check_clip_loss(make_loss()) is True
    assert ch07.check_clip_loss(from_scratch) is True
    assert ch07.check_recall_at_k(make_recall()) is True
    assert ch07.check_chance_loss(math.log(ch07.CHANCE_BATCH)) is True
    assert ch07.check_chance_loss(torch.tensor(math.log(256.0))) is True
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"normalize": False}, "unit length"),
        ({"both": False}, "symmetric"),
        ({"average": False}, "averages them"),
        ({"divide": False}, "multiplies by the temperature"),
        ({"diagonal": False}, "right class of row i is i"),
        ({"detach": True}, "autograd"),
    ],
)
def test_clip_loss_mistakes_fail(mistake, message):
    with pytest.raises(CheckFailed, match=message) as info:
        ch07.check_clip_loss(make_loss(**mistake))
    assert "tensor(" not in str(info.value)


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"offset": 1}, "top K\\+1"),
        ({"offset": -1}, "top K-1"),
        ({"axis": 0}, "along each row"),
        ({"fraction": False}, "not a count"),
    ],
)
def test_recall_mistakes_fail(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        ch07.check_recall_at_k(make_recall(**mistake))


def test_either_tie_convention_passes():
    # random scores have no ties, so ranking by ">" or ">=" or torch.topk all pass
    assert ch07.check_recall_at_k(topk_recall) is True
    assert ch07.check_recall_at_k(make_recall(strict=False)) is True


@pytest.mark.parametrize(
    ("answer", "message"),
    [(2 * math.log(256), "averaged"), (math.log2(256), "nats"), (math.log(255), "one of the N"),
     (1.0, "not the loss"), ("5.5", "should be a float")],
)
def test_chance_loss_mistakes_fail(answer, message):
    with pytest.raises(CheckFailed, match=message):
        ch07.check_chance_loss(answer)


def test_not_attempted(not_attempted):
    not_attempted(ch07.check_clip_loss(make_loss(todo=True)),
                  ch07.check_recall_at_k(make_recall(todo=True)), ch07.check_chance_loss(None))


def test_student_bug_is_reported_as_theirs():
    with pytest.raises(StudentCodeError, match="image_features @ text_features"):
        ch07.check_clip_loss(make_loss(crash=True))
    with pytest.raises(StudentCodeError, match="topk"):
        ch07.check_recall_at_k(make_recall(crash=True))


def test_strict_mode_makes_not_attempted_an_error(strict_checks):
    with pytest.raises(strict_checks):
        ch07.check_chance_loss(None)
