"""The shipped retriever: ``embed_images``, ``embed_texts``, ``compose``, its card, reproduce.

``course_utils.load_pretrained("retrieval-negclip")`` returns a :class:`Retriever`;
``python -m course_utils reproduce retrieval-negclip`` calls :func:`reproduce_retriever`:
``clip-stage1``'s encoders with pooling that keeps places and roles
(:class:`~course_utils.retrieval.model.RetrievalEncoder`), NegCLIP fine-tuning with foils,
then a TIRG combiner for composed retrieval trained on the world's edits.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from course_utils.retrieval.composed import Combiner, build_combiner, train_combiner
from course_utils.retrieval.model import RetrievalConfig, RetrievalEncoder
from course_utils.retrieval.search import search
from course_utils.retrieval.train import TEXT_KINDS, finetune, foil_tensors
from course_utils.world import data, encoding
from course_utils.world.descriptions import caption
from course_utils.world.vocabulary import load_tokenizer

#: The caption splits a retriever's card reports (the edits' test split is ``composed``).
RETRIEVAL_SPLITS = ("test", "test_compositional", "test_shift")


class Retriever:
    """A trained :class:`RetrievalEncoder` (and combiner) with the world's tokenizer.

    ``embed_images(images)`` and ``embed_texts(texts)`` return L2-normalised ``(N, E)``
    tensors on the model's device; ``compose(images, instructions)`` the composed queries;
    ``search(queries, gallery, k)`` the top-k (see ``retrieval.search.search``). Images are
    PIL images (or ``(H, W, 3)`` uint8 arrays) of the world; bad input raises ``ValueError``
    naming it.

    Used in chapter 11, "8. The shipped retriever"."""

    def __init__(self, encoder: RetrievalEncoder, combiner: Combiner | None = None,
                 card: dict | None = None, tokenizer=None, instructions: RetrievalEncoder | None = None):
        self.encoder = encoder.eval()
        self.combiner = combiner.eval() if combiner is not None else None
        self.instructions = instructions.eval() if instructions is not None else None  # reads edits
        self.card = card or {}
        self.tokenizer = tokenizer or load_tokenizer()

    @property
    def device(self):
        return next(self.encoder.parameters()).device

    def to(self, device) -> Retriever:
        for part in (self.encoder, self.combiner, self.instructions):
            if part is not None:
                part.to(device)
        return self

    def _texts(self, texts, what: str = "texts") -> list[str]:
        if isinstance(texts, str):
            raise ValueError(f"{what} must be a list of strings, got one string (wrap it: [text])")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"{what}: item {bad[0]} is not a non-empty string ({texts[bad[0]]!r})")
        return texts

    @torch.no_grad()
    def embed_images(self, images, batch_size: int = 512) -> Tensor:
        """``(N, E)`` unit vectors of a list of images."""
        images = list(images)
        if not images:
            raise ValueError("images is empty; give at least one image")
        pixels = encoding.pixel_values_of(images, self.encoder.cfg.image_size)  # (N, 3, H, W)
        out = [self.encoder.encode_image(pixels[i:i + batch_size].to(self.device))
               for i in range(0, len(pixels), batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def embed_texts(self, texts, batch_size: int = 512, encoder: RetrievalEncoder | None = None) -> Tensor:
        """``(N, E)`` unit vectors of a list of texts (captions, queries) by ``encoder``
        (default: the retriever's own)."""
        texts = self._texts(texts)
        if not texts:
            raise ValueError("texts is empty; give at least one text")
        encoder = encoder or self.encoder
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(texts[i:i + batch_size], padding="longest", truncation=True,
                                 max_length=encoder.cfg.max_length, return_tensors="pt")
            out.append(encoder.encode_text(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)))
        return torch.cat(out)

    @torch.no_grad()
    def compose(self, images, instructions) -> Tensor:
        """Composed queries ``(N, E)``: each image changed as its instruction says."""
        if self.combiner is None:
            raise ValueError("this retriever has no combiner (composed retrieval needs one)")
        instructions = self._texts(instructions, "instructions")
        images = list(images) if not isinstance(images, list) else images
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions; give one per image")
        words = self.embed_texts(instructions, encoder=self.instructions)  # (N, E)
        return self.combiner(self.embed_images(images), words)

    def search(self, queries: Tensor, gallery: Tensor, k: int = 10, index: str = "exact", **params):
        """``(scores, indices)`` of the ``k`` gallery rows nearest each query."""
        return search(gallery, queries, k=k, index=index, **params)


