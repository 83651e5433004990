"""A fixed evaluation set of questions written by hand, the way people actually type them.

The generated splits phrase every question with the world's own templates, so even the
held-out phrasings share their vocabulary and their frames with training. This set does
not: a person looked at 70 fixed scenes and typed a few questions about each ("any yellow
triangles in there?", "count the red stuff for me", "so is it more diamonds or more
crosses... are there more diamonds?"): casual and polite frames, questions and commands,
synonyms (thing / piece / figure, pic / photo, tiny / big), lower case, missing question
marks and the odd typo in a word the meaning does not hang on. Each question was then
given the program that means exactly what it asks, in the format of
:func:`~course_utils.world.questions.generate_question`.

The set is data, not a generator: ``handwritten_questions.json`` (next to this module)
stores every scene's full annotation, each question, its program and its answer, so it
never changes when the generator does. :func:`load_handwritten` recomputes every answer
from the annotation with the world's solver (:func:`~course_utils.world.programs.answer`)
and refuses the file if one differs; :func:`handwritten_dataset` gives the same rows with
the columns of :func:`~course_utils.world.data.load_instruction_dataset`, images rendered
from the scenes. Chapter 09 uses it to measure how far a model trained on templated
questions carries over to human ones.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files

from course_utils.world.programs import FAMILIES, AmbiguityError, answer, answer_vocab

#: The data file, shipped inside the package next to this module.
FILENAME = "handwritten_questions.json"
#: The columns of a row of :func:`load_handwritten`.
ROW_KEYS: tuple[str, ...] = ("id", "scene", "instruction", "program", "answer", "task")


def read_raw() -> dict:
    """The data file as stored: ``{"about", "scenes": [{"id", "scene"}], "questions": [...]}``.

    Each question is ``{"id", "scene" (a scene id), "instruction", "program", "answer"}``.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    return json.loads(files(__package__).joinpath(FILENAME).read_text(encoding="utf-8"))


def _checked_answer(question: dict, scene: dict, vocab: set[str]) -> str:
    """The solver's answer to ``question`` on ``scene``; ``ValueError`` naming the question
    when the description is ambiguous, the answer differs from the stored one, or the
    answer is not one the models can give."""
    qid = question["id"]
    try:
        got = answer(question["program"], scene)
    except AmbiguityError as err:
        raise ValueError(f"handwritten question {qid}: the program has no single answer ({err})") from err
    if got != question["answer"]:
        raise ValueError(f"handwritten question {qid}: stored answer {question['answer']!r}, "
                         f"but the scene's annotation gives {got!r}")  # fmt: skip
    if got not in vocab:
        raise ValueError(f"handwritten question {qid}: answer {got!r} is not in answer_vocab()")
    return got


def load_handwritten() -> list[dict]:
    """The hand-written questions: one dict per question, in the file's order.

    Each row is ``{"id", "scene", "instruction", "program", "answer", "task"}``: ``scene`` is
    the full annotation (its own copy), ``program`` the question's program, ``task`` its
    family. Every answer is recomputed with :func:`~course_utils.world.programs.answer`;
    a stored answer that differs (or a program with no single answer) raises
    ``ValueError`` naming the question's id.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)".
    """
    raw = read_raw()
    scenes = {entry["id"]: entry["scene"] for entry in raw["scenes"]}
    vocab = set(answer_vocab())
    rows = []
    for question in raw["questions"]:
        qid = question["id"]
        if question["scene"] not in scenes:
            raise ValueError(f"handwritten question {qid}: unknown scene {question['scene']!r}")
        scene = copy.deepcopy(scenes[question["scene"]])
        task = question["program"].get("family")
        if task not in FAMILIES:
            raise ValueError(f"handwritten question {qid}: unknown family {task!r}")
        rows.append({
            "id": qid,
            "scene": scene,
            "instruction": question["instruction"],
            "program": copy.deepcopy(question["program"]),
            "answer": _checked_answer(question, scene, vocab),
            "task": task,
        })  # fmt: skip
    return rows


def handwritten_dataset():
    """The hand-written questions as a ``datasets.Dataset`` with the columns and features of
    :func:`~course_utils.world.data.load_instruction_dataset`'s splits: ``image`` (rendered
    from the scene), ``instruction``, ``answer``, ``task``, ``scene`` and ``program`` (JSON
    strings), so every evaluation helper of a split works on it unchanged.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)".
    """
    import datasets

    from course_utils.world.data import dataset_columns, dataset_features

    return datasets.Dataset.from_dict(dataset_columns("vqa", load_handwritten()), features=dataset_features("vqa"))
