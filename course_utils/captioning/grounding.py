"""Grounded metrics: a description read back into objects and compared with the annotation.

N-gram metrics ask whether a text *sounds like* its references; here every stated object
is checked against the scene. The world's grammar reads a description back
(:func:`course_utils.world.descriptions.parse_description`), and the stated objects are
matched with the true ones (:func:`~course_utils.world.descriptions.scene_objects`) as
multisets of attribute tuples:

=========  =====================================  ========================================
form       an object is                           e.g.
=========  =====================================  ========================================
brief      ``(size, color, shape)``               "A small red circle and a blue square."
detailed   ``(size, color, shape, position)``     "... A small red circle is on the left."
summary    ``(shape,)``                           "A picture of two objects: a circle ..."
=========  =====================================  ========================================

Objects are matched at the detail of the form the text is *in* (its parsed form): a brief
caption where a detailed description was asked states no positions, and that is a failure
to follow the instruction (``form_followed``, ``exact``), not a list of hallucinations.
An attribute the text leaves out is ``None`` in its tuple, so the object matches nothing.
"""

from __future__ import annotations

import json
from collections import Counter

from course_utils.world import descriptions

#: The attributes of an object in each form, in the order of the matched tuples.
FORM_KEYS: dict[str, tuple[str, ...]] = {
    "brief": ("size", "color", "shape"),
    "detailed": ("size", "color", "shape", "position"),
    "summary": ("shape",),
}
#: What every form says of a scene with no objects.
_EMPTY_TEXT = descriptions.summary({"objects": []})


def _form(form: str) -> str:
    """``"describe_brief"`` or ``"brief"`` -> ``"brief"``; anything else is a ValueError."""
    short = form.removeprefix("describe_") if isinstance(form, str) else None
    if short not in FORM_KEYS:
        raise ValueError(f"form must be one of {sorted(FORM_KEYS)} or "
                         f"{list(descriptions.DESCRIBE_FORMS)}, got {form!r}")
    return short


def _scene(scene, where: str = "scene") -> dict:
    """A scene dict, from a dict or its JSON string."""
    if isinstance(scene, str):
        try:
            scene = json.loads(scene)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is a string but not JSON: {exc}") from None
    if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list):
        raise ValueError(f"{where} must be a scene dict (or its JSON) with a list of 'objects'")
    return scene


def _parse(text: str, asked: str) -> dict:
    if " ".join(text.split()) == _EMPTY_TEXT:  # every form's text for an empty picture
        return {"form": asked, "objects": [], "count": None if asked == "brief" else 0,
                "unparsed": []}
    return descriptions.parse_description(text)


def _binding_errors(hallucinated: Counter, scene: dict) -> int:
    """Hallucinated objects whose colour and shape are both in the scene, never together."""
    objs = scene["objects"]
    colors, shapes = {o["color"] for o in objs}, {o["shape"] for o in objs}
    pairs = {(o["color"], o["shape"]) for o in objs}
    return sum(n for (_, color, shape, *_), n in hallucinated.items()
               if color in colors and shape in shapes and (color, shape) not in pairs)  # fmt: skip


def _position_errors(hallucinated: Counter, missed: Counter) -> int:
    """Hallucinated objects that match a missed true object on everything but the position."""
    def what(objects: Counter) -> Counter:  # (size, color, shape), the position dropped
        return Counter(key[:3] for key in objects.elements())

    return sum((what(hallucinated) & what(missed)).values())


def ground(text: str, scene: dict, form: str) -> dict:
    """Check one description against its scene; the counts that grounded metrics pool.

    ``form`` is the form that was asked (``"brief"``, ``"detailed"``, ``"summary"``, or
    ``"describe_brief"`` ...). Returns:

    * ``tp``, ``stated``, ``true``: matched objects, stated objects, true objects;
    * ``hallucinated``: stated objects left over after multiset matching (two "red
      circles" where the scene has one is one hallucination);
    * ``binding_errors``: hallucinated objects whose colour and shape each occur in the
      scene, never on one object (the right colour on the wrong shape);
    * ``position_errors`` (detailed): hallucinated objects that are a missed true object
      put in the wrong place;
    * ``count_error``: the number the text states ("There are three objects") is not the
      number of objects (False when the form states no number);
    * ``exact``: the asked form, nothing unparsed, the stated objects exactly the true
      ones, and the count right if stated;
    * ``form_followed``: the text is in the asked form; ``unparsed``: how many pieces the
      grammar could not read.

    Used in chapter 10, "6. Grounded metrics: every hallucination, counted"."""
    asked = _form(form)
    scene = _scene(scene)
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    parsed = _parse(text, asked)
    keys = FORM_KEYS[parsed["form"]]
    stated = Counter(tuple(o.get(k) for k in keys) for o in parsed["objects"])
    truth = descriptions.scene_objects(scene, parsed["form"])
    true = Counter(tuple(o[k] for k in keys) for o in truth)
    hallucinated, missed = stated - true, true - stated
    # an unreadable number word ("There are many objects") is a wrong count too
    count_error = parsed["form"] != "brief" and parsed["count"] != len(scene["objects"])
    detailed = parsed["form"] == "detailed"
    return {
        "tp": sum((stated & true).values()),
        "stated": sum(stated.values()),
        "true": sum(true.values()),
        "hallucinated": sum(hallucinated.values()),
        "binding_errors": _binding_errors(hallucinated, scene) if len(keys) >= 3 else 0,
        "position_errors": _position_errors(hallucinated, missed) if detailed else 0,
        "count_error": count_error,
        "exact": (parsed["form"] == asked and not parsed["unparsed"] and stated == true
                  and not count_error),
        "form_followed": parsed["form"] == asked,
        "unparsed": len(parsed["unparsed"]),
    }


