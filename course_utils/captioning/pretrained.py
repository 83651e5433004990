"""The shipped captioner: ``describe(images, instructions)``, its evaluation and its training.

``course_utils.load_pretrained("describe-caption")`` returns a :class:`Describer`;
``python -m course_utils reproduce describe-caption`` calls :func:`reproduce_captioner`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from course_utils.captioning import data as cdata
from course_utils.captioning import grounding, train
from course_utils.captioning.model import Captioner, CaptionerConfig
from course_utils.world import data, encoding
from course_utils.world.descriptions import DESCRIBE_FORMS
from course_utils.world.vocabulary import load_tokenizer

#: The splits a captioner's card reports.
CAPTION_SPLITS = ("test", "test_paraphrase", "test_compositional", "test_shift")


class Describer:
    """A trained :class:`Captioner` with its tokenizer: ``describe(images, instructions)``.

    Images are PIL images (or ``(H, W, 3)`` uint8 arrays) of the world, instructions plain
    text; bad input raises ``ValueError`` naming it.

    Used in chapter 10, "8. The shipped captioner and generalisation"."""

    def __init__(self, model: Captioner, card: dict | None = None, tokenizer=None):
        self.model = model.eval()
        self.card = card or {}
        self.tokenizer = tokenizer or cdata.instruction_tokenizer(model.config.instructions)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> Describer:
        self.model.to(device)
        return self

    def encode(self, images, instructions) -> dict:
        """The model's input tensors for a list of images and one instruction per image."""
        instructions = list(instructions)
        size = self.model.config.vision_config.image_size
        pixel_values = encoding.pixel_values_of(images, size, instructions)
        enc = cdata.encode_instructions(instructions, self.model.config.max_instruction, self.tokenizer)
        return {"pixel_values": pixel_values, **enc}

    def describe(self, images, instructions, batch_size: int = 256, method: str = "greedy",
                 **kwargs) -> list[str]:
        """One description per image, as its instruction asks (greedy unless ``method=``)."""
        if isinstance(instructions, str):  # one image, one instruction
            images, instructions = [images], [instructions]
        out: list[str] = []
        images, instructions = list(images), list(instructions)
        if not images and not instructions:
            return out
        for start in range(0, len(instructions), batch_size):
            batch = self.encode(images[start : start + batch_size], instructions[start : start + batch_size])
            out += train.describe_tensors(self.model, batch, batch_size, method, device=self.device, **kwargs)
        return out


def evaluate_captioner(model: Captioner, splits: dict) -> dict:
    """Grounded metrics per split (``{split: dataset}``): exact scene recovery, CHAIR_i and
    object F1 of the detailed descriptions, and the instructed form followed (all forms).

    Used in chapter 10, "8. The shipped captioner and generalisation"."""
    metrics = {}
    for name, split in splits.items():
        tensors = cdata.description_tensors(split, model.config.max_instruction,
                                            instructions=model.config.instructions)  # fmt: skip
        texts = train.describe_tensors(model, tensors, device=next(model.parameters()).device)
        forms = [t.removeprefix("describe_") for t in split["task"]]
        scenes = [json.loads(s) for s in split["scene"]]
        every = grounding.grounded_metrics(texts, scenes, forms)
        keep = [i for i, f in enumerate(forms) if f == "detailed"]
        detailed = grounding.grounded_metrics([texts[i] for i in keep], [scenes[i] for i in keep],
                                              ["detailed"] * len(keep))  # fmt: skip
        metrics[name] = {"exact_detailed": detailed["exact"], "chair_i_detailed": detailed["chair_i"],
                         "f1_detailed": detailed["f1"], "form_followed": every["form_followed"],
                         "exact": every["exact"]}  # fmt: skip
        metrics[name] = {k: round(float(v), 4) for k, v in metrics[name].items()}
    return metrics


def reproduce_captioner(recipe, weights: Path, progress: bool = True) -> dict:
    """Train the captioner from ``clip-stage1``'s image encoder (frozen when ``recipe.freeze``
    names it) on ``recipe``'s data; write the weights and return the card's fields.
    ``recipe.stage1_steps`` steps on the detailed descriptions alone come first, then
    ``recipe.steps`` on all three forms.

    Used in chapter 10, "8. The shipped captioner and generalisation"."""
    from course_utils.runtime import data_dir

    start = time.perf_counter()
    ds = data.load_description_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, splits=("train", *CAPTION_SPLITS),
                                       progress=progress)  # fmt: skip
    tok = load_tokenizer()
    instructions = recipe.model_config.get("instructions", "world")
    tensors = cdata.description_tensors(ds["train"], instructions=instructions)
    torch.manual_seed(recipe.seed)
    model = Captioner(CaptionerConfig(vocab_size=len(tok), eos_token_id=tok.sep_token_id,
                                      vision=cdata.vision_config(), **recipe.model_config))  # fmt: skip
    model.load_image_encoder(data_dir() / "clip-stage1.safetensors")
    if recipe.freeze:  # e.g. the image encoder: it stays as pretrained
        if not isinstance(getattr(model, recipe.freeze, None), torch.nn.Module):
            raise ValueError(f"freeze={recipe.freeze!r} names no part of the captioner")
        getattr(model, recipe.freeze).requires_grad_(False)
    prep_s = time.perf_counter() - start
    seconds = 0.0
    if recipe.stage1_steps:  # detailed descriptions first: their positions make reading easy
        detailed = {k: v[tensors["form"] == DESCRIBE_FORMS.index("describe_detailed")]
                    for k, v in tensors.items()}  # fmt: skip
        seconds += train.fit(model, detailed, steps=recipe.stage1_steps, batch_size=recipe.batch_size,
                             lr=recipe.lr, warmup=20, decay=0.2, seed=recipe.seed,
                             progress=progress)["seconds"]  # fmt: skip
    history = train.fit(model, tensors, steps=recipe.steps, batch_size=recipe.batch_size,
                        lr=recipe.lr, warmup=20, decay=0.3, seed=recipe.seed + 1,
                        progress=progress)  # fmt: skip
    seconds += history["seconds"]
    metrics = evaluate_captioner(model, {s: ds[s] for s in CAPTION_SPLITS})
    model.save(weights, name=weights.stem, metrics=json.dumps(metrics))
    return {"model_config": {k: v for k, v in model.config.__dict__.items()},
            "parameters": sum(p.numel() for p in model.parameters()),
            "metrics": metrics, "forms": list(DESCRIBE_FORMS),
            "loss_last": round(sum(history["losses"][-50:]) / 50, 4),
            "train_seconds": round(seconds, 1), "data_seconds": round(prep_s, 1)}  # fmt: skip


def load_captioner(weights: Path, card: dict, device=None) -> Describer:
    """A :class:`Describer` from the shipped weights (the config is in the file's header).

    Used in chapter 10, "8. The shipped captioner and generalisation"."""
    model, _ = Captioner.load(weights)
    describer = Describer(model, card)
    return describer.to(device) if device is not None else describer
