"""Edits of a scene in words: an instruction, its program, and the true target scene.

Two generators share one set of edit steps. :func:`generate_edit` is chapter 01's
editing data (recolour, remove, move and three styles; the data of
``load_edit_dataset``, which chapter 11's composed retrieval reads), and
:func:`generate_editing` is chapter 12's: the same edits plus adding an object ("Add a
small red circle in the top left corner.") and a cartoon style, each kind of edit
equally often. In chapter 12's compositional split every object edit is about a
colour-shape pair no training image holds: a recolour or an addition *produces* one, a
removal or a move acts on one. :func:`apply_edit` executes a program; it is the
reference every editor is judged against.
"""

from __future__ import annotations

import random

from course_utils.world import scenes
from course_utils.world.phrasings import (
    MOVE_WORDS,
    fill_template,
    noun_phrase,
    position_phrase,
    with_article,
)
from course_utils.world.programs import POSITIONS, Retry, World, description_of, select, unique
from course_utils.world.questions import SceneBuilder, named_pair_ok

#: Chapter 01's edits (``load_edit_dataset``) and the styles they ask for.
EDIT_OPS: tuple[str, ...] = ("recolor", "remove", "move", "style")
EDIT_STYLES: tuple[str, ...] = ("dark", "outline", "grayscale")
#: Chapter 12's edits (``load_editing_dataset``): adding an object, and a cartoon style.
EDITING_OPS: tuple[str, ...] = ("recolor", "remove", "move", "add", "style")
EDITING_STYLES: tuple[str, ...] = ("dark", "outline", "grayscale", "cartoon")


