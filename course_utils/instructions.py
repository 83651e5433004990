"""The world's language: questions, answers, captions, referring expressions and edits.

Every question is first a small *program* (a JSON-friendly dict), then a sentence made
from one of several phrasings. :func:`answer` executes a program on a scene; it refuses
(``AmbiguityError``) when a description that should name one object names none or
several, so every generated question has exactly one correct answer.

Question families (the dataset's ``task`` column):

``attribute``  "What color is the small circle?" -> ``"red"``; "What shape is the blue object?"
``count``      "How many red objects are there?" -> ``"0"`` ... ``"6"``
``exist``      "Is there a large green square?" -> ``"yes"`` / ``"no"`` (balanced)
``spatial``    "Is the red circle to the left of the blue square?" -> yes/no (balanced), and
               "What color is the object above the cross?" (exactly one object is above it)
``compare``    "Are there more circles than squares?" -> yes/no (balanced)

Scenes are built *question first*: the answer is drawn uniformly from its family's
answers, then a scene is built where it is true, so no family can be answered from the
text alone much above chance. Each phrasing list has a held-out part (never used by the
training splits) for the ``test_paraphrase`` split.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from course_utils import scenes as S

FAMILIES: tuple[str, ...] = ("attribute", "count", "exist", "spatial", "compare")
RELATIONS: tuple[str, ...] = ("left", "right", "above", "below")
#: Spatial question kinds: where one object is ("top left"), a yes/no relation between
#: two objects, the attribute of the one object related to an anchor, the nearest object.
SPATIAL_OPS: tuple[str, ...] = ("query_at", "locate", "relate", "query_related", "nearest")
#: Names of the nine regions of the image (answers of "Where is ...?" questions).
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right",
)
#: Comparison questions: "more X than Y", "fewer X than Y", "as many X as Y".
COMPARE_OPS: tuple[str, ...] = ("more", "fewer")
#: How often a question's scene gets a near miss (an object that differs from a named
#: description in one attribute), so models must bind colour *and* shape, not one of them.
NEAR_MISS_RATE = 0.5
#: Largest count a filtered counting question asks for (totals go up to the object count).
MAX_COUNT = 4
#: Colour-shape pairs that never appear in a training image (CLEVR-CoGenT style): one
#: colour per shape, five distinct colours, so every colour and shape is still seen.
HELDOUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("green", "circle"),
    ("purple", "square"),
    ("yellow", "triangle"),
    ("red", "diamond"),
    ("blue", "cross"),
)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class AmbiguityError(ValueError):
    """A description that must identify one object identifies none or several."""


class _Retry(Exception):
    """Internal: this random attempt cannot satisfy its constraints; draw again."""


# ---- the world's configuration -------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Everything that fixes the distribution of scenes and questions."""

    image_size: int = S.IMAGE_SIZE
    grid: int = S.GRID
    colors: tuple[str, ...] = tuple(S.COLORS)
    shapes: tuple[str, ...] = S.SHAPES
    sizes: tuple[str, ...] = tuple(S.SIZES)
    num_objects: tuple[int, int] = (2, 5)
    families: tuple[str, ...] = FAMILIES
    heldout_pairs: tuple[tuple[str, str], ...] = HELDOUT_PAIRS
    #: Spatial question kinds and their weights: the attribute of the object at a named
    #: place ("in the top left corner"), yes/no relations between two named objects, and
    #: the attribute of the one object related to a named anchor ("left of the cross").
    #: Measured: a small joint transformer learns the first kind like an attribute query,
    #: while the two relational kinds stay near chance for thousands of steps; see
    #: chapter 06 and the data notes.
    spatial_ops: tuple[tuple[str, float], ...] = (
        ("query_at", 0.4),
        ("relate", 0.3),
        ("query_related", 0.3),
    )
    style: dict = field(default_factory=dict)

    def __post_init__(self):
        S.check_layout(self.image_size, self.grid)
        set_ = object.__setattr__
        set_(self, "colors", S.check_names(self.colors, tuple(S.COLORS), "colors"))
        set_(self, "shapes", S.check_names(self.shapes, S.SHAPES, "shapes"))
        set_(self, "sizes", S.check_names(self.sizes, tuple(S.SIZES), "sizes"))
        set_(self, "families", S.check_names(self.families, FAMILIES, "families"))
        set_(self, "num_objects", S.check_num_objects(self.num_objects, self.grid))
        pairs = tuple(tuple(p) for p in self.heldout_pairs)
        for color, shape in pairs:
            if color not in S.COLORS or shape not in S.SHAPES:
                raise ValueError(f"heldout_pairs: unknown pair {(color, shape)!r}")
        set_(self, "heldout_pairs", pairs)
        if len(self.colors) < 2 or len(self.shapes) < 2:
            raise ValueError("colors and shapes need at least two values each")
        ops = tuple((str(o), float(w)) for o, w in self.spatial_ops)
        bad = [o for o, _ in ops if o not in SPATIAL_OPS]
        if bad or not ops:
            raise ValueError(f"spatial_ops: unknown op(s) {bad}")
        set_(self, "spatial_ops", ops)
        if self.num_objects[0] < 2:
            raise ValueError("num_objects: scenes need at least 2 objects for relations")
        if not self.allowed_pairs:
            raise ValueError("heldout_pairs: every colour-shape pair is held out")

    @property
    def allowed_pairs(self) -> tuple[tuple[str, str], ...]:
        held = set(self.heldout_pairs)
        return tuple((c, s) for c in self.colors for s in self.shapes if (c, s) not in held)

    @property
    def novel_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(
            (c, s) for c, s in self.heldout_pairs if c in self.colors and s in self.shapes
        )

    def as_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "grid": self.grid,
            "colors": list(self.colors),
            "shapes": list(self.shapes),
            "sizes": list(self.sizes),
            "num_objects": list(self.num_objects),
            "families": list(self.families),
            "heldout_pairs": [list(p) for p in self.heldout_pairs],
            "spatial_ops": [list(o) for o in self.spatial_ops],
            "style": dict(self.style),
        }


