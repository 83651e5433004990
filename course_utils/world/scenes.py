"""The course's visual world: scenes of coloured shapes on a grid, rendered with Pillow.

A *scene* is a plain, JSON-friendly dict::

    {"width": 48, "height": 48, "grid": 3,
     "style": {"background": [225, 225, 225], "noise": 0.0, "noise_seed": 0,
               "scale": 1.0, "outline": False, "grayscale": False},
     "objects": [{"shape": "circle", "color": "red", "size": "large", "x": 8.0, "y": 24.0},
                 ...]}

``x`` and ``y`` are the object's centre in pixels (continuous coordinates: pixel ``i``
covers ``[i, i + 1)``, so the centre of the first 16-px cell is 8.0). Objects sit one per
cell of a coarse ``grid x grid`` layout whose cells line up with 16-px patches, so
"left of" and "above" are crisp and every object falls inside exactly one ViT patch.
That choice is measured, not guessed: on freely placed shapes a small model learns
spatial questions far more slowly (see chapter 06).

:func:`render` turns a scene into a ``PIL.Image`` deterministically (the same scene gives
the same pixels on every machine with the same Pillow; the noise of shifted styles comes
from NumPy's PCG64 generator seeded by ``style["noise_seed"]``). Edits (:func:`recolor`,
:func:`remove`, :func:`move`, :func:`restyle`) return new scenes and never change their
input. This module depends on Pillow and NumPy only.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Sequence

#: Shape names, in a fixed order (it fixes answer-vocabulary indices).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
#: Colour names and their RGB values: six hues far apart, readable on the light background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 195, 20),
    "purple": (150, 50, 190),
    "cyan": (20, 190, 200),
}
#: Size names and the object's half-width as a fraction of a grid cell.
SIZES: dict[str, float] = {"small": 0.28, "large": 0.45}

#: Default image side in pixels and grid (48 px = 3 cells of 16 px).
IMAGE_SIZE = 48
GRID = 3

DEFAULT_STYLE: dict = {
    "background": [225, 225, 225],
    "noise": 0.0,
    "noise_seed": 0,
    "scale": 1.0,
    "outline": False,
    "grayscale": False,
}
#: The rendering change of the ``test_shift`` split: tinted background, pixel noise,
#: objects drawn 20 % smaller. Labels are unchanged; only the pixels move.
SHIFT_STYLE: dict = {"background": [205, 215, 185], "noise": 14.0, "scale": 0.8}
#: Whole-image styles an edit instruction can ask for (see :func:`restyle`).
STYLES: dict[str, dict] = {
    "plain": {},
    "dark": {"background": [40, 40, 40]},
    "outline": {"outline": True},
    "grayscale": {"grayscale": True},
    # chapter 12: flat colours with a black ink line around every shape, on warm paper
    "cartoon": {"background": [250, 236, 205], "ink": True},
}
#: The ink of the cartoon style's outlines.
INK = (20, 20, 20)


# ---- argument checking -------------------------------------------------------------


def check_names(names: Iterable[str] | None, known: Sequence[str], arg: str) -> tuple[str, ...]:
    """``names`` as a tuple in the canonical order; ``ValueError`` naming ``arg`` if unknown.

    Used in chapter 06, "1. A world where we know the truth"."""
    if names is None:
        return tuple(known)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{arg}: unknown value(s) {unknown}; expected some of {list(known)}")
    if len(set(names)) < 1:
        raise ValueError(f"{arg}: needs at least one value")
    return tuple(n for n in known if n in names)


def check_layout(image_size: int, grid: int) -> int:
    """Validate the image size and grid; return the cell size in pixels.

    Used in chapter 06, "1. A world where we know the truth"."""
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")
    if not isinstance(image_size, int) or image_size < 8 * grid:
        raise ValueError(f"image_size must be an int >= 8 * grid ({8 * grid}), got {image_size!r}")
    if image_size % grid:
        raise ValueError(f"image_size ({image_size}) must be a multiple of grid ({grid})")
    return image_size // grid


# ---- scenes ------------------------------------------------------------------------


def cell_center(row: int, col: int, image_size: int = IMAGE_SIZE, grid: int = GRID):
    """Pixel centre ``(x, y)`` of a grid cell.

    Used in chapter 06, "1. A world where we know the truth"."""
    cell = image_size / grid
    return (col + 0.5) * cell, (row + 0.5) * cell


def cell_of(obj: dict, scene: dict) -> tuple[int, int]:
    """The ``(row, col)`` grid cell that holds ``obj``.

    Used in chapter 06, "1. A world where we know the truth"."""
    cell = scene["width"] / scene["grid"]
    return int(obj["y"] // cell), int(obj["x"] // cell)


def make_scene(
    objects: list[dict],
    cells: list[tuple[int, int]],
    image_size: int = IMAGE_SIZE,
    grid: int = GRID,
    style: dict | None = None,
) -> dict:
    """A scene from objects (``shape``, ``color``, ``size``) and their ``(row, col)`` cells.

    Used in chapter 06, "1. A world where we know the truth"."""
    if len(cells) != len(objects):
        raise ValueError("objects and cells must have the same length")
    if len(set(cells)) != len(cells):
        raise ValueError("cells: two objects in the same cell")
    placed = []
    for obj, (row, col) in zip(objects, cells):
        if not (0 <= row < grid and 0 <= col < grid):
            raise ValueError(f"cells: ({row}, {col}) is outside the {grid}x{grid} grid")
        x, y = cell_center(row, col, image_size, grid)
        placed.append(
            {"shape": obj["shape"], "color": obj["color"], "size": obj["size"], "x": x, "y": y}
        )
    return {
        "width": image_size,
        "height": image_size,
        "grid": grid,
        "style": {**DEFAULT_STYLE, **(style or {})},
        "objects": placed,
    }


def random_scene(
    seed: int | random.Random = 0,
    num_objects: int | tuple[int, int] = (2, 5),
    image_size: int = IMAGE_SIZE,
    grid: int = GRID,
    colors: Iterable[str] | None = None,
    shapes: Iterable[str] | None = None,
) -> dict:
    """A scene of random objects in distinct random cells (no question attached).

    ``num_objects`` is a count or an inclusive ``(min, max)`` range.

    Used in chapter 06, "1. A world where we know the truth".
    """
    check_layout(image_size, grid)
    colors = check_names(colors, tuple(COLORS), "colors")
    shapes = check_names(shapes, SHAPES, "shapes")
    lo, hi = check_num_objects(num_objects, grid)
    rng = seed if isinstance(seed, random.Random) else random.Random(f"scene:{seed}")
    n = rng.randint(lo, hi)
    objects = [
        {"shape": rng.choice(shapes), "color": rng.choice(colors), "size": rng.choice(list(SIZES))}
        for _ in range(n)
    ]
    cells = rng.sample([(r, c) for r in range(grid) for c in range(grid)], n)
    return make_scene(objects, cells, image_size, grid)


def check_num_objects(num_objects, grid: int) -> tuple[int, int]:
    """``num_objects`` as an inclusive ``(min, max)``; ``ValueError`` naming it if invalid.

    Used in chapter 06, "1. A world where we know the truth"."""
    if isinstance(num_objects, int):
        lo = hi = num_objects
    else:
        try:
            lo, hi = (int(v) for v in num_objects)
        except (TypeError, ValueError):
            raise ValueError(
                f"num_objects must be an int or a (min, max) pair, got {num_objects!r}"
            ) from None
    if lo < 1 or hi < lo:
        raise ValueError(f"num_objects must satisfy 1 <= min <= max, got {num_objects!r}")
    if hi > grid * grid:
        raise ValueError(
            f"num_objects: {hi} objects do not fit in a {grid}x{grid} grid (at most {grid * grid})"
        )
    return lo, hi


# ---- rendering ---------------------------------------------------------------------


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices (Pillow coordinates: pixel centres at integers)."""
    a = r - 0.5  # half extent measured between outermost pixel centres
    if shape == "triangle":
        return [(cx, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    if shape == "diamond":
        return [(cx, cy - a), (cx + a, cy), (cx, cy + a), (cx - a, cy)]
    if shape == "cross":
        t = max(1.0, round(r * 0.36 * 2) / 2)  # half thickness of the bars
        return [
            (cx - t + 0.5, cy - a), (cx + t - 0.5, cy - a), (cx + t - 0.5, cy - t + 0.5),
            (cx + a, cy - t + 0.5), (cx + a, cy + t - 0.5), (cx + t - 0.5, cy + t - 0.5),
            (cx + t - 0.5, cy + a), (cx - t + 0.5, cy + a), (cx - t + 0.5, cy + t - 0.5),
            (cx - a, cy + t - 0.5), (cx - a, cy - t + 0.5), (cx - t + 0.5, cy - t + 0.5),
        ]  # fmt: skip
    raise ValueError(f"shape: unknown shape {shape!r}")


def object_radius(obj: dict, scene: dict) -> float:
    """Half-width in pixels of a drawn object (after the style's ``scale``).

    Used in chapter 06, "1. A world where we know the truth"."""
    cell = scene["width"] / scene["grid"]
    return max(2.0, round(SIZES[obj["size"]] * cell * scene["style"].get("scale", 1.0) * 2) / 2)


def draw_object(draw, obj: dict, scene: dict, fill=None, outline_only: bool | None = None, line: int = 2):
    """Draw one object with a ``PIL.ImageDraw`` handle (used by :func:`render`).

    Used in chapter 06, "1. A world where we know the truth"."""
    r = object_radius(obj, scene)
    cx, cy = obj["x"] - 0.5, obj["y"] - 0.5  # continuous -> Pillow pixel-centre coordinates
    fill = tuple(COLORS[obj["color"]]) if fill is None else fill
    outline_only = scene["style"].get("outline", False) if outline_only is None else outline_only
    kw = {"outline": fill, "width": line} if outline_only else {"fill": fill}
    a = r - 0.5
    box = [cx - a, cy - a, cx + a, cy + a]
    if obj["shape"] == "circle":
        draw.ellipse(box, **kw)
    elif obj["shape"] == "square":
        s = a * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], **kw)
    else:
        pts = _shape_points(obj["shape"], cx, cy, r)
        draw.polygon(pts, **kw)


