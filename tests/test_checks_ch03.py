"""Chapter 03's checkers accept the reference and reject realistic mistakes."""

import pytest
import torch

from course_utils import vision
from course_utils.checks import CheckFailed, StudentCodeError, ch03

# ---- Exercise 1: patchify -----------------------------------------------------------


def channels_last_patchify(x, p):  # flattens each patch (rows, cols, channels)
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, -1, c * p * p)


def column_major_patchify(x, p):  # numbers the patches column by column
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(b, -1, c * p * p)


def naive_reshape_patchify(x, p):  # a reshape without permute: right shape, wrong pixels
    b, c, h, w = x.shape
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def transposed_patchify(x, p):  # (B, C*p*p, N)
    return vision.patchify(x, p).transpose(1, 2)


def test_patchify_reference_passes():
    assert ch03.check_patchify(vision.patchify) is True


@pytest.mark.parametrize(
    "fn, message",
    [
        (channels_last_patchify, "flattened in a different order"),
        (column_major_patchify, "different sequence order"),
        (naive_reshape_patchify, "wrong values"),
        (transposed_patchify, "expected \\(B, N, C\\*p\\*p\\)"),
    ],
)
def test_patchify_mistakes_fail(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch03.check_patchify(fn)


def test_patchify_not_attempted_and_student_bug(placeholder, not_attempted):
    def buggy(x, p):
        return x.reshape(-1, 7, 5)  # cannot reshape

    not_attempted(ch03.check_patchify(None), ch03.check_patchify(placeholder))
    with pytest.raises(StudentCodeError, match="buggy"):
        ch03.check_patchify(buggy)


# ---- Exercise 2: parameter count --------------------------------------------------


def reference_count():
    c = ch03.COUNT_CONFIG
    model = vision.VisionTransformer(vision.VisionConfig(
        image_size=c["image_size"], patch_size=c["patch_size"], hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_hidden_layers"], num_attention_heads=4,
        intermediate_size=c["intermediate_size"]))
    return vision.count_parameters(model)


def test_param_count_reference_passes():
    assert ch03.check_vit_param_count(reference_count()) is True


@pytest.mark.parametrize(
    "delta, message",
    [
        (lambda d, n: -(n + 1) * d, "left out the position embeddings"),
        (lambda d, n: -d, "\\[CLS\\] token"),
        (lambda d, n: -2 * d, "final LayerNorm"),
        (lambda d, n: d * d + d, "no pooler"),
        (lambda d, n: 7, "too many"),
    ],
)
def test_param_count_mistakes_fail(delta, message):
    c = ch03.COUNT_CONFIG
    d, n = c["hidden_size"], (c["image_size"] // c["patch_size"]) ** 2
    with pytest.raises(CheckFailed, match=message):
        ch03.check_vit_param_count(reference_count() + delta(d, n))


@pytest.mark.parametrize("delta", [7, -7, -1000])
def test_param_count_message_does_not_reveal_the_total(delta):
    with pytest.raises(CheckFailed) as info:
        ch03.check_vit_param_count(reference_count() + delta)
    message = str(info.value)
    assert str(reference_count()) not in message
    assert str(abs(delta)) not in message  # "off by 7" plus the student's total is the answer
    assert ("too many" if delta > 0 else "too few") in message


def test_param_count_wrong_type_and_placeholder():
    with pytest.raises(CheckFailed, match="should be a int"):
        ch03.check_vit_param_count("123")
    assert ch03.check_vit_param_count(None) is False


# ---- Exercise 3: rescale + normalize ----------------------------------------------


def test_preprocess_reference_passes():
    assert ch03.check_preprocess(ch03.reference_preprocess) is True


def test_preprocess_matches_the_hf_processor():
    import numpy as np
    from transformers import ViTImageProcessor

    img = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    proc = ViTImageProcessor(do_resize=False)
    want = proc(images=img, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ch03.reference_preprocess(img, proc.image_mean, proc.image_std),
                               want, atol=1e-6, rtol=1e-5)


def no_rescale(img, mean, std):
    x = (torch.tensor(img, dtype=torch.float32) - torch.tensor(mean)) / torch.tensor(std)
    return x.permute(2, 0, 1).unsqueeze(0)


def no_normalize(img, mean, std):
    return torch.tensor(img, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0) / 255


def channels_last(img, mean, std):
    return ((torch.tensor(img, dtype=torch.float32) / 255 - torch.tensor(mean))
            / torch.tensor(std)).unsqueeze(0)


def hardcoded_half(img, mean, std):  # ignores the mean/std it is given
    return ch03.reference_preprocess(img, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    "fn, message",
    [
        (no_rescale, "rescale to \\[0, 1\\] first"),
        (no_normalize, "normalize them too"),
        (channels_last, "channels are last"),
        (hardcoded_half, "wrong values on case 'ImageNet"),
    ],
)
def test_preprocess_mistakes_fail(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch03.check_preprocess(fn)


def test_preprocess_not_attempted_and_student_bug(placeholder, not_attempted):
    def buggy(img, mean, std):
        return img / undefined_name  # noqa: F821

    not_attempted(ch03.check_preprocess(placeholder))
    with pytest.raises(StudentCodeError, match="NameError"):
        ch03.check_preprocess(buggy)
