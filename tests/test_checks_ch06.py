"""Chapter 06's checkers accept the reference solutions and reject wrong answers."""

from __future__ import annotations

import re

import pytest
import torch

from course_utils.checks import CheckFailed, ch06


def count_answer(program, scene):
    want = program["objs"]
    return str(sum(all(o[k] == v for k, v in want.items()) for o in scene["objects"]))


def pad_batch(seqs, pad_id):
    longest = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (longest - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (longest - len(s)) for s in seqs])
    return ids, mask


def flip_example(instruction, answer):
    swap = {"left": "right", "right": "left"}
    f = lambda t: re.sub(r"\b(left|right)\b", lambda m: swap[m.group(1)], t)  # noqa: E731
    return f(instruction), f(answer)


def naive_flip(text):  # swaps inside words too ("leftover" -> "rightover")
    return text.replace("left", "\0").replace("right", "left").replace("\0", "right")


def test_reference_solutions_pass():
    assert ch06.check_count_answer(count_answer) is True
    assert ch06.check_pad_batch(pad_batch) is True
    assert ch06.check_label_preserving({"noise", "brightness", "translate"}) is True
    assert ch06.check_flip_example(flip_example) is True


@pytest.mark.parametrize(
    ("check", "wrong", "message"),
    [
        (ch06.check_count_answer, lambda p, s: "1", "count"),
        (ch06.check_count_answer, lambda p, s: int(count_answer(p, s)), "should be a str"),
        # ignores {} (the total count)
        (ch06.check_count_answer,
         lambda p, s: count_answer(p, s) if p["objs"] else "0", "edge case"),
        (ch06.check_pad_batch,
         lambda s, p: (pad_batch(s, p)[0], (pad_batch(s, p)[0] != p).long()), "real tokens are marked as padding"),
        (ch06.check_pad_batch, lambda s, p: (pad_batch(s, p)[0], torch.ones_like(pad_batch(s, p)[1])),
         "padded positions are marked as real tokens"),
        (ch06.check_pad_batch, lambda s, p: (pad_batch(s, 0)[0], pad_batch(s, 0)[1]), "input_ids"),
        (ch06.check_pad_batch, lambda s, p: pad_batch(s, p)[1], "pair"),
        (ch06.check_label_preserving, {"noise", "brightness"}, "missing"),
        (ch06.check_label_preserving, {"noise", "brightness", "translate", "hflip"}, "change"),
        (ch06.check_label_preserving, {"noise", "jpeg"}, "unknown"),
        (ch06.check_label_preserving, "noise", "set"),
        (ch06.check_flip_example, lambda i, a: (i.replace("left", "right"), a), "flipped"),
        (ch06.check_flip_example, lambda i, a: (naive_flip(i), naive_flip(a)), "whole words"),
    ],
)
def test_wrong_answers_fail(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


def test_placeholders_are_not_attempted(placeholder, not_attempted):
    not_attempted(*(check(placeholder) for check in (ch06.check_count_answer, ch06.check_pad_batch,
                                                      ch06.check_flip_example)),
                  ch06.check_label_preserving(None))
