"""Question-first scene construction: draw the answer, then build a scene where it is true.

:func:`generate_question` returns a scene, a program, its sentence and its answer, with
exactly one correct answer (:func:`~course_utils.world.programs.answer` refuses
ambiguous descriptions). Chapter 06, "2. Questions with exactly one answer", explains why
the answer comes first.
"""

from __future__ import annotations

import math
import random

from course_utils.world import scenes
from course_utils.world.grammar import LANGUAGES, phrase
from course_utils.world.programs import (
    COMPARE_OPS,
    FAMILIES,
    MAX_COUNT,
    NEAR_MISS_RATE,
    NEAREST_MARGIN,
    POSITIONS,
    RELATIONS,
    AmbiguityError,
    Retry,
    World,
    answer,
    description_of,
    matches,
)

# ---- question-first scene construction ----------------------------------------------


class SceneBuilder:
    """Collects objects (attributes first, cells later) under a world's constraints.

    Used in chapter 06, "2. Questions with exactly one answer"."""

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
        raise Retry()

    def object_count(self, at_least: int) -> int:
        """A random number of objects for the scene, at least ``at_least``, within the world's range."""
        lo, hi = self.world.num_objects
        lo = max(lo, at_least)
        if lo > hi:
            raise Retry()
        return self.rng.randint(lo, hi)

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
            raise Retry()
        chosen = iter(self.rng.sample(pool, need))
        cells = [c if c is not None else next(chosen) for c in self.cells]
        return scenes.make_scene(self.objects, cells, self.world.image_size, self.world.grid, self.world.style)


def random_scene(rng: random.Random, world: World, novel: bool = False) -> dict:
    """A random scene of the world (the first object of a held-out pair when ``novel``):
    the scenes that captions and retrieval queries describe.

    Used in chapter 07, "1. One space for images and captions"."""
    b = SceneBuilder(rng, world, novel)
    while True:
        try:
            b.objects, b.cells = [], []
            b.fill(b.object_count(1))
            if novel:
                b.objects[0] = b.sample(novel=True)
            return b.scene()
        except Retry:  # pragma: no cover - only with tiny worlds
            continue


def _choose(rng: random.Random, weighted: list[tuple[object, float]]):
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for item, w in weighted:
        x -= w
        if x < 0:
            return item
    return weighted[-1][0]



def named_pair_ok(desc: dict, world: World, novel: bool) -> bool:
    """Training questions never name a held-out colour-shape pair (it would leak).

    Used in chapter 06, "2. Questions with exactly one answer"."""
    if "color" in desc and "shape" in desc and not novel:
        return (desc["color"], desc["shape"]) not in set(world.heldout_pairs)
    return True


def _near_miss(b: SceneBuilder, desc: dict, avoid) -> dict | None:
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
    except Retry:
        return None


#: Kinds of singular references and their weights. Measured: a richer mix (sizes in
#: most references, "as many as" comparisons) slowed learning by thousands of steps.
REF_KEYS = {
    "any": [(("color", "shape"), 0.5), (("shape",), 0.25), (("color",), 0.25)],
    "no_color": [(("shape",), 0.8), (("size", "shape"), 0.2)],
    "no_shape": [(("color",), 0.8), (("size", "color"), 0.2)],
}


def _n_within(b: SceneBuilder, room: int) -> int:
    """An object count from the world's range, capped by the room the layout leaves."""
    n = min(b.object_count(2), room)
    if n < b.world.num_objects[0]:
        raise Retry()
    return n


def _gen_attribute(b: SceneBuilder):
    rng = b.rng
    attr = b.pick("attr", ["color", "shape"])
    keys = b.pick("keys", [k for k, wt in REF_KEYS["no_" + attr] for _ in range(round(wt * 20))])
    # draw the answer uniformly among the values the split can show, then an object
    pool = b.pairs(True if b.novel else False)
    value = b.pick("value", sorted({p[0] if attr == "color" else p[1] for p in pool}))
    target = b.sample({attr: value}, novel=True if b.novel else False)
    desc = description_of(target, keys)
    b.add(target)
    if rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, desc, avoid=[desc])
        if miss:
            b.add(miss)
    b.fill(b.object_count(len(b.objects)), avoid=[desc])
    return {"family": "attribute", "op": "query", "attr": attr, "obj": desc}, None


COUNT_KEYS = [((), 0.2), (("color",), 0.4), (("shape",), 0.4)]


def _gen_count(b: SceneBuilder):
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
    desc = description_of(proto, keys)
    if not named_pair_ok(desc, w, b.novel):
        raise Retry()
    for i in range(k):
        b.add(proto if i == 0 else b.sample(desc))
    if b.novel and k == 0:
        b.add(b.sample(avoid=[desc], novel=True))
    b.fill(b.object_count(len(b.objects)), avoid=[desc])
    return {"family": "count", "op": "count", "objs": desc}, str(k)