# ---- saving and loading --------------------------------------------------------------------


def _parts(encoder, combiner, instructions) -> nn.ModuleDict:
    named = {"encoder": encoder, "combiner": combiner, "instructions": instructions}
    return nn.ModuleDict({k: v for k, v in named.items() if v is not None})


def save_retriever(path, encoder: RetrievalEncoder, combiner: Combiner | None,
                   instructions: RetrievalEncoder | None = None, **metadata) -> Path:
    """Weights as safetensors, the configs in the header (:func:`load_retriever` rebuilds).
    ``instructions`` is the encoder of edit instructions, if the combiner has its own.

    Used in chapter 11, "8. The shipped retriever"."""
    from course_utils.training import save_checkpoint

    configs = {"encoder": encoder.header(), "combiner": combiner.config if combiner else None,
               "instructions": instructions is not None}
    return save_checkpoint(_parts(encoder, combiner, instructions), path, configs=configs, **metadata)


def load_retriever(path, card: dict | None = None, device=None) -> Retriever:
    """A :class:`Retriever` from a file :func:`save_retriever` wrote.

    Used in chapter 11, "8. The shipped retriever"."""
    from safetensors import safe_open

    from course_utils.training import load_checkpoint

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("course", "{}"))
    if "configs" not in meta:
        raise ValueError(f"{path} was not written by save_retriever (no configs in its header)")
    configs = meta["configs"]
    encoder = RetrievalEncoder(RetrievalConfig(**configs["encoder"]))
    combiner = build_combiner(**configs["combiner"]) if configs["combiner"] else None
    instructions = RetrievalEncoder(RetrievalConfig(**configs["encoder"])) if configs.get("instructions") else None
    parts = _parts(encoder, combiner, instructions)
    if device is not None:
        parts.to(device)
    load_checkpoint(parts, path)
    return Retriever(encoder, combiner, card, instructions=instructions)


# ---- the card's evaluation and the recipe ----------------------------------------------------


def _scenes(split) -> list[dict]:
    return [json.loads(s) for s in split["scene"]]


def evaluate_retriever(retriever: Retriever, captions: dict, queries, edits) -> dict:
    """The card's metrics: caption -> image per split of ``captions`` (a dict of caption
    splits), referring expressions -> image on ``queries`` (the retrieval test split),
    foils on ``captions["test"]``, composed retrieval on ``edits`` (the edit test split).

    Used in chapter 11, "8. The shipped retriever"."""
    from course_utils.retrieval import evaluate

    metrics: dict = {}
    for name, split in captions.items():
        scenes = _scenes(split)
        texts = [caption(s) for s in scenes]
        image_emb = retriever.embed_images(split["image"])
        rel = evaluate.same_text_relevance(texts, texts)
        scores = evaluate.text_to_image(retriever.embed_texts(texts), image_emb, rel)
        metrics[name] = {k: round(float(v), 4) for k, v in scores.items()}
    test = captions["test"]
    foils = evaluate.foil_scores(retriever.embed_images, retriever.embed_texts, test["image"], _scenes(test))
    metrics["foils"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in foils.items()}
    programs = [json.loads(p) for p in queries["program"]]
    rel = evaluate.refers_relevance(programs, _scenes(queries))
    scores = evaluate.text_to_image(retriever.embed_texts(list(queries["instruction"])),
                                    retriever.embed_images(queries["image"]), rel)
    metrics["referring"] = {k: round(float(v), 4) for k, v in scores.items()}
    if retriever.combiner is not None:
        query = retriever.compose(edits["image"], list(edits["instruction"]))
        composed = evaluate.composed_scores(
            query, retriever.embed_images(edits["image"]), retriever.embed_images(edits["target_image"]),
            _scenes(edits), [json.loads(s) for s in edits["target_scene"]], list(edits["task"]))
        metrics["composed"] = {k: round(v, 4) for k, v in composed.items()}
    return metrics


