"""Chapter 01's checkers accept the reference and reject realistic mistakes."""

import pytest

from course_utils.checks import CheckFailed, ch01

REFERENCE_ROLES = {
    "vision encoder": "D",
    "instruction encoder": "A",
    "cross-attention": "C",
    "projector": "E",
    "answer head": "B",
}
REFERENCE_SHAPES = {
    "pixel_values": (8, 3, 224, 224),
    "visual_features": (8, 197, 768),
    "instruction_repr": (8, 12, 768),
    "fused": (8, 12, 768),
    "pooled": (8, 768),
    "logits": (8, 20),
}
REFERENCE_STAGES = {"stage 1": {"projector"}, "stage 2": {"projector", "language_model"}}


def test_components_reference_passes():
    assert ch01.check_components(REFERENCE_ROLES) is True


@pytest.mark.parametrize(
    "change, message",
    [
        ({"projector": "C", "cross-attention": "E"}, "2 of 5 are wrong"),  # swapped fusion roles
        ({"answer head": "A"}, "used a letter twice"),
        ({"projector": "Z"}, "roles are letters"),
    ],
)
def test_components_mistakes_fail(change, message):
    with pytest.raises(CheckFailed, match=message):
        ch01.check_components({**REFERENCE_ROLES, **change})


def test_components_message_does_not_reveal_letters():
    with pytest.raises(CheckFailed) as info:
        ch01.check_components({**REFERENCE_ROLES, "projector": "C", "cross-attention": "E"})
    assert "'E'" not in str(info.value) and "'C'" not in str(info.value)


def test_shapes_reference_passes():
    assert ch01.check_pipeline_shapes(REFERENCE_SHAPES) is True


@pytest.mark.parametrize(
    "change, message",
    [
        ({"visual_features": (8, 196, 768)}, "forget the \\[CLS\\] token"),
        ({"fused": (8, 197, 768)}, "which side provides the queries"),
        ({"pooled": (768,)}, "batch dimension first"),
        ({"logits": (8, 10)}, "shape of 'logits' is not right"),
    ],
)
def test_shapes_mistakes_fail(change, message):
    with pytest.raises(CheckFailed, match=message):
        ch01.check_pipeline_shapes({**REFERENCE_SHAPES, **change})


def test_stages_reference_passes():
    assert ch01.check_llava_stages(REFERENCE_STAGES) is True


@pytest.mark.parametrize(
    "answer, message",
    [
        ({"stage 1": {"projector"}, "stage 2": {"projector"}}, "stage 2: not the right"),
        ({"stage 1": {"projector", "language_model"}, "stage 2": {"projector", "language_model"}},
         "stage 1: too many"),
        ({"stage 1": {"projector"}, "stage 2": {"vision_encoder", "projector", "language_model"}},
         "CLIP vision encoder"),
    ],
)
def test_stages_mistakes_fail(answer, message):
    with pytest.raises(CheckFailed, match=message):
        ch01.check_llava_stages(answer)


@pytest.mark.parametrize("check", [ch01.check_components, ch01.check_pipeline_shapes, ch01.check_llava_stages])
def test_placeholder_is_not_attempted(check):
    assert check(None) is False
