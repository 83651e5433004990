"""Checkers for chapter 02, attention.

Each one runs the student's code on seeded inputs, compares with
:mod:`course_utils.attention` and says what is wrong without printing the answer.

* :func:`check_softmax` — ``fn(x, dim=-1)``, a numerically stable softmax;
* :func:`check_attention` — ``fn(q, k, v, mask=None) -> (output, weights)``;
* :func:`check_padding_mask` — ``fn(input_ids, pad_id) -> bool (B, 1, 1, N)``;
* :func:`check_heads` — ``split_fn(x, num_heads)`` and ``merge_fn(x)``;
* :func:`check_multi_head_attention` — ``fn(x, context, w_q, w_k, w_v, w_o, num_heads)``.
"""

from __future__ import annotations

import math

import torch

from course_utils import attention as ref
from course_utils.checks.core import (
    NotAttempted,
    call_student,
    checker,
    expect_close,
    expect_shape,
    expect_type,
    is_placeholder,
)

__all__ = [
    "check_softmax",
    "check_attention",
    "check_padding_mask",
    "check_heads",
    "check_multi_head_attention",
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed))


# ---- Exercise 1 ---------------------------------------------------------------------


@checker(
    "Exercise 1: a stable softmax",
    hints=(
        "softmax(x) equals softmax(x - c) for any constant c along the dimension: choose the "
        "c that makes every exponent at most 0, and nothing can overflow.",
        "Subtract the maximum along `dim` (with keepdim=True, so that it broadcasts) before "
        "the exponential, and normalise along the same `dim`. Make a new tensor rather than "
        "subtracting in place (x -= ... changes the caller's tensor); exp(-inf) is already 0.",
        'Reread chapter 02, "2. The formula, from scratch": it shows the overflow and its fix.',
    ),
)
def check_softmax(fn):
    """Check Exercise 1: a softmax that sums to 1, never overflows and handles ``-inf``.

    Used in chapter 02, "Exercise 1 — a stable softmax (★☆☆, ~5 min, 1 point)"."""
    cases = [
        ("small scores, dim=-1", _randn(4, 7, seed=1), -1),
        ("scores around +1000 (exp overflows)", 1000 + 5 * _randn(3, 6, seed=2), -1),
        ("scores around -1000 (exp underflows)", -1000 + 5 * _randn(3, 6, seed=3), -1),
        ("a 3-d tensor, dim=-1", _randn(2, 3, 5, seed=4), -1),
        ("softmax along dim=0", _randn(5, 3, seed=5), 0),
        ("softmax along dim=1 of a 3-d tensor", _randn(2, 4, 3, seed=6), 1),
    ]
    masked = _randn(3, 5, seed=7)
    masked[0, 1:3] = float("-inf")
    masked[2, 0] = float("-inf")
    cases.append(("scores with -inf entries (masked keys)", masked, -1))
    for case, x, dim in cases:
        before = x.clone()
        out = call_student(fn, x, dim=dim)
        if not torch.equal(x, before):
            raise AssertionError(f"your function changed its input in place on case '{case}'")
        expect_type(out, torch.Tensor, f"the result on case '{case}'")
        expect_shape(out, x.shape, f"the result on case '{case}'")
        if not torch.isfinite(out).all():
            raise AssertionError(
                f"the result on case '{case}' contains NaN or inf: some exponent is too large "
                "(or every exponent underflows to 0)"
            )
        sums = out.sum(dim=dim)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            raise AssertionError(
                f"on case '{case}' the values do not sum to 1 along dim={dim}; "
                "did you normalise along the dimension you were given?"
            )
        expect_close(out, ref.stable_softmax(before, dim=dim), case=case)


# ---- Exercise 2 ---------------------------------------------------------------------


