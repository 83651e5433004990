"""Checkers for chapter 06 (data: building an instruction dataset).

Each compares the student's answer with the reference on seeded inputs from the
course's world and says what is wrong without printing the reference values.
"""

from __future__ import annotations

import random

from course_utils.checks.core import call_student, checker, expect_shape, expect_type
from course_utils.world import augment, phrasings, programs, questions, scenes


def _seeded(family: str, n: int, seed: int = 6, **world_kw) -> list[dict]:
    world = programs.World(**world_kw)
    return [
        questions.generate_question(random.Random(f"ch06:{family}:{seed}:{i}"), family, world)
        for i in range(n)
    ]


@checker(
    "Exercise 1: an independent answer function for counting questions",
    hints=(
        "A counting program describes the objects to count in program['objs']: go through "
        "scene['objects'] and count the ones that fit that description.",
        "An object matches when it has every key/value pair of program['objs'] (all(...) over "
        "its items); the empty description {} matches every object. Return the count as a "
        "string, like the dataset's answers.",
        'Reread chapter 06, "2. Questions with exactly one answer", where programs.answer '
        "evaluates such programs.",
    ),
)
def check_count_answer(fn):
    """Check Exercise 1: an answer function for counting programs, against the world's answers.

    Used in chapter 06, "Exercise 1 — An independent answer for counting questions (★☆☆, ~10 min, 1 point)"."""
    cases = _seeded("count", 150)
    # edge cases: a scene where nothing matches, and the total count ({} matches all)
    scene = scenes.make_scene(
        [{"shape": "circle", "color": "red", "size": "small"},
         {"shape": "square", "color": "blue", "size": "large"}],
        [(0, 0), (2, 2)],
    )  # fmt: skip
    extra = [
        {"program": {"family": "count", "op": "count", "objs": {"color": "green"}}, "scene": scene},
        {"program": {"family": "count", "op": "count", "objs": {}}, "scene": scene},
        {"program": {"family": "count", "op": "count", "objs": {"size": "large", "shape": "square"}},
         "scene": scene},
    ]  # fmt: skip
    for k, ex in enumerate(extra + cases):
        import copy

        program, sc = copy.deepcopy(ex["program"]), copy.deepcopy(ex["scene"])
        got = call_student(fn, program, sc)
        expect_type(got, str, "the answer")
        if got != programs.answer(ex["program"], ex["scene"]):
            which = "hand-made edge case" if k < len(extra) else "seeded scene"
            num = k if k < len(extra) else k - len(extra)
            raise AssertionError(
                f"on {which} {num} your answer was wrong for a 'count' question "
                f"(description {phrasings.noun_phrase(ex['program']['objs'], plural=True)!r})"
            )


@checker(
    "Exercise 2: padding a batch and building its attention mask",
    hints=(
        "Every row must get the length of the longest sequence: pad on the right, and record "
        "which positions hold real tokens.",
        "Build both tensors from the lengths: each sequence followed by (L - its length) "
        "copies of pad_id, and a mask row of as many 1s as the sequence has tokens, then 0s. "
        "Don't find the padding by comparing ids with pad_id: a real token may have the same id.",
        'Reread chapter 06, "6. Text: tokenization, padding and attention masks".',
    ),
)
def check_pad_batch(fn):
    """Check Exercise 2: ``(input_ids, attention_mask)`` of right-padded sequences.

    Used in chapter 06, "Exercise 2 — Pad a batch and build its attention mask (★☆☆, ~10 min, 1 point)"."""
    import torch

    cases = {
        "three sequences of different lengths": ([[2, 15, 9, 3], [2, 7, 3], [2, 3]], 0),
        "no padding needed": ([[2, 5, 3], [2, 6, 3]], 0),
        "a single sequence": ([[2, 11, 12, 13, 3]], 0),
        "pad id 7": ([[2, 5, 3], [2, 5, 6, 8, 3]], 7),
        "a real token equal to the pad id": ([[2, 0, 3], [2, 3]], 0),
    }
    for case, (seqs, pad) in cases.items():
        out = call_student(fn, [list(s) for s in seqs], pad)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise AssertionError(f"on case '{case}' return a pair (input_ids, attention_mask)")
        ids, mask = out
        expect_type(ids, torch.Tensor, f"input_ids on case '{case}'")
        expect_type(mask, torch.Tensor, f"attention_mask on case '{case}'")
        L = max(len(s) for s in seqs)
        expect_shape(ids, (len(seqs), L), f"input_ids on case '{case}'")
        expect_shape(mask, (len(seqs), L), f"attention_mask on case '{case}'")
        want_ids = torch.tensor([s + [pad] * (L - len(s)) for s in seqs])
        want_mask = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in seqs])
        if not torch.equal(ids.long(), want_ids):
            raise AssertionError(f"on case '{case}' input_ids are not the right-padded sequences")
        m = mask.long()
        if ((m == 1) & (want_mask == 0)).any():
            raise AssertionError(f"on case '{case}' padded positions are marked as real tokens")
        if ((m == 0) & (want_mask == 1)).any():
            raise AssertionError(f"on case '{case}' real tokens are marked as padding")
        if not torch.equal(m, want_mask):
            raise AssertionError(f"on case '{case}' the mask must contain only 0 and 1")


