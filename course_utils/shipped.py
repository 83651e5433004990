"""The models the course ships in ``data/``, how to load them, and how to reproduce them.

``list_pretrained()`` names them; ``load_pretrained(name)`` returns a ready model:

* ``vqa-slot-read`` — the instruction-tuned VQA model, trained from scratch (a
  :class:`VQAModel`: ``answer(images, instructions) -> list[str]``);
* ``vqa-slot-read-minilm`` — the same design whose instruction encoder is the frozen,
  pretrained all-MiniLM-L6-v2 (a :class:`VQAModel`; generalises to unseen phrasings);
* ``clip-stage1`` — chapter 07's CLIP-style dual encoder and LLaVA stage-1 projector (a
  :class:`PretrainedEncoders`; ``pretraining.load_pretrained_encoders(model, path=enc.path)``
  puts its encoders into a fusion model);
* ``describe-caption`` — chapter 10's captioner (a ``captioning.pretrained.Describer``:
  ``describe(images, instructions) -> list[str]``);
* ``retrieval-negclip`` — chapter 11's retriever (a ``retrieval.pretrained.Retriever``:
  ``embed_images(images)``, ``embed_texts(texts)``, ``compose(images, instructions)``).

Each is a
safetensors file (loaded with ``safetensors``, never unpickled) with a JSON card beside it
that records its recipe, its metrics on every split, the training time and the versions
used. ``python -m course_utils reproduce NAME`` retrains one from its recipe and rewrites
both files; a test checks that the shipped weights still reach their recorded metrics.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.runtime import data_dir, torch_threads
from course_utils.world import data, encoding, handwritten, programs, vocabulary

#: The generated evaluation splits of a VQA card, then the hand-written questions.
EVAL_SPLITS = ("test", "test_compositional", "test_paraphrase", "test_frames", "test_synonyms", "test_shift")
HANDWRITTEN = "handwritten"


@dataclass(frozen=True)
class Recipe:
    """How a shipped model was trained (everything :func:`reproduce` needs).

    ``kind`` is a fusion kind (``fusion.build_model``) or ``"contrastive"`` (a
    ``pretraining.ContrastiveModel``, trained by ``pretraining.pretrain_encoders`` for
    ``steps`` CLIP steps and ``stage1_steps`` projector steps, evaluated by retrieval over
    ``n_eval`` held-out captions), or ``"captioner"`` (chapter 10's ``captioning.Captioner``:
    ``stage1_steps`` steps on detailed descriptions, then ``steps`` on all three forms), or
    ``"retriever"`` (chapter 11's ``retrieval.RetrievalEncoder``, started from ``clip-stage1``:
    ``steps`` NegCLIP steps, then ``stage1_steps`` steps of its composed-retrieval combiner),
    or ``"editor"`` (chapter 12's editors: ``stage1_steps`` steps each for the scene reader
    and the program parser, ``steps`` for the FiLM U-Net).

    ``init_from`` names a shipped model of the same design whose weights start this one:
    every tensor whose name and shape match is copied (``vqa-slot-read-minilm`` starts from
    ``vqa-slot-read``: all but the word embeddings, which MiniLM's features replace).
    ``freeze`` names a part of the captioner that keeps its loaded weights (``"image_encoder"``:
    ``clip-stage1``'s, chapter 10).

    Used in chapter 09, "1. The shipped model and its evaluation splits".
    """

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
    stage1_steps: int = 0
    init_from: str = ""
    freeze: str = ""


CONTRASTIVE = "contrastive"
CAPTIONER = "captioner"
RETRIEVER = "retriever"
EDITOR = "editor"

RECIPES = {
    "vqa-slot-read": Recipe(
        kind="slot_read",
        description="The instruction-tuned VQA model: fusion.build_model('slot_read') trained "
        "from scratch on the world's questions (chapters 08 and 09), with chapter 08's defaults "
        "(word positions at the tokens' scale, six slots).",
    ),
    "vqa-slot-read-minilm": Recipe(
        kind="slot_read_minilm",
        description="The instruction-tuned VQA model with a pretrained instruction encoder: "
        "fusion.build_model('slot_read_minilm'), whose words are the frozen all-MiniLM-L6-v2's "
        "features, started from vqa-slot-read's weights (all but its word embeddings) and trained "
        "on the world's questions (chapter 09: unseen phrasings).",
        steps=2_500,
        model_config={"num_queries": 6, "position_std": 1.0},  # vqa-slot-read's shapes
        init_from="vqa-slot-read",
    ),
    "clip-stage1": Recipe(
        kind=CONTRASTIVE,
        description="Chapter 07's pretrained encoders: a CLIP-style dual encoder "
        "(pretraining.ContrastiveModel) trained on the world's captions, then LLaVA stage 1 "
        "(a projector between the frozen encoders). Chapter 08 starts from it.",
        n_train=20_000, n_eval=1_000, steps=1_500, batch_size=128, lr=3e-3, stage1_steps=500,
    ),
    "describe-caption": Recipe(
        kind=CAPTIONER,
        description="Chapter 10's captioner: clip-stage1's image encoder (frozen), a projector and a "
        "small GPT-2 decoder (captioning.Captioner) trained with teacher forcing to describe "
        "a scene briefly, in detail or as a one-line summary, as the instruction asks; the "
        "frozen all-MiniLM-L6-v2 reads the instruction.",
        n_train=30_000, n_eval=1_000, steps=4_000, batch_size=64, lr=3e-3, stage1_steps=1_000,
        model_config={"width": 64, "layers": 2, "instructions": "minilm"}, freeze="image_encoder",
    ),
    "retrieval-negclip": Recipe(
        kind=RETRIEVER,
        description="Chapter 11's retriever: clip-stage1's encoders with pooling that keeps "
        "places and roles (retrieval.RetrievalEncoder), fine-tuned with NegCLIP's hard "
        "negatives (swapped attributes, reversed relations), and a TIRG combiner with its own "
        "instruction encoder trained on the world's edits for composed retrieval.",
        n_train=20_000, n_eval=1_000, steps=4_000, batch_size=128, lr=2e-3, stage1_steps=1_000,
        model_config={"num_queries": 4, "text_layers": 2, "embed_dim": 256, "mirror": 0.5},
    ),
    "edit-film-unet": Recipe(
        kind=EDITOR,
        description="Chapter 12's editors: a U-Net whose blocks FiLM conditions on the "
        "instruction (editing.EditUNet), trained end to end on the world's edits, and the "
        "program editor's parts (an instruction parser and a scene reader, which also judges "
        "every editor's output).",
        n_train=20_000, n_eval=1_000, steps=4_000, batch_size=32, lr=2e-3, stage1_steps=1_000,
    ),
}


def list_pretrained() -> list[str]:
    """Names of the shipped models.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    return sorted(RECIPES)


def _check_name(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(list_pretrained())}")
    return RECIPES[name]


def paths(name: str, folder: Path | None = None) -> tuple[Path, Path]:
    """``(weights, card)`` paths of a shipped model.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    folder = Path(folder or data_dir())
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def model_card(name: str, folder: Path | None = None) -> dict:
    """The recorded recipe, metrics and provenance of a shipped model.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    _check_name(name)
    card = paths(name, folder)[1]
    if not card.is_file():
        raise FileNotFoundError(f"{card} is missing; run: python -m course_utils reproduce {name}")
    return json.loads(card.read_text())


class VQAModel:
    """A trained fusion model with its tokenizer and answer vocabulary.

    ``answer(images, instructions)`` takes PIL images (or ``(H, W, 3)`` uint8 arrays) of
    the world and plain-text instructions and returns the answers as strings.

    Used in chapter 09, "1. The shipped model and its evaluation splits".
    """

    def __init__(self, model, tokenizer, card: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.answers = programs.answer_vocab()
        self.card = card or {}

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> VQAModel:
        self.model.to(device)
        return self

    def encode(self, images, instructions) -> dict:
        """The model's input tensors for a list of images and a list of instructions."""
        instructions = list(instructions)
        pixel_values = encoding.pixel_values_of(images, self.model.cfg.image_size, instructions)
        if not all(isinstance(t, str) and t.strip() for t in instructions):
            raise ValueError("instructions must be non-empty strings")
        enc = self.tokenizer(instructions, padding="longest", return_tensors="pt")
        return {
            "pixel_values": pixel_values,
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


@dataclass
class PretrainedEncoders:
    """A shipped dual encoder: ``model`` (``pretraining.ContrastiveModel``), its stage-1
    ``projector``, the ``card`` and the weights' ``path`` (for
    ``pretraining.load_pretrained_encoders(fusion_model, path=...)``).

    Used in chapter 08, "5. Pretrained vs from scratch, frozen vs unfrozen"."""

    model: object
    projector: object
    card: dict
    path: Path

    def to(self, device) -> PretrainedEncoders:
        self.model.to(device)
        if self.projector is not None:
            self.projector.to(device)
        return self


def tokenizer_for(kind: str):
    """The tokenizer a fusion kind reads: MiniLM's for the pretrained-text kinds, else the world's.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    from course_utils import fusion

    if kind in fusion.PRETRAINED_TEXT_KINDS:
        from course_utils.text import minilm_tokenizer

        return minilm_tokenizer()
    return vocabulary.load_tokenizer()


def load_pretrained(name: str, device=None, folder: Path | None = None):
    """Load a shipped model by name (see :func:`list_pretrained`): a :class:`VQAModel` for
    the ``vqa-*`` models, :class:`PretrainedEncoders` for ``clip-stage1``, a ``Describer``
    for ``describe-caption``, a ``Retriever`` for ``retrieval-negclip``, an ``Editor`` for
    ``edit-film-unet``.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    from course_utils import fusion
    from course_utils.training import load_checkpoint

    recipe = _check_name(name)
    weights, _ = paths(name, folder)
    card = model_card(name, folder)
    if recipe.kind == CAPTIONER:
        from course_utils.captioning.pretrained import load_captioner

        return load_captioner(weights, card, device)
    if recipe.kind == RETRIEVER:
        from course_utils.retrieval.pretrained import load_retriever

        return load_retriever(weights, card, device)
    if recipe.kind == EDITOR:
        from course_utils.editing.pretrained import load_editor

        return load_editor(weights, card, device)
    if recipe.kind == CONTRASTIVE:
        from course_utils.pretraining import load_pretrained_encoders

        loaded = load_pretrained_encoders(path=weights)
        encoders = PretrainedEncoders(loaded["model"].eval(), loaded["projector"], card, weights)
        return encoders.to(device) if device is not None else encoders
    model = fusion.build_model(**card["model_config"])
    if device is not None:
        model.to(device)
    load_checkpoint(model, weights)
    return VQAModel(model, tokenizer_for(card["model_config"]["kind"]), card)


def evaluation_data(recipe: Recipe, splits=EVAL_SPLITS) -> dict:
    """The evaluation splits of a recipe's dataset (they exclude its training examples), and
    for a VQA recipe the hand-written questions (``"handwritten"``).

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    if recipe.kind == RETRIEVER:  # (caption splits, referring expressions, edits)
        from course_utils.retrieval.pretrained import evaluation_sets

        return evaluation_sets(recipe)
    if recipe.kind == EDITOR:  # datasets: the card's metrics need scenes and programs too
        from course_utils.editing.pretrained import EDIT_SPLITS

        ds = data.load_editing_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, splits=("train", *EDIT_SPLITS))
        return {s: ds[s] for s in EDIT_SPLITS}
    if recipe.kind == CAPTIONER:  # datasets: the captioner decodes, the grammar reads back
        from course_utils.captioning.pretrained import CAPTION_SPLITS

        ds = data.load_description_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                           n_eval=recipe.n_eval, splits=("train", *CAPTION_SPLITS))
        return {s: ds[s] for s in CAPTION_SPLITS}
    if recipe.kind == CONTRASTIVE:
        ds = data.load_caption_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, splits=["train", "validation"])
        return {"validation": encoding.caption_tensors(ds["validation"])}  # never trained on
    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, splits=("train", *splits))
    tok = tokenizer_for(recipe.kind)
    out = {s: encoding.to_tensors(ds[s], tok) for s in splits}
    out[HANDWRITTEN] = encoding.to_tensors(handwritten.handwritten_dataset(), tok)
    return out


def evaluate_encoders(model, projector, tensors: dict) -> dict:
    """Held-out retrieval of a dual encoder: Recall@1 and @5 both ways, and after stage 1.

    Used in chapter 07, "7. Saving the encoders for chapter 08"."""
    import torch

    from course_utils import pretraining

    t = tensors["validation"]
    device = next(model.parameters()).device
    t = {k: v.to(device) for k, v in t.items()}
    with torch.inference_mode():
        img, txt = model.encode_image(t["pixel_values"]), model.encode_text(t["input_ids"], t["attention_mask"])
        metrics = pretraining.retrieval_accuracy(img, txt, k=(1, 5))
        if projector is not None:
            img1, txt1 = pretraining.stage1_embeddings(model, projector, **t)
            metrics["stage1/image_to_text@1"] = pretraining.retrieval_accuracy(img1, txt1, k=1)["image_to_text@1"]
    return {k: round(v, 4) for k, v in metrics.items()}


def evaluate_model(model, tensors: dict) -> dict:
    """Accuracy per split, and per question family on ``test``.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    from course_utils.training import predict

    metrics = {}
    for split, t in tensors.items():
        pred = predict(model, t).argmax(-1)
        correct = pred == t["labels"]
        metrics[split] = round(correct.float().mean().item(), 4)
        if split == "test":
            for i, family in enumerate(programs.FAMILIES):
                sel = t["task_ids"] == i
                if sel.any():
                    metrics[f"test/{family}"] = round(correct[sel].float().mean().item(), 4)
    return metrics


def reproduce(name: str, folder: Path | None = None, progress: bool = True,
              threads: int | None = None) -> dict:
    """Train a shipped model from its recipe, evaluate it, and write weights and card.

    ``threads`` sets ``torch.set_num_threads`` for training (small models often train faster
    on one thread, and much faster when other processes share the CPU); a frozen pretrained
    text encoder computes its features on every core.
    Used in chapter 09, "1. The shipped model and its evaluation splits".
    """
    import torch

    from course_utils.runtime import seed_everything

    recipe = _check_name(name)
    if recipe.freeze and recipe.kind != CAPTIONER:
        raise ValueError(f"{name}: freeze is read by the captioner's recipe only, not by kind {recipe.kind!r}")
    if recipe.init_from and recipe.kind in (CAPTIONER, RETRIEVER, EDITOR, CONTRASTIVE):
        raise ValueError(f"{name}: init_from is read by the VQA recipes only, not by kind {recipe.kind!r}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    seed_everything(recipe.seed)
    weights, card_path = paths(name, folder)
    if recipe.kind == CAPTIONER:
        from course_utils.captioning.pretrained import reproduce_captioner

        card = reproduce_captioner(recipe, weights, progress)
    elif recipe.kind == RETRIEVER:
        from course_utils.retrieval.pretrained import reproduce_retriever

        card = reproduce_retriever(recipe, weights, progress)
    elif recipe.kind == EDITOR:
        from course_utils.editing.pretrained import reproduce_editor

        card = reproduce_editor(recipe, weights, progress)
    elif recipe.kind == CONTRASTIVE:
        card = _reproduce_encoders(name, recipe, weights, progress)
    else:
        card = _reproduce_vqa(name, recipe, weights, progress, folder)
    card = {
        "name": name,
        "description": recipe.description,
        "recipe": {k: v for k, v in recipe.__dict__.items() if k != "description"},
        **card,
        "torch_threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card


def _reproduce_vqa(name: str, recipe: Recipe, weights: Path, progress: bool,
                   folder: Path | None = None) -> dict:

    from course_utils import fusion
    from course_utils.training import fit, save_checkpoint

    start = time.perf_counter()
    ds = data.load_instruction_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                       n_eval=recipe.n_eval, progress=progress)
    tok = tokenizer_for(recipe.kind)
    train = encoding.to_tensors(ds["train"], tok)
    val = encoding.to_tensors(ds["validation"], tok)
    evals = {s: encoding.to_tensors(ds[s], tok) for s in EVAL_SPLITS}
    evals[HANDWRITTEN] = encoding.to_tensors(handwritten.handwritten_dataset(), tok)
    model = fusion.build_model(recipe.kind, **encoding.model_sizes(tok), **recipe.model_config)
    if recipe.init_from:
        warm_start(model, paths(recipe.init_from, folder)[0])  # (from the same folder)
    features = getattr(model, "features", None)
    if features is not None:  # a frozen pretrained text encoder: encode each instruction once,
        with torch_threads(os.cpu_count() or 1):  # on every core (a 22 M-parameter encoder uses
            for t in (train, val, *evals.values()):  # them; the small model trains best on few)
                features.warm(t["input_ids"], t["attention_mask"])
    prep_s = time.perf_counter() - start
    history = fit(model, train, val, steps=recipe.steps, batch_size=recipe.batch_size,
                  lr=recipe.lr, seed=recipe.seed, progress=progress, desc=name)
    metrics = evaluate_model(model, evals)
    save_checkpoint(model, weights, name=name, metrics=metrics)
    return {
        "model_config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "metrics": metrics,
        "validation_curve": [{k: round(v, 4) for k, v in e.items()} for e in history.evals],
        "train_seconds": round(history.seconds, 1),
        "data_seconds": round(prep_s, 1),
        "samples_per_second": round(history.samples_per_second, 1),
    }


def warm_start(model, weights: Path) -> list[str]:
    """Copy into ``model`` every tensor of the safetensors file ``weights`` whose name and
    shape match one of the model's; returns the names copied. The rest keep their
    initialisation (e.g. a MiniLM projection where the source had word embeddings).

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    from safetensors.torch import load_file

    if not Path(weights).is_file():
        raise FileNotFoundError(f"no weights to start from at {weights}")
    own = model.state_dict()
    source = load_file(str(weights), device=str(next(model.parameters()).device))
    copied = [k for k, v in source.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise ValueError(f"{Path(weights).name} shares no tensor of the same name and shape with "
                         f"this {type(model).__name__}")
    model.load_state_dict({**own, **{k: source[k] for k in copied}})
    return copied


def _reproduce_encoders(name: str, recipe: Recipe, weights: Path, progress: bool) -> dict:
    from course_utils import pretraining

    start = time.perf_counter()
    pretraining.pretrain_encoders(
        steps=recipe.steps, stage1_steps=recipe.stage1_steps, n_train=recipe.n_train,
        seed=recipe.seed, data_seed=recipe.data_seed, batch_size=recipe.batch_size, lr=recipe.lr,
        path=weights, overwrite=True, progress=progress, **recipe.model_config)
    seconds = time.perf_counter() - start
    loaded = pretraining.load_pretrained_encoders(path=weights)
    model = loaded["model"].eval()
    metrics = evaluate_encoders(model, loaded["projector"], evaluation_data(recipe))
    return {
        "model_config": model.config,
        "parameters": sum(p.numel() for p in model.parameters())
        + sum(p.numel() for p in loaded["projector"].parameters()),
        "metrics": metrics,
        "training": loaded["metadata"],
        "train_seconds": round(seconds, 1),
    }
