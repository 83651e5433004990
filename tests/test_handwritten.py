"""The hand-written evaluation set (course_utils.world.handwritten): big enough, balanced,
every answer recomputed from its scene, and every sentence saying what its program means.

The word check is one-sided where it has to be: a question may name an attribute only if
its program names it (no stray "red" in a question about a green circle, no "colour" in a
shape question), and a program's colours, shapes and sizes must all be said. Relation and
region words must be exactly the program's, and a two-operand question (relate, more,
fewer) names its first operand first.
"""

from __future__ import annotations

import collections
import copy
import json
import re

import numpy as np
import pytest

from course_utils.world import data, encoding, handwritten, programs, scenes

YES_NO_KINDS = ("exist", "relate", "compare")
COLOR_WORDS = {c: rf"{c}s?" for c in scenes.COLORS}
SHAPE_WORDS = {"circle": r"circles?", "square": r"squares?", "triangle": r"triangles?",
               "diamond": r"diamonds?", "cross": r"cross(?:es)?"}  # fmt: skip
SIZE_WORDS = {"small": r"small|tiny|little", "large": r"large|big|huge"}
RELATION_WORDS = {
    "left": r"left",
    "right": r"right",
    "above": r"above|over|on top of|higher",
    "below": r"below|under|underneath|beneath|lower",
}
REGION_WORDS = {"top": r"top|upper", "bottom": r"bottom|lower", "left": r"left", "right": r"right",
                "center": r"center|centre|middle|central"}  # fmt: skip
DESCRIPTION_KEYS = ("obj", "objs", "a", "b", "x", "y")
#: The keys of each op's program, exactly as questions.generate_question builds them.
PROGRAM_KEYS = {
    "query": {"family", "op", "attr", "obj"},
    "count": {"family", "op", "objs"},
    "exist": {"family", "op", "objs"},
    "query_at": {"family", "op", "attr", "pos"},
    "relate": {"family", "op", "a", "rel", "b"},
    "query_related": {"family", "op", "attr", "rel", "b"},
    "more": {"family", "op", "x", "y"},
    "fewer": {"family", "op", "x", "y"},
    "same": {"family", "op", "x", "y"},
}
OP_FAMILY = {"query": "attribute", "count": "count", "exist": "exist", "query_at": "spatial",
             "relate": "spatial", "query_related": "spatial", "more": "compare",
             "fewer": "compare", "same": "compare"}  # fmt: skip


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return handwritten.load_handwritten()


# ---- the word check ---------------------------------------------------------------------


def _said(patterns: dict, text: str) -> set[str]:
    return {name for name, pattern in patterns.items() if re.search(rf"\b(?:{pattern})\b", text)}


def _named(program: dict, attr: str) -> set[str]:
    return {program[k][attr] for k in DESCRIPTION_KEYS if k in program and attr in program[k]}


def _mentions(text: str) -> list[str]:
    """The attribute values a sentence names, in the order it names them."""
    found = [(m.start(), name) for patterns in (COLOR_WORDS, SHAPE_WORDS, SIZE_WORDS)
             for name, pattern in patterns.items() for m in re.finditer(rf"\b(?:{pattern})\b", text)]
    return [name for _, name in sorted(found)]


def _region_ok(said: set[str], pos: str) -> bool:
    want = set(pos.split())
    return said == want or (len(want) == 1 and want <= said <= want | {"center"})  # "top middle"


def _order_ok(text: str, program: dict) -> bool:
    first, second = ("a", "b") if program["op"] == "relate" else ("x", "y")
    one, two = set(program[first].values()), set(program[second].values())
    telling = [name for name in _mentions(text) if (name in one) != (name in two)]
    return not telling or telling[0] in one


def wording_problems(text: str, program: dict) -> list[str]:
    """Why a sentence does not say what its program means (empty: no reason found)."""
    text = text.lower()
    out = []
    for attr, patterns in (("color", COLOR_WORDS), ("shape", SHAPE_WORDS), ("size", SIZE_WORDS)):
        said, named = _said(patterns, text), _named(program, attr)
        if said != named:
            out.append(f"{attr} words {sorted(said)}, but the program names {sorted(named)}")
    asks_colour = bool(re.search(r"\bcolou?r", text))
    if program.get("attr") == "color" and not asks_colour:
        out.append("asks for a colour without saying colour")
    if program.get("attr") == "shape" and (asks_colour or "shape" not in text):
        out.append("asks for a shape without saying shape, or says colour")
    op = program["op"]
    if op in ("relate", "query_related") and _said(RELATION_WORDS, text) != {program["rel"]}:
        out.append(f"relation words {sorted(_said(RELATION_WORDS, text))} for {program['rel']!r}")
    if op == "query_at" and not _region_ok(_said(REGION_WORDS, text), program["pos"]):
        out.append(f"region words {sorted(_said(REGION_WORDS, text))} for {program['pos']!r}")
    if op in ("relate", "more", "fewer") and not _order_ok(text, program):
        out.append("names the second operand first")
    return out


