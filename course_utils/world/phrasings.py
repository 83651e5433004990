"""The world's phrasings: noun phrases, the templates of every question kind, :func:`phrase`.

Each template list has a part used in training and a held-out part that only the
``test_paraphrase`` split uses (chapter 06, "4. Splits that make evaluation honest"; chapter 09
measures it).
"""

from __future__ import annotations

import random

#: Number words, for captions that count ("two red circles").
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# ---- noun phrases ------------------------------------------------------------------


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def noun_phrase(desc: dict, plural: bool = False) -> str:
    """``{"size": "small", "color": "red", "shape": "circle"}`` -> ``"small red circle"``.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    words = [desc[k] for k in ("size", "color") if k in desc]
    noun = desc.get("shape", "object")
    words.append(_plural(noun) if plural else noun)
    return " ".join(words)


def with_article(phrase: str) -> str:
    """``phrase`` with its indefinite article: "a red circle", "an object".

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


# ---- phrasings: (used in training, held out for test_paraphrase) --------------------

#: For each question kind, the phrasings the training splits use and the held-out ones.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "query_color": (
        (
            "What color is the {obj}?",
            "What is the color of the {obj}?",
            "Which color does the {obj} have?",
            "Tell me the color of the {obj}.",
            "The {obj} is what color?",
        ),
        ("Name the color of the {obj}.", "Can you tell which color the {obj} is?"),
    ),
    "query_shape": (
        (
            "What shape is the {obj}?",
            "What is the shape of the {obj}?",
            "Which shape does the {obj} have?",
            "Tell me the shape of the {obj}.",
            "The {obj} is what shape?",
        ),
        ("Name the shape of the {obj}.", "Can you tell which shape the {obj} is?"),
    ),
    "count": (
        (
            "How many {objs} are there?",
            "How many {objs} are in the image?",
            "Count the {objs}.",
            "What is the number of {objs}?",
            "How many {objs} can you see?",
        ),
        ("Give the number of {objs} in the picture.", "How many {objs} does the image contain?"),
    ),
    "exist": (
        (
            "Is there {a_obj}?",
            "Are there any {objs}?",
            "Does the image contain {a_obj}?",
            "Can you see {a_obj}?",
            "Is {a_obj} present?",
        ),
        ("Does the picture show {a_obj}?", "Is there at least one {obj} in the image?"),
    ),
    "relate": (
        (
            "Is the {a} {rel} the {b}?",
            "Is the {a} located {rel} the {b}?",
            "Does the {a} appear {rel} the {b}?",
            "Is the {a} positioned {rel} the {b}?",
            "Would you say the {a} is {rel} the {b}?",
        ),
        ("Is it true that the {a} is {rel} the {b}?", "Can the {a} be found {rel} the {b}?"),
    ),
    "locate": (
        (
            "Where is the {obj}?",
            "Where is the {obj} located?",
            "In which part of the image is the {obj}?",
            "Tell me where the {obj} is.",
            "Which region contains the {obj}?",
        ),
        ("Point out where the {obj} is.", "In what part of the picture can the {obj} be found?"),
    ),
    "query_at_color": (
        (
            "What color is the object {at}?",
            "What is the color of the object {at}?",
            "Tell me the color of the object {at}.",
            "The object {at} is what color?",
            "Which color does the object {at} have?",
        ),
        ("Name the color of the object {at}.", "Can you tell which color the object {at} is?"),
    ),
    "query_at_shape": (
        (
            "What shape is the object {at}?",
            "What is the shape of the object {at}?",
            "Tell me the shape of the object {at}.",
            "The object {at} is what shape?",
            "Which shape does the object {at} have?",
        ),
        ("Name the shape of the object {at}.", "Can you tell which shape the object {at} is?"),
    ),
    "query_related_color": (
        (
            "What color is the object {rel} the {b}?",
            "What is the color of the object {rel} the {b}?",
            "Tell me the color of the object {rel} the {b}.",
            "The object {rel} the {b} is what color?",
            "Which color does the object {rel} the {b} have?",
        ),
        ("Name the color of the object {rel} the {b}.", "Can you tell which color the object {rel} the {b} is?"),
    ),
    "query_related_shape": (
        (
            "What shape is the object {rel} the {b}?",
            "What is the shape of the object {rel} the {b}?",
            "Tell me the shape of the object {rel} the {b}.",
            "The object {rel} the {b} is what shape?",
            "Which shape does the object {rel} the {b} have?",
        ),
        ("Name the shape of the object {rel} the {b}.", "Can you tell which shape the object {rel} the {b} is?"),
    ),
    "nearest_color": (
        (
            "What color is the object nearest to the {b}?",
            "What is the color of the object closest to the {b}?",
            "Tell me the color of the object nearest to the {b}.",
        ),
        ("Name the color of the object that is closest to the {b}.",),
    ),
    "nearest_shape": (
        (
            "What shape is the object nearest to the {b}?",
            "What is the shape of the object closest to the {b}?",
            "Tell me the shape of the object nearest to the {b}.",
        ),
        ("Name the shape of the object that is closest to the {b}.",),
    ),
    "more": (
        (
            "Are there more {xs} than {ys}?",
            "Is the number of {xs} greater than the number of {ys}?",
            "Do the {xs} outnumber the {ys}?",
            "Are there more {xs} in the image than {ys}?",
        ),
        ("Does the image have more {xs} than {ys}?", "Is it true that there are more {xs} than {ys}?"),
    ),
    "fewer": (
        (
            "Are there fewer {xs} than {ys}?",
            "Is the number of {xs} smaller than the number of {ys}?",
            "Are the {xs} outnumbered by the {ys}?",
            "Are there fewer {xs} in the image than {ys}?",
        ),
        ("Does the image have fewer {xs} than {ys}?", "Is it true that there are fewer {xs} than {ys}?"),
    ),
    "same": (
        (
            "Are there as many {xs} as {ys}?",
            "Is the number of {xs} equal to the number of {ys}?",
            "Are there exactly as many {xs} as {ys}?",
            "Is the number of {xs} the same as the number of {ys}?",
        ),
        ("Does the image have as many {xs} as {ys}?", "Is it true that there are as many {xs} as {ys}?"),
    ),
    "caption_short": (
        (
            "Describe the image briefly.",
            "Give a short caption for this image.",
            "Write a one-sentence description of the picture.",
            "Briefly, what is in the image?",
        ),
        ("Summarize the picture in a few words.",),
    ),
    "caption_detailed": (
        (
            "Describe the image in detail.",
            "Give a detailed description of the scene.",
            "Describe every object in the picture and where it is.",
            "Tell me everything you see in the image.",
        ),
        ("List each object in the image together with its position.",),
    ),
    "retrieval": (
        (
            "Find the image with {ref}.",
            "Show me a picture with {ref}.",
            "Retrieve the image that contains {ref}.",
            "Which image has {ref}?",
        ),
        ("Look for a picture showing {ref}.",),
    ),
    "recolor": (
        (
            "Make the {obj} {color}.",
            "Paint the {obj} {color}.",
            "Change the color of the {obj} to {color}.",
            "Turn the {obj} {color}.",
        ),
        ("Recolor the {obj} so that it is {color}.",),
    ),
    "remove": (
        ("Remove the {obj}.", "Delete the {obj}.", "Take away the {obj}.", "Get rid of the {obj}."),
        ("Erase the {obj} from the picture.",),
    ),
    "move": (
        (
            "Move the {obj} {dir}.",
            "Move the {obj} one step {dir}.",
            "Shift the {obj} {dir}.",
            "Push the {obj} one cell {dir}.",
        ),
        ("Slide the {obj} over by one cell, {dir}.",),
    ),
    "style_dark": (
        ("Make the background dark.", "Use a dark background.", "Put the shapes on a dark background."),
        ("Switch the picture to a night-time dark background.",),
    ),
    "style_outline": (
        ("Draw the shapes as outlines.", "Show only the outlines of the shapes.", "Make every shape hollow."),
        ("Keep just the borders of the shapes.",),
    ),
    "style_grayscale": (
        ("Make the image black and white.", "Convert the picture to grayscale.", "Turn the image gray."),
        ("Render the scene without any color.",),
    ),
}