# ---- descriptions and the answer logic -------------------------------------------------


def matches(obj: dict, desc: dict) -> bool:
    """True when ``obj`` has every attribute in ``desc`` (``{}`` matches every object)."""
    return all(obj[k] == v for k, v in desc.items())


def select(scene: dict, desc: dict) -> list[dict]:
    return [o for o in scene["objects"] if matches(o, desc)]


def unique(scene: dict, desc: dict) -> dict:
    """The one object ``desc`` describes; ``AmbiguityError`` if none or several."""
    found = select(scene, desc)
    if len(found) != 1:
        raise AmbiguityError(f"{noun_phrase(desc)!r} describes {len(found)} objects, not one")
    return found[0]


def related(a: dict, rel: str, b: dict) -> bool:
    """``a`` is ``rel`` (left/right/above/below) of ``b``, comparing centres in pixels."""
    if rel == "left":
        return a["x"] < b["x"]
    if rel == "right":
        return a["x"] > b["x"]
    if rel == "above":
        return a["y"] < b["y"]
    if rel == "below":
        return a["y"] > b["y"]
    raise ValueError(f"rel: unknown relation {rel!r}")


def region(obj: dict, scene: dict) -> str:
    """Which of the nine regions (thirds of the image on each axis) holds the object."""
    col = min(2, int(3 * obj["x"] / scene["width"]))
    row = min(2, int(3 * obj["y"] / scene["height"]))
    return POSITIONS[3 * row + col]


def distance(a: dict, b: dict) -> float:
    return math.hypot(a["x"] - b["x"], a["y"] - b["y"])


#: Nearest-object questions need the nearest object closer than the runner-up by this
#: fraction of a grid cell, so no one has to judge a near tie.
NEAREST_MARGIN = 0.3


def answer(program: dict, scene: dict) -> str:
    """Execute a question program on a scene and return the answer string."""
    op = program["op"]
    if op == "query":
        return unique(scene, program["obj"])[program["attr"]]
    if op == "count":
        return str(len(select(scene, program["objs"])))
    if op == "exist":
        return "yes" if select(scene, program["objs"]) else "no"
    if op == "relate":
        a, b = unique(scene, program["a"]), unique(scene, program["b"])
        if a is b:
            raise AmbiguityError("the two descriptions name the same object")
        rel = program["rel"]
        axis = "x" if rel in ("left", "right") else "y"
        if a[axis] == b[axis]:
            raise AmbiguityError(f"the objects are level; '{rel}' has no clear answer")
        return "yes" if related(a, rel, b) else "no"
    if op == "locate":
        return region(unique(scene, program["obj"]), scene)
    if op == "query_at":
        found = [o for o in scene["objects"] if region(o, scene) == program["pos"]]
        if len(found) != 1:
            raise AmbiguityError(f"{len(found)} objects are in the {program['pos']} region, not one")
        return found[0][program["attr"]]
    if op == "query_related":
        b = unique(scene, program["b"])
        found = [o for o in scene["objects"] if o is not b and related(o, program["rel"], b)]
        if len(found) != 1:
            raise AmbiguityError(f"{len(found)} objects are {program['rel']} the anchor, not one")
        return found[0][program["attr"]]
    if op == "nearest":
        b = unique(scene, program["b"])
        others = sorted((distance(o, b), i) for i, o in enumerate(scene["objects"]) if o is not b)
        cell = scene["width"] / scene["grid"]
        if not others or (len(others) > 1 and others[1][0] - others[0][0] < NEAREST_MARGIN * cell):
            raise AmbiguityError("no single nearest object")
        return scene["objects"][others[0][1]][program["attr"]]
    if op in ("more", "fewer", "same"):
        nx, ny = len(select(scene, program["x"])), len(select(scene, program["y"]))
        truth = {"more": nx > ny, "fewer": nx < ny, "same": nx == ny}[op]
        return "yes" if truth else "no"
    raise ValueError(f"program: unknown op {op!r}")


