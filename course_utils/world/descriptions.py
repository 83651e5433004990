"""Descriptions of scenes: captions, referring expressions, edit instructions, label checks.

Captions and referring expressions are the references of captioning and retrieval;
edits pair a scene with its edited target (chapter 01, "7. Three applications, previewed").
"""

from __future__ import annotations

import random

from course_utils.world import scenes
from course_utils.world.phrasings import (
    MOVE_WORDS,
    NUMBER_WORDS,
    RELATION_WORDS,
    fill_template,
    noun_phrase,
    position_phrase,
    with_article,
)
from course_utils.world.programs import (
    RELATIONS,
    Retry,
    World,
    description_of,
    region,
    related,
    select,
    unique,
)
from course_utils.world.questions import SceneBuilder, named_pair_ok


def position_name(obj: dict, scene: dict) -> str:
    """Where an object is, in words: "in the top left corner", "in the center", ...

    Used in chapter 07, "1. One space for images and captions"."""
    return position_phrase(region(obj, scene))


def _reading_order(scene: dict) -> list[dict]:
    return sorted(scene["objects"], key=lambda o: (o["y"], o["x"]))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(scene: dict, detailed: bool = False) -> str:
    """A short caption (every object, reading order) or a detailed one (with positions).

    Used in chapter 07, "1. One space for images and captions"."""
    objs = _reading_order(scene)
    if not objs:
        return "An empty picture."
    full = [with_article(noun_phrase(description_of(o, ("size", "color", "shape")))) for o in objs]
    if not detailed:  # identical objects are grouped: "two small red circles"
        groups: dict[tuple, int] = {}
        for o in objs:
            key = (o["size"], o["color"], o["shape"])
            groups[key] = groups.get(key, 0) + 1
        parts = [
            with_article(noun_phrase(dict(zip(("size", "color", "shape"), k))))
            if n == 1
            else f"{NUMBER_WORDS[n]} {noun_phrase(dict(zip(('size', 'color', 'shape'), k)), plural=True)}"
            for k, n in groups.items()
        ]
        text = _join(parts) + "."
        return text[0].upper() + text[1:]
    n = len(objs)
    head = f"There {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} object{'s' if n > 1 else ''}."
    parts = [f"{f[0].upper() + f[1:]} is {position_name(o, scene)}." for f, o in zip(full, objs)]
    style = scene.get("style", {})
    extra = []
    if style.get("outline"):
        extra.append("The shapes are drawn as outlines.")
    if style.get("grayscale"):
        extra.append("The picture is in black and white.")
    if list(style.get("background", scenes.DEFAULT_STYLE["background"])) == scenes.STYLES["dark"]["background"]:
        extra.append("The background is dark.")
    return " ".join([head, *parts, *extra])


def refers_to(program: dict, scene: dict) -> bool:
    """True when a referring expression (``op == "refer"``) is true of the scene.

    Serves chapter 01, "7. Three applications, previewed" (retrieval)."""
    for a in select(scene, program["a"]):
        if program.get("rel") is None:
            return True
        for b in select(scene, program["b"]):
            if b is not a and related(a, program["rel"], b):
                return True
    return False


def referring_expression(rng: random.Random, scene: dict, world: World) -> tuple[dict, str]:
    """A true, specific expression for retrieval: "a small red circle above a square".

    Serves chapter 01, "7. Three applications, previewed" (retrieval)."""
    objs = scene["objects"]
    a = rng.choice(objs)
    da = description_of(a, ("size", "color", "shape") if rng.random() < 0.5 else ("color", "shape"))
    partners = [o for o in objs if o is not a]
    if partners and rng.random() < 0.7:
        bo = rng.choice(partners)
        options = [r for r in RELATIONS if related(a, r, bo)]
        rel = rng.choice(options)
        db = description_of(bo, ("color", "shape") if rng.random() < 0.5 else ("shape",))
        words = rng.choice(RELATION_WORDS[rel])
        text = f"{with_article(noun_phrase(da))} {words} {with_article(noun_phrase(db))}"
        return {"op": "refer", "a": da, "rel": rel, "b": db}, text
    return {"op": "refer", "a": da, "rel": None, "b": None}, with_article(noun_phrase(da))


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


EDIT_OPS: tuple[str, ...] = ("recolor", "remove", "move", "style")


def generate_edit(
    rng: random.Random, world: World, novel: bool = False, heldout: bool = False
) -> dict:
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
            style = rng.choice([s for s in scenes.STYLES if s != "plain"])
            program = {"op": "style", "style": style}
            text = fill_template(rng, f"style_{style}", heldout)
            return {"scene": scene, "target_scene": scenes.restyle(scene, style),
                    "program": program, "instruction": text}  # fmt: skip
        index = rng.randrange(len(scene["objects"]))
        descs = unique_descriptions(scene, index)
        descs = [d for d in descs if named_pair_ok(d, world, novel)]
        if not descs:
            continue
        desc = rng.choice(descs)
        obj = scene["objects"][index]
        if op == "recolor":
            allowed = {c for c, s in b.pairs(None) if s == obj["shape"] and c != obj["color"]}
            if not allowed:
                continue
            color = rng.choice(sorted(allowed))
            target = scenes.recolor(scene, index, color)
            program = {"op": "recolor", "obj": desc, "color": color}
            text = fill_template(rng, "recolor", heldout, obj=noun_phrase(desc), color=color)
        elif op == "remove":
            if len(scene["objects"]) < 2:
                continue
            target = scenes.remove(scene, index)
            program = {"op": "remove", "obj": desc}
            text = fill_template(rng, "remove", heldout, obj=noun_phrase(desc))
        else:
            dirs = [d for d in scenes.DIRECTIONS if scenes.can_move(scene, index, d)]
            if not dirs:
                continue
            direction = rng.choice(dirs)
            target = scenes.move(scene, index, direction)
            program = {"op": "move", "obj": desc, "direction": direction}
            words = rng.choice(MOVE_WORDS[direction])
            text = fill_template(rng, "move", heldout, obj=noun_phrase(desc), dir=words)
        return {"scene": scene, "target_scene": target, "program": program, "instruction": text}
    raise RuntimeError("could not build an edit example")  # pragma: no cover


def apply_edit(program: dict, scene: dict) -> dict:
    """Execute an edit program on a scene (the reference for edit models).

    Serves chapter 01, "7. Three applications, previewed" (editing)."""
    op = program["op"]
    if op == "style":
        return scenes.restyle(scene, program["style"])
    obj = unique(scene, program["obj"])
    index = next(i for i, o in enumerate(scene["objects"]) if o is obj)
    if op == "recolor":
        return scenes.recolor(scene, index, program["color"])
    if op == "remove":
        return scenes.remove(scene, index)
    if op == "move":
        return scenes.move(scene, index, program["direction"])
    raise ValueError(f"program: unknown edit op {op!r}")
