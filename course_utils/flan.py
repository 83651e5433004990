"""The FLAN curve: accuracy on unseen phrasings against the number of training templates.

FLAN (Wei et al. 2022) found that instruction tuning generalises to unseen instructions
in proportion to how many and how varied the training templates are. Here the same
experiment runs in the course's world: the question grammar's ``num_templates`` keeps the
first *k* cores of each question group in training (:mod:`course_utils.world.grammar`),
a model is trained on that language, and it is evaluated on the held-out layers
(``test_paraphrase``: unseen templates, ``test_frames``, ``test_synonyms``), once with an
instruction encoder trained from scratch and once with the frozen pretrained MiniLM.

:data:`RECIPE` fixes every point (a focused task of three families so a point costs about
a minute); :func:`reproduce` trains the whole curve and stores it in
``data/flan-curve.json`` (``python -m course_utils reproduce flan-curve``);
:func:`train_point` re-runs one point, which chapter 06 does and compares with the stored one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from course_utils.runtime import data_dir, write_stored_results

#: The name of the stored curve, for ``python -m course_utils reproduce``.
NAME = "flan-curve"
#: The splits every point is evaluated on.
SPLITS: tuple[str, ...] = ("validation", "test", "test_paraphrase", "test_frames", "test_synonyms")


@dataclass(frozen=True)
class FlanRecipe:
    """Everything that fixes a point of the curve but its encoder and its number of templates.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""

    families: tuple[str, ...] = ("attribute", "count", "exist")  # a task a minute learns well
    n_train: int = 12_000  # training questions
    n_eval: int = 1_000  # questions in each evaluation split
    steps: int = 600  # optimizer steps of each point
    batch_size: int = 128  # examples per step
    lr: float = 3e-3  # AdamW peak learning rate
    data_seed: int = 0  # the dataset's seed
    seed: int = 0  # the model's and the batches' seed
    templates: tuple[int, ...] = (1, 2, 4, 8)  # training cores per question group (8: all)
    kinds: tuple[str, ...] = ("slot_read", "slot_read_minilm")  # from scratch, frozen MiniLM
    threads: int = 2  # torch threads while a point trains: the last bits of every sum depend on it


RECIPE = FlanRecipe()


def _check(kind: str, num_templates: int, recipe: FlanRecipe) -> None:
    if kind not in recipe.kinds:
        raise ValueError(f"kind: expected one of {recipe.kinds}, got {kind!r}")
    if isinstance(num_templates, bool) or not isinstance(num_templates, int) or num_templates < 1:
        raise ValueError(f"num_templates must be a positive int, got {num_templates!r}")


def point_data(num_templates: int, kind: str, recipe: FlanRecipe = RECIPE) -> dict:
    """The tensors of one point: training language with ``num_templates`` cores per group.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    from course_utils.shipped import tokenizer_for
    from course_utils.world import data, encoding

    ds = data.load_instruction_dataset(
        seed=recipe.data_seed, n_train=recipe.n_train, n_eval=recipe.n_eval, families=recipe.families,
        num_templates=num_templates, splits=("train", *SPLITS))  # fmt: skip
    tok = tokenizer_for(kind)
    return {"tokenizer": tok, **{s: encoding.to_tensors(ds[s], tok) for s in ("train", *SPLITS)}}


def train_point(kind: str, num_templates: int, recipe: FlanRecipe = RECIPE, progress: bool = True) -> dict:
    """Train one point of the curve; returns ``{"kind", "num_templates", "seconds", <split>: accuracy}``.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    from course_utils.runtime import torch_threads

    _check(kind, num_templates, recipe)
    with torch_threads(recipe.threads):
        return _train_point(kind, num_templates, recipe, progress)


def _train_point(kind: str, num_templates: int, recipe: FlanRecipe, progress: bool) -> dict:
    """:func:`train_point` at the recipe's number of threads."""
    from course_utils import fusion
    from course_utils.runtime import seed_everything
    from course_utils.training import fit, predict
    from course_utils.world import encoding

    start = time.perf_counter()
    tensors = point_data(num_templates, kind, recipe)
    seed_everything(recipe.seed)
    model = fusion.build_model(kind, **encoding.model_sizes(tensors["tokenizer"]))
    features = getattr(model, "features", None)
    if features is not None:  # frozen MiniLM: encode each distinct instruction once
        for s in ("train", *SPLITS):
            features.warm(tensors[s]["input_ids"], tensors[s]["attention_mask"])
    fit(model, tensors["train"], tensors["validation"], steps=recipe.steps, batch_size=recipe.batch_size,
        lr=recipe.lr, seed=recipe.seed, progress=progress, desc=f"{kind}, {num_templates} templates")  # fmt: skip
    out = {"kind": kind, "num_templates": num_templates}
    for s in SPLITS:
        pred = predict(model, tensors[s]).argmax(-1)
        out[s] = round((pred == tensors[s]["labels"]).float().mean().item(), 4)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def path(folder: Path | None = None) -> Path:
    """Where the stored curve lives: ``data/flan-curve.json``.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    return Path(folder or data_dir()) / f"{NAME}.json"


def load_curve(folder: Path | None = None) -> dict:
    """The stored curve: ``{"recipe", "points": [...], "seconds", "versions"}``.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    file = path(folder)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; run: python -m course_utils reproduce {NAME}")
    return json.loads(file.read_text())


def stored_point(curve: dict, kind: str, num_templates: int) -> dict:
    """The stored point of ``kind`` at ``num_templates`` (``KeyError`` naming it if absent).

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    for p in curve["points"]:
        if p["kind"] == kind and p["num_templates"] == num_templates:
            return p
    raise KeyError(f"no stored point for {kind!r} with {num_templates} templates")


def reproduce(folder: Path | None = None, progress: bool = True, recipe: FlanRecipe = RECIPE) -> dict:
    """Train every point of the curve and write it to :func:`path`.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    import torch

    start = time.perf_counter()
    points = [train_point(kind, k, recipe, progress) for kind in recipe.kinds for k in recipe.templates]
    write_stored_results(
        path(folder), NAME, "Accuracy on unseen templates, frames and synonyms against the number of "
        "training templates (question cores per group), from-scratch vs frozen-MiniLM instruction encoder.",
        recipe, time.perf_counter() - start, torch.get_num_threads(), points=points)
    return load_curve(folder)  # as stored: JSON lists, not tuples