# ---- noun phrases ------------------------------------------------------------------


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def noun_phrase(desc: dict, plural: bool = False) -> str:
    """``{"size": "small", "color": "red", "shape": "circle"}`` -> ``"small red circle"``."""
    words = [desc[k] for k in ("size", "color") if k in desc]
    noun = desc.get("shape", "object")
    words.append(_plural(noun) if plural else noun)
    return " ".join(words)


def with_article(phrase: str) -> str:
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
    """The phrasings of a kind: those used in training, or the held-out ones."""
    train, held = TEMPLATES[kind]
    return held if heldout else train


def _fmt(rng: random.Random, kind: str, heldout: bool, **slots) -> str:
    text = rng.choice(phrasings(kind, heldout)).format(**slots)
    return text[0].upper() + text[1:]


def question_kind(program: dict) -> str:
    """The template kind a program is phrased with."""
    op = program["op"]
    if op == "query":
        return f"query_{program['attr']}"
    if op in ("query_related", "nearest", "query_at"):
        return f"{op}_{program['attr']}"
    return op


def phrase(program: dict, rng: random.Random, heldout: bool = False) -> str:
    """A sentence for a question program (a random phrasing of its kind)."""
    kind = question_kind(program)
    op = program["op"]
    if op in ("query", "locate"):
        return _fmt(rng, kind, heldout, obj=noun_phrase(program["obj"]))
    if op == "count":
        return _fmt(rng, kind, heldout, objs=noun_phrase(program["objs"], plural=True))
    if op == "exist":
        d = program["objs"]
        return _fmt(
            rng, kind, heldout, obj=noun_phrase(d), a_obj=with_article(noun_phrase(d)),
            objs=noun_phrase(d, plural=True),
        )  # fmt: skip
    if op == "relate":
        rel = rng.choice(RELATION_WORDS[program["rel"]])
        return _fmt(rng, kind, heldout, a=noun_phrase(program["a"]), rel=rel, b=noun_phrase(program["b"]))
    if op == "query_related":
        rel = rng.choice(RELATION_WORDS[program["rel"]])
        return _fmt(rng, kind, heldout, rel=rel, b=noun_phrase(program["b"]))
    if op == "nearest":
        return _fmt(rng, kind, heldout, b=noun_phrase(program["b"]))
    if op == "query_at":
        return _fmt(rng, kind, heldout, at=position_phrase(program["pos"]))
    if op in ("more", "fewer", "same"):
        return _fmt(
            rng, kind, heldout, xs=noun_phrase(program["x"], plural=True),
            ys=noun_phrase(program["y"], plural=True),
        )  # fmt: skip
    raise ValueError(f"program: unknown op {op!r}")


# ---- question-first scene construction ----------------------------------------------


