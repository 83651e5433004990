"""Personalisation: a new word from ten examples, learned as one token embedding.

Textual inversion (Gal et al. 2022) and Yo'LLaVA (Nguyen et al. 2024) teach a frozen
model a user's concept ("my dog") by learning only the embedding of a new token: the
network stays as it was, so nothing it knew can be forgotten. Here the frozen model is the
shipped ``vqa-slot-read`` and the concept is the world's: a *blicket* is a small red
triangle. :func:`add_word` gives a copy of the model whose tokenizer has one more token
and whose token table has one more row (the only trainable parameter);
:func:`concept_questions` asks the world's questions about the concept, once with the new
word and once in plain words, answered by the world's own program answerer;
:func:`learn_word` fits the row on a handful of examples.
"""

from __future__ import annotations

import copy
import random
import re
import time

import torch
from torch import Tensor, nn

from course_utils.shipped import VQAModel
from course_utils.training import fit, predict
from course_utils.world import encoding, scenes
from course_utils.world.grammar import phrase
from course_utils.world.phrasings import noun_phrase, with_article
from course_utils.world.programs import (
    RELATIONS,
    AmbiguityError,
    Retry,
    World,
    answer,
    matches,
    related,
    unique,
)
from course_utils.world.questions import SceneBuilder

#: The new word and what it means: a small red triangle.
WORD = "blicket"
CONCEPT: dict = {"size": "small", "color": "red", "shape": "triangle"}
#: The kinds of question :func:`concept_questions` asks: "Is there a blicket?", "How many
#: blickets are there?", "Is the blicket left of the green circle?".
KINDS: tuple[str, ...] = ("exist", "count", "relate")


class NewWordEmbedding(nn.Module):
    """A frozen token table with new rows after it: ids below its size read the table,
    the others read :attr:`new` ``(k, D)``, the only parameter that can learn.

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""

    def __init__(self, table: nn.Embedding, new_rows: Tensor):
        super().__init__()
        self.table = table.requires_grad_(False)
        self.new = nn.Parameter(new_rows.detach().clone())  # (k, D)

    @property
    def num_embeddings(self) -> int:
        return self.table.num_embeddings + len(self.new)

    def forward(self, input_ids: Tensor) -> Tensor:
        size = self.table.num_embeddings
        old = self.table(input_ids.clamp(max=size - 1))  # (B, T, D)
        new = self.new[(input_ids - size).clamp(min=0)]  # (B, T, D)
        return torch.where((input_ids >= size)[..., None], new, old)  # (B, T, D)


def word_init(vqa: VQAModel, init: str) -> Tensor:
    """A starting embedding ``(D,)``: ``"mean"`` (the mean of the whole table) or the mean
    of the embeddings of ``init``'s tokens ("object", "small red triangle").

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if not isinstance(getattr(vqa.model, "tokens", None), nn.Embedding):
        raise ValueError("vqa must be a model with its own token table (vqa-slot-read), "
                         "without a new word yet")
    table = vqa.model.tokens.weight.detach()  # (V, D)
    if init == "mean":
        return table[1:].mean(0)  # [PAD] (id 0) aside
    if not isinstance(init, str) or not init.strip():
        raise ValueError(f"init must be 'mean' or words of the vocabulary, got {init!r}")
    ids = vqa.tokenizer(init, add_special_tokens=False)["input_ids"]
    unknown = [t for t in vqa.tokenizer.tokenize(init) if t.startswith("##")]
    if unknown or vqa.tokenizer.unk_token_id in ids:
        raise ValueError(f"init: {init!r} is not made of whole words the model knows "
                         f"(tokens {vqa.tokenizer.tokenize(init)})")
    return table[ids].mean(0)


def add_word(vqa: VQAModel, word: str = WORD, init: str = "small red triangle") -> VQAModel:
    """A copy of ``vqa`` that knows one more word: its tokenizer reads ``word`` as one new
    token, its token table has one more row (initialised by :func:`word_init`), and every
    parameter but that row is frozen. ``vqa`` itself is not changed.

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if not isinstance(word, str) or not re.fullmatch(r"[a-z]+", word):
        raise ValueError(f"word must be one lower-case word of letters, got {word!r}")
    if len(vqa.tokenizer.tokenize(word)) == 1:
        raise ValueError(f"word: {word!r} is already a token of the vocabulary; pick a new word")
    start = word_init(vqa, init)
    tokenizer = copy.deepcopy(vqa.tokenizer)
    tokenizer.add_tokens([word])
    model = copy.deepcopy(vqa.model).requires_grad_(False)
    model.tokens = NewWordEmbedding(model.tokens, start[None])  # (V + 1) rows, one trainable
    model.cfg.vocab_size = model.tokens.num_embeddings
    return VQAModel(model, tokenizer, {**vqa.card, "new_word": word, "init": init})


def plain_words(text: str, word: str = WORD, concept: dict = CONCEPT) -> str:
    """``text`` with ``word`` said in plain words: "Is there a blicket?" -> "Is there a small
    red triangle?" (plurals and articles follow).

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    def say(match: re.Match) -> str:
        article, plural = match.group(1), bool(match.group(3))
        words = noun_phrase(concept, plural=plural)
        if article:
            words = with_article(words)
            return words[0].upper() + words[1:] if article[0].isupper() else words
        return words[0].upper() + words[1:] if match.group(2)[0].isupper() else words

    pattern = rf"\b(?:(an?) )?({word})(s?)\b"
    return re.sub(pattern, say, text, flags=re.IGNORECASE)


