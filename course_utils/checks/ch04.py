"""Checkers for chapter 04, instruction encoders.

Each one runs the student's code on seeded inputs, compares with
:mod:`course_utils.text` and says what is wrong without printing the answer.

* :func:`check_attention_mask` — ``fn(input_ids, pad_id) -> (B, T)`` 1 at real tokens;
* :func:`check_mean_pool` — ``fn(hidden, attention_mask) -> (B, D)`` masked mean;
* :func:`check_lm_labels` — ``fn(input_ids, attention_mask) -> labels (B, T)``, the
  next-token targets of a causal decoder, ``-100`` where there is nothing to predict.
"""

from __future__ import annotations

import torch

from course_utils import text as ref
from course_utils.checks.core import call_student, checker, expect_close, expect_shape, expect_type

__all__ = ["check_attention_mask", "check_mean_pool", "check_lm_labels"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- Exercise 1 ---------------------------------------------------------------------


def _id_cases():
    return [
        ("right padding, pad_id=0", torch.tensor([[2, 15, 8, 3, 0, 0], [2, 7, 3, 0, 0, 0]]), 0),
        ("no padding at all", torch.tensor([[2, 9, 4, 3], [2, 5, 6, 3]]), 0),
        ("left padding, pad_id=1", torch.tensor([[1, 1, 0, 7, 9, 2], [0, 5, 9, 4, 8, 2]]), 1),
        ("pad_id=50256 (GPT-2 style)", torch.tensor([[31, 42, 7, 50256, 50256]]), 50256),
    ]


@checker(
    "Exercise 1: an attention mask from a padded batch",
    hints=(
        "The attention mask says, for each position, whether it holds a real token; one "
        "comparison with pad_id gives it. Don't assume where the padding is (some tokenizers "
        "pad on the left) or that pad_id is 0.",
        "Comparing the ids with pad_id gives a bool (B, T) tensor; tokenizers return integers "
        "(1 = real token, 0 = padding), so convert it. Chapter 02's padding_mask is the same "
        "information with two extra axes for the attention scores; Hugging Face models take "
        "(B, T).",
        'Reread chapter 04, "2. Batches: padding, truncation and the attention mask".',
    ),
)
def check_attention_mask(fn):
    """Check Exercise 1: the ``(B, T)`` 0/1 attention mask of a padded batch of ids.

    Used in chapter 04, "Exercise 1 — an attention mask from a padded batch (★☆☆, ~5 min, 1 point)"."""
    for case, ids, pad_id in _id_cases():
        m = call_student(fn, ids.clone(), pad_id)
        expected = ref.attention_mask_from_ids(ids, pad_id)
        expect_type(m, torch.Tensor, f"the mask on case '{case}'")
        if m.dim() == 4:
            raise AssertionError(
                f"on case '{case}' the mask has shape {tuple(m.shape)}: that is chapter 02's "
                "(B, 1, 1, T) mask for the attention scores; Hugging Face models take (B, T)"
            )
        expect_shape(m, expected.shape, f"the mask on case '{case}'")
        if m.dtype.is_floating_point or m.dtype == torch.bool:
            raise AssertionError(
                f"on case '{case}' the mask has dtype {m.dtype}; tokenizers return integer "
                "masks (0/1), as in `tokenizer(...)['attention_mask']`"
            )
        if torch.equal(m.long(), 1 - expected):
            raise AssertionError(
                f"on case '{case}' the mask is 1 at the padding and 0 at the real tokens: "
                "it is the other way round"
            )
        if not torch.equal(m.long(), expected):
            wrong = int((m.long() != expected).sum())
            raise AssertionError(f"{wrong} wrong entries on case '{case}'")


# ---- Exercise 2 ---------------------------------------------------------------------


def _pool_cases():
    g = _gen(4)
    hidden = torch.randn(3, 6, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    garbage = hidden.clone()
    garbage[mask == 0] = 100.0  # what sits at padded positions must not matter
    return [
        ("no padding", hidden[:1], mask[:1]),
        ("rows of 6, 3 and 1 real tokens", hidden, mask),
        ("large values at the padded positions", garbage, mask),
        ("a boolean mask", hidden, mask.bool()),
        ("left padding", hidden.flip(1), mask.flip(1)),
    ]


@checker(
    "Exercise 2: masked mean pooling",
    hints=(
        "A plain mean over the tokens counts the padding too: zero the padded vectors, add up "
        "the rest, and divide by the number of real tokens of each row.",
        "Turn the mask into floats with a trailing axis, (B, T, 1), so that it broadcasts over "
        "D; multiply, sum over the token axis (dim=1), and divide by each row's number of real "
        "tokens (the mask's sum over dim=1), not by T.",
        'Reread chapter 04, "4. A small BERT-style encoder and masked mean pooling".',
    ),
)
def check_mean_pool(fn):
    """Check Exercise 2: the mean of the hidden states over each row's real tokens.

    Used in chapter 04, "Exercise 2 — masked mean pooling (★★☆, ~10 min, 2 points)"."""
    for case, hidden, mask in _pool_cases():
        out = call_student(fn, hidden.clone(), mask.clone())
        expected = ref.mean_pool(hidden, mask)
        expect_type(out, torch.Tensor, f"the pooled vectors on case '{case}'")
        if tuple(out.shape) == (hidden.shape[0], hidden.shape[1]):
            raise AssertionError(
                f"on case '{case}' the result has shape {tuple(out.shape)} = (B, T): you "
                "averaged over the feature axis; average over the tokens instead, giving (B, D)"
            )
        expect_shape(out, expected.shape, f"the pooled vectors on case '{case}'")
        if not torch.isfinite(out).all():
            raise AssertionError(f"the result on case '{case}' contains NaN or inf")
        if not torch.allclose(out.float(), expected, atol=1e-5, rtol=1e-4):
            plain = hidden.mean(1)
            divided_by_t = (hidden * mask.float().unsqueeze(-1)).sum(1) / hidden.shape[1]
            if torch.allclose(out.float(), plain, atol=1e-5):
                raise AssertionError(
                    f"on case '{case}' the padded positions change the result: the mask "
                    "is not used"
                )
            if torch.allclose(out.float(), divided_by_t, atol=1e-5):
                raise AssertionError(
                    f"on case '{case}' the padding is zeroed but the sum is divided by the "
                    "full length T, so shorter rows come out too small"
                )
        expect_close(out.float(), expected, case=case)


# ---- Exercise 3 ---------------------------------------------------------------------


def _label_cases():
    return [
        ("one sequence, no padding", torch.tensor([[2, 11, 12, 13, 3]]), torch.ones(1, 5, dtype=torch.long)),
        (
            "right padding",
            torch.tensor([[2, 20, 21, 22, 23, 3], [2, 30, 3, 0, 0, 0]]),
            torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]),
        ),
        (
            "padding id that is not 0",
            torch.tensor([[2, 7, 8, 3, 9, 9], [2, 5, 3, 9, 9, 9]]),
            torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]),
        ),
    ]


