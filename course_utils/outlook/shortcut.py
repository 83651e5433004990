"""Shortcuts: a marker that predicts the answer, and what a model learns from it.

Lapuschkin et al. (2019) found a classifier of horses that looked at a copyright
watermark in the corner ("Clever Hans"); Geirhos et al. (2020, "Shortcut learning in deep
neural networks") named the pattern: when a cheap cue predicts the label in training, a
network learns the cue, and fails where the cue is gone or lies. Here the cue is a small
marker painted in the image's top-left corner, on pixels no object of the world ever
covers (the first row and column: objects stay one pixel inside their 16-px cell), in the
colour of the answer of a colour question.

:func:`add_marker` paints markers, :func:`correlated_markers` draws them (the answer with
probability ``p``, a random colour otherwise), :func:`shortcut_experiment` trains the same
model with and without them and tests each with markers that tell the truth, random
markers and none.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from course_utils import fusion
from course_utils.training import fit, predict
from course_utils.world import data, encoding, programs, scenes, vocabulary

#: Arm length in pixels of the L-shaped marker along the top row and the left column.
MARKER_LENGTH = 8
#: The marker's colours: marker id ``i`` is painted ``MARKER_PALETTE[i]`` (the world's
#: colours, in ``scenes.COLORS`` order, so a colour answer's marker is its own colour).
MARKER_PALETTE: tuple[tuple[int, int, int], ...] = tuple(scenes.COLORS.values())
#: Marker id meaning "no marker".
NO_MARKER = -1


def marker_region(image_size: int = scenes.IMAGE_SIZE, length: int = MARKER_LENGTH) -> Tensor:
    """Boolean ``(H, W)`` mask of the marker's pixels: an L in the top-left corner, ``length``
    pixels along the first row and down the first column (pixels no object covers).

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= image_size:
        raise ValueError(f"length must be an int in [1, {image_size}], got {length!r}")
    mask = torch.zeros(image_size, image_size, dtype=torch.bool)
    mask[0, :length] = True
    mask[:length, 0] = True
    return mask


def add_marker(pixel_values: Tensor, marker_ids: Tensor, palette=MARKER_PALETTE,
               length: int = MARKER_LENGTH) -> Tensor:
    """A copy of ``pixel_values`` ``(B, 3, H, W)`` with marker ``marker_ids[i]`` (an index in
    ``palette``, RGB 0-255; :data:`NO_MARKER` for none) painted on :func:`marker_region`,
    normalised as the images are.

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    is_tensor = isinstance(pixel_values, Tensor)
    if not is_tensor or pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
        got = tuple(pixel_values.shape) if is_tensor else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be (B, 3, H, W), got {got}")
    marker_ids = torch.as_tensor(marker_ids)
    if marker_ids.shape != (len(pixel_values),) or marker_ids.is_floating_point():
        raise ValueError(f"marker_ids must be {len(pixel_values)} integer ids, one per image; "
                         f"got shape {tuple(marker_ids.shape)} {marker_ids.dtype}")
    if len(marker_ids) and (marker_ids.min() < NO_MARKER or marker_ids.max() >= len(palette)):
        raise ValueError(f"marker_ids must be in [-1, {len(palette) - 1}] (-1: no marker), got "
                         f"values from {int(marker_ids.min())} to {int(marker_ids.max())}")
    region = marker_region(pixel_values.shape[-1], length)  # (H, W)
    colours = torch.tensor(palette, dtype=pixel_values.dtype) / 255  # (K, 3) in [0, 1]
    colours = (colours - torch.tensor(encoding.IMAGE_MEAN)) / torch.tensor(encoding.IMAGE_STD)
    out = pixel_values.clone()
    marked = marker_ids != NO_MARKER  # (B,)
    painted = out[marked]  # (B', 3, H, W)
    painted[:, :, region] = colours[marker_ids[marked]][:, :, None]  # (B', 3, R) <- (B', 3, 1)
    out[marked] = painted
    return out


def correlated_markers(ids: Tensor, p: float, generator: torch.Generator | None = None,
                       num_ids: int = len(MARKER_PALETTE)) -> Tensor:
    """Marker ids that equal ``ids`` with probability ``p`` and are drawn uniformly from
    ``[0, num_ids)`` otherwise (so ``p = 0`` ignores ``ids`` altogether).

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.is_floating_point():
        raise ValueError(f"ids must be a 1-D integer tensor, got {tuple(ids.shape)} {ids.dtype}")
    keep = torch.rand(len(ids), generator=generator) < p  # (B,)
    random = torch.randint(num_ids, (len(ids),), generator=generator)  # (B,)
    return torch.where(keep, ids, random)


