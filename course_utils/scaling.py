"""Chapter 13's sweeps: test error against training examples, model width and learning rate,
and an augmentation that keeps its labels against one that breaks them.

The source's FAQ 9.2 lists four ways to improve a model: more data, a bigger model, tuned
hyperparameters, data augmentation. Each is measured here on one focused task that a point
learns in a few hundred steps: the world's attribute questions ("What colour is the small
circle?") for data, width and learning rate, and the place questions ("What shape is in the
top left corner?") for augmentation, where a horizontal flip changes the meaning of "left".

:data:`RECIPE` fixes every point; :func:`reproduce` trains them all and stores the results in
``data/scaling-sweeps.json`` (``python -m course_utils reproduce scaling-sweeps``, about ten
minutes); :func:`train_point` and :func:`train_augmentation` re-run one point, which chapter 13
does and compares with the stored one. :func:`fit_power_law` and
:func:`fit_power_law_with_floor` fit the curves.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from course_utils.runtime import data_dir, torch_threads, write_stored_results

#: The name of the stored sweeps, for ``python -m course_utils reproduce``.
NAME = "scaling-sweeps"
#: The augmentations compared: none, a flip with "left" and "right" swapped in the question
#: (the labels survive), and a flip alone (the labels of left/right questions break).
AUGMENTATIONS: tuple[str, ...] = ("none", "flip+text", "flip")


@dataclass(frozen=True)
class SweepRecipe:
    """Everything that fixes the sweeps' points.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""

    families: tuple[str, ...] = ("attribute",)  # the task of the data, width and lr sweeps
    n_train: int = 16_000  # the largest training set; a point with n examples uses its first n
    n_eval: int = 2_000  # test questions of every point
    steps: int = 600  # optimizer steps of every point (the same compute for every size)
    batch_size: int = 64  # examples per step
    lr: float = 3e-3  # AdamW peak learning rate of the data and width sweeps
    width: int = 32  # slot_read's hidden_size in the data sweep
    sizes: tuple[int, ...] = (500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000)
    widths: tuple[int, ...] = (8, 16, 32, 64, 128)  # hidden sizes of the width sweep
    width_n: int = 4000  # training examples of the width sweep and of the lr x width grid
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)  # the grid's learning rates
    grid_widths: tuple[int, ...] = (16, 32, 64)  # the grid's widths
    aug_n: int = 2000  # place questions ("... in the top left corner?") of the augmentation runs
    aug_p: float = 0.5  # the share of training images an augmentation flips
    data_seed: int = 0  # the datasets' seed
    seed: int = 0  # the models' and the batches' seed
    threads: int = 1  # torch threads while a point trains: the last bits of every sum depend on it


RECIPE = SweepRecipe()