def chair(stated: list[list[tuple]], true: list[list[tuple]]) -> dict:
    """CHAIR from objects already read out: ``{"chair_i", "chair_s"}`` of a corpus.

    ``stated[i]`` and ``true[i]`` are description ``i``'s stated and true objects as
    attribute tuples. A stated object is hallucinated when it is left over after matching
    the stated multiset against the true one (two identical mentions where the scene has
    one such object: one hallucination). ``chair_i``: hallucinated over all stated objects
    (0 when nothing is stated); ``chair_s``: the fraction of descriptions with at least one
    hallucination. :func:`grounded_metrics` gives the same numbers from texts and scenes.

    Used in chapter 10, "Exercise 2 — CHAIR from parsed objects (★★☆, ~10 min,
    2 points)"."""
    stated, true = _as_list(stated, "stated"), _as_list(true, "true")
    if len(stated) != len(true):
        raise ValueError(f"stated and true must have one entry per description; got "
                         f"{len(stated)} stated, {len(true)} true")
    if not stated:
        raise ValueError("stated is empty: there are no descriptions to score")
    left = [Counter(map(tuple, s)) - Counter(map(tuple, t)) for s, t in zip(stated, true)]
    hallucinated = [sum(c.values()) for c in left]
    mentions = sum(len(s) for s in stated)
    return {"chair_i": sum(hallucinated) / mentions if mentions else 0.0,
            "chair_s": sum(h > 0 for h in hallucinated) / len(stated)}


def _as_list(value, name: str) -> list:
    """A list of a column (a list, tuple, a dataset's column ...); a string or dict is not one."""
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def _corpus(texts, scenes, forms) -> tuple[list, list, list]:
    lists = {"texts": _as_list(texts, "texts"), "scenes": _as_list(scenes, "scenes")}
    if not isinstance(forms, str):
        lists["forms"] = _as_list(forms, "forms")
    lengths = {name: len(value) for name, value in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("texts, scenes and forms must have one entry per description; got "
                         + ", ".join(f"{len_} {name}" for name, len_ in lengths.items()))
    texts = lists["texts"]
    if not texts:
        raise ValueError("texts is empty: there is nothing to score")
    forms = lists.get("forms", [forms] * len(texts))
    scenes = [_scene(s, f"scenes[{i}]") for i, s in enumerate(lists["scenes"])]
    return texts, scenes, forms


def grounded_metrics(texts: list[str], scenes: list, forms: list[str] | str) -> dict:
    """Grounded metrics of a corpus of descriptions (scenes as dicts or JSON strings; one
    form per text, or one for all).

    ``precision``, ``recall``, ``f1``: object-level, micro-averaged (matched, stated and
    true objects pooled over the corpus). ``chair_i``: hallucinated object mentions over
    all object mentions; ``chair_s``: the fraction of descriptions with at least one
    hallucinated object (CHAIR, Rohrbach et al. 2018, "Object Hallucination in Image
    Captioning"). ``binding_errors``, ``position_errors``: per description.
    ``count_errors``: the fraction of descriptions whose stated count is wrong. ``exact``:
    the fraction that recover the scene exactly; ``form_followed``: the fraction in the
    asked form. A ratio whose denominator is 0 is 0.

    Used in chapter 10, "6. Grounded metrics: every hallucination, counted"."""
    texts, scenes, forms = _corpus(texts, scenes, forms)
    rows = [ground(t, s, f) for t, s, f in zip(texts, scenes, forms)]
    total = {k: sum(r[k] for r in rows) for k in rows[0]}
    n = len(rows)
    precision = total["tp"] / total["stated"] if total["stated"] else 0.0
    recall = total["tp"] / total["true"] if total["true"] else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "chair_i": total["hallucinated"] / total["stated"] if total["stated"] else 0.0,
        "chair_s": sum(r["hallucinated"] > 0 for r in rows) / n,
        "binding_errors": total["binding_errors"] / n,
        "position_errors": total["position_errors"] / n,
        "count_errors": total["count_error"] / n,
        "exact": total["exact"] / n,
        "form_followed": total["form_followed"] / n,
        "n": n,
    }