EXIST_KEYS = [(("color", "shape"), 0.5), (("size", "color", "shape"), 0.1), (("color",), 0.2),
              (("shape",), 0.2)]  # fmt: skip


def _gen_exist(b: SceneBuilder):
    rng, w = b.rng, b.world
    keys = b.pick("keys", [k for k, wt in EXIST_KEYS for _ in range(round(wt * 20))])
    yes = b.pick("yes", [True, False])
    proto = b.sample(novel=True if b.novel else False)
    desc = description_of(proto, keys)
    if not named_pair_ok(desc, w, b.novel):
        raise Retry()
    if yes:
        b.add(proto)
    elif b.novel:  # keep a novel object in every compositional image
        b.add(b.sample(avoid=[desc], novel=True))
    if rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, desc, avoid=[desc])
        if miss:
            b.add(miss)
    b.fill(b.object_count(len(b.objects)), avoid=[desc])
    return {"family": "exist", "op": "exist", "objs": desc}, "yes" if yes else "no"


def _unique_desc(b: SceneBuilder, obj: dict, kind: str = "any") -> dict:
    desc = description_of(obj, _choose(b.rng, REF_KEYS[kind]))
    if not named_pair_ok(desc, b.world, b.novel):
        raise Retry()
    return desc


def _gen_spatial(b: SceneBuilder):
    w = b.world
    op = b.pick("op", [o for o, wt in w.spatial_ops for _ in range(max(1, round(wt * 20)))])
    rel = b.pick("rel", RELATIONS)
    if op == "locate":
        return _spatial_locate(b)
    if op == "query_at":
        return _spatial_query_at(b)
    if op == "relate":
        return _spatial_relate(b, rel)
    return _spatial_anchored(b, op, rel)  # query_related, nearest