def render(scene: dict, upscale: int = 1):
    """The scene as an RGB ``PIL.Image`` (``upscale`` > 1 enlarges it for display only).

    Used in chapter 06, "1. A world where we know the truth"."""
    from PIL import Image, ImageDraw

    style = {**DEFAULT_STYLE, **scene.get("style", {})}
    scene = {**scene, "style": style}
    img = Image.new("RGB", (scene["width"], scene["height"]), tuple(style["background"]))
    draw = ImageDraw.Draw(img)
    for obj in scene["objects"]:
        draw_object(draw, obj, scene)
        if style.get("ink", False):  # the cartoon style: an ink line around the flat colour
            draw_object(draw, obj, scene, fill=INK, outline_only=True, line=1)
    if style["grayscale"]:
        img = img.convert("L").convert("RGB")
    if style["noise"]:
        import numpy as np

        rng = np.random.default_rng(int(style["noise_seed"]))
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + rng.normal(0.0, float(style["noise"]), size=arr.shape).astype(np.float32)
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    return img


def object_mask(scene: dict, index: int):
    """Boolean ``(H, W)`` NumPy mask of the pixels object ``index`` covers (ignoring noise).

    Used in chapter 06, "1. A world where we know the truth"."""
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.new("L", (scene["width"], scene["height"]), 0)
    style = {**DEFAULT_STYLE, **scene.get("style", {})}
    draw_object(ImageDraw.Draw(img), scene["objects"][index], {**scene, "style": style}, fill=255)
    return np.asarray(img) > 0