def _attention_cases():
    B, H = 2, 3
    cases = []
    q, k, v = (_randn(B, H, 5, 8, seed=s) for s in (10, 11, 12))
    cases.append(("self-attention, no mask", q, k, v, None))
    q, k, v = _randn(B, H, 4, 16, seed=13), _randn(B, H, 6, 16, seed=14), _randn(B, H, 6, 5, seed=15)
    cases.append(("cross-attention N_q=4, N_k=6, d_v=5, no mask", q, k, v, None))
    q, k, v = (_randn(B, H, 6, 8, seed=s) for s in (16, 17, 18))
    lengths = torch.tensor([6, 3])
    pad = (torch.arange(6)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, N_k)
    cases.append(("padding mask (B, 1, 1, N_k)", q, k, v, pad))
    q, k, v = (_randn(B, H, 5, 8, seed=s) for s in (19, 20, 21))
    cases.append(("causal mask (N, N)", q, k, v, ref.causal_mask(5)))
    q, k, v = (3 * _randn(1, 2, 7, 64, seed=s) for s in (22, 23, 24))
    cases.append(("large d_k = 64", q, k, v, None))
    return cases


def _entropy(w: torch.Tensor) -> float:
    return float(-(w * w.clamp_min(1e-12).log()).sum(-1).mean())