def _spatial_locate(b: SceneBuilder):
    """``locate`` ("Where is X?"): draw the answer (a region) uniformly, then an object there."""
    g = b.world.grid
    target = b.sample(novel=True if b.novel else False)
    desc = _unique_desc(b, target)
    pos = b.pick("pos", range(g * g))
    b.add(target, (pos // g, pos % g))
    if b.rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, desc, avoid=[desc])
        if miss:
            b.add(miss)
    b.fill(b.object_count(len(b.objects)), avoid=[desc])
    return {"family": "spatial", "op": "locate", "obj": desc}, None


def _spatial_query_at(b: SceneBuilder):
    """``query_at``: an attribute of the object at a named place."""
    w = b.world
    g = w.grid
    attr = b.pick("attr", ["color", "shape"])
    values = w.colors if attr == "color" else w.shapes
    target = b.sample({attr: b.pick("value", values)}, novel=True if b.novel else False)
    pos = b.pick("pos", range(g * g))
    b.add(target, (pos // g, pos % g))
    b.fill(b.object_count(1))
    program = {"family": "spatial", "op": "query_at", "attr": attr, "pos": POSITIONS[pos]}
    return program, target[attr]


def _spatial_relate(b: SceneBuilder, rel: str):
    """``relate`` ("Is A left of B?", yes/no): two objects on two lines of the relation's axis."""
    rng, g = b.rng, b.world.grid
    a = b.sample(novel=True if b.novel else False)
    bo = b.sample()
    da, db = _unique_desc(b, a), _unique_desc(b, bo)
    if matches(a, db) or matches(bo, da):
        raise Retry()
    yes = b.pick("yes", [True, False])
    # two different lines on the relation's axis, in the order the answer needs
    lines = sorted(rng.sample(range(g), 2))
    first_is_a = (rel in ("left", "above")) == yes
    la, lb = lines if first_is_a else lines[::-1]
    oa, ob = rng.randrange(g), rng.randrange(g)  # free coordinate on the other axis
    horizontal = rel in ("left", "right")
    ca, cb = ((oa, la), (ob, lb)) if horizontal else ((la, oa), (lb, ob))
    if ca == cb:
        raise Retry()
    b.add(a, ca)
    b.add(bo, cb)
    if rng.random() < NEAR_MISS_RATE:
        miss = _near_miss(b, da, avoid=[da, db])
        if miss:
            b.add(miss)
    b.fill(b.object_count(len(b.objects)), avoid=[da, db])
    program = {"family": "spatial", "op": "relate", "a": da, "rel": rel, "b": db}
    return program, "yes" if yes else "no"


def _spatial_anchored(b: SceneBuilder, op: str, rel: str):
    """An attribute of the object ``rel`` of an anchor (``query_related``) or nearest to it
    (``nearest``); also returns the cells left free for the other objects."""
    rng, w = b.rng, b.world
    attr = b.pick("attr", ["color", "shape"])
    anchor = b.sample(novel=True if (b.novel and rng.random() < 0.5) else False)
    db = _unique_desc(b, anchor)
    novel_target = True if (b.novel and not any(
        (anchor["color"], anchor["shape"]) == p for p in w.novel_pairs)) else False
    key = "color" if attr == "color" else "shape"
    values = w.colors if attr == "color" else w.shapes
    target = b.sample({key: b.pick("value", values)}, avoid=[db], novel=novel_target)
    cells = [(r, c) for r in range(w.grid) for c in range(w.grid)]
    if op == "query_related":
        rest = _place_related(b, anchor, target, rel, cells)
        program = {"family": "spatial", "op": "query_related", "attr": attr, "rel": rel, "b": db}
    else:
        rest = _place_nearest(b, anchor, target, cells)
        program = {"family": "spatial", "op": "nearest", "attr": attr, "b": db}
    b.fill(_n_within(b, 2 + len(rest)), avoid=[db])
    return program, target[attr], rest


def _place_related(b: SceneBuilder, anchor: dict, target: dict, rel: str, cells) -> list:
    """Anchor in a cell with a ``rel`` side, target on that side; returns the cells where a
    filler cannot become a second answer."""
    g = b.world.grid
    ab = b.rng.choice([c for c in cells if _has_side(c, rel, g)])
    side = [c for c in cells if _on_side(c, ab, rel)]
    rest = [c for c in cells if c != ab and not _on_side(c, ab, rel)]
    b.add(anchor, ab)
    b.add(target, b.rng.choice(side))
    return rest


def _place_nearest(b: SceneBuilder, anchor: dict, target: dict, cells) -> list:
    """Anchor anywhere, target at a random distance short of the farthest; returns the cells
    clearly farther than the target (by ``NEAREST_MARGIN``)."""
    rng = b.rng
    ab = rng.choice(cells)
    dists = sorted({_cell_dist(c, ab) for c in cells if c != ab})
    d = rng.choice(dists[:-1])
    b.add(anchor, ab)
    b.add(target, rng.choice([c for c in cells if c != ab and _cell_dist(c, ab) == d]))
    return [c for c in cells if _cell_dist(c, ab) >= d + NEAREST_MARGIN + 1e-9]


def _has_side(cell, rel, g) -> bool:
    r, c = cell
    return {"left": c > 0, "right": c < g - 1, "above": r > 0, "below": r < g - 1}[rel]


def _on_side(cell, anchor, rel) -> bool:
    (r, c), (ra, ca) = cell, anchor
    return {"left": c < ca, "right": c > ca, "above": r < ra, "below": r > ra}[rel]


def _cell_dist(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _gen_compare(b: SceneBuilder):
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
    b.fill(b.object_count(len(b.objects)), avoid=[dx, dy])
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
    language: str = "train",
    plan: dict | None = None,
) -> dict:
    """One example of a family: ``{"scene", "program", "instruction", "answer"}``.

    ``novel=True`` builds a compositional-split example (the question is about an object
    of a held-out colour-shape pair); ``language`` is one of the grammar's
    :data:`~course_utils.world.grammar.LANGUAGES` ("train", or a held-out layer:
    "templates", "frames", "synonyms").
    ``plan`` fixes some random choices, e.g. ``{"yes": True}`` for a yes/no answer.

    Used in chapter 06, "2. Questions with exactly one answer".
    """
    if family not in _GENERATORS:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")
    if novel and not world.novel_pairs:
        raise ValueError("heldout_pairs: the compositional split needs held-out pairs")
    given = dict(plan or {})
    plan = dict(given)
    for attempt in range(400):
        if attempt and attempt % 100 == 0:
            plan = dict(given)  # this plan may be impossible in this world; draw a new one
        b = SceneBuilder(rng, world, novel, plan)
        try:
            out = _GENERATORS[family](b)
            program, target = out[0], out[1]
            scene = b.scene(out[2] if len(out) > 2 else None)
            got = answer(program, scene)
        except (Retry, AmbiguityError):
            continue
        if target is not None and got != target:  # pragma: no cover - a generator bug
            raise RuntimeError(f"generator/answer mismatch on {program}: {got} != {target}")
        if novel and not any(
            (o["color"], o["shape"]) in set(world.novel_pairs) for o in scene["objects"]
        ):
            continue
        said: dict = {}
        text = phrase(program, rng, language, world.num_templates, record=said)
        program["phrasing"] = said  # which core and frame: evaluation may group by them
        return {"scene": scene, "program": program, "instruction": text, "answer": got}
    raise RuntimeError(f"could not build a {family!r} question for {world}")  # pragma: no cover