def _concept_objects(b: SceneBuilder, kind: str, concept: dict) -> str | None:
    """Objects for one question: ``k`` copies of the concept, near misses (one attribute
    differs), fillers that are not the concept; returns the answer when it is known now."""
    rng = b.rng
    k = {"exist": lambda: b.pick("k", [0, 1]), "count": lambda: b.pick("k", [0, 1, 2, 3])}.get(
        kind, lambda: 1)()
    for _ in range(k):
        b.add(dict(concept))
    for _ in range(rng.choice([0, 1, 1, 2])):
        key = rng.choice(sorted(concept))
        options = {"color": b.world.colors, "shape": b.world.shapes, "size": b.world.sizes}[key]
        b.add(b.sample({**concept, key: rng.choice([v for v in options if v != concept[key]])}))
    b.fill(b.object_count(max(len(b.objects), 3 if kind == "relate" else 1)), avoid=[concept])
    return {"exist": "yes" if k else "no", "count": str(k)}.get(kind)


def _relate_program(rng: random.Random, scene: dict, concept: dict) -> dict:
    """"Is the <concept> left of the green circle?": the other object is named by its colour
    and shape, and must be the only one they describe."""
    others = [o for o in scene["objects"] if not matches(o, concept)]
    other = rng.choice(others)
    desc = {"color": other["color"], "shape": other["shape"]}
    return {"family": "spatial", "op": "relate", "a": dict(concept), "rel": rng.choice(RELATIONS),
            "b": desc}  # fmt: skip


def needs_concept(program: dict, scene: dict, got: str) -> bool:
    """For a ``relate`` program: True when some other object in the concept's place would
    give the other answer, so the question cannot be answered without finding the concept
    (always True for the other kinds, whose scenes are built around the concept).

    Used in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if program["op"] != "relate":
        return True
    b = unique(scene, program["b"])
    axis = "x" if program["rel"] in ("left", "right") else "y"
    return any(related(o, program["rel"], b) != (got == "yes") for o in scene["objects"]
               if o is not b and not matches(o, program["a"]) and o[axis] != b[axis])


def _said(program: dict, word: str, concept: dict) -> dict:
    """The program with the concept's description replaced by the new word (as a noun)."""
    return {k: ({"shape": word} if v == concept else v) for k, v in program.items()}


def concept_question(rng: random.Random, kind: str, word: str = WORD, concept: dict = CONCEPT,
                     world: World | None = None) -> dict:
    """One question about the concept: ``{"scene", "program", "answer", "kind"}``, the
    sentence with ``word`` (``"instruction"``, the grammar's training language) and the same
    sentence in plain words (``"plain"``, :func:`plain_words`); the answer is
    ``programs.answer`` of the program on the scene. ``kind`` is one of :data:`KINDS`.

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    world = world or World()
    yes = rng.choice(["yes", "no"])  # relate: the answer is drawn first, as the world does
    plan: dict = {}  # exist, count: the answer stays as drawn when a scene is redrawn
    for _ in range(1000):
        b = SceneBuilder(rng, world, False, plan)
        try:
            target = _concept_objects(b, kind, concept)
            scene = b.scene()
            program = (_relate_program(rng, scene, concept) if kind == "relate" else
                       {"family": kind, "op": kind, "objs": dict(concept)})  # fmt: skip
            got = answer(program, scene)
        except (Retry, AmbiguityError):
            continue
        if target is not None and got != target:  # pragma: no cover - a generator bug
            raise RuntimeError(f"concept question mismatch on {program}: {got} != {target}")
        if kind == "relate" and (got != yes or not needs_concept(program, scene, got)):
            continue
        text = phrase(_said(program, word, concept), rng)
        if not re.search(rf"\b{word}", text, flags=re.IGNORECASE):  # a typo hid the word
            continue
        return {"scene": scene, "program": program, "answer": got, "instruction": text,
                "plain": plain_words(text, word, concept), "kind": kind}  # fmt: skip
    raise RuntimeError(f"could not build a {kind!r} question about {concept}")  # pragma: no cover


def concept_questions(n: int, seed: int = 0, kinds=KINDS, word: str = WORD,
                      concept: dict = CONCEPT) -> list[dict]:
    """``n`` questions about the concept (:func:`concept_question`), the kinds in turn;
    question ``i`` depends only on ``(seed, i)``.

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    kinds = scenes.check_names(kinds, KINDS, "kinds")
    return [concept_question(random.Random(f"concept:{seed}:{i}"), kinds[i % len(kinds)], word,
                             concept) for i in range(n)]


