"""The chapter 05 checkers: the reference passes, realistic mistakes fail, placeholders and
crashes in student code are reported as such."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import fusion
from course_utils.attention import CrossAttention
from course_utils.checks import CheckFailed, StudentCodeError, ch05


def make_block(gate_init=0.0, use_tanh=True, residual=True, gate_mlp=True, pre_norm=True,
               parameters=True, crash=False, todo=False, no_mlp=False):
    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            if todo:
                raise NotImplementedError()
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.xattn = CrossAttention(d, heads)
            self.mlp = fusion.MLP(d)
            gate = torch.full((1,), float(gate_init))
            self.attn_gate = nn.Parameter(gate.clone()) if parameters else gate.clone()
            self.mlp_gate = nn.Parameter(gate.clone()) if parameters else gate.clone()

        def forward(self, x, image):
            if crash:
                return x @ image  # (B, T, D) @ (B, N, D): a shape error in the student's code
            squash = torch.tanh if use_tanh else (lambda g: g)
            h = self.norm1(x) if pre_norm else x
            read = squash(self.attn_gate) * self.xattn(h, image)[0]
            x = x + read if residual else read
            if no_mlp:
                return x
            mlp = self.mlp(self.norm2(x))
            return x + (squash(self.mlp_gate) * mlp if gate_mlp else mlp)

    return Block


REFERENCE_SHAPES = {
    "image_tokens": (8, 9, 64),
    "projected": (8, 9, 64),
    "sequence": (8, 21, 64),
    "mask": (8, 21),
    "pooled": (8, 64),
    "logits": (8, 34),
}


def shapes(**changes):
    return {**REFERENCE_SHAPES, **changes}


def test_gated_block_reference_passes(capsys):
    assert ch05.check_gated_block(make_block()) is True
    assert ch05.check_gated_block(fusion.GatedCrossAttentionBlock) is True
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"gate_init": 1.0}, "not 0"),
        ({"use_tanh": False}, "raw gate"),
        ({"residual": False}, "residual"),
        ({"gate_mlp": False}, "every branch"),
        ({"gate_mlp": False, "residual": True, "use_tanh": True, "pre_norm": True, "no_mlp": True}, "MLP branch is missing"),
        ({"pre_norm": False}, "norm1"),
        ({"parameters": False}, "nn.Parameter"),
    ],
)
def test_gated_block_mistakes_fail(mistake, message):
    with pytest.raises(CheckFailed, match=message) as info:
        ch05.check_gated_block(make_block(**mistake))
    assert "tensor(" not in str(info.value)


def test_llava_shapes_reference_passes(capsys):
    assert ch05.llava_shapes() == REFERENCE_SHAPES
    assert ch05.check_llava_shapes(REFERENCE_SHAPES) is True
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (shapes(image_tokens=(8, 10, 64)), r"\[CLS\] token"),
        (shapes(sequence=(8, 22, 64)), "one token too long"),
        (shapes(sequence=(8, 12, 64)), "image tokens are part"),
        (shapes(mask=(8, 12)), "image tokens are part"),
        (shapes(mask=(8, 21, 64)), "feature axis"),
        (shapes(logits=(8, 21, 34)), "token axis"),
        (shapes(pooled=(8, 21)), "not right"),
        ({"logits": (8, 34)}, "lacks the keys"),
        (shapes(logits="8 by 34"), "tuple of ints"),
    ],
)
def test_llava_shape_mistakes_fail(answer, message):
    with pytest.raises(CheckFailed, match=message):
        ch05.check_llava_shapes(answer)


def test_not_attempted(not_attempted):
    not_attempted(ch05.check_gated_block(make_block(todo=True)), ch05.check_gated_block(None),
                  ch05.check_llava_shapes(None))


def test_student_crash_is_attributed():
    with pytest.raises(StudentCodeError, match="x @ image"):
        ch05.check_gated_block(make_block(crash=True))


def test_strict_mode_makes_not_attempted_an_error(strict_checks):
    with pytest.raises(strict_checks):
        ch05.check_llava_shapes(None)
