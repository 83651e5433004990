"""The visual world: determinism, annotations that agree with pixels, edits, augmentations."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from course_utils.world import augment, programs, questions, scenes


def _pixels_hash(scene) -> str:
    return hashlib.sha256(np.asarray(scenes.render(scene)).tobytes()).hexdigest()


def test_same_seed_same_scene_and_pixels():
    assert scenes.random_scene(11) == scenes.random_scene(11)
    assert scenes.random_scene(11) != scenes.random_scene(12)
    scene = scenes.random_scene(11)
    assert _pixels_hash(scene) == _pixels_hash(scenes.random_scene(11))
    noisy = {**scene, "style": {**scene["style"], **scenes.SHIFT_STYLE, "noise_seed": 5}}
    assert _pixels_hash(noisy) == _pixels_hash(noisy)


def test_annotation_agrees_with_pixels():
    for seed in range(200):
        scene = scenes.random_scene(seed)
        img = np.asarray(scenes.render(scene)).astype(int)
        covered = np.zeros(img.shape[:2], bool)
        for i, obj in enumerate(scene["objects"]):
            mask = scenes.object_mask(scene, i)
            ys, xs = np.nonzero(mask)
            # the bounding box of the drawn object is centred on the annotated centre
            assert abs((xs.min() + xs.max() + 1) / 2 - obj["x"]) <= 1
            assert abs((ys.min() + ys.max() + 1) / 2 - obj["y"]) <= 1
            assert (img[ys, xs] == scenes.COLORS[obj["color"]]).all()
            row, col = scenes.cell_of(obj, scene)
            cell = scene["width"] // scene["grid"]
            assert ys.min() >= row * cell and ys.max() < (row + 1) * cell  # inside its cell
            assert xs.min() >= col * cell and xs.max() < (col + 1) * cell
            width = xs.max() - xs.min() + 1
            assert width >= 12 if obj["size"] == "large" else width <= 10
            covered |= mask
        assert (img[~covered] == scenes.DEFAULT_STYLE["background"]).all()


def test_shapes_are_distinct_silhouettes():
    masks = []
    for shape in scenes.SHAPES:
        scene = scenes.make_scene([{"shape": shape, "color": "red", "size": "small"}], [(1, 1)])
        masks.append(scenes.object_mask(scene, 0))
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() >= 8, (scenes.SHAPES[i], scenes.SHAPES[j])


def test_edits_return_new_scenes():
    scene = scenes.make_scene(
        [{"shape": "circle", "color": "red", "size": "small"},
         {"shape": "square", "color": "blue", "size": "large"}],
        [(1, 1), (1, 2)],
    )  # fmt: skip
    before = repr(scene)
    assert scenes.recolor(scene, 0, "green")["objects"][0]["color"] == "green"
    assert len(scenes.remove(scene, 1)["objects"]) == 1
    moved = scenes.move(scene, 0, "left")
    assert moved["objects"][0]["x"] == 8.0 and moved["objects"][0]["y"] == scene["objects"][0]["y"]
    assert scenes.restyle(scene, "dark")["style"]["background"] == scenes.STYLES["dark"]["background"]
    assert repr(scene) == before  # inputs untouched
    with pytest.raises(ValueError, match="direction"):
        scenes.move(scene, 0, "right")  # occupied
    with pytest.raises(ValueError, match="direction"):
        scenes.move(scene, 1, "right")  # edge
    with pytest.raises(ValueError, match="color"):
        scenes.recolor(scene, 0, "pink")
    with pytest.raises(ValueError, match="style"):
        scenes.restyle(scene, "sepia")
    with pytest.raises(ValueError, match="index"):
        scenes.remove(scene, 5)


def test_styles_render():
    scene = scenes.random_scene(2)
    for name in scenes.STYLES:
        img = scenes.render(scenes.restyle(scene, name))
        assert img.size == (48, 48)
    gray = np.asarray(scenes.render(scenes.restyle(scene, "grayscale"))).astype(int)
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
        scenes.random_scene(0, **kwargs)


def test_augmentations_transform_pixels_and_annotation():
    scene = scenes.make_scene(
        [{"shape": "triangle", "color": "red", "size": "large"},
         {"shape": "circle", "color": "blue", "size": "small"}],
        [(0, 0), (2, 2)],
    )  # fmt: skip
    img = scenes.render(scene)
    flipped, ann = augment.augment(scene, "hflip", 0)
    assert np.array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    assert ann["objects"][0]["x"] == 40.0
    rel = {"op": "relate", "a": {"shape": "triangle"}, "rel": "left", "b": {"shape": "circle"}}
    assert programs.answer(rel, scene) == "yes" and programs.answer(rel, ann) == "no"
    _, gray = augment.augment(scene, "grayscale", 0)
    assert {o["color"] for o in gray["objects"]} == {"gray"}
    for name in ("noise", "brightness", "translate"):
        _, same = augment.augment(scene, name, 3)
        assert [scenes.cell_of(o, same) for o in same["objects"]] == [scenes.cell_of(o, scene) for o in scene["objects"]]
    with pytest.raises(ValueError, match="name"):
        augment.augment(scene, "mixup")


def test_label_breakage_is_measured():
    world = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))
    sample = [questions.generate_question(random.Random(i), f, world) for f in programs.FAMILIES for i in range(40)]
    assert augment.label_breakage(sample, "hflip")["spatial"] > 0.1
    assert augment.label_breakage(sample, "hflip")["count"] == 0
    assert not any(augment.label_breakage(sample, "noise").values())
    assert augment.flip_left_right("Is the cross left of the square? top left. leftover") == (
        "Is the cross right of the square? top right. leftover"
    )
