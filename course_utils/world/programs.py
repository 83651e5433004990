"""What a question means: the world's configuration, question programs and their answers.

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
text alone much above chance. The sentence comes from the grammar of
:mod:`course_utils.world.grammar`, whose held-out cores, frames and synonyms (never used by
the training splits) make the ``test_paraphrase``, ``test_frames`` and ``test_synonyms`` splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from course_utils.world import scenes
from course_utils.world.phrasings import noun_phrase

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


class AmbiguityError(ValueError):
    """A description that must identify one object identifies none or several.

    Used in chapter 06, "2. Questions with exactly one answer"."""


class Retry(Exception):
    """This random attempt cannot satisfy its constraints; draw again.

    Used in chapter 06, "2. Questions with exactly one answer"."""


# ---- the world's configuration -------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Everything that fixes the distribution of scenes and questions.

    Used in chapter 06, "1. A world where we know the truth"."""

    image_size: int = scenes.IMAGE_SIZE
    grid: int = scenes.GRID
    colors: tuple[str, ...] = tuple(scenes.COLORS)
    shapes: tuple[str, ...] = scenes.SHAPES
    sizes: tuple[str, ...] = tuple(scenes.SIZES)
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
    #: How many of each question group's training cores the training language uses (None:
    #: all): the number of training templates of chapter 09's FLAN curve.
    num_templates: int | None = None

    def __post_init__(self):
        scenes.check_layout(self.image_size, self.grid)
        set_ = object.__setattr__
        set_(self, "colors", scenes.check_names(self.colors, tuple(scenes.COLORS), "colors"))
        set_(self, "shapes", scenes.check_names(self.shapes, scenes.SHAPES, "shapes"))
        set_(self, "sizes", scenes.check_names(self.sizes, tuple(scenes.SIZES), "sizes"))
        set_(self, "families", scenes.check_names(self.families, FAMILIES, "families"))
        set_(self, "num_objects", scenes.check_num_objects(self.num_objects, self.grid))
        pairs = tuple(tuple(p) for p in self.heldout_pairs)
        for color, shape in pairs:
            if color not in scenes.COLORS or shape not in scenes.SHAPES:
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
        k = self.num_templates
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"num_templates must be None or a positive int, got {k!r}")

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
            "num_templates": self.num_templates,
        }


def answer_vocab() -> list[str]:
    """Every answer a question can have, in a fixed order (label ``i`` is ``vocab[i]``).

    It does not depend on the arguments of a dataset, so label ids mean the same thing
    in every chapter.

    Used in chapter 05, "1. The source's model, as written".
    """
    counts = [str(i) for i in range(10)]
    return ["no", "yes", *counts, *scenes.COLORS, *scenes.SHAPES, *scenes.SIZES, *POSITIONS]


# ---- descriptions and the answer logic -------------------------------------------------


def description_of(obj: dict, keys) -> dict:
    """The description of ``obj`` by the attributes ``keys``: ``{"color": "red", "shape": "circle"}``.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return {k: obj[k] for k in keys}


def matches(obj: dict, desc: dict) -> bool:
    """True when ``obj`` has every attribute in ``desc`` (``{}`` matches every object).

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return all(obj[k] == v for k, v in desc.items())


def select(scene: dict, desc: dict) -> list[dict]:
    """The objects of ``scene`` that ``desc`` matches (see :func:`matches`), in scene order.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return [o for o in scene["objects"] if matches(o, desc)]


def unique(scene: dict, desc: dict) -> dict:
    """The one object ``desc`` describes; ``AmbiguityError`` if none or several.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    found = select(scene, desc)
    if len(found) != 1:
        raise AmbiguityError(f"{noun_phrase(desc)!r} describes {len(found)} objects, not one")
    return found[0]


def related(a: dict, rel: str, b: dict) -> bool:
    """``a`` is ``rel`` (left/right/above/below) of ``b``, comparing centres in pixels.

    Used in chapter 06, "2. Questions with exactly one answer"."""
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
    """Which of the nine regions (thirds of the image on each axis) holds the object.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    col = min(2, int(3 * obj["x"] / scene["width"]))
    row = min(2, int(3 * obj["y"] / scene["height"]))
    return POSITIONS[3 * row + col]


def distance(a: dict, b: dict) -> float:
    """The distance in pixels between the centres of two objects.

    Used in chapter 06, "2. Questions with exactly one answer"."""
    return math.hypot(a["x"] - b["x"], a["y"] - b["y"])


#: Nearest-object questions need the nearest object closer than the runner-up by this
#: fraction of a grid cell, so no one has to judge a near tie.
NEAREST_MARGIN = 0.3


def answer(program: dict, scene: dict) -> str:
    """Execute a question program on a scene and return the answer string.

    Used in chapter 06, "2. Questions with exactly one answer"."""
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