def question_tensors(vqa: VQAModel, questions: list[dict], text: str = "instruction") -> dict:
    """Questions as the model's tensors (``pixel_values``, ``input_ids``, ``attention_mask``,
    ``labels``), the sentence read from ``text`` (``"instruction"`` or ``"plain"``).

    Used in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if text not in ("instruction", "plain"):
        raise ValueError(f"text must be 'instruction' or 'plain', got {text!r}")
    import numpy as np

    images = [np.asarray(scenes.render(q["scene"])) for q in questions]
    batch = vqa.encode(images, [q[text] for q in questions])
    return {**batch, "labels": encoding.answer_labels([q["answer"] for q in questions])}


def accuracy(vqa: VQAModel, tensors: dict) -> float:
    """The share of ``tensors``' questions the model answers right.

    Used in chapter 14, "5. Personalisation: a new word from ten examples"."""
    return (predict(vqa.model, tensors).argmax(-1) == tensors["labels"]).float().mean().item()


def learn_word(vqa: VQAModel, examples: list[dict], steps: int = 100, lr: float = 0.1,
               seed: int = 0):
    """Fit the new word's row (the only parameter that requires grad) on ``examples``
    (:func:`concept_questions`' dicts, at most a handful), all of them in every step;
    returns fit's ``History``. Nothing else in the model can change.

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    if not isinstance(vqa.model.tokens, NewWordEmbedding):
        raise ValueError("vqa has no new word: call add_word first")
    if not examples:
        raise ValueError("examples must be a non-empty list of concept questions")
    train = question_tensors(vqa, examples)
    history = fit(vqa.model, train, steps=steps, batch_size=len(examples), lr=lr,
                  weight_decay=0.0, params=[vqa.model.tokens.new], seed=seed, progress=False)
    vqa.model.eval()
    return history


def unchanged_elsewhere(vqa: VQAModel, new: VQAModel, split) -> dict:
    """Both models on the same questions without the new word (a split of
    ``load_instruction_dataset``), each reading them with its own tokenizer:
    ``{"before", "after"}`` accuracies and ``"identical"``, True when the token ids and every
    predicted answer are equal.

    Used in chapter 14, "5. Personalisation: a new word from ten examples"."""
    old_t, new_t = (encoding.to_tensors(split, m.tokenizer) for m in (vqa, new))
    old_p, new_p = (predict(m.model, t).argmax(-1) for m, t in ((vqa, old_t), (new, new_t)))
    same_ids = torch.equal(old_t["input_ids"], new_t["input_ids"])
    return {"before": (old_p == old_t["labels"]).float().mean().item(),
            "after": (new_p == new_t["labels"]).float().mean().item(),
            "identical": same_ids and torch.equal(old_p, new_p)}


def word_experiment(vqa: VQAModel, n_examples: int = 10, n_test: int = 500, steps: int = 100,
                    lr: float = 0.1, init: str = "small red triangle", seed: int = 0) -> dict:
    """Teach ``vqa`` the new word from ``n_examples`` questions and test it on ``n_test``
    others: accuracy with the word ``"before"`` and ``"after"`` learning, in ``"plain"``
    words (the model's own ceiling), each per kind too (``"after/exist"``, ...), the
    ``"train_seconds"``, and the taught model (``"model"``).

    Built in chapter 14, "5. Personalisation: a new word from ten examples"."""
    test = concept_questions(n_test, seed=seed + 1)
    new = add_word(vqa, init=init)
    out = {"plain": accuracy(vqa, question_tensors(vqa, test, "plain"))}
    out["before"] = accuracy(new, question_tensors(new, test))
    start = time.perf_counter()
    learn_word(new, concept_questions(n_examples, seed=seed + 100), steps=steps, lr=lr, seed=seed)
    out["train_seconds"] = time.perf_counter() - start
    out["after"] = accuracy(new, question_tensors(new, test))
    for kind in KINDS:
        some = [q for q in test if q["kind"] == kind]
        out[f"plain/{kind}"] = accuracy(vqa, question_tensors(vqa, some, "plain"))
        out[f"after/{kind}"] = accuracy(new, question_tensors(new, some))
    return {**out, "model": new}
