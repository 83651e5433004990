"""The language of questions: a grammar of cores, frames, synonyms and surface noise.

A question is said in four layers, each with a part that training never sees:

- a **core**, the content template of its group ("What {attr} is {the_obj}?"), with an
  embedded form for frames ("what {attr} {the_obj} is"); :data:`CORES` holds the cores
  training uses and the held-out ones (the ``test_paraphrase`` split: unseen templates);
- a **frame** around the core ("Tell me {e}.", "I'd like to know {e}."): :data:`FRAMES`
  (held-out ones for ``test_frames``);
- **words** with synonyms (object / item, image / picture / scene, small / little):
  :data:`WORDS` (held-out synonyms such as "thing", "photo", "colour", "tiny" only in
  ``test_synonyms``, which has at least one in every question);
- **surface**: optional politeness, lower case, no final punctuation, a typo in a word the
  meaning does not hang on (:data:`NOISE`, :data:`PROTECTED`), the same in every split.

:func:`phrase` says a program in one of :data:`LANGUAGES`; ``num_templates`` keeps only the
first cores of each group, the knob of chapter 09's FLAN curve. Every sentence keeps its
program's one answer: only words the answer does not depend on vary freely.
"""

from __future__ import annotations

import functools
import random
import re

from course_utils.world.phrasings import plural_of, position_phrase, question_kind, with_article
from course_utils.world.programs import POSITIONS

#: The languages a question can be said in: the training language, and one held-out layer each.
LANGUAGES: tuple[str, ...] = ("train", "templates", "frames", "synonyms")

#: Synonyms: (words training uses, held-out words only ``test_synonyms`` uses).
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "object": (("object", "item"), ("thing",)),
    "image": (("image", "picture", "scene"), ("photo",)),
    "color": (("color",), ("colour",)),
    "shape": (("shape",), ()),
    "small": (("small", "little"), ("tiny",)),
    "large": (("large", "big"), ("huge",)),
    "see": (("see", "spot"), ("notice",)),
    "located": (("located", "placed"), ("situated",)),
    "left": (("left of", "to the left of"), ("on the left side of",)),
    "right": (("right of", "to the right of"), ("on the right side of",)),
    "above": (("above", "over"), ("higher up than",)),
    "below": (("below", "under"), ("lower down than",)),
    "nearest": (("nearest to", "closest to"), ()),
}

#: Frames around a core's embedded form: (training frames, held-out frames). "{q}" is the
#: bare direct question.
FRAMES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("{q}", "Tell me {e}.", "Can you tell me {e}?", "I'd like to know {e}.", "Please tell me {e}.",
     "I want to know {e}."),
    ("I wonder {e}.", "Do you know {e}?", "Help me figure out {e}."),
)  # fmt: skip
#: How often a training sentence uses the bare question rather than a framed one.
DIRECT_RATE = 0.5
#: Optional politeness and filler around a sentence.
PREFIXES: tuple[str, ...] = ("Please, ", "Hey, ", "Quick question: ", "OK, ", "So, ")
SUFFIXES: tuple[str, ...] = (" Thanks.", " Thank you!", " Please.")
#: Probabilities of the surface variations, in every split alike.
NOISE: dict[str, float] = {"prefix": 0.15, "suffix": 0.1, "lower": 0.15, "no_punct": 0.15, "typo": 0.1}

Core = tuple[str, str | None]  # (direct form, embedded form or None: direct only)

