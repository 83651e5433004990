"""The raw examples of one split: scenes, instructions, answers, before they become a dataset.

Example ``i`` of a split depends only on ``(kind, seed, split, i)``; the split decides
whether held-out colour-shape pairs, a held-out layer of the language or the shifted
rendering are used (chapter 06, "4. Splits that make evaluation honest").
"""

from __future__ import annotations

import json
import random

from course_utils.world import scenes
from course_utils.world.descriptions import (
    DESCRIBE_FORMS,
    caption,
    describe,
    referring_expression,
)
from course_utils.world.edits import generate_edit, generate_editing
from course_utils.world.phrasings import fill_template
from course_utils.world.programs import World
from course_utils.world.questions import generate_question, random_scene

#: The language each split's questions are said in (the grammar's held-out layers).
SPLIT_LANGUAGE: dict[str, str] = {
    "test_paraphrase": "templates",
    "test_frames": "frames",
    "test_synonyms": "synonyms",
}


def _split_mode(split: str) -> dict:
    return {
        "novel": split == "test_compositional",
        "language": SPLIT_LANGUAGE.get(split, "train"),
        "shift": split == "test_shift",
    }


def _shift(scene: dict, rng: random.Random) -> dict:
    scene["style"] = {**scene["style"], **scenes.SHIFT_STYLE, "noise_seed": rng.getrandbits(32)}
    return scene


def scene_key(scene: dict, instruction: str) -> str:
    """What makes two examples the same: the objects and the instruction (styles aside).

    Used in chapter 06, "4. Splits that make evaluation honest"."""
    objs = sorted((o["x"], o["y"], o["shape"], o["color"], o["size"]) for o in scene["objects"])
    return json.dumps([objs, instruction])


def generate_examples(kind: str, split: str, n: int, seed: int, world: World, avoid=None):
    """Yield ``n`` raw examples (dicts with ``scene``, ``instruction``, ...) of one split.

    Example ``i`` depends only on ``(kind, seed, split, i)``, so any subset can be
    regenerated. ``avoid`` is a set of keys (scene + instruction) that must not repeat,
    e.g. the training set's when generating the test splits.

    Used in chapter 06, "4. Splits that make evaluation honest".
    """
    mode = _split_mode(split)
    fams = world.families
    order = [fams[i % len(fams)] for i in range(n)]
    shuffler = random.Random(f"{kind}:{seed}:{split}:order")
    shuffler.shuffle(order)  # balanced families
    # balanced yes/no answers within each family: alternate, then shuffle per family
    yes = {f: [k % 2 == 0 for k in range(order.count(f))] for f in fams}
    for f in fams:
        shuffler.shuffle(yes[f])
    for i in range(n):
        plan = {"yes": yes[order[i]].pop()}
        for attempt in range(20):
            rng = random.Random(f"{kind}:{seed}:{split}:{i}:{attempt}")
            ex = _one(kind, rng, order[i], world, mode, plan)
            if mode["shift"]:
                _shift(ex["scene"], rng)
                if "target_scene" in ex:
                    ex["target_scene"]["style"] = {
                        **ex["target_scene"]["style"],
                        **{k: ex["scene"]["style"][k] for k in ("noise", "noise_seed", "scale")},
                    }
                    if ex["program"].get("op") != "style":
                        ex["target_scene"]["style"]["background"] = ex["scene"]["style"]["background"]
            if avoid is None or scene_key(ex["scene"], ex["instruction"]) not in avoid:
                break
        yield ex


def _one(kind: str, rng: random.Random, family: str, world: World, mode: dict, plan=None) -> dict:
    novel, language = mode["novel"], mode["language"]
    heldout = language != "train"  # captions, queries and edits have one held-out layer
    if kind == "vqa":
        ex = generate_question(rng, family, world, novel=novel, language=language, plan=plan)
        ex["task"] = ex["program"]["family"]
        return ex
    if kind in ("edit", "editing"):  # chapter 01's edits, or chapter 12's (adding, cartoons)
        ex = (generate_edit if kind == "edit" else generate_editing)(rng, world, novel=novel, heldout=heldout)
        ex["task"] = ex["program"]["op"]
        ex["answer"] = caption(ex["target_scene"])
        return ex
    # captions and retrieval describe a random scene of the split's distribution
    scene = random_scene(rng, world, novel)
    if kind == "caption":
        detailed = rng.random() < 0.5
        task = "caption_detailed" if detailed else "caption_short"
        text = fill_template(rng, task, heldout)
        program = {"op": "caption", "detailed": detailed}
        return {"scene": scene, "program": program, "instruction": text,
                "answer": caption(scene, detailed), "task": task}  # fmt: skip
    if kind == "describe":  # chapter 10: one of three forms, as the instruction asks
        form = rng.choice(DESCRIBE_FORMS)
        text = fill_template(rng, form, heldout)
        return {"scene": scene, "program": {"op": "describe", "form": form}, "instruction": text,
                "answer": describe(scene, form), "task": form}  # fmt: skip
    program, ref = referring_expression(rng, scene, world)
    text = fill_template(rng, "retrieval", heldout, ref=ref)
    return {"scene": scene, "program": program, "instruction": text, "answer": ref, "task": "retrieval"}