def evaluation_sets(recipe) -> tuple[dict, object, object]:
    """``(caption splits, retrieval test split, edit test split)`` of a recipe's data seed.

    Used in chapter 11, "8. The shipped retriever"."""
    kw = {"seed": recipe.data_seed, "n_train": recipe.n_train, "n_eval": recipe.n_eval}
    caps = data.load_caption_dataset(**kw, splits=("train", *RETRIEVAL_SPLITS))
    queries = data.load_retrieval_dataset(**kw, splits=("train", "test"))["test"]
    edits = data.load_edit_dataset(**kw, splits=("train", "test"))["test"]
    return {s: caps[s] for s in RETRIEVAL_SPLITS}, queries, edits


def reproduce_retriever(recipe, weights: Path, progress: bool = True) -> dict:
    """Train the shipped retriever from its recipe, save it, and return its card's fields:
    NegCLIP fine-tuning of ``clip-stage1``'s encoders (``recipe.steps``), then the TIRG
    combiner on frozen image embeddings of the edits, with a copy of the text side that
    learns to read the instructions (``recipe.stage1_steps``).

    Serves chapter 11, "8. The shipped retriever" (``reproduce retrieval-negclip``)."""
    from course_utils.pretraining import load_pretrained_encoders
    from course_utils.runtime import data_dir

    cfg = dict(recipe.model_config)
    share = cfg.pop("relation_share", 1 / len(TEXT_KINDS))
    mirror = cfg.pop("mirror", 0.0)
    start = time.perf_counter()
    tok = load_tokenizer()
    caps = data.load_caption_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                     n_eval=recipe.n_eval, splits=("train",), progress=progress)
    train = foil_tensors(caps["train"], tok, seed=recipe.seed)
    edits = data.load_edit_dataset(seed=recipe.data_seed, n_train=recipe.n_train,
                                   n_eval=recipe.n_eval, splits=("train",), progress=progress)["train"]
    prep_s = time.perf_counter() - start
    clip = load_pretrained_encoders(path=data_dir() / "clip-stage1.safetensors")["model"]  # chapter 07's
    encoder = RetrievalEncoder.from_contrastive(clip, seed=recipe.seed, **cfg)
    rest = (1 - share) / (len(TEXT_KINDS) - 1)
    losses = finetune(encoder, train, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                      seed=recipe.seed, progress=progress, kind_weights=(rest, rest, share), mirror=mirror)
    retriever = Retriever(encoder)
    image, target = retriever.embed_images(edits["image"]), retriever.embed_images(edits["target_image"])
    words = tok(list(edits["instruction"]), padding="longest", return_tensors="pt")
    instructions = copy.deepcopy(encoder)  # reads edit instructions; its image side is unused
    combiner = build_combiner("tirg", encoder.config.embed_dim)
    combiner_losses = train_combiner(combiner, image, (words["input_ids"], words["attention_mask"]), target,
                                     steps=recipe.stage1_steps, seed=recipe.seed, text_encoder=instructions,
                                     progress=progress)
    train_s = time.perf_counter() - start - prep_s
    retriever = Retriever(encoder, combiner, instructions=instructions)
    metrics = evaluate_retriever(retriever, *evaluation_sets(recipe))
    save_retriever(weights, encoder, combiner, instructions, name="retrieval-negclip", metrics=metrics)
    return {
        "model_config": {"encoder": encoder.header(), "combiner": combiner.config, "instructions": True},
        "parameters": sum(p.numel() for m in (encoder, combiner, instructions) for p in m.parameters()),
        "metrics": metrics,
        "training": {"negclip_loss_first": round(losses[0], 4), "negclip_loss_last": round(losses[-1], 4),
                     "combiner_loss_last": round(combiner_losses[-1], 4), "relation_share": share,
                     "mirror": mirror},
        "train_seconds": round(train_s, 1),
        "data_seconds": round(prep_s, 1),
    }