#: Per question group: (cores training uses, held-out cores). ``{in}`` is an optional
#: mention of the image (" in the picture"), the rest are the group's slots.
CORES: dict[str, tuple[tuple[Core, ...], tuple[Core, ...]]] = {
    "attribute": (
        (("What {attr} is {the_obj}?", "what {attr} {the_obj} is"),
         ("What is the {attr} of {the_obj}?", "what the {attr} of {the_obj} is"),
         ("Which {attr} does {the_obj} have?", "which {attr} {the_obj} has"),
         ("{The_obj} is what {attr}?", None),
         ("What's the {attr} of {the_obj}?", None),
         ("Name the {attr} of {the_obj}.", None),
         ("What {attr} would you say {the_obj} is?", "what {attr} you would say {the_obj} is"),
         ("Identify the {attr} of {the_obj}.", None)),
        (("{The_obj} has which {attr}?", None),
         ("State the {attr} of {the_obj}.", None),
         ("Of what {attr} is {the_obj}?", "of what {attr} {the_obj} is")),
    ),
    "count": (
        (("How many {objs} are there{in}?", "how many {objs} there are{in}"),
         ("How many {objs} can you {see}{in}?", "how many {objs} you can {see}{in}"),
         ("Count the {objs}{in}.", None),
         ("What is the number of {objs}{in}?", "what the number of {objs}{in} is"),
         ("What's the total number of {objs}{in}?", None),
         ("How many {objs} does the {image} contain?", "how many {objs} the {image} contains"),
         ("How many {objs} are shown{in}?", "how many {objs} are shown{in}"),
         ("Give the number of {objs}{in}.", None)),
        (("How many {objs} appear{in}?", "how many {objs} appear{in}"),
         ("Give me a count of the {objs}{in}.", None),
         ("The {objs}{in}: how many are there?", None)),
    ),
    "exist": (
        (("Is there {a_obj}{in}?", "whether there is {a_obj}{in}"),
         ("Are there any {objs}{in}?", "whether there are any {objs}{in}"),
         ("Does the {image} contain {a_obj}?", "whether the {image} contains {a_obj}"),
         ("Can you {see} {a_obj}{in}?", "whether you can {see} {a_obj}{in}"),
         ("Is {a_obj} present{in}?", "whether {a_obj} is present{in}"),
         ("Does the {image} show {a_obj}?", "whether the {image} shows {a_obj}"),
         ("Is there at least one {obj}{in}?", "whether there is at least one {obj}{in}"),
         ("Are any {objs} visible{in}?", "whether any {objs} are visible{in}")),
        (("Does {a_obj} appear{in}?", "whether {a_obj} appears{in}"),
         ("Is any {obj} to be found{in}?", "whether any {obj} is to be found{in}"),
         ("Check whether there is {a_obj}{in}.", None)),
    ),
    "relate": (
        (("Is the {a} {rel} the {b}?", "whether the {a} is {rel} the {b}"),
         ("Is the {a} {located} {rel} the {b}?", "whether the {a} is {located} {rel} the {b}"),
         ("Does the {a} appear {rel} the {b}?", "whether the {a} appears {rel} the {b}"),
         ("Would you say the {a} is {rel} the {b}?", None),
         ("Is it true that the {a} is {rel} the {b}?", None),
         ("Does the {a} sit {rel} the {b}?", "whether the {a} sits {rel} the {b}"),
         ("Is the {a} found {rel} the {b}?", "whether the {a} is found {rel} the {b}"),
         ("In the {image}, is the {a} {rel} the {b}?", None)),
        (("Can the {a} be found {rel} the {b}?", "whether the {a} can be found {rel} the {b}"),
         ("Say whether the {a} is {rel} the {b}.", None),
         ("The {a} is {rel} the {b}, right?", None)),
    ),
    "locate": (
        (("Where is the {obj}?", "where the {obj} is"),
         ("Where is the {obj} {located}?", "where the {obj} is {located}"),
         ("In which part of the {image} is the {obj}?", "in which part of the {image} the {obj} is"),
         ("Which region contains the {obj}?", "which region contains the {obj}"),
         ("Where can the {obj} be found?", "where the {obj} can be found"),
         ("Where in the {image} is the {obj}?", "where in the {image} the {obj} is"),
         ("Point out where the {obj} is.", None),
         ("Say where the {obj} is.", None)),
        (("In what part of the {image} can the {obj} be found?", None),
         ("Whereabouts is the {obj}?", "whereabouts the {obj} is"),
         ("Locate the {obj}.", None)),
    ),
    "more": (
        (("Are there more {xs} than {ys}?", "whether there are more {xs} than {ys}"),
         ("Is the number of {xs} greater than the number of {ys}?",
          "whether the number of {xs} is greater than the number of {ys}"),
         ("Do the {xs} outnumber the {ys}?", "whether the {xs} outnumber the {ys}"),
         ("Are there more {xs}{in} than {ys}?", "whether there are more {xs}{in} than {ys}"),
         ("Does the {image} have more {xs} than {ys}?", "whether the {image} has more {xs} than {ys}"),
         ("Is it true that there are more {xs} than {ys}?", None),
         ("Does the {image} show more {xs} than {ys}?", "whether the {image} shows more {xs} than {ys}"),
         ("Do more {xs} than {ys} appear{in}?", None)),
        (("Are the {xs} more numerous than the {ys}?", "whether the {xs} are more numerous than the {ys}"),
         ("Compared with the {ys}, are there more {xs}?", None),
         ("Do you count more {xs} than {ys}{in}?", None)),
    ),
    "fewer": (
        (("Are there fewer {xs} than {ys}?", "whether there are fewer {xs} than {ys}"),
         ("Is the number of {xs} smaller than the number of {ys}?",
          "whether the number of {xs} is smaller than the number of {ys}"),
         ("Are the {xs} outnumbered by the {ys}?", "whether the {xs} are outnumbered by the {ys}"),
         ("Are there fewer {xs}{in} than {ys}?", "whether there are fewer {xs}{in} than {ys}"),
         ("Does the {image} have fewer {xs} than {ys}?", "whether the {image} has fewer {xs} than {ys}"),
         ("Is it true that there are fewer {xs} than {ys}?", None),
         ("Does the {image} show fewer {xs} than {ys}?", "whether the {image} shows fewer {xs} than {ys}"),
         ("Do fewer {xs} than {ys} appear{in}?", None)),
        (("Are the {xs} less numerous than the {ys}?", "whether the {xs} are less numerous than the {ys}"),
         ("Compared with the {ys}, are there fewer {xs}?", None),
         ("Do you count fewer {xs} than {ys}{in}?", None)),
    ),
    "same": (
        (("Are there as many {xs} as {ys}?", "whether there are as many {xs} as {ys}"),
         ("Is the number of {xs} equal to the number of {ys}?",
          "whether the number of {xs} is equal to the number of {ys}"),
         ("Are there exactly as many {xs} as {ys}?", "whether there are exactly as many {xs} as {ys}"),
         ("Is the number of {xs} the same as the number of {ys}?",
          "whether the number of {xs} is the same as the number of {ys}"),
         ("Does the {image} have as many {xs} as {ys}?", "whether the {image} has as many {xs} as {ys}"),
         ("Is it true that there are as many {xs} as {ys}?", None),
         ("Does the {image} show as many {xs} as {ys}?", "whether the {image} shows as many {xs} as {ys}"),
         ("Do as many {xs} as {ys} appear{in}?", None)),
        (("Are the {xs} and the {ys} equal in number?", "whether the {xs} and the {ys} are equal in number"),
         ("Compared with the {ys}, are there as many {xs}?", None),
         ("Do you count as many {xs} as {ys}{in}?", None)),
    ),
}  # fmt: skip