#: Words for relations: the first is canonical; a phrasing picks one at random.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left of", "to the left of"),
    "right": ("right of", "to the right of"),
    "above": ("above",),
    "below": ("below",),
}
MOVE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left"),
    "right": ("right", "to the right"),
    "up": ("up", "upward"),
    "down": ("down", "downward"),
}


def phrasings(kind: str, heldout: bool = False) -> tuple[str, ...]:
    """The phrasings of a kind: those used in training, or the held-out ones.

    Used in chapter 06, "4. Splits that make evaluation honest"."""
    train, held = TEMPLATES[kind]
    return held if heldout else train


def fill_template(rng: random.Random, kind: str, heldout: bool, **slots) -> str:
    """A random template of ``kind`` (held out or not) filled with ``slots``, capitalised.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    text = rng.choice(phrasings(kind, heldout)).format(**slots)
    return text[0].upper() + text[1:]


def question_kind(program: dict) -> str:
    """The template kind a program is phrased with.

    Used in chapter 06, "3. Honest answers: statistics and a blind baseline"."""
    op = program["op"]
    if op == "query":
        return f"query_{program['attr']}"
    if op in ("query_related", "nearest", "query_at"):
        return f"{op}_{program['attr']}"
    return op


def phrase(program: dict, rng: random.Random, heldout: bool = False) -> str:
    """A sentence for a question program (a random phrasing of its kind).

    Used in chapter 06, "2. Questions with exactly one answer"."""
    kind = question_kind(program)
    op = program["op"]
    if op in ("query", "locate"):
        return fill_template(rng, kind, heldout, obj=noun_phrase(program["obj"]))
    if op == "count":
        return fill_template(rng, kind, heldout, objs=noun_phrase(program["objs"], plural=True))
    if op == "exist":
        d = program["objs"]
        return fill_template(
            rng, kind, heldout, obj=noun_phrase(d), a_obj=with_article(noun_phrase(d)),
            objs=noun_phrase(d, plural=True),
        )  # fmt: skip
    if op == "relate":
        rel = rng.choice(RELATION_WORDS[program["rel"]])
        return fill_template(rng, kind, heldout, a=noun_phrase(program["a"]), rel=rel, b=noun_phrase(program["b"]))
    if op == "query_related":
        rel = rng.choice(RELATION_WORDS[program["rel"]])
        return fill_template(rng, kind, heldout, rel=rel, b=noun_phrase(program["b"]))
    if op == "nearest":
        return fill_template(rng, kind, heldout, b=noun_phrase(program["b"]))
    if op == "query_at":
        return fill_template(rng, kind, heldout, at=position_phrase(program["pos"]))
    if op in ("more", "fewer", "same"):
        return fill_template(
            rng, kind, heldout, xs=noun_phrase(program["x"], plural=True),
            ys=noun_phrase(program["y"], plural=True),
        )  # fmt: skip
    raise ValueError(f"program: unknown op {op!r}")


# ---- captions, referring expressions, edits ------------------------------------------


def position_phrase(pos: str) -> str:
    """A region name as a place: "in the top left corner", "in the center", "at the top".

    Used in chapter 06, "2. Questions with exactly one answer"."""
    if pos == "center":
        return "in the center"
    if pos in ("left", "right"):
        return f"on the {pos}"
    if pos in ("top", "bottom"):
        return f"at the {pos}"
    return f"in the {pos} corner"

