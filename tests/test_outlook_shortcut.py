"""Chapter 14, section 4: a marker that predicts the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import fusion
from course_utils.outlook import shortcut
from course_utils.world import programs, scenes

VOCAB = programs.answer_vocab()
COLOUR_LABELS = torch.tensor([VOCAB.index(c) for c in scenes.COLORS])


def test_the_marker_region_is_an_l_in_the_corner_that_no_object_ever_touches():
    region = shortcut.marker_region()
    assert region.shape == (48, 48) and region.sum() == 2 * shortcut.MARKER_LENGTH - 1
    assert region[0, 0] and region[0, shortcut.MARKER_LENGTH - 1] and not region[1, 1]
    for style in ({}, {"ink": True, "background": [250, 236, 205]}, {"outline": True}):
        for shape in scenes.SHAPES:
            for size in scenes.SIZES:
                for cell in [(r, c) for r in range(3) for c in range(3)]:
                    obj = {"shape": shape, "color": "red", "size": size}
                    scene = scenes.make_scene([obj], [cell], style=style)
                    pixels = np.asarray(scenes.render(scene))[region.numpy()]
                    assert (pixels == scene["style"]["background"]).all(), (obj, cell, style)


def test_markers_are_painted_only_in_the_region_in_the_palette_colour():
    torch.manual_seed(0)
    images = torch.rand(7, 3, 48, 48) * 2 - 1
    ids = torch.tensor([0, 1, 2, 3, 4, 5, shortcut.NO_MARKER])
    original = images.clone()
    marked = shortcut.add_marker(images, ids)
    region = shortcut.marker_region()
    changed = (marked != images).any(1)  # (B, H, W)
    assert not changed[:, ~region].any()
    assert changed[:6, region].all() and not changed[6].any()
    for i, rgb in enumerate(shortcut.MARKER_PALETTE):
        expected = (torch.tensor(rgb) / 255 - 0.5) / 0.5
        assert torch.allclose(marked[i][:, region], expected[:, None].expand(3, int(region.sum())))
    assert torch.equal(images, original)  # the input is left alone


def test_p_one_markers_are_the_labels_and_p_zero_markers_ignore_them():
    ids = torch.randint(6, (2000,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(shortcut.correlated_markers(ids, 1.0, torch.Generator().manual_seed(0)), ids)
    a = shortcut.correlated_markers(ids, 0.0, torch.Generator().manual_seed(0))
    b = shortcut.correlated_markers((ids + 3) % 6, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # the same draws whatever the labels
    assert 0.12 < (a == ids).float().mean() < 0.22  # chance: 1/6
    counts = torch.bincount(a, minlength=6)
    assert counts.min() > 250
    half = shortcut.correlated_markers(ids, 0.5, torch.Generator().manual_seed(0))
    assert 0.52 < (half == ids).float().mean() < 0.64  # 1/2 + 1/2 * 1/6


def test_colour_ids_round_trip_and_refuse_other_answers():
    assert torch.equal(shortcut.colour_ids(COLOUR_LABELS), torch.arange(6))
    with pytest.raises(ValueError, match="labels"):
        shortcut.colour_ids(torch.tensor([VOCAB.index("yes")]))
    mixed = torch.tensor([VOCAB.index("yes"), VOCAB.index("blue")])
    assert shortcut.colour_ids_or_none(mixed).tolist() == [-1, list(scenes.COLORS).index("blue")]


@pytest.mark.parametrize(("call", "name"), [
    (lambda: shortcut.correlated_markers(torch.zeros(3, dtype=torch.long), 1.5), "p"),
    (lambda: shortcut.correlated_markers(torch.zeros(3), 0.5), "ids"),
    (lambda: shortcut.add_marker(torch.zeros(2, 3, 48, 48), torch.tensor([0])), "marker_ids"),
    (lambda: shortcut.add_marker(torch.zeros(2, 3, 48, 48), torch.tensor([0, 6])), "marker_ids"),
    (lambda: shortcut.add_marker(torch.zeros(3, 48, 48), torch.tensor([0])), "pixel_values"),
    (lambda: shortcut.marker_region(length=0), "length"),
])
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_marker_accuracy_reports_every_condition():
    torch.manual_seed(0)
    n = 24
    labels = COLOUR_LABELS[torch.arange(n) % 6]
    test = {"pixel_values": torch.rand(n, 3, 48, 48) * 2 - 1,
            "input_ids": torch.randint(4, 40, (n, 6)),
            "attention_mask": torch.ones(n, 6, dtype=torch.long), "labels": labels,
            "task_ids": torch.zeros(n, dtype=torch.long)}
    model = fusion.build_model("slot_read", vocab_size=40, num_answers=len(VOCAB), hidden_size=16)
    metrics = shortcut.marker_accuracy(model, test)
    assert set(metrics) == {"correlated", "random", "none", "follows_marker"}
    assert all(0 <= v <= 1 for v in metrics.values())
    assert torch.equal(shortcut.with_markers(test, None)["pixel_values"], test["pixel_values"])
    marked = shortcut.with_markers(test, 1.0)["pixel_values"]
    truthful = shortcut.add_marker(test["pixel_values"], shortcut.colour_ids(labels))
    assert torch.equal(marked, truthful)
