"""Two-frame clips of the world: a scene, the same scene a moment later, and what changed.

CLEVR-Change (Park et al. 2019, "Robust Change Captioning") pairs two images and asks
what changed; some pairs change only in ways that do not matter (the camera, the light),
so a model has to tell a real change from a nuisance one. Here the real change is one of
the world's move edits (:func:`~course_utils.world.scenes.move`: one object, one cell up,
down, left or right), and the nuisances are rendering changes of the second frame (pixel
noise, a tinted background) made through the scene's style, so no object changes.

:func:`generate_clips` returns the clips as dicts (both scenes, the moved object's colour,
shape and size, the direction, a question and its answer in words); :func:`clip_tensors`
turns them into ``frames`` ``(N, 2, 3, H, W)``, normalised like ``encoding``'s
``pixel_values``, and ``labels`` ``(N, 3)``: colour, shape and direction ids in
:data:`COLOR_LABELS`, :data:`SHAPE_LABELS` and :data:`DIRECTION_LABELS`, each of which ends
with :data:`NONE` (the label of every head when nothing moved).
"""

from __future__ import annotations

import random

from course_utils.world import scenes
from course_utils.world.encoding import normalize_images

#: The label of every head when nothing moved.
NONE = "none"
#: The one question every clip asks.
QUESTION = "Which object moved, and where?"
#: The answer of a clip where nothing moved.
NOTHING_MOVED = "nothing moved"
#: Label names of the three heads, in id order; the last of each is :data:`NONE`.
COLOR_LABELS: tuple[str, ...] = (*scenes.COLORS, NONE)
SHAPE_LABELS: tuple[str, ...] = (*scenes.SHAPES, NONE)
DIRECTION_LABELS: tuple[str, ...] = (*scenes.DIRECTIONS, NONE)
#: The columns of ``labels`` in :func:`clip_tensors`.
LABEL_COLUMNS: tuple[str, ...] = ("color", "shape", "direction")
#: Rendering changes of a second frame that leave every object as it was.
NUISANCES: tuple[str, ...] = ("noise", "tint")
#: Standard deviation, in grey levels, of the ``noise`` nuisance (``test_shift`` uses 14).
NOISE_LEVEL = 12.0
#: Backgrounds of the ``tint`` nuisance (the plain one is (225, 225, 225)).
TINTS: tuple[tuple[int, int, int], ...] = (
    (205, 215, 185), (215, 205, 225), (200, 220, 228), (232, 215, 195),
)  # fmt: skip