def test_the_word_check_catches_what_it_should():
    def query(attr, **obj):
        return {"family": "attribute", "op": "query", "attr": attr, "obj": obj}

    relate = {"family": "spatial", "op": "relate", "a": {"color": "red", "shape": "circle"},
              "rel": "left", "b": {"color": "red", "shape": "cross"}}  # fmt: skip
    more = {"family": "compare", "op": "more", "x": {"shape": "circle"}, "y": {"shape": "cross"}}
    at = {"family": "spatial", "op": "query_at", "attr": "color", "pos": "top"}
    good = [
        ("the little diamond, what colour is it", query("color", size="small", shape="diamond")),
        ("is the red circle left of the red cross", relate),
        ("so is it more circles or more crosses... are there more circles?", more),
        ("colour of the top middle shape?", at),
    ]
    bad = [
        ("the diamond, what colour is it", query("color", size="small", shape="diamond")),  # size unsaid
        ("is it red or green, the circle?", query("color", shape="circle")),  # colour not in program
        ("what colour is the circle", query("shape", color="red")),  # wrong attribute
        ("is the red cross right of the red circle", relate),  # operands swapped
        ("is the red circle right of the red cross", relate),  # wrong relation
        ("are there more crosses than circles", more),  # operands swapped
        ("colour of the top left shape?", at),  # wrong region
        ("how many squares", {"family": "count", "op": "count", "objs": {"shape": "circle"}}),
    ]
    assert [t for t, p in good if wording_problems(t, p)] == []
    assert [t for t, p in bad if not wording_problems(t, p)] == []


def test_every_question_says_what_its_program_means(rows):
    problems = [f"{r['id']} {r['instruction']!r}: {'; '.join(p)}"
                for r in rows if (p := wording_problems(r["instruction"], r["program"]))]  # fmt: skip
    assert not problems, "\n".join(problems)


# ---- size, variety, balance -------------------------------------------------------------


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def test_at_least_300_questions_all_different(rows):
    assert len(rows) >= 300
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    texts = collections.Counter(_normalised(r["instruction"]) for r in rows)
    assert not [t for t, n in texts.items() if n > 1], "questions asked twice"


def test_the_questions_are_not_one_template_filled_many_times(rows):
    """With every attribute, relation and region word masked, almost every question still
    has its own wording (a templated set would collapse to a few dozen frames)."""
    content = {**COLOR_WORDS, **SHAPE_WORDS, **SIZE_WORDS, **RELATION_WORDS, **REGION_WORDS}
    mask = re.compile(r"\b(?:" + "|".join(content.values()) + r")\b")
    frames = collections.Counter(mask.sub("_", _normalised(r["instruction"])) for r in rows)
    assert len(frames) >= 0.9 * len(rows), frames.most_common(10)
    assert frames.most_common(1)[0][1] <= 6, frames.most_common(5)


def _kind(row: dict) -> str:
    return "relate" if row["program"]["op"] == "relate" else row["task"]


def test_every_family_is_there_with_at_least_40_questions(rows):
    counts = collections.Counter(r["task"] for r in rows)
    assert set(counts) == set(programs.FAMILIES)
    assert min(counts.values()) >= 40, counts
    ops = collections.Counter(r["program"]["op"] for r in rows)
    # exactly the question kinds the world trains on ("as many as", "nearest" and "where" are not)
    train_ops = {"query", "count", "exist", "query_at", "relate", "query_related", "more", "fewer"}
    assert set(ops) == train_ops, ops
    assert collections.Counter(r["program"]["attr"] for r in rows if "attr" in r["program"]).keys() \
        == {"color", "shape"}
    assert any(r["program"]["op"] == "count" and r["program"]["objs"] == {} for r in rows)