def label_preserving(n_per_family: int = 60, seed: int = 0) -> set[str]:
    """The augmentations that change no label on a seeded sample of every family.

    Used in chapter 06, "Exercise 3 — Pick the label-preserving augmentations (★☆☆, ~5 min, 1 point)"."""
    world = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))
    examples = [
        questions.generate_question(random.Random(f"ch06:aug:{seed}:{f}:{i}"), f, world)
        for f in programs.FAMILIES
        for i in range(n_per_family)
    ]
    keep = set()
    for name in augment.AUGMENTATIONS:
        if not any(augment.label_breakage(examples, name, seed).values()):
            keep.add(name)
    return keep


@checker(
    "Exercise 3: which augmentations preserve every label?",
    hints=(
        "An augmentation preserves the labels only if it changes no answer in any question "
        "family, not just in most of them.",
        "Read the breakage heatmap: keep the augmentations whose row is 0 in every column. "
        "Give the names as a set of strings from augment.AUGMENTATIONS.",
        'Reread chapter 06, "9. Which augmentations preserve labels? (seed 9.2)" and its '
        "heatmap.",
    ),
)
def check_label_preserving(answer):
    """Check Exercise 3: the set of augmentations that change no label.

    Used in chapter 06, "Exercise 3 — Pick the label-preserving augmentations (★☆☆, ~5 min, 1 point)"."""
    if isinstance(answer, str):
        raise AssertionError("give a set of augmentation names, not a single string")
    expect_type(answer, set | frozenset | list | tuple, "your answer")
    names = set(answer)
    unknown = names - set(augment.AUGMENTATIONS)
    if unknown:
        raise AssertionError(f"unknown augmentation name(s) {sorted(unknown)}; see augment.AUGMENTATIONS")
    truth = label_preserving()
    wrong_in = len(names - truth)
    missing = len(truth - names)
    if wrong_in or missing:
        parts = []
        if wrong_in:
            parts.append(f"{wrong_in} of your choices change{'s' if wrong_in == 1 else ''} some labels")
        if missing:
            parts.append(f"{missing} label-preserving augmentation{'s are' if missing > 1 else ' is'} missing")
        raise AssertionError("; ".join(parts))


@checker(
    "Exercise 4: make the horizontal flip label-preserving",
    hints=(
        "A mirror image swaps left and right: every whole word 'left' becomes 'right' and "
        "vice versa, in the instruction AND in the answer (answers like 'top left' move too).",
        "Swap both words in one pass: a regular expression that matches either word between "
        "word boundaries (\\b), with a replacement function that looks the matched word up in "
        "a small dict. Replacing 'left' by 'right' and then 'right' by 'left' undoes your "
        "first step, and str.replace also changes 'leftover' and 'brightness'.",
        'Reread chapter 06, "9. Which augmentations preserve labels? (seed 9.2)", on why a '
        "flip breaks the spatial answers.",
    ),
)
def check_flip_example(fn):
    """Check Exercise 4: ``left``/``right`` swapped in an instruction and its answer.

    Used in chapter 06, "Exercise 4 — Make the horizontal flip label-preserving (★★☆, ~15 min, 2 points)"."""
    world = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))
    examples = [
        questions.generate_question(random.Random(f"ch06:flip:{i}"), programs.FAMILIES[i % 5], world)
        for i in range(200)
    ]
    for k, ex in enumerate(examples):
        out = call_student(fn, ex["instruction"], ex["answer"])
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise AssertionError("return a pair (instruction, answer)")
        text, ans = out
        expect_type(text, str, "the flipped instruction")
        expect_type(ans, str, "the flipped answer")
        if text != augment.flip_left_right(ex["instruction"]):
            raise AssertionError(f"on seeded example {k} ({ex['program']['family']}) the flipped instruction is wrong")
        if ans != augment.flip_left_right(ex["answer"]):
            raise AssertionError(f"on seeded example {k} ({ex['program']['family']}) the flipped answer is wrong")
    # words that only contain "left"/"right" stay as they are
    probe = "The leftover brightness is right."
    got = call_student(fn, probe, "upright")
    if got[0] != "The leftover brightness is left." or got[1] != "upright":
        raise AssertionError("only whole words 'left'/'right' may change (not 'leftover', 'brightness')")
