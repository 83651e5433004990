"""Chapter 12's data as tensors: images before and after, instructions, programs as labels.

An edit program (``world.edits``) becomes one label per *slot*, so a parser is a set of
classifiers (:data:`SLOTS`); a scene becomes one label per grid cell and attribute, so
perception is a classifier per cell (:func:`scene_labels`); the cells an edit changes
come from the true target's pixels (:func:`changed_cells`).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from course_utils.world import encoding, scenes
from course_utils.world.edits import EDITING_OPS, EDITING_STYLES
from course_utils.world.vocabulary import load_tokenizer

NONE = "-"
#: The slots of an edit program and the values each can take (``NONE``: the slot is unused).
SLOTS: dict[str, tuple[str, ...]] = {
    "op": EDITING_OPS,
    "shape": (NONE, *scenes.SHAPES),  # the description of the object edited (or added)
    "color": (NONE, *scenes.COLORS),
    "size": (NONE, *scenes.SIZES),
    "new_color": (NONE, *scenes.COLORS),  # a recolour's argument
    "direction": (NONE, *scenes.DIRECTIONS),  # a move's argument
    "style": (NONE, *EDITING_STYLES),  # a restyle's argument
    "cell": (NONE, *(f"{r},{c}" for r in range(scenes.GRID) for c in range(scenes.GRID))),  # an addition's
}
#: What perception reads: per cell its shape (``NONE``: empty), colour and size; the style.
CELL_SHAPES: tuple[str, ...] = (NONE, *scenes.SHAPES)
STYLE_NAMES: tuple[str, ...] = ("plain", *EDITING_STYLES)
IGNORE = -100  # a label no loss counts (the colour of a grey or empty cell, an empty cell's size)
MAX_INSTRUCTION = 40


def program_labels(program: dict) -> dict[str, int]:
    """An edit program as one label per slot of :data:`SLOTS`.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    obj = program.get("obj", {})
    values = {"op": program["op"], "shape": obj.get("shape", NONE), "color": obj.get("color", NONE),
              "size": obj.get("size", NONE), "new_color": program.get("color", NONE),
              "direction": program.get("direction", NONE), "style": program.get("style", NONE),
              "cell": ",".join(map(str, program["cell"])) if "cell" in program else NONE}  # fmt: skip
    return {slot: SLOTS[slot].index(values[slot]) for slot in SLOTS}


def program_from_labels(labels: dict[str, int]) -> dict:
    """The program a set of slot labels spells (the inverse of :func:`program_labels`).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    v = {slot: SLOTS[slot][int(labels[slot])] for slot in SLOTS}
    op = v["op"]
    if op == "style":
        return {"op": "style", "style": v["style"]}
    obj = {k: v[k] for k in ("size", "color", "shape") if v[k] != NONE}
    if op == "add":
        cell = [int(x) for x in v["cell"].split(",")] if v["cell"] != NONE else [-1, -1]
        return {"op": "add", "obj": obj, "cell": cell}
    program = {"op": op, "obj": obj}
    if op == "recolor":
        program["color"] = v["new_color"]
    if op == "move":
        program["direction"] = v["direction"]
    return program


def scene_labels(scene: dict) -> dict[str, np.ndarray]:
    """What perception must read from a scene's image: ``shape`` ``(9,)`` (0: empty),
    ``color`` and ``size`` ``(9,)`` (:data:`IGNORE` where they cannot be seen) and ``style``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    g = scene["grid"]
    shape = np.zeros(g * g, np.int64)
    color = np.full(g * g, IGNORE, np.int64)
    size = np.full(g * g, IGNORE, np.int64)
    style = style_of(scene)
    for obj in scene["objects"]:
        r, c = scenes.cell_of(obj, scene)
        shape[g * r + c] = CELL_SHAPES.index(obj["shape"])
        size[g * r + c] = list(scenes.SIZES).index(obj["size"])
        if style != "grayscale":
            color[g * r + c] = list(scenes.COLORS).index(obj["color"])
    return {"shape": shape, "color": color, "size": size, "style": np.int64(STYLE_NAMES.index(style))}


def same_labels(a: dict, b: dict) -> bool:
    """Two sets of :func:`scene_labels` are equal (every key, every cell).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def style_of(scene: dict) -> str:
    """The named style a scene is drawn in (``"plain"`` unless an edit restyled it).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    st = scene.get("style", {})
    for name in EDITING_STYLES:
        want = scenes.STYLES[name]
        if all(st.get(k) == v for k, v in want.items()):
            return name
    return "plain"