#: Words a typo never touches: every word the meaning of a question depends on.
PROTECTED: frozenset[str] = frozenset(
    "red green blue yellow purple cyan circle circles square squares triangle triangles diamond "
    "diamonds cross crosses small little tiny large big huge color colour shape object objects "
    "item items thing things left right above below over under higher lower side top bottom center "
    "corner middle many number total count more fewer less greater smaller numerous outnumber "
    "outnumbered same equal exactly nearest closest there is are any where which what compared "
    "with than down".split()
)


def group(kind: str) -> str:
    """The core group of a question kind: every attribute query shares the "attribute" cores.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    if kind.startswith(("query_", "nearest_")):
        return "attribute"
    if kind not in CORES:
        raise ValueError(f"kind: no question cores for {kind!r}")
    return kind


def cores(kind: str, heldout: bool = False, num_templates: int | None = None) -> tuple[Core, ...]:
    """The cores of a kind's group: the training ones (the first ``num_templates``) or the held-out.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    train, held = CORES[group(kind)]
    return held if heldout else train[:num_templates]


def choose(rng: random.Random, name: str, language: str = "train") -> str:
    """A word of a synonym class: a training word, or a held-out one in the ``synonyms`` language.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    train, held = WORDS[name]
    return rng.choice(held if language == "synonyms" and held else train)


def spoken(desc: dict, rng: random.Random, language: str, many: bool = False) -> str:
    """A description in words with synonyms: ``{"size": "small", "shape": "circle"}`` -> "little circle".

    Used in chapter 06, "2. Questions with exactly one answer"."""
    words = [choose(rng, desc["size"], language)] if "size" in desc else []
    if "color" in desc:
        words.append(desc["color"])
    noun = desc.get("shape") or choose(rng, "object", language)
    words.append(plural_of(noun) if many else noun)
    return " ".join(words)


def _slots(program: dict, rng: random.Random, language: str) -> dict:
    """The words of a program's slots (each drawn once, so a sentence stays consistent)."""
    op = program["op"]

    def say(name: str) -> str:
        return choose(rng, name, language)

    image = say("image")
    slots = {"image": image, "see": say("see"), "located": say("located"),
             "in": rng.choice(("", "", f" in the {image}", f" in this {image}"))}  # fmt: skip
    if "attr" in program:
        slots["attr"] = say(program["attr"])
        the_obj = {
            "query": lambda: f"the {spoken(program['obj'], rng, language)}",
            "query_at": lambda: f"the {say('object')} {position_phrase(program['pos'])}",
            "query_related": lambda: f"the {say('object')} {say(program['rel'])} the "
            f"{spoken(program['b'], rng, language)}",
            "nearest": lambda: f"the {say('object')} {say('nearest')} the {spoken(program['b'], rng, language)}",
        }[op]()
        slots.update(the_obj=the_obj, The_obj=the_obj[0].upper() + the_obj[1:])
    elif op in ("count", "exist"):
        d = program["objs"]
        obj = spoken(d, rng, language)
        slots.update(obj=obj, a_obj=with_article(obj), objs=spoken(d, rng, language, many=True))
    elif op == "locate":
        slots["obj"] = spoken(program["obj"], rng, language)
    elif op == "relate":
        slots.update(a=spoken(program["a"], rng, language), rel=say(program["rel"]),
                     b=spoken(program["b"], rng, language))  # fmt: skip
    elif op in ("more", "fewer", "same"):
        slots.update(xs=spoken(program["x"], rng, language, many=True),
                     ys=spoken(program["y"], rng, language, many=True))  # fmt: skip
    else:
        raise ValueError(f"program: unknown op {op!r}")
    return slots


