"""Foils: true descriptions of a scene beside the same words made false.

A contrastive encoder that reads a caption as a bag of words gives "a purple diamond above
a green cross" and "a green cross above a purple diamond" the same score (Yuksekgonul et
al. 2023). A foil keeps every word and changes what they mean, so telling them apart is
the test, and putting foils in the batch is the fix (NegCLIP):

    swapped_caption(scene, rng)   two objects trade colours (or sizes): same words, false
    relation_pair(scene, rng)     "A above B" (true) and "B above A" (false)
    scene_overlap(a, b)           how much two scenes share, for graded relevance

Every foil is checked false of its scene: a swap that happens to describe the scene again
(two objects that trade identical attributes) is never returned.
"""

from __future__ import annotations

import random

from course_utils.world.descriptions import caption, refers_to
from course_utils.world.phrasings import RELATION_WORDS, noun_phrase, with_article
from course_utils.world.programs import RELATIONS, description_of, related
from course_utils.world.scenes import copy_scene

#: The attributes a swap may trade between two objects.
SWAP_KEYS: tuple[str, ...] = ("color", "size")


def _check_scene(scene) -> None:
    if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list):
        raise ValueError(f"scene must be a scene dict with an 'objects' list, got {type(scene).__name__}")


def swapped_caption(scene: dict, rng: random.Random, detailed: bool = False,
                    key: str | None = None) -> str | None:
    """The scene's caption after two objects trade an attribute (``key``: colour or size,
    default: colour when possible), or ``None`` when no swap changes the caption.

    Two objects are only swapped if they differ in shape and in the traded attribute, so the
    foil has exactly the caption's words in another binding: "a large purple diamond, a small
    green square" becomes "a large green diamond, a small purple square".

    Used in chapter 11, "5. Bags of words, measured"."""
    _check_scene(scene)
    if key is not None and key not in SWAP_KEYS:
        raise ValueError(f"key must be one of {SWAP_KEYS} or None, got {key!r}")
    objs = scene["objects"]
    true = caption(scene, detailed)
    for k in (key,) if key else SWAP_KEYS:
        pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
                 if objs[i][k] != objs[j][k] and objs[i]["shape"] != objs[j]["shape"]]  # fmt: skip
        rng.shuffle(pairs)
        for i, j in pairs:
            foil = copy_scene(scene)
            a, b = foil["objects"][i], foil["objects"][j]
            a[k], b[k] = b[k], a[k]
            text = caption(foil, detailed)
            if text != true:
                return text
    return None


def relation_text(a: dict, rel: str, b: dict, words: str | None = None) -> str:
    """ "a purple diamond above a green cross": two descriptions and a relation, in words.

    Used in chapter 11, "5. Bags of words, measured"."""
    if rel not in RELATIONS:
        raise ValueError(f"rel must be one of {RELATIONS}, got {rel!r}")
    words = words or RELATION_WORDS[rel][0]
    return f"{with_article(noun_phrase(a))} {words} {with_article(noun_phrase(b))}"


def relation_pair(scene: dict, rng: random.Random, keys=("color", "shape")) -> tuple[str, str] | None:
    """``(true, reversed)``: "A rel B", true of the scene, and "B rel A", false of it
    (the same words, the roles exchanged), or ``None`` when the scene has no such pair.

    Objects are named by ``keys`` (colour and shape by default); the relation words are
    drawn from the world's phrasings.

    Used in chapter 11, "5. Bags of words, measured"."""
    _check_scene(scene)
    objs = scene["objects"]
    candidates = [(a, r, b) for a in objs for b in objs if a is not b for r in RELATIONS
                  if related(a, r, b)]  # fmt: skip
    rng.shuffle(candidates)
    for a, rel, b in candidates:
        da, db = description_of(a, keys), description_of(b, keys)
        if da == db:
            continue
        true = {"op": "refer", "a": da, "rel": rel, "b": db}
        reverse = {"op": "refer", "a": db, "rel": rel, "b": da}
        if refers_to(true, scene) and not refers_to(reverse, scene):
            words = rng.choice(RELATION_WORDS[rel])
            return relation_text(da, rel, db, words), relation_text(db, rel, da, words)
    return None


def scene_overlap(a: dict, b: dict, places: bool = True) -> float:
    """How much two scenes share, in [0, 1]: objects equal in shape, colour, size and (with
    ``places``) cell, counted once each, over the larger scene's object count (1: the same
    objects).

    The graded relevance of image-to-image search: "most similar" is the scene sharing most.

    Used in chapter 11, "1. Searching the world by words and by example"."""
    _check_scene(a)
    _check_scene(b)

    def keys(scene):
        return sorted((o["shape"], o["color"], o["size"], *((round(o["x"]), round(o["y"])) if places else ()))
                      for o in scene["objects"])  # fmt: skip

    ka, kb = keys(a), keys(b)
    if not ka and not kb:
        return 1.0
    shared, rest = 0, list(kb)
    for k in ka:
        if k in rest:
            rest.remove(k)
            shared += 1
    return shared / max(len(ka), len(kb))