def unique_descriptions(scene: dict, index: int, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Every description (attribute subset) that names object ``index`` and no other.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    obj = scene["objects"][index]
    out = []
    for keys in (("shape",), ("color",), ("color", "shape"), ("size", "shape"),
                 ("size", "color"), ("size", "color", "shape")):  # fmt: skip
        if any(k in exclude for k in keys):
            continue
        d = description_of(obj, keys)
        if len(select(scene, d)) == 1:
            out.append(d)
    return out


def _style_edit(rng: random.Random, scene: dict, styles, heldout: bool) -> dict:
    style = rng.choice(list(styles))
    text = fill_template(rng, f"style_{style}", heldout)
    return {"scene": scene, "target_scene": scenes.restyle(scene, style),
            "program": {"op": "style", "style": style}, "instruction": text}  # fmt: skip


def _object_edit(rng, scene, op, index, desc, heldout, colors) -> dict | None:
    """Recolour (to one of ``colors``), remove or move object ``index``, named by ``desc``;
    None when the edit is impossible in this scene."""
    phrase = noun_phrase(desc)
    if op == "recolor":
        if not colors:
            return None
        color = rng.choice(sorted(colors))
        target = scenes.recolor(scene, index, color)
        program = {"op": "recolor", "obj": desc, "color": color}
        text = fill_template(rng, "recolor", heldout, obj=phrase, color=color)
    elif op == "remove":
        if len(scene["objects"]) < 2:
            return None
        target = scenes.remove(scene, index)
        program = {"op": "remove", "obj": desc}
        text = fill_template(rng, "remove", heldout, obj=phrase)
    else:
        dirs = [d for d in scenes.DIRECTIONS if scenes.can_move(scene, index, d)]
        if not dirs:
            return None
        direction = rng.choice(dirs)
        target = scenes.move(scene, index, direction)
        program = {"op": "move", "obj": desc, "direction": direction}
        words = rng.choice(MOVE_WORDS[direction])
        text = fill_template(rng, "move", heldout, obj=phrase, dir=words)
    return {"scene": scene, "target_scene": target, "program": program, "instruction": text}


def generate_edit(rng: random.Random, world: World, novel: bool = False, heldout: bool = False) -> dict:
    """An edit example: ``{"scene", "target_scene", "program", "instruction"}``.

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    for _ in range(200):
        b = SceneBuilder(rng, world, novel)
        try:
            b.fill(b.object_count(2))
            if novel:
                b.objects[0] = b.sample(novel=True)
            scene = b.scene()
        except Retry:
            continue
        op = rng.choice(EDIT_OPS)
        if op == "style":
            return _style_edit(rng, scene, EDIT_STYLES, heldout)
        index = rng.randrange(len(scene["objects"]))
        descs = [d for d in unique_descriptions(scene, index) if named_pair_ok(d, world, novel)]
        if not descs:
            continue
        desc = rng.choice(descs)
        obj = scene["objects"][index]
        colors = {c for c, s in b.pairs(None) if s == obj["shape"] and c != obj["color"]} if op == "recolor" else ()
        ex = _object_edit(rng, scene, op, index, desc, heldout, colors)
        if ex is not None:
            return ex
    raise RuntimeError("could not build an edit example")  # pragma: no cover


def _add_edit(rng: random.Random, b: SceneBuilder, scene: dict, novel: bool, heldout: bool) -> dict | None:
    """Add a fully described object (a held-out pair when ``novel``) in a free cell."""
    g = scene["grid"]
    taken = {scenes.cell_of(o, scene) for o in scene["objects"]}
    free = [(r, c) for r in range(g) for c in range(g) if (r, c) not in taken]
    if not free:
        return None
    try:
        obj = b.sample(novel=novel)
    except Retry:
        return None
    cell = rng.choice(free)
    target = scenes.add_object(scene, obj, cell)
    place = position_phrase(POSITIONS[g * cell[0] + cell[1]]) if g == 3 else f"in row {cell[0] + 1}, column {cell[1] + 1}"
    text = fill_template(rng, "add", heldout, a_obj=with_article(noun_phrase(obj)), place=place)
    program = {"op": "add", "obj": dict(obj), "cell": list(cell)}
    return {"scene": scene, "target_scene": target, "program": program, "instruction": text}


def generate_editing(rng: random.Random, world: World, novel: bool = False, heldout: bool = False) -> dict:
    """Chapter 12's edit example (:data:`EDITING_OPS`, each equally likely):
    ``{"scene", "target_scene", "program", "instruction"}``. With ``novel``, a recolour or
    an addition produces a held-out colour-shape pair, a removal or a move acts on one.

    Used in chapter 12, "1. Edits with one right answer"."""
    op = rng.choice(EDITING_OPS)
    for _ in range(200):
        b = SceneBuilder(rng, world, novel=False)
        try:
            b.fill(b.object_count(1 if op == "add" else 2))
            if novel and op in ("remove", "move", "style"):
                b.objects[0] = b.sample(novel=True)
            scene = b.scene()
        except Retry:
            continue
        if op == "style":
            return _style_edit(rng, scene, EDITING_STYLES, heldout)
        if op == "add":
            ex = _add_edit(rng, b, scene, novel, heldout)
            if ex is not None:
                return ex
            continue
        index = 0 if novel and op != "recolor" else rng.randrange(len(scene["objects"]))
        descs = [d for d in unique_descriptions(scene, index) if named_pair_ok(d, world, novel)]
        if not descs:
            continue
        obj = scene["objects"][index]
        pairs = world.novel_pairs if novel else world.allowed_pairs
        colors = {c for c, s in pairs if s == obj["shape"] and c != obj["color"]} if op == "recolor" else ()
        ex = _object_edit(rng, scene, op, index, rng.choice(descs), heldout, colors)
        if ex is not None:
            return ex
    raise RuntimeError("could not build an edit example")  # pragma: no cover


def apply_edit(program: dict, scene: dict) -> dict:
    """Execute an edit program on a scene (the reference for edit models).

    Serves chapter 01, "7. Three applications, previewed" (editing); chapter 12,
    "2. Editor 1: the instruction as a program" runs it on the scene a model perceived."""
    op = program.get("op")
    if op == "style":
        return scenes.restyle(scene, program["style"])
    if op == "add":
        return scenes.add_object(scene, program["obj"], tuple(program["cell"]))
    if op not in ("recolor", "remove", "move"):
        raise ValueError(f"program: unknown edit op {op!r}")
    obj = unique(scene, program["obj"])
    index = next(i for i, o in enumerate(scene["objects"]) if o is obj)
    if op == "recolor":
        return scenes.recolor(scene, index, program["color"])
    if op == "remove":
        return scenes.remove(scene, index)
    return scenes.move(scene, index, program["direction"])