def _typo(rng: random.Random, text: str) -> str:
    words = [(m.start(), m.group()) for m in re.finditer(r"[A-Za-z']+", text)]
    keep = PROTECTED | held_words()  # a typo never hides what the sentence means or tests
    fair = [(i, w) for i, w in words if len(w) >= 4 and w.isalpha() and w.lower() not in keep]
    if not fair:
        return text
    start, word = rng.choice(fair)
    k = rng.randrange(1, len(word) - 2)
    how = rng.choice(("swap", "drop", "double"))
    new = {"swap": word[:k] + word[k + 1] + word[k] + word[k + 2:], "drop": word[:k] + word[k + 1:],
           "double": word[:k] + word[k] + word[k:]}[how]  # fmt: skip
    return text[:start] + new + text[start + len(word):]


def surface(rng: random.Random, text: str) -> str:
    """Politeness, filler, lower case, no final punctuation and a typo, each with its :data:`NOISE` rate.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    if rng.random() < NOISE["prefix"] and not text.startswith("Please"):
        prefix = rng.choice(PREFIXES)
        text = prefix + (text if text.startswith("I ") or text.startswith("I'") else text[0].lower() + text[1:])
    if rng.random() < NOISE["suffix"]:
        text += rng.choice(SUFFIXES)
    if rng.random() < NOISE["typo"]:
        text = _typo(rng, text)
    if rng.random() < NOISE["lower"]:
        text = text.lower()
    if rng.random() < NOISE["no_punct"]:
        text = text.rstrip(".?!")
    return text


def words_of(text: str) -> set[str]:
    """The lower-case words of a text, punctuation dropped: "Is it a photo?" -> {"is", "it", "a", "photo"}.

    Used in chapter 06, "4. Splits that make evaluation honest"."""
    return set(re.findall(r"[a-z]+", text.lower()))


@functools.lru_cache(maxsize=1)
def held_words() -> frozenset[str]:
    """The words only held-out synonyms use ("thing", "photo", "colour", "side", ...): a
    ``test_synonyms`` question contains at least one, no other split any.

    Used in chapter 06, "4. Splits that make evaluation honest"."""
    def forms(w):
        return words_of(w) | ({plural_of(w)} if w in WORDS["object"][0] + WORDS["object"][1] else set())

    held = set().union(*(forms(w) for _, words in WORDS.values() for w in words))
    seen = set().union(*(forms(w) for words, _ in WORDS.values() for w in words))
    for train, _ in CORES.values():
        seen |= set().union(*(words_of(t) for core in train for t in core if t))
    seen |= set().union(*(words_of(t) for t in (*FRAMES[0], *PREFIXES, *SUFFIXES)))
    seen |= set().union(*(words_of(position_phrase(p)) for p in POSITIONS))
    return frozenset(held - seen)


def _has_held_word(text: str) -> bool:
    return bool(words_of(text) & held_words())


def phrase(program: dict, rng: random.Random, language: str = "train", num_templates: int | None = None,
           record: dict | None = None) -> str:
    """A sentence for a question program in a language of :data:`LANGUAGES`.

    ``train``: training cores (the first ``num_templates`` of each group), frames and words;
    ``templates``: held-out cores; ``frames``: a held-out frame around a training core;
    ``synonyms``: training cores and frames with held-out words, at least one per sentence.
    ``record``, if given, receives the ``core`` (its direct form) and the ``frame`` used.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    if language not in LANGUAGES:
        raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")
    kind = question_kind(program)
    options = cores(kind, heldout=language == "templates", num_templates=num_templates)
    if language == "frames":
        options = tuple(c for c in options if c[1] is not None) or options
    for _ in range(50):
        direct, embedded = rng.choice(options)
        if language == "frames" and embedded is not None:
            frame = rng.choice(FRAMES[1])
        elif embedded is None or rng.random() < DIRECT_RATE:
            frame = "{q}"
        else:
            frame = rng.choice(FRAMES[0][1:])
        slots = _slots(program, rng, language)
        text = frame.format(q=direct.format(**slots), e=embedded.format(**slots) if embedded else "")
        if language != "synonyms" or _has_held_word(text):
            if record is not None:
                record.update(core=direct, frame=frame)
            return surface(rng, text[0].upper() + text[1:])
    raise ValueError(f"no sentence of {kind!r} can hold a held-out synonym")  # pragma: no cover
