"""Retrieval as the field measures it, with the relevance the annotation gives.

* captions -> images: relevant = every gallery image whose scene has the same caption
  (two scenes with the same objects in other places both match a brief caption);
* referring expressions -> images: relevant = every image the expression is true of
  (``descriptions.refers_to``), usually several;
* foils: the fraction of images that prefer their text to its foil (chance 0.5);
* composed: query image + instruction -> the edited scene, in a gallery of every query's
  source and target image (the source is the hardest distractor: it shares all but the change).
"""

from __future__ import annotations

import json
import random

import torch
from torch import Tensor

from course_utils.retrieval import ranking
from course_utils.retrieval.negatives import foil_accuracy
from course_utils.world.descriptions import caption
from course_utils.world.examples import scene_key

__all__ = ["same_text_relevance", "refers_relevance", "scene_relevance", "text_to_image",
           "foil_scores", "composed_scores"]


def same_text_relevance(texts: list[str], gallery_texts: list[str]) -> Tensor:
    """``(Q, N)`` bool: query ``i`` is relevant to gallery image ``j`` when their texts are equal.

    Used in chapter 11, "2. Metrics when several images are right"."""
    index: dict[str, list[int]] = {}
    for j, t in enumerate(gallery_texts):
        index.setdefault(t, []).append(j)
    rel = torch.zeros(len(texts), len(gallery_texts), dtype=torch.bool)
    for i, t in enumerate(texts):
        rel[i, index.get(t, [])] = True
    return rel


def _object_table(scenes: list[dict]) -> tuple[dict, Tensor, Tensor, Tensor]:
    """Per scene, its objects' attribute ids ``(S, M, 3)``, centres ``(S, M, 2)`` and a mask ``(S, M)``."""
    keys = ("size", "color", "shape")
    vocab: dict = {k: {} for k in keys}
    m = max(1, max((len(s["objects"]) for s in scenes), default=1))
    attrs = torch.full((len(scenes), m, 3), -2, dtype=torch.long)
    xy = torch.zeros(len(scenes), m, 2)
    present = torch.zeros(len(scenes), m, dtype=torch.bool)
    for i, scene in enumerate(scenes):
        for j, o in enumerate(scene["objects"]):
            attrs[i, j] = torch.tensor([vocab[k].setdefault(o[k], len(vocab[k])) for k in keys])
            xy[i, j] = torch.tensor([o["x"], o["y"]])
            present[i, j] = True
    return vocab, attrs, xy, present


def _matches(descs: list[dict], vocab: dict, attrs: Tensor, present: Tensor) -> Tensor:
    """``(Q, S, M)``: object ``m`` of scene ``s`` fits description ``q`` (unnamed keys fit all)."""
    want = torch.tensor([[vocab[k].get(d[k], -3) if k in d else -1 for k in ("size", "color", "shape")]
                         for d in descs], dtype=torch.long)  # (Q, 3); -1: any, -3: no such value
    fit = (want[:, None, None, :] == -1) | (want[:, None, None, :] == attrs[None])  # (Q, S, M, 3)
    return fit.all(-1) & present[None]


def refers_relevance(programs: list[dict], scenes: list[dict]) -> Tensor:
    """``(Q, N)`` bool: the referring expression ``programs[i]`` is true of ``scenes[j]``
    (``descriptions.refers_to`` for every pair, computed as tensors: a million pairs in a blink).

    Used in chapter 11, "2. Metrics when several images are right"."""
    vocab, attrs, xy, present = _object_table(scenes)
    a = _matches([p["a"] for p in programs], vocab, attrs, present)  # (Q, S, M)
    out = a.any(-1)  # (Q, S): no relation: some object fits
    rel = [i for i, p in enumerate(programs) if p.get("rel") is not None]
    if rel:
        b = _matches([programs[i]["b"] for i in rel], vocab, attrs, present)  # (R, S, M)
        x, y = xy[..., 0], xy[..., 1]  # (S, M)
        holds = {"left": x[:, :, None] < x[:, None, :], "right": x[:, :, None] > x[:, None, :],
                 "above": y[:, :, None] < y[:, None, :], "below": y[:, :, None] > y[:, None, :]}  # (S, M, M)
        r = torch.stack([holds[programs[i]["rel"]] for i in rel])  # (R, S, M, M): a-object rel b-object
        pair = a[rel][:, :, :, None] & b[:, :, None, :] & r  # (R, S, M, M); a != b since rel is strict
        out[rel] = pair.flatten(2).any(-1)
    return out