def _reference_labels(ids, mask):
    enc = {"input_ids": ids, "attention_mask": mask}
    labels = torch.full_like(ids, ref.IGNORE_INDEX)
    labels[:, :-1] = ids[:, 1:].masked_fill(mask[:, 1:] == 0, ref.IGNORE_INDEX)
    return enc, labels


@checker(
    "Exercise 3: next-token labels for a decoder",
    hints=(
        "The label at position t is the token at position t + 1. Where there is no next real "
        "token (the last position, or a position followed by padding), the label is -100, the "
        "ignore_index of cross_entropy.",
        "Start from a (B, T) tensor full of -100 (torch.full_like), copy the ids shifted one "
        "step to the LEFT into every position but the last, then put -100 back wherever the "
        "next position is padding (the mask, shifted the same way, is 0 there).",
        'Reread chapter 04, "3. Encoder or decoder?", where a decoder learns to predict the '
        "next token.",
    ),
)
def check_lm_labels(fn):
    """Check Exercise 3: next-token labels, ``-100`` where there is no next token.

    Used in chapter 04, "Exercise 3 — next-token labels for a decoder (★★☆, ~10 min, 2 points)"."""
    for case, ids, mask in _label_cases():
        labels = call_student(fn, ids.clone(), mask.clone())
        _, expected = _reference_labels(ids, mask)
        expect_type(labels, torch.Tensor, f"the labels on case '{case}'")
        expect_shape(labels, expected.shape, f"the labels on case '{case}'")
        labels = labels.long()
        if torch.equal(labels, ids):
            raise AssertionError(
                f"on case '{case}' the labels are the inputs themselves: a decoder predicts "
                "the NEXT token, so the labels are shifted by one"
            )
        right = torch.full_like(ids, ref.IGNORE_INDEX)
        right[:, 1:] = ids[:, :-1]
        real = expected != ref.IGNORE_INDEX
        if torch.equal(labels[:, 1:], right[:, 1:]) and not torch.equal(labels, expected):
            raise AssertionError(
                f"on case '{case}' the labels are shifted the wrong way: position t must "
                "hold the token that comes AFTER it"
            )
        if torch.equal(labels[real], expected[real]) and not torch.equal(labels, expected):
            raise AssertionError(
                f"on case '{case}' the next tokens are right but some positions that have "
                "nothing to predict (the end, or padding) are not set to -100"
            )
        if not torch.equal(labels, expected):
            wrong = int((labels != expected).sum())
            raise AssertionError(f"{wrong} wrong labels on case '{case}'")
