"""The world's phrasings: noun phrases, places, and the templates of captions, queries and edits.

Each template list has a part used in training and a held-out part that only the
``test_paraphrase`` split uses (chapter 06, "4. Splits that make evaluation honest"). Questions
have a richer language, a grammar of cores, frames and synonyms: :mod:`course_utils.world.grammar`.
"""

from __future__ import annotations

import random

#: Number words, for captions that count ("two red circles").
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# ---- noun phrases ------------------------------------------------------------------


def plural_of(noun: str) -> str:
    """The plural of a shape noun: "circle" -> "circles", "cross" -> "crosses".

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def noun_phrase(desc: dict, plural: bool = False) -> str:
    """``{"size": "small", "color": "red", "shape": "circle"}`` -> ``"small red circle"``.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    words = [desc[k] for k in ("size", "color") if k in desc]
    noun = desc.get("shape", "object")
    words.append(plural_of(noun) if plural else noun)
    return " ".join(words)


def with_article(phrase: str) -> str:
    """``phrase`` with its indefinite article: "a red circle", "an object".

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


# ---- phrasings: (used in training, held out for test_paraphrase) --------------------

#: For captions, retrieval queries and edits, the phrasings the training splits use and the
#: held-out ones. Questions are said by the grammar of :mod:`course_utils.world.grammar`.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
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

#: Chapter 10's description instructions: three forms, each with training and held-out
#: phrasings. They came after the shipped models, so they are kept out of :data:`TEMPLATES`
#: (the tokenizer's corpus): the few new words ("kind", "summary") are spelled in
#: characters, as any unseen word is, and every shipped model keeps its token ids.
DESCRIBE_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "describe_brief": (
        ("Describe the image briefly.", "Give a short caption for this image.",
         "Write a one-sentence description of the picture.", "Briefly, what is in the image?",
         "Caption the picture briefly.", "Name the objects in this image, briefly."),
        ("Briefly describe the picture.", "Write a short caption of the scene."),
    ),
    "describe_detailed": (
        ("Describe the image in detail.", "Give a detailed description of the scene.",
         "Describe every object in the picture and where it is.",
         "Tell me everything you see in the image.",
         "Describe the picture in full detail, with positions.",
         "Where is each object in the image? Describe them all."),
        ("List each object in the image together with its position.",
         "Give a detailed account of every object and where it is."),
    ),
    "describe_summary": (
        ("What kind of scene is this?", "Summarize the scene in one line.",
         "Give a one-line summary of the picture.", "What sort of picture is this?",
         "Sum up the image: how many objects of each shape?", "Summarize the image."),
        ("What kind of picture is this?", "Summarize this picture in one line."),
    ),
}  # fmt: skip

#: Chapter 12's new edits: adding an object and the cartoon style. Kept out of
#: :data:`TEMPLATES` (the tokenizer's corpus) for the reason given above: the new words
#: ("add", "cartoon") are spelled in characters and every shipped model keeps its ids.
EDIT_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "add": (
        ("Add {a_obj} {place}.", "Put {a_obj} {place}.", "Draw {a_obj} {place}.",
         "Place {a_obj} {place}."),
        ("Insert {a_obj} {place}.",),
    ),
    "style_cartoon": (
        ("Turn the picture into a cartoon.", "Make it look like a cartoon.",
         "Draw the scene in a cartoon style."),
        ("Redraw the image as a cartoon.",),
    ),
}  # fmt: skip

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
    train, held = {**TEMPLATES, **DESCRIBE_TEMPLATES, **EDIT_TEMPLATES}[kind]
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