class _Builder:
    """Collects objects (attributes first, cells later) under a world's constraints."""

    def __init__(self, rng: random.Random, world: World, novel: bool, plan: dict | None = None):
        self.rng, self.world, self.novel = rng, world, novel
        self.plan = {} if plan is None else plan
        self.objects: list[dict] = []
        self.cells: list[tuple[int, int] | None] = []

    def pick(self, name: str, options):
        """A random choice that stays fixed when the example is redrawn after a failed try,
        so retries never tilt the answer distribution (e.g. towards easy "no" scenes)."""
        if name not in self.plan:
            self.plan[name] = self.rng.choice(list(options))
        return self.plan[name]

    def pairs(self, novel: bool | None) -> tuple[tuple[str, str], ...]:
        if novel:
            return self.world.novel_pairs
        if novel is None and self.novel:  # compositional split: any pair may appear
            return self.world.allowed_pairs + self.world.novel_pairs
        return self.world.allowed_pairs

    def sample(self, desc: dict | None = None, avoid=(), novel: bool | None = None) -> dict:
        """Attributes matching ``desc``, matching none of ``avoid``, from allowed pairs."""
        desc = desc or {}
        pairs = [
            (c, s)
            for c, s in self.pairs(novel)
            if desc.get("color", c) == c and desc.get("shape", s) == s
        ]
        sizes = [z for z in self.world.sizes if desc.get("size", z) == z]
        for _ in range(30):
            if not pairs or not sizes:
                break
            c, s = self.rng.choice(pairs)
            obj = {"shape": s, "color": c, "size": self.rng.choice(sizes)}
            if not any(matches(obj, a) for a in avoid):
                return obj
        raise _Retry()

    def add(self, obj: dict, cell: tuple[int, int] | None = None) -> dict:
        self.objects.append(obj)
        self.cells.append(cell)
        return obj

    def fill(self, n_total: int, avoid=()) -> None:
        """Add random filler objects (matching none of ``avoid``) up to ``n_total``."""
        while len(self.objects) < n_total:
            self.add(self.sample(avoid=avoid))

    def scene(self, free_cells=None) -> dict:
        g = self.world.grid
        taken = {c for c in self.cells if c is not None}
        pool = [c for c in (free_cells or [(r, q) for r in range(g) for q in range(g)]) if c not in taken]
        need = sum(c is None for c in self.cells)
        if need > len(pool):
            raise _Retry()
        chosen = iter(self.rng.sample(pool, need))
        cells = [c if c is not None else next(chosen) for c in self.cells]
        return S.make_scene(self.objects, cells, self.world.image_size, self.world.grid, self.world.style)


def _choose(rng: random.Random, weighted: list[tuple[object, float]]):
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for item, w in weighted:
        x -= w
        if x < 0:
            return item
    return weighted[-1][0]


def _desc_of(obj: dict, keys) -> dict:
    return {k: obj[k] for k in keys}


def _named_pair_ok(desc: dict, world: World, novel: bool) -> bool:
    """Training questions never name a held-out colour-shape pair (it would leak)."""
    if "color" in desc and "shape" in desc and not novel:
        return (desc["color"], desc["shape"]) not in set(world.heldout_pairs)
    return True


def _near_miss(b: _Builder, desc: dict, avoid) -> dict | None:
    """An object that differs from ``desc`` in exactly one named attribute."""
    if len(desc) < 2:
        return None
    key = b.rng.choice(sorted(desc))
    options = {"color": b.world.colors, "shape": b.world.shapes, "size": b.world.sizes}[key]
    others = [v for v in options if v != desc[key]]
    partial = {k: v for k, v in desc.items() if k != key}
    partial[key] = b.rng.choice(others)
    try:
        return b.sample(partial, avoid=avoid)
    except _Retry:
        return None


#: Kinds of singular references and their weights. Measured: a richer mix (sizes in
#: most references, "as many as" comparisons) slowed learning by thousands of steps.
REF_KEYS = {
    "any": [(("color", "shape"), 0.5), (("shape",), 0.25), (("color",), 0.25)],
    "no_color": [(("shape",), 0.8), (("size", "shape"), 0.2)],
    "no_shape": [(("color",), 0.8), (("size", "color"), 0.2)],
}


def _n_objects(b: _Builder, at_least: int) -> int:
    lo, hi = b.world.num_objects
    lo = max(lo, at_least)
    if lo > hi:
        raise _Retry()
    return b.rng.randint(lo, hi)


def _n_within(b: _Builder, room: int) -> int:
    """An object count from the world's range, capped by the room the layout leaves."""
    n = min(_n_objects(b, 2), room)
    if n < b.world.num_objects[0]:
        raise _Retry()
    return n


def _gen_attribute(b: _Builder):
    rng = b.rng
    attr = b.pick("attr", ["color", "shape"])
    keys = b.pick("keys", [k for k, wt in REF_KEYS["no_" + attr] for _ in range(round(wt * 20))])
    # draw the answer uniformly among the values the split can show, then an object
    pool = b.pairs(True if b.novel else False)
    value = b.pick("value", sorted({p[0] if attr == "color" else p[1] for p in pool}))
    target = b.sample({attr: value}, novel=True if b.novel else False)
    desc = _desc_of(target, keys)
    b.add(target)
    if rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, desc, avoid=[desc])
        if miss:
            b.add(miss)
    b.fill(_n_objects(b, len(b.objects)), avoid=[desc])
    return {"family": "attribute", "op": "query", "attr": attr, "obj": desc}, None


