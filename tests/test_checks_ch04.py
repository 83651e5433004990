"""The chapter 04 checkers: the reference passes, realistic mistakes fail, placeholders and
crashes in student code are reported as such."""

from __future__ import annotations

import pytest
import torch

from course_utils import text
from course_utils.checks import CheckFailed, StudentCodeError, ch04

# ---- references and mistakes a student makes -----------------------------------------


def mask_reference(ids, pad_id):
    return (ids != pad_id).long()


def mask_inverted(ids, pad_id):
    return (ids == pad_id).long()


def mask_chapter02_shape(ids, pad_id):
    return (ids != pad_id).long()[:, None, None, :]


def mask_bool(ids, pad_id):
    return ids != pad_id


def mask_pad_is_zero(ids, pad_id):
    return (ids != 0).long()


def pool_reference(hidden, mask):
    m = mask.float().unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1)


def pool_unmasked(hidden, mask):
    return hidden.mean(1)


def pool_divide_by_t(hidden, mask):
    return (hidden * mask.float().unsqueeze(-1)).sum(1) / hidden.shape[1]


def pool_wrong_dim(hidden, mask):
    m = mask.float().unsqueeze(-1)
    return (hidden * m).mean(-1)


def labels_reference(ids, mask):
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    labels[:, :-1][mask[:, 1:] == 0] = -100
    return labels


def labels_not_shifted(ids, mask):
    return ids.clone()


def labels_shifted_right(ids, mask):
    labels = torch.full_like(ids, -100)
    labels[:, 1:] = ids[:, :-1]
    return labels


def labels_padding_kept(ids, mask):
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    return labels


def labels_dropped_last(ids, mask):
    return ids[:, 1:]


CASES = {
    "attention_mask": (
        ch04.check_attention_mask,
        mask_reference,
        {
            "inverted": mask_inverted,
            "chapter 02's (B, 1, 1, T) shape": mask_chapter02_shape,
            "bool instead of integers": mask_bool,
            "pad id hard-coded to 0": mask_pad_is_zero,
        },
    ),
    "mean_pool": (
        ch04.check_mean_pool,
        pool_reference,
        {
            "mask ignored": pool_unmasked,
            "divided by the full length": pool_divide_by_t,
            "pooled over the feature axis": pool_wrong_dim,
        },
    ),
    "lm_labels": (
        ch04.check_lm_labels,
        labels_reference,
        {
            "not shifted": labels_not_shifted,
            "shifted the wrong way": labels_shifted_right,
            "padding not ignored": labels_padding_kept,
            "last position dropped": labels_dropped_last,
        },
    ),
}

@pytest.mark.parametrize("name", CASES)
def test_reference_passes(name, capsys):
    check, answer, _ = CASES[name]
    assert check(answer) is True
    assert "[correct]" in capsys.readouterr().out


def test_package_references_pass():
    assert ch04.check_attention_mask(text.attention_mask_from_ids) is True
    assert ch04.check_mean_pool(text.mean_pool) is True


def test_mistake_fails(name, mistake):
    check, _, mistakes = CASES[name]
    with pytest.raises(CheckFailed) as info:
        check(mistakes[mistake])
    assert check.title in str(info.value)
    assert "tensor(" not in str(info.value)  # no reference values leak


@pytest.mark.parametrize("name", CASES)
def test_not_attempted(name, placeholder, not_attempted):
    check, _, _ = CASES[name]
    not_attempted(check(placeholder), check(None))


@pytest.mark.parametrize("name", CASES)
def test_student_crash_is_attributed(name, crashes):
    check, _, _ = CASES[name]
    with pytest.raises(StudentCodeError, match="crashes"):
        check(crashes)


def test_messages_name_the_problem():
    def msg(check, fn):
        with pytest.raises(CheckFailed) as info:
            check(fn)
        return str(info.value)

    assert "other way round" in msg(ch04.check_attention_mask, mask_inverted)
    assert "chapter 02" in msg(ch04.check_attention_mask, mask_chapter02_shape)
    assert "integer" in msg(ch04.check_attention_mask, mask_bool)
    assert "mask is not used" in msg(ch04.check_mean_pool, pool_unmasked)
    assert "full length" in msg(ch04.check_mean_pool, pool_divide_by_t)
    assert "feature axis" in msg(ch04.check_mean_pool, pool_wrong_dim)
    assert "NEXT token" in msg(ch04.check_lm_labels, labels_not_shifted)
    assert "wrong way" in msg(ch04.check_lm_labels, labels_shifted_right)
    assert "-100" in msg(ch04.check_lm_labels, labels_padding_kept)


def test_strict_mode_makes_not_attempted_an_error(strict_checks, placeholder):
    with pytest.raises(strict_checks):
        ch04.check_mean_pool(placeholder)