# ---- edits (each returns a new scene) -----------------------------------------------


def copy_scene(scene: dict) -> dict:
    """A deep copy of a scene (edits never change their input).

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    return copy.deepcopy(scene)


def _check_index(scene: dict, index: int) -> None:
    if not 0 <= index < len(scene["objects"]):
        raise ValueError(f"index: no object {index} in a scene of {len(scene['objects'])}")


def recolor(scene: dict, index: int, color: str) -> dict:
    """The scene with object ``index`` painted ``color``.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    _check_index(scene, index)
    check_names([color], tuple(COLORS), "color")
    out = copy_scene(scene)
    out["objects"][index]["color"] = color
    return out


def remove(scene: dict, index: int) -> dict:
    """The scene without object ``index``.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    _check_index(scene, index)
    out = copy_scene(scene)
    del out["objects"][index]
    return out


#: Grid steps of the four move directions: (rows, cols).
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def can_move(scene: dict, index: int, direction: str) -> bool:
    """True when the neighbouring cell in ``direction`` exists and is empty.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    _check_index(scene, index)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {list(DIRECTIONS)}, got {direction!r}")
    row, col = cell_of(scene["objects"][index], scene)
    dr, dc = DIRECTIONS[direction]
    r, c = row + dr, col + dc
    if not (0 <= r < scene["grid"] and 0 <= c < scene["grid"]):
        return False
    return all(cell_of(o, scene) != (r, c) for o in scene["objects"])