@checker(
    "Exercise 2: scaled dot-product attention",
    hints=(
        "Four steps: scores from the queries and keys, scaled; blocked positions removed; a "
        "softmax; a weighted sum of the values. Return the weights as well as the output.",
        "The scores are q times k transposed on its last two axes, divided by the square root "
        "of q's last dimension: shape (B, H, N_q, N_k). Blocked positions must get weight 0 "
        "and the others must still sum to 1: which score gives a softmax weight of 0, and must "
        "it be set before or after the softmax? The softmax runs over the keys (the last axis).",
        'Reread chapter 02, "2. The formula, from scratch" for the scores and chapter 02, '
        '"4. Masks: padding and causality" for the mask (True = may attend).',
    ),
)
def check_attention(fn):
    """Check Exercise 2: ``(output, weights)`` of scaled dot-product attention, masks included.

    Used in chapter 02, "Exercise 2 — scaled dot-product attention (★★☆, ~10 min, 2 points)"."""
    for case, q, k, v, mask in _attention_cases():
        args = (q.clone(), k.clone(), v.clone())
        result = call_student(fn, *args) if mask is None else call_student(fn, *args, mask=mask)
        if not (isinstance(result, tuple | list) and len(result) == 2):
            raise AssertionError(
                f"your function should return a pair (output, weights); on case '{case}' it "
                f"returned {type(result).__name__}"
            )
        out, w = result
        exp_out, exp_w = ref.scaled_dot_product_attention(q, k, v, mask)
        expect_type(w, torch.Tensor, f"the weights on case '{case}'")
        expect_type(out, torch.Tensor, f"the output on case '{case}'")
        expect_shape(w, exp_w.shape, f"the weights on case '{case}'")
        expect_shape(out, exp_out.shape, f"the output on case '{case}'")
        w = w.detach().float()
        if mask is not None:
            blocked = ~mask.expand_as(w)
            if (w.nan_to_num(0.0)[blocked].abs() > 1e-6).any():
                raise AssertionError(
                    f"on case '{case}' positions that the mask forbids receive attention "
                    "(the mask is True where attention is ALLOWED)"
                )
        if not torch.isfinite(w).all():
            raise AssertionError(f"the weights on case '{case}' contain NaN or inf")
        sums = w.sum(-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            if mask is not None:
                raise AssertionError(
                    f"on case '{case}' the masked keys get zero weight but the rows of the "
                    "weights no longer sum to 1: the mask must act before the softmax"
                )
            raise AssertionError(
                f"on case '{case}' the rows of the weights do not sum to 1: each query's "
                "weights over the keys should form a probability distribution"
            )
        if not torch.allclose(w, exp_w, atol=1e-5, rtol=1e-4):
            sharper = _entropy(w) < _entropy(exp_w) - 1e-3
            raise AssertionError(
                f"the weights are wrong on case '{case}'"
                + (" (they are more peaked than they should be)" if sharper else "")
            )
        expect_close(out, exp_out, case=case + ", output")


# ---- Exercise 3 ---------------------------------------------------------------------


@checker(
    "Exercise 3: a padding mask from token ids",
    hints=(
        "One comparison between the ids and pad_id gives the mask; don't assume where the "
        "padding is, nor that pad_id is 0.",
        "The mask is True at real tokens (ids different from pad_id) and must stay bool. Then "
        "add two axes of size 1, for the heads and the queries, between the batch axis and "
        "the key axis (index with None, or unsqueeze).",
        'Reread chapter 02, "4. Masks: padding and causality": it builds this mask and shows '
        "how it broadcasts over the scores.",
    ),
)
def check_padding_mask(fn):
    """Check Exercise 3: the ``(B, 1, 1, N)`` bool key padding mask from token ids.

    Used in chapter 02, "Exercise 3 — a padding mask from token ids (★☆☆, ~5 min, 1 point)"."""
    cases = [
        ("right padding, pad_id=0", torch.tensor([[5, 8, 3, 9, 0, 0], [7, 2, 0, 0, 0, 0]]), 0),
        ("no padding at all, pad_id=0", torch.tensor([[4, 4, 6], [1, 9, 2]]), 0),
        ("left padding, pad_id=1", torch.tensor([[1, 1, 1, 6, 7], [1, 5, 9, 4, 8], [3, 2, 4, 6, 7]]), 1),
        ("pad_id=50256 (GPT-2 style)", torch.tensor([[31, 42, 50256, 50256]]), 50256),
    ]
    for case, ids, pad_id in cases:
        m = call_student(fn, ids.clone(), pad_id)
        expected = ref.padding_mask(ids, pad_id)
        expect_type(m, torch.Tensor, f"the mask on case '{case}'")
        if m.dtype != torch.bool:
            raise AssertionError(
                f"the mask should be a bool tensor (True = may attend), got dtype {m.dtype} "
                f"on case '{case}'"
            )
        expect_shape(m, expected.shape, f"the mask on case '{case}'")
        if torch.equal(m, ~expected):
            raise AssertionError(
                f"on case '{case}' the mask is True at the padding and False at the real "
                "tokens: it must be True where attention is allowed"
            )
        if not torch.equal(m, expected):
            wrong = int((m != expected).sum())
            raise AssertionError(f"{wrong} wrong entries on case '{case}'")


# ---- Exercise 4 ---------------------------------------------------------------------


@checker(
    "Exercise 4: splitting and merging heads",
    hints=(
        "Head h of token n holds a contiguous slice of token n's features: cut each token's D "
        "features into H pieces first, and only then move the head axis in front of the "
        "token axis.",
        "Split: view (B, N, D) as (B, N, H, d), then swap the token and head axes. Merge: "
        "swap them back, then reshape to (B, N, H * d); a view fails on a transposed, "
        "non-contiguous tensor. A direct view as (B, H, N, d) has the right shape and the "
        "wrong values.",
        'Reread chapter 02, "5. Multi-head attention", where split_heads and merge_heads are '
        "built and tested.",
    ),
)
def check_heads(split_fn, merge_fn=None):
    """Check Exercise 4: ``split_fn`` and its inverse ``merge_fn`` for attention heads.

    Used in chapter 02, "Exercise 4 — splitting and merging heads (★★☆, ~10 min, 2 points)"."""
    if is_placeholder(merge_fn):
        raise NotAttempted()
    for case, (B, N, D, H) in {
        "B=2, N=5, D=12, H=3": (2, 5, 12, 3),
        "B=1, N=4, D=8, H=1": (1, 4, 8, 1),
        "B=3, N=2, D=6, H=6": (3, 2, 6, 6),
    }.items():
        x = _randn(B, N, D, seed=B * 100 + N * 10 + H)
        heads = call_student(split_fn, x.clone(), H)
        expected = ref.split_heads(x, H)
        expect_type(heads, torch.Tensor, f"split_heads on case '{case}'")
        expect_shape(heads, expected.shape, f"split_heads on case '{case}'")
        if not torch.equal(heads, expected):
            raise AssertionError(
                f"split_heads on case '{case}': the shape is right but the values are not; "
                "head h of token n must hold the features h*d ... (h+1)*d - 1 of token n"
            )
        # a contiguous (B, h, N, d) tensor, like the output of attention
        merged = call_student(merge_fn, expected.contiguous())
        expect_type(merged, torch.Tensor, f"merge_heads on case '{case}'")
        expect_shape(merged, x.shape, f"merge_heads on case '{case}'")
        if not torch.equal(merged, x):
            raise AssertionError(
                f"merge_heads on case '{case}': the shape is right but merge_heads(split_heads(x)) "
                "is not x"
            )


# ---- Exercise 5 ---------------------------------------------------------------------


def _mha_reference(x, context, w_q, w_k, w_v, w_o, num_heads):
    D, kv_dim = w_q.shape[0], w_k.shape[1]
    m = ref.MultiHeadAttention(D, num_heads, kv_dim=kv_dim, bias=False)
    with torch.no_grad():
        for lin, w in zip((m.q_proj, m.k_proj, m.v_proj, m.out_proj), (w_q, w_k, w_v, w_o)):
            lin.weight.copy_(w)
        return m(x, context)[0]


@checker(
    "Exercise 5: multi-head attention",
    hints=(
        "Multi-head attention is four steps you already have: project, split into heads, "
        "attend, then merge the heads and project again.",
        "The weights follow nn.Linear's (out_features, in_features) convention, so a "
        "projection multiplies by the transposed weight. Queries come from x, keys and values "
        "from context. Each head's scores are scaled by the head size d = D / H, not by D: if "
        "you are right with one head and wrong with several, look there.",
        'Reread chapter 02, "5. Multi-head attention".',
    ),
)
def check_multi_head_attention(fn):
    """Check Exercise 5: multi-head (self- or cross-) attention from raw weight matrices.

    Used in chapter 02, "Exercise 5 — multi-head attention from its weights (★★★, ~15 min, 3 points)"."""
    results = {}
    for case, (B, N_q, N_k, D, kv_dim, H, cross) in {
        "self-attention, one head": (2, 5, 5, 8, 8, 1, False),
        "self-attention, four heads": (2, 5, 5, 16, 16, 4, False),
        "cross-attention, N_q=3, N_k=7, kv_dim=12, two heads": (2, 3, 7, 8, 12, 2, True),
    }.items():
        seed = 1000 + D + H
        x = _randn(B, N_q, D, seed=seed)
        context = _randn(B, N_k, kv_dim, seed=seed + 1) if cross else x
        ws = [_randn(D, n, seed=seed + 2 + i) / math.sqrt(n) for i, n in enumerate((D, kv_dim, kv_dim, D))]
        args = [t.clone() for t in (x, context, *ws)]
        out = call_student(fn, *args, H)
        expected = _mha_reference(x, context, *ws, H)
        expect_type(out, torch.Tensor, f"the output on case '{case}'")
        expect_shape(out, expected.shape, f"the output on case '{case}'")
        results[case] = torch.allclose(out.detach().float(), expected, atol=1e-5, rtol=1e-4)
    if all(results.values()):
        return
    if results["self-attention, one head"] and not results["self-attention, four heads"]:
        raise AssertionError(
            "right with one head but wrong with four: look at what changes with the number "
            "of heads (the split, and the size d_k that scales the scores)"
        )
    wrong = [c for c, ok in results.items() if not ok]
    raise AssertionError(f"wrong values on case '{wrong[0]}'")
