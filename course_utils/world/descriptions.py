"""Descriptions of scenes: captions, referring expressions and label checks.

Captions and referring expressions are the references of captioning and retrieval
(edits and their instructions are in :mod:`course_utils.world.edits`).
"""

from __future__ import annotations

import random
import re

from course_utils.world import scenes
from course_utils.world.phrasings import (
    NUMBER_WORDS,
    RELATION_WORDS,
    noun_phrase,
    plural_of,
    position_phrase,
    with_article,
)
from course_utils.world.programs import (
    POSITIONS,
    RELATIONS,
    World,
    description_of,
    region,
    related,
    select,
)


def position_name(obj: dict, scene: dict) -> str:
    """Where an object is, in words: "in the top left corner", "in the center", ...

    Used in chapter 07, "1. One space for images and captions"."""
    return position_phrase(region(obj, scene))


def _reading_order(scene: dict) -> list[dict]:
    return sorted(scene["objects"], key=lambda o: (o["y"], o["x"]))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_STYLE_SENTENCES = ("The shapes are drawn as outlines.", "The picture is in black and white.",
                    "The background is dark.")


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
        extra.append(_STYLE_SENTENCES[0])
    if style.get("grayscale"):
        extra.append(_STYLE_SENTENCES[1])
    if list(style.get("background", scenes.DEFAULT_STYLE["background"])) == scenes.STYLES["dark"]["background"]:
        extra.append(_STYLE_SENTENCES[2])
    return " ".join([head, *parts, *extra])


#: Chapter 10's three description forms, as the ``task`` of :func:`describe`'s examples.
DESCRIBE_FORMS: tuple[str, ...] = ("describe_brief", "describe_detailed", "describe_summary")


def summary(scene: dict) -> str:
    """A one-line summary: how many objects, of which shapes ("A picture of three objects:
    two circles and a square."), shapes in the order they first appear in reading order.

    Used in chapter 10, "1. Instructions that change the output"."""
    objs = _reading_order(scene)
    if not objs:
        return "An empty picture."
    counts: dict[str, int] = {}
    for o in objs:
        counts[o["shape"]] = counts.get(o["shape"], 0) + 1
    parts = [f"{NUMBER_WORDS[k]} {noun_phrase({'shape': s}, plural=k > 1)}" for s, k in counts.items()]
    n = len(objs)
    return f"A picture of {NUMBER_WORDS[n]} object{'s' if n > 1 else ''}: {_join(parts)}."


def describe(scene: dict, form: str) -> str:
    """The reference text of one of :data:`DESCRIBE_FORMS` for a scene.

    Used in chapter 10, "1. Instructions that change the output"."""
    if form == "describe_brief":
        return caption(scene)
    if form == "describe_detailed":
        return caption(scene, detailed=True)
    if form == "describe_summary":
        return summary(scene)
    raise ValueError(f"form must be one of {DESCRIBE_FORMS}, got {form!r}")


_WORD_NUMBER = {w: i for i, w in enumerate(NUMBER_WORDS)}
_PLACES = {position_phrase(p): p for p in POSITIONS}
_HEAD = re.compile(r"^There (?:is|are) (\w+) objects?\.?$")
_SUMMARY = re.compile(r"^A picture of (\w+) objects?: (.+?)\.?$")


def _noun(words: list[str]) -> dict | None:
    """``["small", "red", "circle"]`` -> an object description, or None if not one."""
    desc: dict = {}
    if words and words[0] in scenes.SIZES:
        desc["size"] = words.pop(0)
    if words and words[0] in scenes.COLORS:
        desc["color"] = words.pop(0)
    if len(words) != 1:
        return None
    shape = next((s for s in scenes.SHAPES if words[0] in (s, plural_of(s))), None)
    return None if shape is None else {**desc, "shape": shape}


def _items(text: str) -> list[str]:
    head, _, last = text.rpartition(" and ")
    return [*head.split(", "), last] if head else [text]


def _counted(item: str) -> tuple[int, dict] | None:
    """"two small red circles" -> (2, {...}); "a circle" -> (1, {...}); None if neither."""
    words = item.strip().split()
    if not words:
        return None
    first = words[0].lower()
    n = 1 if first in ("a", "an") else _WORD_NUMBER.get(first)
    desc = _noun(words[1:]) if n else None
    return None if desc is None else (n, desc)


def parse_description(text: str) -> dict:
    """Read a description back into the objects it states, with the world's grammar.

    Returns ``{"form", "objects", "count", "unparsed"}``: ``form`` is ``"detailed"``
    (starts "There is/are ..."), ``"summary"`` ("A picture of ...") or ``"brief"``;
    ``objects`` one dict per stated object (``size``/``color``/``shape``, and ``position``
    in a detailed description); ``count`` the number the text states (None if it states
    none); ``unparsed`` the pieces no rule of the grammar reads (a model's garble).

    Used in chapter 10, "6. Grounded metrics: every hallucination, counted"."""
    text = " ".join(text.split())
    out: dict = {"form": "brief", "objects": [], "count": None, "unparsed": []}
    m = _SUMMARY.match(text)
    if m:
        out["form"], out["count"] = "summary", _WORD_NUMBER.get(m.group(1))
        for item in _items(m.group(2)):
            got = _counted(item)
            if got is None or set(got[1]) != {"shape"}:
                out["unparsed"].append(item)
            else:
                out["objects"] += [dict(got[1]) for _ in range(got[0])]
        return out
    sentences = [x.strip() for x in re.split(r"(?<=\.)\s+", text) if x.strip()]
    if sentences and _HEAD.match(sentences[0]):
        out["form"], out["count"] = "detailed", _WORD_NUMBER.get(_HEAD.match(sentences[0]).group(1))
        for sent in sentences[1:]:
            subject, sep, place = sent.rstrip(".").partition(" is ")
            got = _counted(subject) if sep else None
            if got is not None and got[0] == 1 and place in _PLACES:
                out["objects"].append({**got[1], "position": _PLACES[place]})
            elif sent not in _STYLE_SENTENCES:
                out["unparsed"].append(sent)
        return out
    for item in _items(text.rstrip(".")):
        got = _counted(item)
        if got is None:
            out["unparsed"].append(item)
        else:
            out["objects"] += [dict(got[1]) for _ in range(got[0])]
    return out


def scene_objects(scene: dict, form: str = "detailed") -> list[dict]:
    """The objects a perfect description of ``form`` states (the truth to compare with).

    Used in chapter 10, "6. Grounded metrics: every hallucination, counted"."""
    keys = {"detailed": ("size", "color", "shape"), "brief": ("size", "color", "shape"),
            "summary": ("shape",)}[form]  # fmt: skip
    out = []
    for o in _reading_order(scene):
        d = {k: o[k] for k in keys}
        if form == "detailed":
            d["position"] = region(o, scene)
        out.append(d)
    return out


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