def move(scene: dict, index: int, direction: str) -> dict:
    """The scene with object ``index`` moved one cell ``left``/``right``/``up``/``down``.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    if not can_move(scene, index, direction):
        raise ValueError(f"direction: object {index} cannot move {direction} (edge or occupied)")
    out = copy_scene(scene)
    obj = out["objects"][index]
    row, col = cell_of(obj, scene)
    dr, dc = DIRECTIONS[direction]
    obj["x"], obj["y"] = cell_center(row + dr, col + dc, scene["width"], scene["grid"])
    return out


def add_object(scene: dict, obj: dict, cell: tuple[int, int]) -> dict:
    """The scene with a new object (``shape``, ``color``, ``size``) in the empty ``cell``.

    Used in chapter 12, "1. Edits with one right answer"."""
    row, col = cell
    if not (0 <= row < scene["grid"] and 0 <= col < scene["grid"]):
        raise ValueError(f"cell: ({row}, {col}) is outside the {scene['grid']}x{scene['grid']} grid")
    if any(cell_of(o, scene) == (row, col) for o in scene["objects"]):
        raise ValueError(f"cell: ({row}, {col}) already holds an object")
    check_names([obj.get("shape")], SHAPES, "shape")
    check_names([obj.get("color")], tuple(COLORS), "color")
    check_names([obj.get("size")], tuple(SIZES), "size")
    out = copy_scene(scene)
    x, y = cell_center(row, col, scene["width"], scene["grid"])
    out["objects"].append({"shape": obj["shape"], "color": obj["color"], "size": obj["size"], "x": x, "y": y})
    return out


def restyle(scene: dict, style: str) -> dict:
    """The scene drawn in a named whole-image style (see :data:`STYLES`).

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    if style not in STYLES:
        raise ValueError(f"style: expected one of {list(STYLES)}, got {style!r}")
    out = copy_scene(scene)
    base = {k: v for k, v in out["style"].items() if k in ("noise", "noise_seed", "scale")}
    out["style"] = {**DEFAULT_STYLE, **base, **STYLES[style]}
    return out


def hflip(scene: dict) -> dict:
    """The scene mirrored left-right (what a horizontal-flip augmentation does to it).

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["x"] = scene["width"] - obj["x"]
    return out


def vflip(scene: dict) -> dict:
    """The scene mirrored top-bottom (triangles would point down: see chapter 06).

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    out = copy_scene(scene)
    for obj in out["objects"]:
        obj["y"] = scene["height"] - obj["y"]
    return out