def scene_relevance(queries: list[dict], gallery: list[dict]) -> Tensor:
    """``(Q, N)`` bool: the gallery scene has the query scene's objects (styles aside).

    Used in chapter 11, "7. Composed retrieval: an image plus a change"."""
    def key(scene):
        return scene_key(scene, "") + json.dumps(scene.get("style", {}), sort_keys=True)

    return same_text_relevance([key(s) for s in queries], [key(s) for s in gallery])


def text_to_image(text_emb: Tensor, image_emb: Tensor, relevance: Tensor, ks=(1, 5, 10)) -> dict:
    """Recall@K (hit), median rank and mAP of text queries over an image gallery.

    Used in chapter 11, "2. Metrics when several images are right"."""
    scores = text_emb.float().cpu() @ image_emb.float().cpu().T  # (Q, N)
    out = ranking.recall_at_k(scores, relevance, ks=ks, mode="hit")
    out["median_rank"] = ranking.median_rank(scores, relevance)
    out["mAP"] = ranking.mean_average_precision(scores, relevance)
    return out


def foil_scores(embed_images, embed_texts, images, scenes: list[dict], seed: int = 0) -> dict:
    """Foil accuracy per kind (``swap``: brief captions with two attributes traded;
    ``relation``: "A rel B" against "B rel A") on the scenes that have a foil of that kind.

    ``embed_images`` / ``embed_texts`` are functions (a :class:`Retriever`'s methods, or a
    dual encoder's wrapped); ``images[i]`` shows ``scenes[i]``.

    Used in chapter 11, "5. Bags of words, measured"."""
    from course_utils.world.foils import relation_pair, swapped_caption

    rng = random.Random(seed)
    swaps = [(i, caption(s), swapped_caption(s, rng)) for i, s in enumerate(scenes)]
    swaps = [x for x in swaps if x[2] is not None]
    rels = [(i, *p) for i, s in enumerate(scenes) if (p := relation_pair(s, rng)) is not None]
    image_emb = embed_images(images)  # (N, E)
    out = {}
    for name, rows in (("swap", swaps), ("relation", rels)):
        idx = [r[0] for r in rows]
        out[name] = foil_accuracy(image_emb[idx], embed_texts([r[1] for r in rows]),
                                  embed_texts([r[2] for r in rows]))
        out[f"{name}_n"] = len(rows)
    return out


def composed_scores(query_emb: Tensor, source_emb: Tensor, target_emb: Tensor,
                    sources: list[dict], targets: list[dict], tasks: list[str] | None = None) -> dict:
    """Composed Recall@1/5/10 over the gallery ``[targets; sources]``, and R@1 per edit kind.

    Used in chapter 11, "7. Composed retrieval: an image plus a change"."""
    gallery = torch.cat([target_emb, source_emb]).float().cpu()  # (2N, E)
    relevance = scene_relevance(targets, targets + sources)  # (N, 2N)
    scores = query_emb.float().cpu() @ gallery.T
    out = ranking.recall_at_k(scores, relevance, ks=(1, 5, 10), mode="hit")
    for task in sorted(set(tasks or [])):
        sel = [i for i, t in enumerate(tasks) if t == task]
        out[f"R@1/{task}"] = ranking.recall_at_k(scores[sel], relevance[sel], ks=(1,))["R@1"]
    return out
