"""Augmentations of a rendered scene, each with the annotation of what the new image shows.

Asking a question again on the returned annotation tells whether its label survived the
augmentation: chapter 06, "9. Which augmentations preserve labels? (seed 9.2)", measures
which ones silently break labels (a horizontal flip swaps left and right).
"""

from __future__ import annotations

import random

from course_utils.world.programs import AmbiguityError, answer
from course_utils.world.scenes import COLORS, copy_scene, hflip, render, vflip

# ---- augmentations -------------------------------------------------------------------
#
# An augmentation changes the *pixels* of a rendered scene. Each one here returns the new
# image and the annotation of what that image shows, so that asking the question again
# on the new annotation tells whether the label survived (chapter 06 measures it).


def _nearest_color(rgb) -> str:
    return min(COLORS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLORS[c], rgb)))


def hue_map(degrees: float) -> dict[str, str]:
    """Where rotating every hue by ``degrees`` sends each palette colour (nearest name).

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    import colorsys

    out = {}
    for name, rgb in COLORS.items():
        h, s_, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
        r, g, b = colorsys.hsv_to_rgb((h + degrees / 360) % 1.0, s_, v)
        out[name] = _nearest_color((r * 255, g * 255, b * 255))
    return out


def _rotate_hue(img, degrees: float):
    import numpy as np
    from PIL import Image

    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _aug_hflip(scene, img, rng):
    from PIL import ImageOps

    return ImageOps.mirror(img), hflip(scene)


def _aug_vflip(scene, img, rng):
    from PIL import ImageOps

    return ImageOps.flip(img), vflip(scene)  # triangles now point down: still triangles


def _aug_rotate90(scene, img, rng):
    """A quarter turn counter-clockwise: (x, y) -> (y, W - x)."""
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["x"], obj["y"] = obj["y"], scene["width"] - obj["x"]
    return img.rotate(90), out


def _aug_hue_shift(scene, img, rng):
    """Colour jitter pushed far: every hue rotated by 120 degrees."""
    mapping = hue_map(120.0)
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["color"] = mapping[obj["color"]]
    return _rotate_hue(img, 120.0), out


def _aug_grayscale(scene, img, rng):
    """Colours are gone: the annotation says ``gray`` for every object."""
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["color"] = "gray"
    return img.convert("L").convert("RGB"), out


def _aug_noise(scene, img, rng):
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 10.0, (img.height, img.width, 3))
    arr = np.clip(np.asarray(img, dtype=np.float64) + noise + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr), copy_scene(scene)


def _aug_brightness(scene, img, rng):
    from PIL import ImageEnhance

    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15)), copy_scene(scene)


def _aug_translate(scene, img, rng):
    """Shift the picture by up to 3 px (background fills the gap): objects keep their cells."""
    from PIL import Image

    dx, dy = rng.randint(-3, 3), rng.randint(-3, 3)
    moved = Image.new("RGB", img.size, tuple(scene["style"]["background"]))
    moved.paste(img, (dx, dy))
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["x"] += dx
        obj["y"] += dy
    return moved, out


def _aug_cutout(scene, img, rng):
    """Erase a random cell-sized square; an object whose centre it covers is gone."""
    from PIL import ImageDraw

    size = scene["width"] // scene["grid"]
    x0 = rng.randint(0, scene["width"] - size)
    y0 = rng.randint(0, scene["height"] - size)
    img = img.copy()
    ImageDraw.Draw(img).rectangle([x0, y0, x0 + size - 1, y0 + size - 1], fill=(128, 128, 128))
    out = copy_scene(scene)
    out["objects"] = [
        o for o in out["objects"] if not (x0 <= o["x"] < x0 + size and y0 <= o["y"] < y0 + size)
    ]
    return img, out


#: Name -> ``(scene, image, rng) -> (image, scene)``. Use :func:`augment`.
AUGMENTATIONS = {
    "hflip": _aug_hflip,
    "vflip": _aug_vflip,
    "rotate90": _aug_rotate90,
    "hue_shift": _aug_hue_shift,
    "grayscale": _aug_grayscale,
    "noise": _aug_noise,
    "brightness": _aug_brightness,
    "translate": _aug_translate,
    "cutout": _aug_cutout,
}


def augment(scene: dict, name: str, rng: random.Random | int = 0, image=None):
    """Augment a scene's picture: returns ``(image, annotation of what it shows)``.

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"name: unknown augmentation {name!r}; expected one of {list(AUGMENTATIONS)}")
    rng = rng if isinstance(rng, random.Random) else random.Random(f"augment:{rng}")
    image = render(scene) if image is None else image
    return AUGMENTATIONS[name](scene, image, rng)


# ---- augmentation and labels ----------------------------------------------------------


def label_survives(program: dict, before: dict, after: dict) -> bool:
    """True when a question has the same single answer on both annotations.

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    try:
        return answer(program, after) == answer(program, before)
    except AmbiguityError:  # the description no longer names one object
        return False


def label_breakage(examples, name: str, seed: int = 0) -> dict[str, float]:
    """Per family, the fraction of examples whose answer an augmentation changes.

    ``examples`` are dicts with ``scene`` and ``program`` (dicts or JSON strings).

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)".
    """
    import json

    broken: dict[str, list[bool]] = {}
    for i, ex in enumerate(examples):
        scene = ex["scene"] if isinstance(ex["scene"], dict) else json.loads(ex["scene"])
        program = ex["program"] if isinstance(ex["program"], dict) else json.loads(ex["program"])
        _, after = augment(scene, name, random.Random(f"breakage:{seed}:{name}:{i}"))
        broken.setdefault(program["family"], []).append(not label_survives(program, scene, after))
    return {f: sum(v) / len(v) for f, v in sorted(broken.items())}


_LR = {"left": "right", "right": "left"}


def flip_left_right(text: str) -> str:
    """Swap the words "left" and "right" (what a horizontal flip does to the meaning).

    Used in chapter 06, "Exercise 4 — Make the horizontal flip label-preserving (★★☆, ~15 min, 2 points)"."""
    import re

    return re.sub(r"\b(left|right)\b", lambda m: _LR[m.group(1)], text)
