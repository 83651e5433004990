"""Chapter 13's sweeps: the power-law fits, the flips of the augmentation runs, the plan of
points, and the stored sweeps against their recipe."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from course_utils import scaling
from course_utils.world import augment, vocabulary


@pytest.mark.parametrize(("a", "alpha"), [(20.0, 0.5), (3.0, 0.3), (0.8, 1.2)])
def test_fit_power_law_recovers_an_exact_law(a, alpha):
    n = np.array([100, 300, 1000, 3000, 10000])
    got_a, got_alpha = scaling.fit_power_law(n, a * n**-alpha)
    assert math.isclose(got_a, a, rel_tol=1e-9) and math.isclose(got_alpha, alpha, rel_tol=1e-9)


def test_fit_power_law_is_least_squares_on_the_logs():
    n, err = np.array([500, 1000, 2000, 4000]), np.array([0.3, 0.12, 0.09, 0.03])
    a, alpha = scaling.fit_power_law(n, err)
    residual = np.sum((np.log(a) - alpha * np.log(n) - np.log(err)) ** 2)
    for da, dalpha in ((1.01, 0), (0.99, 0), (1, 0.01), (1, -0.01)):  # any nudge fits worse
        nudged = np.sum((np.log(a * da) - (alpha + dalpha) * np.log(n) - np.log(err)) ** 2)
        assert nudged > residual


def test_fit_power_law_with_floor_recovers_a_floored_law():
    n = np.geomspace(1000, 64000, 8)
    a, alpha, floor = scaling.fit_power_law_with_floor(n, 5.0 * n**-0.7 + 0.02)
    assert abs(floor - 0.02) < 0.002 and abs(alpha - 0.7) < 0.1
    plain_a, plain_alpha = scaling.fit_power_law(n, 5.0 * n**-0.7 + 0.02)
    assert plain_alpha < alpha  # a plain law flattens its slope to reach the floor


@pytest.mark.parametrize(("n", "error", "match"), [
    ([1, 2], [0.5], "same length"),
    ([10], [0.5], "at least 2"),
    ([10, 20], [0.5, 0.0], "positive"),
    ([0, 20], [0.5, 0.2], "positive"),
])
def test_fit_power_law_rejects_bad_input(n, error, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit_power_law(n, error)


def test_the_plan_has_every_sweep_point_once():
    r = scaling.RECIPE
    plan = scaling.planned_points(r)
    assert len(plan) == len(set(plan))
    assert {(n, r.width, r.lr) for n in r.sizes} <= set(plan)
    assert {(r.width_n, w, r.lr) for w in r.widths} <= set(plan)
    assert {(r.width_n, w, lr) for w in r.grid_widths for lr in r.lrs} <= set(plan)
    assert len(plan) == len(r.sizes) + len(r.widths) + len(r.grid_widths) * len(r.lrs) - 4  # shared points


def test_the_stored_sweeps_are_the_recipe_s():
    sweeps = scaling.load_sweeps()
    stored = dict(sweeps["recipe"])
    assert stored == {k: (list(v) if isinstance(v, tuple) else v) for k, v in scaling.RECIPE.__dict__.items()}
    assert [(p["n"], p["width"], p["lr"]) for p in sweeps["points"]] == scaling.planned_points()
    for p in sweeps["points"]:
        assert math.isclose(p["error"], 1 - p["test"], abs_tol=1e-4) and p["parameters"] > 0
    assert [a["augmentation"] for a in sweeps["augmentation"]] == list(scaling.AUGMENTATIONS)
    assert scaling.stored_point(sweeps, 2000, 32, 3e-3)["n"] == 2000
    with pytest.raises(KeyError, match="n=7"):
        scaling.stored_point(sweeps, 7, 32, 3e-3)


def test_flip_examples_flips_the_chosen_images_and_their_words():
    tok = vocabulary.load_tokenizer()
    texts = ["What shape is on the left?", "What colour is the object in the top right corner?",
             "What shape is at the top?"]
    enc = tok(texts, padding="max_length", max_length=20, return_tensors="pt")
    pixels = torch.arange(3 * 3 * 4 * 4, dtype=torch.float).view(3, 3, 4, 4)
    tensors = {"pixel_values": pixels, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "labels": torch.tensor([1, 2, 3])}
    which = torch.tensor([True, False, True])
    both = scaling.flip_examples(tensors, texts, tok, which, swap_words=True)
    alone = scaling.flip_examples(tensors, texts, tok, which, swap_words=False)
    assert torch.equal(both["pixel_values"][0], pixels[0].flip(-1)) and torch.equal(both["pixel_values"][1], pixels[1])
    assert torch.equal(alone["pixel_values"], both["pixel_values"])
    swapped = tok(augment.flip_left_right(texts[0]), padding="max_length", max_length=20, return_tensors="pt")
    assert torch.equal(both["input_ids"][0], swapped["input_ids"][0])
    assert torch.equal(both["input_ids"][1:], enc["input_ids"][1:])  # not chosen; no left/right
    assert torch.equal(alone["input_ids"], enc["input_ids"]) and torch.equal(both["labels"], tensors["labels"])
    assert torch.equal(tensors["pixel_values"], pixels)  # the input is left alone
    with pytest.raises(ValueError, match="instructions"):
        scaling.flip_examples(tensors, texts[:2], tok, which, swap_words=True)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": 0, "width": 32, "lr": 3e-3}, "n must be"),
    ({"n": 100, "width": 32.0, "lr": 3e-3}, "width must be"),
    ({"n": 100, "width": 32, "lr": 0.0}, "lr must be"),
])
def test_train_point_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaling.train_point(**kwargs)


def test_train_augmentation_rejects_an_unknown_augmentation():
    with pytest.raises(ValueError, match="augmentation"):
        scaling.train_augmentation("rotate")


def test_a_tiny_point_trains_and_reports():
    tiny = replace(scaling.RECIPE, steps=5, n_eval=50)
    point = scaling.train_point(60, 8, 3e-3, tiny, progress=False)
    assert point["n"] == 60 and 0 <= point["test"] <= 1 and math.isclose(point["error"], 1 - point["test"], abs_tol=1e-4)
    again = scaling.train_point(60, 8, 3e-3, tiny, progress=False)
    assert again["test"] == point["test"] and again["train_loss"] == point["train_loss"]  # seeded