COUNT_KEYS = [((), 0.2), (("color",), 0.4), (("shape",), 0.4)]


def _gen_count(b: _Builder):
    w = b.world
    keys = b.pick("keys", [k for k, wt in COUNT_KEYS for _ in range(round(wt * 20))])
    lo, hi = w.num_objects
    if not keys:
        k = b.pick("k", range(lo, hi + 1))
        for i in range(k):
            b.add(b.sample(novel=True if (b.novel and i == 0) else False))
        return {"family": "count", "op": "count", "objs": {}}, str(k)
    k = b.pick("k", range(min(MAX_COUNT, hi) + 1))
    proto = b.sample(novel=True if (b.novel and k > 0) else False)
    desc = _desc_of(proto, keys)
    if not _named_pair_ok(desc, w, b.novel):
        raise _Retry()
    for i in range(k):
        b.add(proto if i == 0 else b.sample(desc))
    if b.novel and k == 0:
        b.add(b.sample(avoid=[desc], novel=True))
    b.fill(_n_objects(b, len(b.objects)), avoid=[desc])
    return {"family": "count", "op": "count", "objs": desc}, str(k)


EXIST_KEYS = [(("color", "shape"), 0.5), (("size", "color", "shape"), 0.1), (("color",), 0.2),
              (("shape",), 0.2)]  # fmt: skip


def _gen_exist(b: _Builder):
    rng, w = b.rng, b.world
    keys = b.pick("keys", [k for k, wt in EXIST_KEYS for _ in range(round(wt * 20))])
    yes = b.pick("yes", [True, False])
    proto = b.sample(novel=True if b.novel else False)
    desc = _desc_of(proto, keys)
    if not _named_pair_ok(desc, w, b.novel):
        raise _Retry()
    if yes:
        b.add(proto)
    elif b.novel:  # keep a novel object in every compositional image
        b.add(b.sample(avoid=[desc], novel=True))
    if rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, desc, avoid=[desc])
        if miss:
            b.add(miss)
    b.fill(_n_objects(b, len(b.objects)), avoid=[desc])
    return {"family": "exist", "op": "exist", "objs": desc}, "yes" if yes else "no"


def _unique_desc(b: _Builder, obj: dict, kind: str = "any") -> dict:
    desc = _desc_of(obj, _choose(b.rng, REF_KEYS[kind]))
    if not _named_pair_ok(desc, b.world, b.novel):
        raise _Retry()
    return desc


