"""The models the course ships in ``data/``, how to load them, and how to reproduce them.

``list_pretrained()`` names them; ``load_pretrained(name)`` returns a ready model. Each is a
safetensors file (loaded with ``safetensors``, never unpickled) with a JSON card beside it
that records its recipe, its metrics on every split, the training time and the versions
used. ``python -m course_utils reproduce NAME`` retrains one from its recipe and rewrites
both files; a test checks that the shipped weights still reach their recorded metrics.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_utils import data
from course_utils.runtime import data_dir

EVAL_SPLITS = ("test", "test_compositional", "test_paraphrase", "test_shift")


@dataclass(frozen=True)
class Recipe:
    """How a shipped model was trained (everything :func:`reproduce` needs)."""

    kind: str
    description: str
    data_seed: int = 0
    n_train: int = 120_000
    n_eval: int = 2_000
    steps: int = 5_000
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    model_config: dict = field(default_factory=dict)


RECIPES = {
    "vqa-slot-read": Recipe(
        kind="slot_read",
        description="The instruction-tuned VQA model: fusion.build_model('slot_read') trained "
        "from scratch on the world's questions (chapters 08 and 09).",
    ),
}


def list_pretrained() -> list[str]:
    """Names of the shipped models."""
    return sorted(RECIPES)


def _check_name(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(list_pretrained())}")
    return RECIPES[name]


def paths(name: str, folder: Path | None = None) -> tuple[Path, Path]:
    """``(weights, card)`` paths of a shipped model."""
    folder = Path(folder or data_dir())
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def model_card(name: str, folder: Path | None = None) -> dict:
    """The recorded recipe, metrics and provenance of a shipped model."""
    _check_name(name)
    card = paths(name, folder)[1]
    if not card.is_file():
        raise FileNotFoundError(f"{card} is missing; run: python -m course_utils reproduce {name}")
    return json.loads(card.read_text())


class VQAModel:
    """A trained fusion model with its tokenizer and answer vocabulary.

    ``answer(images, instructions)`` takes PIL images (or ``(H, W, 3)`` uint8 arrays) of
    the world and plain-text instructions and returns the answers as strings.
    """

    def __init__(self, model, tokenizer, card: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.answers = data.answer_vocab()
        self.card = card or {}

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> VQAModel:
        self.model.to(device)
        return self

    def encode(self, images, instructions) -> dict:
        """The model's input tensors for a list of images and a list of instructions."""
        import numpy as np

        images, instructions = list(images), list(instructions)
        if len(images) != len(instructions):
            raise ValueError(f"got {len(images)} images but {len(instructions)} instructions; "
                             "expected one instruction per image")
        if not all(isinstance(t, str) and t.strip() for t in instructions):
            raise ValueError("instructions must be non-empty strings")
        size = self.model.cfg.image_size
        arrays = []
        for i, img in enumerate(images):
            arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
            if arr.shape != (size, size, 3) or arr.dtype != np.uint8:
                raise ValueError(f"image {i} is {arr.shape} {arr.dtype}; expected a {size}x{size} "
                                 "RGB image of the course's world (uint8 (H, W, 3) or PIL)")
            arrays.append(arr)
        enc = self.tokenizer(list(instructions), padding="longest", return_tensors="pt")
        return {
            "pixel_values": data.normalize_images(np.stack(arrays)),
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
        }

    def answer(self, images, instructions, batch_size: int = 256) -> list[str]:
        """Answer each instruction about its image, in batches, on the model's device."""
        import torch

        if isinstance(instructions, str):  # one image, one instruction
            images, instructions = [images], [instructions]
        images, instructions = list(images), list(instructions)
        out: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(instructions), batch_size):
                batch = self.encode(images[start : start + batch_size],
                                    instructions[start : start + batch_size])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logits = self.model(**batch)
                out += [self.answers[i] for i in logits.argmax(-1).tolist()]
        return out


def load_pretrained(name: str, device=None, folder: Path | None = None) -> VQAModel:
    """Load a shipped model by name (see :func:`list_pretrained`)."""
    from course_utils import fusion
    from course_utils.training import load_checkpoint

    _check_name(name)
    weights, _ = paths(name, folder)
    card = model_card(name, folder)
    model = fusion.build_model(**card["model_config"])
    if device is not None:
        model.to(device)
    load_checkpoint(model, weights)
    return VQAModel(model, data.load_tokenizer(), card)


def evaluation_data(recipe: Recipe, splits=EVAL_SPLITS) -> dict:
    """The evaluation splits of a recipe's dataset (they exclude its training examples)."""
    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, splits=("train", *splits))
    tok = data.load_tokenizer()
    return {s: data.to_tensors(ds[s], tok) for s in splits}


def evaluate_model(model, tensors: dict) -> dict:
    """Accuracy per split, and per question family on ``test``."""
    from course_utils import instructions as I
    from course_utils.training import predict

    metrics = {}
    for split, t in tensors.items():
        pred = predict(model, t).argmax(-1)
        correct = pred == t["labels"]
        metrics[split] = round(correct.float().mean().item(), 4)
        if split == "test":
            for i, family in enumerate(I.FAMILIES):
                sel = t["task_ids"] == i
                if sel.any():
                    metrics[f"test/{family}"] = round(correct[sel].float().mean().item(), 4)
    return metrics


def reproduce(name: str, folder: Path | None = None, progress: bool = True,
              threads: int | None = None) -> dict:
    """Train a shipped model from its recipe, evaluate it, and write weights and card.

    ``threads`` sets ``torch.set_num_threads`` (small models often train faster on one
    thread, and much faster when other processes share the CPU).
    """
    import torch

    from course_utils import fusion
    from course_utils.runtime import seed_everything
    from course_utils.training import fit, save_checkpoint

    recipe = _check_name(name)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    seed_everything(recipe.seed)
    start = time.perf_counter()
    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, progress=progress)
    tok = data.load_tokenizer()
    train = data.to_tensors(ds["train"], tok)
    val = data.to_tensors(ds["validation"], tok)
    evals = {s: data.to_tensors(ds[s], tok) for s in EVAL_SPLITS}
    prep_s = time.perf_counter() - start
    model = fusion.build_model(recipe.kind, **recipe.model_config)
    history = fit(model, train, val, steps=recipe.steps, batch_size=recipe.batch_size,
                  lr=recipe.lr, seed=recipe.seed, progress=progress, desc=name)
    metrics = evaluate_model(model, evals)
    weights, card_path = paths(name, folder)
    save_checkpoint(model, weights, name=name, metrics=metrics)
    card = {
        "name": name,
        "description": recipe.description,
        "model_config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "recipe": {k: v for k, v in recipe.__dict__.items() if k != "description"},
        "metrics": metrics,
        "validation_curve": [{k: round(v, 4) for k, v in e.items()} for e in history.evals],
        "train_seconds": round(history.seconds, 1),
        "data_seconds": round(prep_s, 1),
        "samples_per_second": round(history.samples_per_second, 1),
        "torch_threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card