def colour_ids(labels: Tensor) -> Tensor:
    """Answer ids (``programs.answer_vocab()``) of colour answers -> colour ids
    (``scenes.COLORS`` order, the :data:`MARKER_PALETTE` ids).

    Used in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    first = programs.answer_vocab().index(next(iter(scenes.COLORS)))
    ids = torch.as_tensor(labels) - first
    if len(ids) and (ids.min() < 0 or ids.max() >= len(scenes.COLORS)):
        raise ValueError("labels must all be colour answers (ids "
                         f"{first} to {first + len(scenes.COLORS) - 1} of programs.answer_vocab())")
    return ids


def colour_ids_or_none(labels: Tensor) -> Tensor:
    """Like :func:`colour_ids`, with -1 for an answer that is not a colour (a prediction can be).

    Used in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    first = programs.answer_vocab().index(next(iter(scenes.COLORS)))
    ids = torch.as_tensor(labels) - first
    is_colour = (ids >= 0) & (ids < len(scenes.COLORS))
    return torch.where(is_colour, ids, torch.full_like(ids, NO_MARKER))


def colour_questions(seed: int = 0, n_train: int = 8000, n_eval: int = 1000,
                     families=("attribute",), tokenizer=None) -> dict:
    """The world's questions of ``families`` whose answer is a colour, as tensors:
    ``{"train", "test"}`` (``encoding.to_tensors``' dicts), and the ``tokenizer``.

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    tokenizer = tokenizer or vocabulary.load_tokenizer()
    ds = data.load_instruction_dataset(seed=seed, n_train=n_train, n_eval=n_eval,
                                       splits=("train", "test"), families=families)
    vocab = programs.answer_vocab()
    colours = torch.tensor([vocab.index(c) for c in scenes.COLORS])
    out = {"tokenizer": tokenizer}
    for split in ("train", "test"):
        tensors = encoding.to_tensors(ds[split], tokenizer)
        keep = torch.isin(tensors["labels"], colours)  # (N,)
        out[split] = {k: v[keep] for k, v in tensors.items()}
    return out


def with_markers(split: dict, p: float | None, seed: int = 0) -> dict:
    """``split`` with a marker in every image: the answer's colour with probability ``p``
    (:func:`correlated_markers`), or none when ``p`` is None.

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    if p is None:
        return dict(split)
    generator = torch.Generator().manual_seed(seed)
    ids = correlated_markers(colour_ids(split["labels"]), p, generator)
    return {**split, "pixel_values": add_marker(split["pixel_values"], ids)}


def marker_accuracy(model, test: dict, seed: int = 0) -> dict:
    """Accuracy on ``test`` with markers that tell the answer (``"correlated"``, p = 1),
    random markers (``"random"``, p = 0) and ``"none"``; and ``"follows_marker"``: how often,
    with random markers, the answer is the marker's colour (1/6 by chance).

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    out = {}
    for name, p in (("correlated", 1.0), ("random", 0.0), ("none", None)):
        ids = None if p is None else correlated_markers(
            colour_ids(test["labels"]), p, torch.Generator().manual_seed(seed))  # (N,)
        marked = dict(test)
        if ids is not None:
            marked["pixel_values"] = add_marker(test["pixel_values"], ids)
        answers = predict(model, marked).argmax(-1)  # (N,)
        out[name] = (answers == test["labels"]).float().mean().item()
        if name == "random":  # how often the answer is the marker's colour, right or wrong
            out["follows_marker"] = (colour_ids_or_none(answers) == ids).float().mean().item()
    return out


def shortcut_experiment(questions: dict, p: float = 1.0, steps: int = 400, batch_size: int = 64,
                        lr: float = 3e-3, hidden_size: int = 32, seed: int = 0,
                        control: bool = True) -> dict:
    """Train ``slot_read`` twice on the same questions, with markers correlated ``p`` with
    the answer (``"shortcut"``) and without (``"control"``); test each with truthful, random
    and no markers (:func:`marker_accuracy`). ``questions`` is :func:`colour_questions`';
    ``control=False`` trains the shortcut model alone (the control does not depend on ``p``).

    Returns ``{name: {"correlated", "random", "follows_marker", "none", "train_seconds"}}``.

    Built in chapter 14, "4. Shortcuts: a marker that predicts the answer"."""
    sizes = encoding.model_sizes(questions["tokenizer"])
    out = {}
    for name, marker_p in (("shortcut", p), ("control", None))[:2 if control else 1]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = fusion.build_model("slot_read", hidden_size=hidden_size, **sizes)
        train = with_markers(questions["train"], marker_p, seed)
        start = time.perf_counter()
        fit(model, train, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False)
        seconds = time.perf_counter() - start
        out[name] = {**marker_accuracy(model, questions["test"], seed + 1),
                     "train_seconds": seconds}
    return out