def scene_from_labels(labels: dict, template: dict | None = None) -> dict:
    """The scene a set of perceived labels describes (objects at cell centres), drawn in
    the perceived style; ``template``'s size and grid (default: the world's).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    size = (template or {}).get("width", scenes.IMAGE_SIZE)
    g = (template or {}).get("grid", scenes.GRID)
    objects, cells = [], []
    for i, s in enumerate(np.asarray(labels["shape"]).tolist()):
        if s == 0:
            continue
        color = int(labels["color"][i])
        objects.append({"shape": CELL_SHAPES[s], "color": list(scenes.COLORS)[max(color, 0)],
                        "size": list(scenes.SIZES)[max(int(labels["size"][i]), 0)]})  # fmt: skip
        cells.append((i // g, i % g))
    scene = scenes.make_scene(objects, cells, size, g)
    style = STYLE_NAMES[int(labels["style"])]
    return scene if style == "plain" else scenes.restyle(scene, style)


def changed_cells(before: torch.Tensor, after: torch.Tensor, grid: int = scenes.GRID) -> torch.Tensor:
    """``(N, grid * grid)`` bool: the cells where two ``(N, H, W, 3)`` uint8 images differ.

    Used in chapter 12, "4. Measuring an edit"."""
    n, h, w, _ = before.shape
    diff = (before != after).any(-1).view(n, grid, h // grid, grid, w // grid)
    return diff.any(4).any(2).reshape(n, grid * grid)


def encode_instructions(instructions, tokenizer=None, max_length: int = MAX_INSTRUCTION) -> dict:
    """Token ids and mask ``(N, L)`` of the instructions (padded to the longest, cut at ``max_length``).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    tok = tokenizer or load_tokenizer()
    enc = tok(list(instructions), padding="longest", truncation=True, max_length=max_length,
              return_tensors="pt")  # fmt: skip
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def edit_tensors(split, tokenizer=None) -> dict:
    """An editing split as tensors, prepared once: ``before`` / ``after`` uint8 images
    ``(N, H, W, 3)``, ``input_ids`` / ``attention_mask``, one label tensor per program slot
    (``slot_<name>``), the perception labels of both scenes (``before_shape``, ...,
    ``after_style``), ``changed`` cells ``(N, 9)`` and ``op`` names.

    Used in chapter 12, "1. Edits with one right answer"."""
    before = torch.from_numpy(encoding.images_to_array(split, "image"))
    after = torch.from_numpy(encoding.images_to_array(split, "target_image"))
    out = {"before": before, "after": after, **encode_instructions(split["instruction"], tokenizer)}
    programs = [program_labels(json.loads(p)) for p in split["program"]]
    for slot in SLOTS:
        out[f"slot_{slot}"] = torch.tensor([p[slot] for p in programs])
    for side, column in (("before", "scene"), ("after", "target_scene")):
        labels = [scene_labels(json.loads(s)) for s in split[column]]
        for key in ("shape", "color", "size", "style"):
            out[f"{side}_{key}"] = torch.from_numpy(np.stack([lab[key] for lab in labels]))
    out["changed"] = changed_cells(before, after)
    out["op"] = list(split["task"])
    return out


def perception_tensors(split, seed: int = 0) -> dict:
    """Perception's training set from a split's scenes, before and after each edit, each
    drawn again in a random style of :data:`STYLE_NAMES` (all equally often: the edits
    alone restyle too few images for a reader to learn dark or grey ones). Returns
    ``images`` uint8 ``(2N, H, W, 3)`` and ``shape``, ``color``, ``size`` ``(2N, 9)``, ``style`` ``(2N,)``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    import random

    rng = random.Random(seed)
    images, labels = [], []
    for column in ("scene", "target_scene"):
        for text in split[column]:
            scene = json.loads(text)
            style = rng.choice(STYLE_NAMES)
            scene = scene if style == "plain" else scenes.restyle(scene, style)
            images.append(np.asarray(scenes.render(scene)))
            labels.append(scene_labels(scene))
    out = {"images": torch.from_numpy(np.stack(images))}
    for key in ("shape", "color", "size", "style"):
        out[key] = torch.from_numpy(np.stack([lab[key] for lab in labels]))
    return out


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in ``[0, 1]`` (the editors' pixels).

    Used in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""
    return images.permute(0, 3, 1, 2).float().div(255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float ``(N, 3, H, W)`` in ``[0, 1]`` -> uint8 ``(N, H, W, 3)``, rounded and clipped.

    Used in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