def test_yes_no_questions_are_balanced(rows):
    for kind in YES_NO_KINDS:
        answers = [r["answer"] for r in rows if _kind(r) == kind]
        assert set(answers) == {"yes", "no"}, kind
        rate = answers.count("yes") / len(answers)
        assert 0.4 <= rate <= 0.6, f"{kind}: {rate:.0%} yes"


# ---- answers and programs ---------------------------------------------------------------


def test_every_answer_is_the_solvers_and_in_the_vocabulary(rows):
    vocab = set(programs.answer_vocab())
    for row in rows:
        assert programs.answer(row["program"], row["scene"]) == row["answer"], row["id"]
        assert row["answer"] in vocab, row["id"]
        assert row["task"] == row["program"]["family"]
        assert set(row) == set(handwritten.ROW_KEYS)


def test_programs_have_the_generators_format(rows):
    world = programs.World()
    values = {"size": world.sizes, "color": world.colors, "shape": world.shapes}
    for row in rows:
        program, qid = row["program"], row["id"]
        assert set(program) == PROGRAM_KEYS[program["op"]], qid
        assert program["family"] == OP_FAMILY[program["op"]], qid
        assert program.get("attr", "color") in ("color", "shape"), qid
        assert program.get("rel", "left") in programs.RELATIONS, qid
        assert program.get("pos", "center") in programs.POSITIONS, qid
        for key in DESCRIPTION_KEYS:
            for attr, value in program.get(key, {}).items():
                assert value in values[attr], (qid, key, attr)
        named = [program[k] for k in DESCRIPTION_KEYS if k in program]
        held = set(world.heldout_pairs)  # the set tests language, not held-out pairs
        assert not [d for d in named if (d.get("color"), d.get("shape")) in held], qid


def test_the_scenes_are_scenes_of_the_world(rows):
    world = programs.World()
    for row in rows:
        scene = row["scene"]
        assert (scene["width"], scene["height"], scene["grid"]) == (world.image_size,) * 2 + (world.grid,)
        assert world.num_objects[0] <= len(scene["objects"]) <= world.num_objects[1]
        cells = {programs.region(o, scene) for o in scene["objects"]}
        assert len(cells) == len(scene["objects"]), f"{row['id']}: two objects share a cell"


def _raw_with(change) -> dict:
    raw = copy.deepcopy(handwritten.read_raw())
    change(raw["questions"][5])
    return raw


def test_a_wrong_stored_answer_is_refused_naming_the_question(monkeypatch):
    raw = _raw_with(lambda q: q.update(answer="purple" if q["answer"] != "purple" else "red"))
    monkeypatch.setattr(handwritten, "read_raw", lambda: raw)
    with pytest.raises(ValueError, match=raw["questions"][5]["id"]):
        handwritten.load_handwritten()


def test_an_ambiguous_program_is_refused_naming_the_question(monkeypatch):
    ambiguous = {"family": "attribute", "op": "query", "attr": "color", "obj": {}}
    raw = _raw_with(lambda q: q.update(program=ambiguous))
    monkeypatch.setattr(handwritten, "read_raw", lambda: raw)
    with pytest.raises(ValueError, match=raw["questions"][5]["id"]):
        handwritten.load_handwritten()


def test_rows_do_not_share_their_scenes(rows):
    fresh = handwritten.load_handwritten()
    fresh[0]["scene"]["objects"].clear()
    assert fresh[1]["scene"]["objects"] and rows[0]["scene"]["objects"]


# ---- the dataset -------------------------------------------------------------------------


def test_the_dataset_has_the_instruction_datasets_columns_and_images(rows):
    ds = handwritten.handwritten_dataset()
    reference = data.load_instruction_dataset(n_train=0, n_eval=1, splits="test", cache=False)["test"]
    assert ds.features == reference.features
    assert ds.column_names == reference.column_names
    assert len(ds) == len(rows)
    assert ds["instruction"] == [r["instruction"] for r in rows]
    assert ds["answer"] == [r["answer"] for r in rows]
    assert ds["task"] == [r["task"] for r in rows]
    assert [json.loads(s) for s in ds["scene"]] == [r["scene"] for r in rows]
    assert [json.loads(p) for p in ds["program"]] == [r["program"] for r in rows]
    images = encoding.images_to_array(ds)
    size = programs.World().image_size
    assert images.shape == (len(rows), size, size, 3)
    for i in (0, len(rows) // 2, len(rows) - 1):
        assert np.array_equal(images[i], np.asarray(scenes.render(rows[i]["scene"])))