def _gen_spatial(b: _Builder):
    rng, w = b.rng, b.world
    op = b.pick("op", [o for o, wt in w.spatial_ops for _ in range(max(1, round(wt * 20)))])
    g = w.grid
    rel = b.pick("rel", RELATIONS)
    horizontal = rel in ("left", "right")
    if op == "locate":  # draw the answer (a region) uniformly, then an object there
        target = b.sample(novel=True if b.novel else False)
        desc = _unique_desc(b, target)
        pos = b.pick("pos", range(g * g))
        b.add(target, (pos // g, pos % g))
        if rng.random() < NEAR_MISS_RATE:
            miss = _near_miss(b, desc, avoid=[desc])
            if miss:
                b.add(miss)
        b.fill(_n_objects(b, len(b.objects)), avoid=[desc])
        return {"family": "spatial", "op": "locate", "obj": desc}, None
    if op == "query_at":  # an attribute of the object at a named place
        attr = b.pick("attr", ["color", "shape"])
        values = w.colors if attr == "color" else w.shapes
        target = b.sample({attr: b.pick("value", values)}, novel=True if b.novel else False)
        pos = b.pick("pos", range(g * g))
        b.add(target, (pos // g, pos % g))
        b.fill(_n_objects(b, 1))
        program = {"family": "spatial", "op": "query_at", "attr": attr, "pos": POSITIONS[pos]}
        return program, target[attr]
    if op == "relate":
        a = b.sample(novel=True if b.novel else False)
        bo = b.sample()
        da, db = _unique_desc(b, a), _unique_desc(b, bo)
        if matches(a, db) or matches(bo, da):
            raise _Retry()
        yes = b.pick("yes", [True, False])
        # two different lines on the relation's axis, in the order the answer needs
        lines = sorted(rng.sample(range(g), 2))
        first_is_a = (rel in ("left", "above")) == yes
        la, lb = lines if first_is_a else lines[::-1]
        oa, ob = rng.randrange(g), rng.randrange(g)  # free coordinate on the other axis
        ca, cb = ((oa, la), (ob, lb)) if horizontal else ((la, oa), (lb, ob))
        if ca == cb:
            raise _Retry()
        b.add(a, ca)
        b.add(bo, cb)
        if rng.random() < NEAR_MISS_RATE:
            miss = _near_miss(b, da, avoid=[da, db])
            if miss:
                b.add(miss)
        b.fill(_n_objects(b, len(b.objects)), avoid=[da, db])
        program = {"family": "spatial", "op": "relate", "a": da, "rel": rel, "b": db}
        return program, "yes" if yes else "no"
    attr = b.pick("attr", ["color", "shape"])
    anchor = b.sample(novel=True if (b.novel and rng.random() < 0.5) else False)
    db = _unique_desc(b, anchor)
    novel_target = True if (b.novel and not any(
        (anchor["color"], anchor["shape"]) == p for p in w.novel_pairs)) else False
    key = "color" if attr == "color" else "shape"
    values = w.colors if attr == "color" else w.shapes
    target = b.sample({key: b.pick("value", values)}, avoid=[db], novel=novel_target)
    cells = [(r, c) for r in range(g) for c in range(g)]
    if op == "query_related":
        ab = rng.choice([c for c in cells if _has_side(c, rel, g)])
        side = [c for c in cells if _on_side(c, ab, rel)]
        rest = [c for c in cells if c != ab and not _on_side(c, ab, rel)]
        b.add(anchor, ab)
        b.add(target, rng.choice(side))
        b.fill(_n_within(b, 2 + len(rest)), avoid=[db])
        program = {"family": "spatial", "op": "query_related", "attr": attr, "rel": rel, "b": db}
        return program, target[attr], rest
    # nearest
    ab = rng.choice(cells)
    dists = sorted({_cell_dist(c, ab) for c in cells if c != ab})
    d = rng.choice(dists[:-1])
    b.add(anchor, ab)
    b.add(target, rng.choice([c for c in cells if c != ab and _cell_dist(c, ab) == d]))
    rest = [c for c in cells if _cell_dist(c, ab) >= d + NEAREST_MARGIN + 1e-9]
    b.fill(_n_within(b, 2 + len(rest)), avoid=[db])
    program = {"family": "spatial", "op": "nearest", "attr": attr, "b": db}
    return program, target[attr], rest


def _has_side(cell, rel, g) -> bool:
    r, c = cell
    return {"left": c > 0, "right": c < g - 1, "above": r > 0, "below": r < g - 1}[rel]


def _on_side(cell, anchor, rel) -> bool:
    (r, c), (ra, ca) = cell, anchor
    return {"left": c < ca, "right": c > ca, "above": r < ra, "below": r > ra}[rel]


def _cell_dist(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _gen_compare(b: _Builder):
    rng, w = b.rng, b.world
    op = b.pick("op", COMPARE_OPS)
    key = b.pick("key", ["color", "shape"])
    values = w.colors if key == "color" else w.shapes
    vx, vy = rng.sample(list(values), 2)
    dx, dy = {key: vx}, {key: vy}
    hi = w.num_objects[1]
    yes = b.pick("yes", [True, False])
    pairs = [(i, j) for i in range(MAX_COUNT + 1) for j in range(MAX_COUNT + 1) if 1 <= i + j <= hi]
    truth = {"more": lambda i, j: i > j, "fewer": lambda i, j: i < j, "same": lambda i, j: i == j}[op]
    if op == "same":
        pairs = [(i, j) for i, j in pairs if (i == j) == yes and (i > 0 or not yes)]
    elif yes:
        pairs = [p for p in pairs if truth(*p)]
    else:  # false answers: half the time the counts are equal, so "not more" != "fewer"
        equal = rng.random() < 0.3
        pairs = [p for p in pairs if not truth(*p) and (p[0] == p[1]) == equal and p != (0, 0)]
    nx, ny = rng.choice(pairs)
    first_novel = b.novel
    for desc, n in ((dx, nx), (dy, ny)):
        for _ in range(n):
            b.add(b.sample(desc, novel=True if first_novel else False))
            first_novel = False
    if first_novel:
        b.add(b.sample(avoid=[dx, dy], novel=True))
    b.fill(_n_objects(b, len(b.objects)), avoid=[dx, dy])
    program = {"family": "compare", "op": op, "x": dx, "y": dy}
    return program, "yes" if yes else "no"


_GENERATORS = {
    "attribute": _gen_attribute,
    "count": _gen_count,
    "exist": _gen_exist,
    "spatial": _gen_spatial,
    "compare": _gen_compare,
}


def generate_question(
    rng: random.Random,
    family: str,
    world: World,
    novel: bool = False,
    heldout: bool = False,
    plan: dict | None = None,
) -> dict:
    """One example of a family: ``{"scene", "program", "instruction", "answer"}``.

    ``novel=True`` builds a compositional-split example (the question is about an object
    of a held-out colour-shape pair); ``heldout=True`` phrases it with a held-out phrasing.
    ``plan`` fixes some random choices, e.g. ``{"yes": True}`` for a yes/no answer.
    """
    if family not in _GENERATORS:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if novel and not world.novel_pairs:
        raise ValueError("heldout_pairs: the compositional split needs held-out pairs")
    given = dict(plan or {})
    plan = dict(given)
    for attempt in range(400):
        if attempt and attempt % 100 == 0:
            plan = dict(given)  # this plan may be impossible in this world; draw a new one
        b = _Builder(rng, world, novel, plan)
        try:
            out = _GENERATORS[family](b)
            program, target = out[0], out[1]
            scene = b.scene(out[2] if len(out) > 2 else None)
            got = answer(program, scene)
        except (_Retry, AmbiguityError):
            continue
        if target is not None and got != target:  # pragma: no cover - a generator bug
            raise RuntimeError(f"generator/answer mismatch on {program}: {got} != {target}")
        if novel and not any(
            (o["color"], o["shape"]) in set(world.novel_pairs) for o in scene["objects"]
        ):
            continue
        return {
            "scene": scene,
            "program": program,
            "instruction": phrase(program, rng, heldout),
            "answer": got,
        }
    raise RuntimeError(f"could not build a {family!r} question for {world}")  # pragma: no cover


# ---- captions, referring expressions, edits ------------------------------------------


def position_phrase(pos: str) -> str:
    """A region name as a place: "in the top left corner", "in the center", "at the top"."""
    if pos == "center":
        return "in the center"
    if pos in ("left", "right"):
        return f"on the {pos}"
    if pos in ("top", "bottom"):
        return f"at the {pos}"
    return f"in the {pos} corner"


def position_name(obj: dict, scene: dict) -> str:
    """Where an object is, in words: "in the top left corner", "in the center", ..."""
    return position_phrase(region(obj, scene))


def _reading_order(scene: dict) -> list[dict]:
    return sorted(scene["objects"], key=lambda o: (o["y"], o["x"]))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(scene: dict, detailed: bool = False) -> str:
    """A short caption (every object, reading order) or a detailed one (with positions)."""
    objs = _reading_order(scene)
    if not objs:
        return "An empty picture."
    full = [with_article(noun_phrase(_desc_of(o, ("size", "color", "shape")))) for o in objs]
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
    if list(style.get("background", S.DEFAULT_STYLE["background"])) == S.STYLES["dark"]["background"]:
        extra.append("The background is dark.")
    return " ".join([head, *parts, *extra])


def refers_to(program: dict, scene: dict) -> bool:
    """True when a referring expression (``op == "refer"``) is true of the scene."""
    for a in select(scene, program["a"]):
        if program.get("rel") is None:
            return True
        for b in select(scene, program["b"]):
            if b is not a and related(a, program["rel"], b):
                return True
    return False


def referring_expression(rng: random.Random, scene: dict, world: World) -> tuple[dict, str]:
    """A true, specific expression for retrieval: "a small red circle above a square"."""
    objs = scene["objects"]
    a = rng.choice(objs)
    da = _desc_of(a, ("size", "color", "shape") if rng.random() < 0.5 else ("color", "shape"))
    partners = [o for o in objs if o is not a]
    if partners and rng.random() < 0.7:
        bo = rng.choice(partners)
        options = [r for r in RELATIONS if related(a, r, bo)]
        rel = rng.choice(options)
        db = _desc_of(bo, ("color", "shape") if rng.random() < 0.5 else ("shape",))
        words = rng.choice(RELATION_WORDS[rel])
        text = f"{with_article(noun_phrase(da))} {words} {with_article(noun_phrase(db))}"
        return {"op": "refer", "a": da, "rel": rel, "b": db}, text
    return {"op": "refer", "a": da, "rel": None, "b": None}, with_article(noun_phrase(da))


def unique_descriptions(scene: dict, index: int, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Every description (attribute subset) that names object ``index`` and no other."""
    obj = scene["objects"][index]
    out = []
    for keys in (("shape",), ("color",), ("color", "shape"), ("size", "shape"),
                 ("size", "color"), ("size", "color", "shape")):  # fmt: skip
        if any(k in exclude for k in keys):
            continue
        d = _desc_of(obj, keys)
        if len(select(scene, d)) == 1:
            out.append(d)
    return out


EDIT_OPS: tuple[str, ...] = ("recolor", "remove", "move", "style")


def generate_edit(
    rng: random.Random, world: World, novel: bool = False, heldout: bool = False
) -> dict:
    """An edit example: ``{"scene", "target_scene", "program", "instruction"}``."""
    for _ in range(200):
        b = _Builder(rng, world, novel)
        try:
            b.fill(_n_objects(b, 2))
            if novel:
                b.objects[0] = b.sample(novel=True)
            scene = b.scene()
        except _Retry:
            continue
        op = rng.choice(EDIT_OPS)
        if op == "style":
            style = rng.choice([s for s in S.STYLES if s != "plain"])
            program = {"op": "style", "style": style}
            text = _fmt(rng, f"style_{style}", heldout)
            return {"scene": scene, "target_scene": S.restyle(scene, style),
                    "program": program, "instruction": text}  # fmt: skip
        index = rng.randrange(len(scene["objects"]))
        descs = unique_descriptions(scene, index)
        descs = [d for d in descs if _named_pair_ok(d, world, novel)]
        if not descs:
            continue
        desc = rng.choice(descs)
        obj = scene["objects"][index]
        if op == "recolor":
            allowed = {c for c, s in b.pairs(None) if s == obj["shape"] and c != obj["color"]}
            if not allowed:
                continue
            color = rng.choice(sorted(allowed))
            target = S.recolor(scene, index, color)
            program = {"op": "recolor", "obj": desc, "color": color}
            text = _fmt(rng, "recolor", heldout, obj=noun_phrase(desc), color=color)
        elif op == "remove":
            if len(scene["objects"]) < 2:
                continue
            target = S.remove(scene, index)
            program = {"op": "remove", "obj": desc}
            text = _fmt(rng, "remove", heldout, obj=noun_phrase(desc))
        else:
            dirs = [d for d in S.DIRECTIONS if S.can_move(scene, index, d)]
            if not dirs:
                continue
            direction = rng.choice(dirs)
            target = S.move(scene, index, direction)
            program = {"op": "move", "obj": desc, "direction": direction}
            words = rng.choice(MOVE_WORDS[direction])
            text = _fmt(rng, "move", heldout, obj=noun_phrase(desc), dir=words)
        return {"scene": scene, "target_scene": target, "program": program, "instruction": text}
    raise RuntimeError("could not build an edit example")  # pragma: no cover


def apply_edit(program: dict, scene: dict) -> dict:
    """Execute an edit program on a scene (the reference for edit models)."""
    op = program["op"]
    if op == "style":
        return S.restyle(scene, program["style"])
    obj = unique(scene, program["obj"])
    index = next(i for i, o in enumerate(scene["objects"]) if o is obj)
    if op == "recolor":
        return S.recolor(scene, index, program["color"])
    if op == "remove":
        return S.remove(scene, index)
    if op == "move":
        return S.move(scene, index, program["direction"])
    raise ValueError(f"program: unknown edit op {op!r}")


# ---- augmentation and labels ----------------------------------------------------------


def label_survives(program: dict, before: dict, after: dict) -> bool:
    """True when a question has the same single answer on both annotations."""
    try:
        return answer(program, after) == answer(program, before)
    except AmbiguityError:  # the description no longer names one object
        return False


def label_breakage(examples, name: str, seed: int = 0) -> dict[str, float]:
    """Per family, the fraction of examples whose answer an augmentation changes.

    ``examples`` are dicts with ``scene`` and ``program`` (dicts or JSON strings).
    """
    import json

    broken: dict[str, list[bool]] = {}
    for i, ex in enumerate(examples):
        scene = ex["scene"] if isinstance(ex["scene"], dict) else json.loads(ex["scene"])
        program = ex["program"] if isinstance(ex["program"], dict) else json.loads(ex["program"])
        _, after = S.augment(scene, name, random.Random(f"breakage:{seed}:{name}:{i}"))
        broken.setdefault(program["family"], []).append(not label_survives(program, scene, after))
    return {f: sum(v) / len(v) for f, v in sorted(broken.items())}


_LR = {"left": "right", "right": "left"}


def flip_left_right(text: str) -> str:
    """Swap the words "left" and "right" (what a horizontal flip does to the meaning)."""
    import re

    return re.sub(r"\b(left|right)\b", lambda m: _LR[m.group(1)], text)
