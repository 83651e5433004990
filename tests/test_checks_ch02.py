"""The chapter 02 checkers: the reference passes, realistic mistakes fail, placeholders and
crashes in student code are reported as such."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils import attention
from course_utils.checks import CheckFailed, StudentCodeError, ch02

# ---- mistakes a student makes ------------------------------------------------------


def naive_softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)


def softmax_ignores_dim(x, dim=-1):
    return attention.stable_softmax(x, dim=-1)


def softmax_without_keepdim(x, dim=-1):
    m = x.amax(dim=dim, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum()  # sums over everything


def softmax_in_place(x, dim=-1):
    x -= x.amax(dim=dim, keepdim=True)
    x.exp_()
    return x / x.sum(dim, keepdim=True)


def _scores(q, k, mask, scale=True):
    s = q @ k.transpose(-2, -1)
    return s / math.sqrt(q.shape[-1]) if scale else s


def attention_no_scaling(q, k, v, mask=None):
    s = _scores(q, k, mask, scale=False)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def attention_softmax_wrong_dim(q, k, v, mask=None):
    s = _scores(q, k, mask)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -2)
    return w @ v, w


def attention_mask_after_softmax(q, k, v, mask=None):
    w = torch.softmax(_scores(q, k, mask), -1)
    if mask is not None:
        w = w * mask
    return w @ v, w


def attention_mask_inverted(q, k, v, mask=None):
    s = _scores(q, k, mask)
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def attention_ignores_mask(q, k, v, mask=None):
    return attention.scaled_dot_product_attention(q, k, v)


def attention_scale_by_n(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def attention_returns_output_only(q, k, v, mask=None):
    return attention.scaled_dot_product_attention(q, k, v, mask)[0]


def padding_inverted(ids, pad_id):
    return (ids == pad_id)[:, None, None, :]


def padding_int(ids, pad_id):
    return (ids != pad_id).long()[:, None, None, :]


def padding_flat(ids, pad_id):
    return ids != pad_id


def padding_hardcoded_zero(ids, pad_id):
    return (ids != 0)[:, None, None, :]


def split_view_only(x, num_heads):
    B, N, D = x.shape
    return x.view(B, num_heads, N, D // num_heads)


def merge_view_only(x):
    B, H, N, d = x.shape
    return x.reshape(B, N, H * d)


def merge_with_view(x):  # .view after transpose: a RuntimeError in the student's code
    B, H, N, d = x.shape
    return x.transpose(1, 2).view(B, N, H * d)


def mha_reference(x, context, w_q, w_k, w_v, w_o, num_heads):
    q = attention.split_heads(x @ w_q.T, num_heads)
    k = attention.split_heads(context @ w_k.T, num_heads)
    v = attention.split_heads(context @ w_v.T, num_heads)
    return attention.merge_heads(attention.scaled_dot_product_attention(q, k, v)[0]) @ w_o.T


def mha_scale_by_embed_dim(x, context, w_q, w_k, w_v, w_o, num_heads):
    q = attention.split_heads(x @ w_q.T, num_heads)
    k = attention.split_heads(context @ w_k.T, num_heads)
    v = attention.split_heads(context @ w_v.T, num_heads)
    out = attention.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(x.shape[-1]))[0]
    return attention.merge_heads(out) @ w_o.T


def mha_no_output_projection(x, context, w_q, w_k, w_v, w_o, num_heads):
    q = attention.split_heads(x @ w_q.T, num_heads)
    k = attention.split_heads(context @ w_k.T, num_heads)
    v = attention.split_heads(context @ w_v.T, num_heads)
    return attention.merge_heads(attention.scaled_dot_product_attention(q, k, v)[0])


def mha_no_transpose_on_weights(x, context, w_q, w_k, w_v, w_o, num_heads):
    q = attention.split_heads(x @ w_q, num_heads)
    k = attention.split_heads(context @ w_k.T, num_heads)
    v = attention.split_heads(context @ w_v.T, num_heads)
    return attention.merge_heads(attention.scaled_dot_product_attention(q, k, v)[0]) @ w_o.T


# ---- each checker: (checker, reference answer args, mistakes) ------------------------

CASES = {
    "softmax": (
        ch02.check_softmax,
        (attention.stable_softmax,),
        {
            "naive exp overflows": (naive_softmax,),
            "ignores dim": (softmax_ignores_dim,),
            "sum without keepdim": (softmax_without_keepdim,),
            "changes its input in place": (softmax_in_place,),
        },
    ),
    "attention": (
        ch02.check_attention,
        (attention.scaled_dot_product_attention,),
        {
            "no scaling": (attention_no_scaling,),
            "softmax over the wrong dimension": (attention_softmax_wrong_dim,),
            "mask applied after the softmax": (attention_mask_after_softmax,),
            "mask meaning inverted": (attention_mask_inverted,),
            "mask ignored": (attention_ignores_mask,),
            "scaled by sqrt(N) instead of sqrt(d_k)": (attention_scale_by_n,),
            "returns only the output": (attention_returns_output_only,),
        },
    ),
    "padding_mask": (
        ch02.check_padding_mask,
        (attention.padding_mask,),
        {
            "inverted": (padding_inverted,),
            "int instead of bool": (padding_int,),
            "missing the broadcast axes": (padding_flat,),
            "pad id hard-coded to 0": (padding_hardcoded_zero,),
        },
    ),
    "heads": (
        ch02.check_heads,
        (attention.split_heads, attention.merge_heads),
        {
            "split by view without transpose": (split_view_only, attention.merge_heads),
            "merge by reshape without transpose": (attention.split_heads, merge_view_only),
            "both without transpose (they cancel)": (split_view_only, merge_view_only),
        },
    ),
    "mha": (
        ch02.check_multi_head_attention,
        (mha_reference,),
        {
            "scaled by sqrt(embed_dim), not sqrt(head_dim)": (mha_scale_by_embed_dim,),
            "no output projection": (mha_no_output_projection,),
            "weight not transposed": (mha_no_transpose_on_weights,),
        },
    ),
}

@pytest.mark.parametrize("name", CASES)
def test_reference_passes(name, capsys):
    check, answer, _ = CASES[name]
    assert check(*answer) is True
    assert "[correct]" in capsys.readouterr().out


def test_mistake_fails(name, mistake):
    check, _, mistakes = CASES[name]
    with pytest.raises(CheckFailed) as info:
        check(*mistakes[mistake])
    assert isinstance(info.value, AssertionError)
    assert check.title in str(info.value)


@pytest.mark.parametrize("name", CASES)
def test_not_attempted(name, placeholder, not_attempted):
    check, answer, _ = CASES[name]
    not_attempted(check(placeholder, *answer[1:]), check(None))


def test_second_function_not_attempted(placeholder, not_attempted):
    not_attempted(ch02.check_heads(attention.split_heads, placeholder),
                  ch02.check_heads(attention.split_heads, None))


@pytest.mark.parametrize("name", CASES)
def test_student_crash_is_attributed(name, crashes):
    check, answer, _ = CASES[name]
    with pytest.raises(StudentCodeError, match="crashes"):
        check(crashes, *answer[1:])


def test_view_after_transpose_is_a_student_error():
    with pytest.raises(StudentCodeError, match="merge_with_view"):
        ch02.check_heads(attention.split_heads, merge_with_view)


def test_messages_name_the_problem():
    def msg(check, *fns):
        with pytest.raises(CheckFailed) as info:
            check(*fns)
        return str(info.value)

    assert "NaN or inf" in msg(ch02.check_softmax, naive_softmax)
    assert "in place" in msg(ch02.check_softmax, softmax_in_place)
    assert "more peaked" in msg(ch02.check_attention, attention_no_scaling)
    assert "do not sum to 1" in msg(ch02.check_attention, attention_softmax_wrong_dim)
    assert "before the softmax" in msg(ch02.check_attention, attention_mask_after_softmax)
    assert "forbids receive attention" in msg(ch02.check_attention, attention_mask_inverted)
    assert "forbids receive attention" in msg(ch02.check_attention, attention_ignores_mask)
    assert "pair (output, weights)" in msg(ch02.check_attention, attention_returns_output_only)
    assert "True at the padding" in msg(ch02.check_padding_mask, padding_inverted)
    assert "bool" in msg(ch02.check_padding_mask, padding_int)
    assert "one head but wrong with four" in msg(
        ch02.check_multi_head_attention, mha_scale_by_embed_dim
    )


def test_messages_do_not_leak_reference_values():
    """A failure message gives the size of an error, never tensors of expected values."""
    for name, (check, _, mistakes) in CASES.items():
        for mistake, fns in mistakes.items():
            with pytest.raises(CheckFailed) as info:
                check(*fns)
            assert "tensor(" not in str(info.value), (name, mistake)