def _check_positive(value, name: str, kind=int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def sweep_data(recipe: SweepRecipe = RECIPE, n_train: int | None = None) -> dict:
    """The attribute questions as tensors: ``{"train", "test", "tokenizer"}``; ``n_train``
    generates only the first examples of the recipe's training set (the same ones).

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    from course_utils.world import data, encoding, vocabulary

    n = recipe.n_train if n_train is None else n_train
    _check_positive(n, "n_train")
    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=n, n_eval=recipe.n_eval,
                                       families=recipe.families, splits=("train", "test"))
    tok = vocabulary.load_tokenizer()
    return {"tokenizer": tok, **{s: encoding.to_tensors(ds[s], tok) for s in ("train", "test")}}


def place_questions(recipe: SweepRecipe = RECIPE) -> dict:
    """The place questions of the augmentation runs ("What colour is the object in the top left
    corner?"): ``{"train", "test"}`` datasets, the training set cut to ``recipe.aug_n``.

    Used in chapter 13, "3. Augmentation: one that keeps the labels, one that breaks them"."""
    from course_utils.world import data

    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=3 * recipe.aug_n,
                                       n_eval=2 * recipe.n_eval, families=("spatial",),
                                       splits=("train", "test"))
    out = {}
    for split in ("train", "test"):
        keep = [i for i, p in enumerate(ds[split]["program"]) if json.loads(p)["op"] == "query_at"]
        out[split] = ds[split].select(keep)
    if len(out["train"]) < recipe.aug_n:
        raise ValueError(f"aug_n: only {len(out['train'])} place questions were generated")
    out["train"] = out["train"].select(range(recipe.aug_n))
    return out


def flip_examples(tensors: dict, instructions: list[str], tokenizer, which, swap_words: bool) -> dict:
    """The tensors with the images at ``which`` (a ``(N,)`` bool mask) flipped left to right,
    and, with ``swap_words``, "left" and "right" swapped in those questions; labels unchanged.

    Built in chapter 13, "3. Augmentation: one that keeps the labels, one that breaks them"."""
    import torch

    from course_utils.world.augment import flip_left_right

    if len(instructions) != len(which):
        raise ValueError(f"instructions: expected {len(which)}, got {len(instructions)}")
    out = dict(tensors)
    mask = which.view(-1, 1, 1, 1)
    out["pixel_values"] = torch.where(mask, tensors["pixel_values"].flip(-1), tensors["pixel_values"])
    if swap_words:
        width = tensors["input_ids"].shape[1]
        texts = [flip_left_right(q) if w else q for q, w in zip(instructions, which.tolist())]
        enc = tokenizer(texts, padding="max_length", max_length=width, return_tensors="pt")
        out["input_ids"], out["attention_mask"] = enc["input_ids"], enc["attention_mask"]
    return out


def _train(train: dict, test: dict, tokenizer, width: int, lr: float, recipe: SweepRecipe,
           progress: bool, desc: str) -> dict:
    from course_utils import fusion
    from course_utils.runtime import seed_everything
    from course_utils.training import fit, predict
    from course_utils.world import encoding

    seed_everything(recipe.seed)
    model = fusion.build_model("slot_read", hidden_size=width, **encoding.model_sizes(tokenizer))
    history = fit(model, train, None, steps=recipe.steps, batch_size=recipe.batch_size, lr=lr,
                  seed=recipe.seed, progress=progress, desc=desc)
    correct = predict(model, test).argmax(-1) == test["labels"]
    return {"test": round(correct.float().mean().item(), 4),
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_loss": round(sum(history.train_loss[-20:]) / 20, 4), "correct": correct}


def train_point(n: int, width: int, lr: float, recipe: SweepRecipe = RECIPE, tensors: dict | None = None,
                progress: bool = True) -> dict:
    """Train one point: ``slot_read`` of ``width`` on the first ``n`` attribute questions for
    ``recipe.steps`` steps at peak learning rate ``lr``; returns ``{"n", "width", "lr", "test",
    "error", "parameters", "train_loss", "seconds"}``. ``tensors`` (:func:`sweep_data`) saves
    generating the data again.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    _check_positive(n, "n")
    _check_positive(width, "width")
    _check_positive(lr, "lr", float)
    start = time.perf_counter()
    tensors = tensors or sweep_data(recipe, n_train=n)
    if n > len(tensors["train"]["labels"]):
        raise ValueError(f"n: the data has {len(tensors['train']['labels'])} training examples, asked for {n}")
    train = {k: v[:n] for k, v in tensors["train"].items()}
    with torch_threads(recipe.threads):
        out = _train(train, tensors["test"], tensors["tokenizer"], width, lr, recipe, progress,
                     f"n={n}, width={width}, lr={lr:g}")
    del out["correct"]
    return {"n": n, "width": width, "lr": lr, **out, "error": round(1 - out["test"], 4),
            "seconds": round(time.perf_counter() - start, 1)}


def train_augmentation(augmentation: str, recipe: SweepRecipe = RECIPE, questions: dict | None = None,
                       progress: bool = True) -> dict:
    """Train on the place questions with one of :data:`AUGMENTATIONS`; returns the accuracy on
    all test questions and on those that say "left" or "right" and those that do not.

    Used in chapter 13, "3. Augmentation: one that keeps the labels, one that breaks them"."""
    import torch

    from course_utils.world import encoding, vocabulary

    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation: expected one of {AUGMENTATIONS}, got {augmentation!r}")
    start = time.perf_counter()
    questions = questions or place_questions(recipe)
    tok = vocabulary.load_tokenizer()
    train, test = (encoding.to_tensors(questions[s], tok) for s in ("train", "test"))
    if augmentation != "none":
        which = torch.rand(len(train["labels"]), generator=torch.Generator().manual_seed(recipe.seed)) < recipe.aug_p
        train = flip_examples(train, list(questions["train"]["instruction"]), tok, which,
                              swap_words=augmentation == "flip+text")
    with torch_threads(recipe.threads):
        out = _train(train, test, tok, recipe.width, recipe.lr, recipe, progress,
                     f"augmentation: {augmentation}")
    sided = torch.tensor([" left" in q or " right" in q for q in questions["test"]["instruction"]])
    correct = out.pop("correct")
    return {"augmentation": augmentation, **out,
            "left_right": round(correct[sided].float().mean().item(), 4),
            "middle_column": round(correct[~sided].float().mean().item(), 4),
            "seconds": round(time.perf_counter() - start, 1)}


def fit_power_law(n, error) -> tuple[float, float]:
    """``(a, alpha)`` of ``error = a * n ** -alpha``: a straight line through ``(log n, log
    error)`` by least squares.

    Built in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    import numpy as np

    x, y = np.asarray(n, float), np.asarray(error, float)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"n and error need the same length, at least 2; got {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("n and error must be positive to take logs")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(math.exp(intercept)), float(-slope)


def fit_power_law_with_floor(n, error) -> tuple[float, float, float]:
    """``(a, alpha, floor)`` of ``error = a * n ** -alpha + floor``, fitted by nonlinear least
    squares on log error (scipy's ``least_squares``, started from several floors and slopes;
    ``0 <= floor <= min(error)``).

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    import numpy as np
    from scipy.optimize import least_squares

    fit_power_law(n, error)  # the same checks
    n, error = np.asarray(n, float), np.asarray(error, float)

    def residuals(params):  # params: log a, alpha, floor
        return np.log(np.exp(params[0]) * n ** -params[1] + params[2]) - np.log(error)

    best = None
    for floor in np.linspace(0, 0.9 * error.min(), 10):
        for alpha in (0.25, 0.5, 1.0, 2.0, 4.0):
            log_a = np.log(max(error[0] - floor, 1e-9)) + alpha * np.log(n[0])  # through the first point
            fit = least_squares(residuals, [log_a, alpha, floor],
                                bounds=([-np.inf, 0, 0], [np.inf, 20, error.min()]))
            if best is None or fit.cost < best.cost:
                best = fit
    log_a, alpha, floor = best.x
    return float(np.exp(log_a)), float(alpha), float(floor)


def path(folder: Path | None = None) -> Path:
    """Where the stored sweeps live: ``data/scaling-sweeps.json``.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    return Path(folder or data_dir()) / f"{NAME}.json"


def load_sweeps(folder: Path | None = None) -> dict:
    """The stored sweeps: ``{"recipe", "points": [...], "augmentation": [...], "seconds", ...}``.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    file = path(folder)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; run: python -m course_utils reproduce {NAME}")
    return json.loads(file.read_text())


def stored_point(sweeps: dict, n: int, width: int, lr: float) -> dict:
    """The stored point with ``n`` examples, ``width`` and ``lr`` (``KeyError`` naming it if absent).

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    for p in sweeps["points"]:
        if p["n"] == n and p["width"] == width and math.isclose(p["lr"], lr):
            return p
    raise KeyError(f"no stored point with n={n}, width={width}, lr={lr}")


def planned_points(recipe: SweepRecipe = RECIPE) -> list[tuple[int, int, float]]:
    """Every ``(n, width, lr)`` of the three sweeps, each once, in the order they are trained.

    Used in chapter 13, "2. Wider models, and the learning rate that goes with them"."""
    points = [(n, recipe.width, recipe.lr) for n in recipe.sizes]
    points += [(recipe.width_n, w, recipe.lr) for w in recipe.widths]
    points += [(recipe.width_n, w, lr) for lr in recipe.lrs for w in recipe.grid_widths]
    return list(dict.fromkeys(points))


def reproduce(folder: Path | None = None, progress: bool = True, recipe: SweepRecipe = RECIPE) -> dict:
    """Train every point of the sweeps and the augmentation runs; write them to :func:`path`.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)"."""
    start = time.perf_counter()
    tensors = sweep_data(recipe)
    points = [train_point(n, w, lr, recipe, tensors, progress) for n, w, lr in planned_points(recipe)]
    questions = place_questions(recipe)
    augmentation = [train_augmentation(a, recipe, questions, progress) for a in AUGMENTATIONS]
    write_stored_results(
        path(folder), NAME, "Test error of slot_read on the world's attribute questions against the "
        "number of training examples, the model's width and the learning rate (the same steps for "
        "every point), and place questions trained with no augmentation, a flip with the words "
        "swapped, and a flip alone.",
        recipe, time.perf_counter() - start, recipe.threads, points=points, augmentation=augmentation)
    return load_sweeps(folder)  # as stored: JSON lists, not tuples
