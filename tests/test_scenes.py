"""The visual world: determinism, annotations that agree with pixels, edits, augmentations."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from course_utils import instructions as I
from course_utils import scenes as S


def _pixels_hash(scene) -> str:
    return hashlib.sha256(np.asarray(S.render(scene)).tobytes()).hexdigest()


def test_same_seed_same_scene_and_pixels():
    assert S.random_scene(11) == S.random_scene(11)
    assert S.random_scene(11) != S.random_scene(12)
    scene = S.random_scene(11)
    assert _pixels_hash(scene) == _pixels_hash(S.random_scene(11))
    noisy = {**scene, "style": {**scene["style"], **S.SHIFT_STYLE, "noise_seed": 5}}
    assert _pixels_hash(noisy) == _pixels_hash(noisy)


def test_annotation_agrees_with_pixels():
    for seed in range(200):
        scene = S.random_scene(seed)
        img = np.asarray(S.render(scene)).astype(int)
        covered = np.zeros(img.shape[:2], bool)
        for i, obj in enumerate(scene["objects"]):
            mask = S.object_mask(scene, i)
            ys, xs = np.nonzero(mask)
            # the bounding box of the drawn object is centred on the annotated centre
            assert abs((xs.min() + xs.max() + 1) / 2 - obj["x"]) <= 1
            assert abs((ys.min() + ys.max() + 1) / 2 - obj["y"]) <= 1
            assert (img[ys, xs] == S.COLORS[obj["color"]]).all()
            row, col = S.cell_of(obj, scene)
            cell = scene["width"] // scene["grid"]
            assert ys.min() >= row * cell and ys.max() < (row + 1) * cell  # inside its cell
            assert xs.min() >= col * cell and xs.max() < (col + 1) * cell
            width = xs.max() - xs.min() + 1
            assert width >= 12 if obj["size"] == "large" else width <= 10
            covered |= mask
        assert (img[~covered] == S.DEFAULT_STYLE["background"]).all()


def test_shapes_are_distinct_silhouettes():
    masks = []
    for shape in S.SHAPES:
        scene = S.make_scene([{"shape": shape, "color": "red", "size": "small"}], [(1, 1)])
        masks.append(S.object_mask(scene, 0))
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() >= 8, (S.SHAPES[i], S.SHAPES[j])


def test_edits_return_new_scenes():
    scene = S.make_scene(
        [{"shape": "circle", "color": "red", "size": "small"},
         {"shape": "square", "color": "blue", "size": "large"}],
        [(1, 1), (1, 2)],
    )  # fmt: skip
    before = repr(scene)
    assert S.recolor(scene, 0, "green")["objects"][0]["color"] == "green"
    assert len(S.remove(scene, 1)["objects"]) == 1
    moved = S.move(scene, 0, "left")
    assert moved["objects"][0]["x"] == 8.0 and moved["objects"][0]["y"] == scene["objects"][0]["y"]
    assert S.restyle(scene, "dark")["style"]["background"] == S.STYLES["dark"]["background"]
    assert repr(scene) == before  # inputs untouched
    with pytest.raises(ValueError, match="direction"):
        S.move(scene, 0, "right")  # occupied
    with pytest.raises(ValueError, match="direction"):
        S.move(scene, 1, "right")  # edge
    with pytest.raises(ValueError, match="color"):
        S.recolor(scene, 0, "pink")
    with pytest.raises(ValueError, match="style"):
        S.restyle(scene, "sepia")
    with pytest.raises(ValueError, match="index"):
        S.remove(scene, 5)


def test_styles_render():
    scene = S.random_scene(2)
    for name in S.STYLES:
        img = S.render(S.restyle(scene, name))
        assert img.size == (48, 48)
    gray = np.asarray(S.render(S.restyle(scene, "grayscale"))).astype(int)
    assert (gray[..., 0] == gray[..., 1]).all()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_objects": 10}, "num_objects"),
        ({"num_objects": 0}, "num_objects"),
        ({"colors": ["magenta"]}, "colors"),
        ({"shapes": ["star"]}, "shapes"),
        ({"grid": 1}, "grid"),
        ({"image_size": 47}, "image_size"),
    ],
)
def test_bad_scene_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        S.random_scene(0, **kwargs)


def test_augmentations_transform_pixels_and_annotation():
    scene = S.make_scene(
        [{"shape": "triangle", "color": "red", "size": "large"},
         {"shape": "circle", "color": "blue", "size": "small"}],
        [(0, 0), (2, 2)],
    )  # fmt: skip
    img = S.render(scene)
    flipped, ann = S.augment(scene, "hflip", 0)
    assert np.array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    assert ann["objects"][0]["x"] == 40.0
    rel = {"op": "relate", "a": {"shape": "triangle"}, "rel": "left", "b": {"shape": "circle"}}
    assert I.answer(rel, scene) == "yes" and I.answer(rel, ann) == "no"
    _, gray = S.augment(scene, "grayscale", 0)
    assert {o["color"] for o in gray["objects"]} == {"gray"}
    for name in ("noise", "brightness", "translate"):
        _, same = S.augment(scene, name, 3)
        assert [S.cell_of(o, same) for o in same["objects"]] == [S.cell_of(o, scene) for o in scene["objects"]]
    with pytest.raises(ValueError, match="name"):
        S.augment(scene, "mixup")


def test_label_breakage_is_measured():
    world = I.World(spatial_ops=tuple((op, 1.0) for op in I.SPATIAL_OPS))
    sample = [I.generate_question(random.Random(i), f, world) for f in I.FAMILIES for i in range(40)]
    assert I.label_breakage(sample, "hflip")["spatial"] > 0.1
    assert I.label_breakage(sample, "hflip")["count"] == 0
    assert not any(I.label_breakage(sample, "noise").values())
    assert I.flip_left_right("Is the cross left of the square? top left. leftover") == (
        "Is the cross right of the square? top right. leftover"
    )