def _check_share(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def with_nuisance(scene: dict, kind: str, rng: random.Random) -> dict:
    """The scene drawn with a rendering change (``"noise"`` or ``"tint"``, see
    :data:`NUISANCES`); its objects are exactly those of ``scene``.

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    if kind not in NUISANCES:
        raise ValueError(f"kind: expected one of {list(NUISANCES)}, got {kind!r}")
    out = scenes.copy_scene(scene)
    if kind == "noise":
        out["style"] = {**out["style"], "noise": NOISE_LEVEL, "noise_seed": rng.getrandbits(32)}
    else:
        out["style"] = {**out["style"], "background": list(rng.choice(TINTS))}
    return out


def moved_phrase(scene: dict, index: int) -> str | None:
    """The shortest words that name object ``index`` alone: "red circle", or with its size
    ("small red circle"); None when even colour, shape and size name several objects.

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    obj = scene["objects"][index]
    for keys in (("color", "shape"), ("size", "color", "shape")):
        same = [o for o in scene["objects"] if all(o[k] == obj[k] for k in keys)]
        if len(same) == 1:
            return " ".join(obj[k] for k in keys)
    return None


def answer_text(color: str | None, shape: str | None, direction: str,
                size: str | None = None) -> str:
    """A clip's answer in words: "the red circle moved left", or :data:`NOTHING_MOVED`.

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    if direction == NONE:
        return NOTHING_MOVED
    return f"the {' '.join(w for w in (size, color, shape) if w)} moved {direction}"


def _moved_clip(rng: random.Random, scene: dict) -> dict | None:
    """Move one object one cell (direction drawn first, so directions stay balanced)."""
    direction = rng.choice(list(scenes.DIRECTIONS))
    movable = [i for i in range(len(scene["objects"])) if scenes.can_move(scene, i, direction)]
    if not movable:
        return None
    index = rng.choice(movable)
    words = moved_phrase(scene, index)
    if words is None:
        return None
    obj = scene["objects"][index]
    return {"after": scenes.move(scene, index, direction), "index": index, "color": obj["color"],
            "shape": obj["shape"], "size": obj["size"], "direction": direction,
            "answer": f"the {words} moved {direction}"}  # fmt: skip


def one_clip(rng: random.Random, distractor: bool, nuisance: float, num_objects=(2, 5),
             image_size: int = scenes.IMAGE_SIZE, grid: int = scenes.GRID) -> dict:
    """One clip (see :func:`generate_clips`): a move, or with ``distractor`` a rendering
    change alone; a move's second frame gets a nuisance too with probability ``nuisance``.

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    for _ in range(100):
        before = scenes.random_scene(rng, num_objects, image_size, grid)
        if distractor:
            change = {"after": before, "index": None, "color": None, "shape": None, "size": None,
                      "direction": NONE, "answer": NOTHING_MOVED}  # fmt: skip
        else:
            change = _moved_clip(rng, before)
            if change is None:
                continue
        kind = rng.choice(NUISANCES) if distractor or rng.random() < nuisance else None
        if kind is not None:
            change["after"] = with_nuisance(change["after"], kind, rng)
        return {"before": before, **change, "nuisance": kind, "question": QUESTION}
    raise RuntimeError("could not build a clip: is the grid full?")  # pragma: no cover


def generate_clips(n: int, seed: int = 0, distractors: float = 0.0, nuisance: float = 0.5,
                   num_objects=(2, 5), image_size: int = scenes.IMAGE_SIZE,
                   grid: int = scenes.GRID) -> list[dict]:
    """``n`` two-frame clips; clip ``i`` depends only on ``(seed, i)`` and the arguments.

    Each clip is a dict: ``before`` and ``after`` (scenes), ``index`` (the moved object's
    index in both, or None), its ``color``, ``shape`` and ``size`` (None when nothing moved),
    ``direction`` (a key of ``scenes.DIRECTIONS``, or :data:`NONE`), ``nuisance`` (a
    rendering change of the second frame, :data:`NUISANCES`, or None), ``question`` and
    ``answer`` ("the red circle moved left", with the size when colour and shape name two
    objects; "nothing moved"). A share ``distractors`` of the clips (drawn per clip) change
    only the rendering: CLEVR-Change's distractors. So that a nuisance alone never says
    "nothing moved", a share ``nuisance`` of the moves carry one as well.

    Built in chapter 14, "6. Beyond still images: two frames and a change".
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    distractors = _check_share(distractors, "distractors")
    nuisance = _check_share(nuisance, "nuisance")
    scenes.check_layout(image_size, grid)
    lo, hi = scenes.check_num_objects(num_objects, grid)
    if hi >= grid * grid:
        raise ValueError(f"num_objects: at most {grid * grid - 1} objects leave a free cell "
                         f"to move into, got {num_objects!r}")
    out = []
    for i in range(n):
        rng = random.Random(f"clip:{seed}:{i}")
        distractor = rng.random() < distractors
        out.append(one_clip(rng, distractor, nuisance, (lo, hi), image_size, grid))
    return out


def label_ids(clip: dict) -> tuple[int, int, int]:
    """``(colour, shape, direction)`` ids of a clip (:data:`NONE` when nothing moved).

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    return (COLOR_LABELS.index(clip["color"] or NONE), SHAPE_LABELS.index(clip["shape"] or NONE),
            DIRECTION_LABELS.index(clip["direction"]))  # fmt: skip


def decode_labels(labels) -> list[dict]:
    """``labels`` ``(N, 3)`` back to ``{"color", "shape", "direction"}`` names, one per row
    (the inverse of :func:`label_ids`; ``None`` for a :data:`NONE` colour or shape).

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    rows = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    out = []
    for row in rows:
        if len(row) != 3:
            raise ValueError(f"labels must be (N, 3): colour, shape, direction ids; "
                             f"got a row {row!r}")
        names = (COLOR_LABELS, SHAPE_LABELS, DIRECTION_LABELS)
        c, s, d = (column[i] for column, i in zip(names, row))
        out.append({"color": None if c == NONE else c, "shape": None if s == NONE else s,
                    "direction": d})  # fmt: skip
    return out


def label_sizes() -> dict:
    """The classes of each head, :data:`NONE` included: what a change reader is sized for
    (``video.VideoConfig(**clips.label_sizes())``).

    Used in chapter 14, "6. Beyond still images: two frames and a change"."""
    return {"num_colors": len(COLOR_LABELS), "num_shapes": len(SHAPE_LABELS),
            "num_directions": len(DIRECTION_LABELS)}  # fmt: skip


def clip_tensors(clips: list[dict]) -> dict:
    """Clips as tensors: ``frames`` ``(N, 2, 3, H, W)`` (before, after; normalised as
    ``encoding.normalize_images`` does) and ``labels`` ``(N, 3)``, the colour, shape and
    direction ids of :func:`label_ids` (columns :data:`LABEL_COLUMNS`).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    import numpy as np
    import torch

    clips = list(clips)
    if not clips:
        raise ValueError("clips must be a non-empty list of clips (generate_clips)")
    size = clips[0]["before"]["width"]
    pixels = np.stack([np.asarray(scenes.render(c[k])) for c in clips for k in ("before", "after")])
    frames = normalize_images(pixels).view(len(clips), 2, 3, size, size)  # (N, 2, 3, H, W)
    labels = torch.tensor([label_ids(c) for c in clips], dtype=torch.long)  # (N, 3)
    return {"frames": frames, "labels": labels}
