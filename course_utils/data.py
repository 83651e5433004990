"""The instruction datasets of the course's world, as Hugging Face ``datasets``.

Four kinds of data, one loader each, all with the same splits and the stable columns
``image`` (an ``Image`` feature), ``instruction``, ``answer``, ``task``, ``scene`` (the
annotation as a JSON string: ``json.loads(row["scene"])``) and ``program`` (the
question's program as JSON; models never see it, evaluation may)::

    load_instruction_dataset()   visual question answering: task = the question family
    load_caption_dataset()       task = "caption_short" / "caption_detailed"
    load_retrieval_dataset()     instruction = "Find the image with a small red circle ..."
    load_edit_dataset()          adds target_image / target_scene; task = the edit kind

Splits: ``train``, ``validation``, ``test`` (one distribution); ``test_compositional``
(every image has an object of a colour-shape pair that no training image contains, and
the question is about it); ``test_paraphrase`` (phrasings never used in training);
``test_shift`` (rendering change: tinted background, pixel noise, smaller objects).

Everything is deterministic from ``seed`` and cached under
``runtime.cache_dir("data")`` in a folder named by a fingerprint of the generator's
source code, its version, the Pillow version and every argument, so a changed
generator never returns stale data. :func:`to_tensors` is the fast path to training
tensors; :func:`load_tokenizer` gives the world's WordPiece tokenizer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import struct
import time
import zlib
from pathlib import Path

from course_utils import instructions as I
from course_utils import scenes as S

#: Bump when the data changes in a way the source fingerprint would not catch.
DATA_VERSION = "1"
SPLITS: tuple[str, ...] = (
    "train",
    "validation",
    "test",
    "test_compositional",
    "test_paraphrase",
    "test_shift",
)
KINDS: tuple[str, ...] = ("vqa", "caption", "retrieval", "edit")
#: ``pixel_values = (pixels / 255 - IMAGE_MEAN) / IMAGE_STD``, as ViT image processors do.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


def answer_vocab() -> list[str]:
    """Every answer a question can have, in a fixed order (label ``i`` is ``vocab[i]``).

    It does not depend on the arguments of a dataset, so label ids mean the same thing
    in every chapter.
    """
    counts = [str(i) for i in range(10)]
    return ["no", "yes", *counts, *S.COLORS, *S.SHAPES, *S.SIZES, *I.POSITIONS]


# ---- PNG without Pillow's overhead -------------------------------------------------


def png_bytes(array) -> bytes:
    """A standard PNG of an ``(H, W, 3)`` uint8 array (fast: one zlib call)."""
    import numpy as np

    h, w, _ = array.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), array.reshape(h, w * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def decode_png(data: bytes):
    """``(H, W, 3)`` uint8 array of a PNG; fast for :func:`png_bytes`' own, else Pillow."""
    import numpy as np

    if data[12:16] == b"IHDR" and data[24:26] == b"\x08\x02" and data[37:41] == b"IDAT":
        w, h = struct.unpack(">II", data[16:24])
        n = struct.unpack(">I", data[33:37])[0]
        rows = np.frombuffer(zlib.decompress(data[41 : 41 + n]), np.uint8)
        if rows.size == h * (3 * w + 1):
            rows = rows.reshape(h, 3 * w + 1)
            if not rows[:, 0].any():  # every row unfiltered: the bytes are the pixels
                return rows[:, 1:].reshape(h, w, 3)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _image_cell(scene: dict) -> dict:
    import numpy as np

    return {"bytes": png_bytes(np.asarray(S.render(scene))), "path": None}


# ---- argument checking --------------------------------------------------------------


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return value


def _check_splits(splits) -> tuple[str, ...]:
    if splits is None:
        return SPLITS
    if isinstance(splits, str):
        splits = [splits]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits: unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    return tuple(s for s in SPLITS if s in splits)


def make_world(
    image_size: int = S.IMAGE_SIZE,
    grid: int = S.GRID,
    num_objects=(2, 5),
    colors=None,
    shapes=None,
    families=None,
    heldout_pairs=I.HELDOUT_PAIRS,
) -> I.World:
    """A :class:`~course_utils.instructions.World`, with ``ValueError`` naming a bad argument."""
    return I.World(
        image_size=image_size,
        grid=grid,
        colors=tuple(S.check_names(colors, tuple(S.COLORS), "colors")),
        shapes=tuple(S.check_names(shapes, S.SHAPES, "shapes")),
        families=tuple(S.check_names(families, I.FAMILIES, "families")),
        num_objects=S.check_num_objects(num_objects, grid),
        heldout_pairs=tuple(tuple(p) for p in heldout_pairs),
    )


# ---- generation ---------------------------------------------------------------------


def _split_mode(split: str) -> dict:
    return {
        "novel": split == "test_compositional",
        "heldout": split == "test_paraphrase",
        "shift": split == "test_shift",
    }


def _shift(scene: dict, rng: random.Random) -> dict:
    scene["style"] = {**scene["style"], **S.SHIFT_STYLE, "noise_seed": rng.getrandbits(32)}
    return scene


def _scene_key(scene: dict, instruction: str) -> str:
    objs = sorted((o["x"], o["y"], o["shape"], o["color"], o["size"]) for o in scene["objects"])
    return json.dumps([objs, instruction])


def generate_examples(kind: str, split: str, n: int, seed: int, world: I.World, avoid=None):
    """Yield ``n`` raw examples (dicts with ``scene``, ``instruction``, ...) of one split.

    Example ``i`` depends only on ``(kind, seed, split, i)``, so any subset can be
    regenerated. ``avoid`` is a set of keys (scene + instruction) that must not repeat,
    e.g. the training set's when generating the test splits.
    """
    mode = _split_mode(split)
    fams = world.families
    order = [fams[i % len(fams)] for i in range(n)]
    shuffler = random.Random(f"{kind}:{seed}:{split}:order")
    shuffler.shuffle(order)  # balanced families
    # balanced yes/no answers within each family: alternate, then shuffle per family
    yes = {f: [k % 2 == 0 for k in range(order.count(f))] for f in fams}
    for f in fams:
        shuffler.shuffle(yes[f])
    for i in range(n):
        plan = {"yes": yes[order[i]].pop()}
        for attempt in range(20):
            rng = random.Random(f"{kind}:{seed}:{split}:{i}:{attempt}")
            ex = _one(kind, rng, order[i], world, mode, plan)
            if mode["shift"]:
                _shift(ex["scene"], rng)
                if "target_scene" in ex:
                    ex["target_scene"]["style"] = {
                        **ex["target_scene"]["style"],
                        **{k: ex["scene"]["style"][k] for k in ("noise", "noise_seed", "scale")},
                    }
                    if ex["program"].get("op") != "style":
                        ex["target_scene"]["style"]["background"] = ex["scene"]["style"]["background"]
            if avoid is None or _scene_key(ex["scene"], ex["instruction"]) not in avoid:
                break
        yield ex


def _one(kind: str, rng: random.Random, family: str, world: I.World, mode: dict, plan=None) -> dict:
    novel, heldout = mode["novel"], mode["heldout"]
    if kind == "vqa":
        ex = I.generate_question(rng, family, world, novel=novel, heldout=heldout, plan=plan)
        ex["task"] = ex["program"]["family"]
        return ex
    if kind == "edit":
        ex = I.generate_edit(rng, world, novel=novel, heldout=heldout)
        ex["task"] = ex["program"]["op"]
        ex["answer"] = I.caption(ex["target_scene"])
        return ex
    # captions and retrieval describe a random scene of the split's distribution
    b = I._Builder(rng, world, novel)
    while True:
        try:
            b.objects, b.cells = [], []
            b.fill(I._n_objects(b, 1))
            if novel:
                b.objects[0] = b.sample(novel=True)
            scene = b.scene()
            break
        except I._Retry:  # pragma: no cover - only with tiny worlds
            continue
    if kind == "caption":
        detailed = rng.random() < 0.5
        task = "caption_detailed" if detailed else "caption_short"
        text = I._fmt(rng, task, heldout)
        program = {"op": "caption", "detailed": detailed}
        return {"scene": scene, "program": program, "instruction": text,
                "answer": I.caption(scene, detailed), "task": task}  # fmt: skip
    program, ref = I.referring_expression(rng, scene, world)
    text = I._fmt(rng, "retrieval", heldout, ref=ref)
    return {"scene": scene, "program": program, "instruction": text, "answer": ref, "task": "retrieval"}


def _features(kind: str):
    import datasets

    cols = {
        "image": datasets.Image(),
        "instruction": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "task": datasets.Value("string"),
        "scene": datasets.Value("string"),
        "program": datasets.Value("string"),
    }
    if kind == "edit":
        cols["target_image"] = datasets.Image()
        cols["target_scene"] = datasets.Value("string")
    return datasets.Features(cols)


def _columns(kind: str, examples: list[dict]) -> dict:
    cols = {
        "image": [_image_cell(e["scene"]) for e in examples],
        "instruction": [e["instruction"] for e in examples],
        "answer": [e["answer"] for e in examples],
        "task": [e["task"] for e in examples],
        "scene": [json.dumps(e["scene"]) for e in examples],
        "program": [json.dumps(e["program"]) for e in examples],
    }
    if kind == "edit":
        cols["target_image"] = [_image_cell(e["target_scene"]) for e in examples]
        cols["target_scene"] = [json.dumps(e["target_scene"]) for e in examples]
    return cols


def _build(kind: str, seed: int, sizes: dict, world: I.World, progress: bool):
    import datasets

    out = {}
    seen: set[str] | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(sizes.values()), desc=f"generating {kind} data", unit="ex")
    for split, n in sizes.items():
        examples = []
        for ex in generate_examples(kind, split, n, seed, world, avoid=None if split == "train" else seen):
            examples.append(ex)
            if bar is not None and len(examples) % 500 == 0:
                bar.update(500)
        if bar is not None:
            bar.update(len(examples) % 500)
        if split == "train":  # evaluation splits never repeat a training example
            seen = {_scene_key(e["scene"], e["instruction"]) for e in examples}
        out[split] = datasets.Dataset.from_dict(_columns(kind, examples), features=_features(kind))
    if bar is not None:
        bar.close()
    return datasets.DatasetDict(out)


# ---- caching -------------------------------------------------------------------------


def fingerprint(kind: str, seed: int, sizes: dict, world: I.World) -> str:
    """Hash of the generator's source, version, Pillow version and all arguments."""
    import PIL

    h = hashlib.sha256()
    for module in (S, I):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    meta = {"version": DATA_VERSION, "pillow": PIL.__version__, "kind": kind, "seed": seed,
            "sizes": sizes, "world": world.as_dict()}  # fmt: skip
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:20]


def _load(kind, seed, sizes, world, cache, progress):
    import datasets

    if not cache:
        return _build(kind, seed, sizes, world, progress)
    from course_utils.runtime import cache_dir

    root = cache_dir("data")
    path = root / f"{kind}-{fingerprint(kind, seed, sizes, world)}"
    if (path / "dataset_dict.json").exists():
        try:
            return datasets.load_from_disk(str(path))
        except Exception:  # a damaged cache entry: rebuild it  # pragma: no cover
            shutil.rmtree(path, ignore_errors=True)
    dd = _build(kind, seed, sizes, world, progress)
    tmp = root / f".{path.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # saving a few MB needs no progress bar
    try:
        dd.save_to_disk(str(tmp))
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    try:
        os.replace(tmp, path)  # atomic: readers never see half a dataset
    except OSError:  # another process won the race; use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def _sizes(n_train, n_eval, splits) -> dict:
    n_train = _check_count(n_train, "n_train")
    n_eval = _check_count(n_eval, "n_eval")
    return {s: (n_train if s == "train" else n_eval) for s in _check_splits(splits)}


def _loader(kind: str):
    def load(
        seed: int = 0,
        n_train: int = 20_000,
        n_eval: int = 2_000,
        splits=None,
        image_size: int = S.IMAGE_SIZE,
        grid: int = S.GRID,
        num_objects=(2, 5),
        colors=None,
        shapes=None,
        families=None,
        heldout_pairs=I.HELDOUT_PAIRS,
        cache: bool = True,
        progress: bool = False,
    ):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        world = make_world(image_size, grid, num_objects, colors, shapes, families, heldout_pairs)
        return _load(kind, seed, _sizes(n_train, n_eval, splits), world, cache, progress)

    return load


_ARGS_DOC = """
    Arguments (a bad one raises ``ValueError`` naming it):
        seed: the whole dataset is a function of it (and of the other arguments).
        n_train, n_eval: examples in ``train`` and in each other split.
        splits: a subset of :data:`SPLITS` (default: all six).
        image_size, grid: image side in pixels and the grid of object positions.
        num_objects: objects per scene, an int or an inclusive ``(min, max)``.
        colors, shapes: subsets of ``scenes.COLORS`` / ``scenes.SHAPES``.
        families: question families (VQA only), a subset of ``instructions.FAMILIES``.
        heldout_pairs: ``(color, shape)`` pairs kept out of every training image.
        cache: read/write the fingerprinted cache (``runtime.cache_dir("data")``).
        progress: show a progress bar while generating.
"""

load_instruction_dataset = _loader("vqa")
load_instruction_dataset.__name__ = "load_instruction_dataset"
load_instruction_dataset.__doc__ = (
    """The visual question answering dataset: a ``datasets.DatasetDict`` of :data:`SPLITS`.

    Columns: ``image``, ``instruction``, ``answer``, ``task`` (the question family:
    attribute, count, exist, spatial, compare), ``scene`` and ``program`` (JSON).
    """
    + _ARGS_DOC
)
load_caption_dataset = _loader("caption")
load_caption_dataset.__name__ = "load_caption_dataset"
load_caption_dataset.__doc__ = (
    """Captioning: ``instruction`` asks for a short or a detailed description, ``answer``
    is the caption, ``task`` is ``caption_short`` or ``caption_detailed``.
    """
    + _ARGS_DOC
)
load_retrieval_dataset = _loader("retrieval")
load_retrieval_dataset.__name__ = "load_retrieval_dataset"
load_retrieval_dataset.__doc__ = (
    """Retrieval: ``instruction`` is a query ("Find the image with a small red circle above
    a square."), ``answer`` the bare referring expression, ``program`` its structure:
    ``instructions.refers_to(json.loads(program), scene)`` tells whether any image matches.
    """
    + _ARGS_DOC
)
load_edit_dataset = _loader("edit")
load_edit_dataset.__name__ = "load_edit_dataset"
load_edit_dataset.__doc__ = (
    """Instruction-driven editing: ``image`` + ``instruction`` ("Make the circle blue.")
    -> ``target_image`` / ``target_scene``; ``task`` is recolor, remove, move or style;
    ``answer`` is the short caption of the edited scene.
    """
    + _ARGS_DOC
)


# ---- tensors -------------------------------------------------------------------------


def images_to_array(split, column: str = "image"):
    """All images of a split as one ``(N, H, W, 3)`` uint8 NumPy array (fast path)."""
    import numpy as np

    cells = split.data.column(column).to_pylist()
    if not cells:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack([decode_png(c["bytes"]) for c in cells])


def normalize_images(array):
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` with :data:`IMAGE_MEAN`/``STD``."""
    import torch

    x = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def caption_tensors(split, tokenizer=None) -> dict:
    """Image-caption pairs as tensors for contrastive training (chapter 07): the captions
    are the split's ``answer`` column. Returns ``pixel_values`` ``(N, 3, H, W)`` and
    ``input_ids`` / ``attention_mask`` ``(N, L)`` padded to the longest caption;
    ``tokenizer`` defaults to :func:`load_tokenizer`."""
    enc = (tokenizer or load_tokenizer())(list(split["answer"]), padding="longest", return_tensors="pt")
    return {"pixel_values": normalize_images(images_to_array(split)),
            "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def to_tensors(split, tokenizer=None, max_length: int | None = None) -> dict:
    """A split as training tensors, prepared once (seconds for 20,000 examples).

    Returns ``pixel_values`` ``(N, 3, H, W)`` float (normalised), ``input_ids`` and
    ``attention_mask`` ``(N, L)`` (padded to the longest instruction, or ``max_length``),
    ``labels`` ``(N,)`` (indices in :func:`answer_vocab`; -100 for answers outside it,
    e.g. captions) and ``task_ids`` ``(N,)`` (indices in ``instructions.FAMILIES``, -1
    for other tasks). ``tokenizer`` defaults to :func:`load_tokenizer`.
    """
    import torch

    tokenizer = tokenizer or load_tokenizer()
    enc = tokenizer(
        list(split["instruction"]),
        padding="max_length" if max_length else "longest",
        truncation=max_length is not None,
        max_length=max_length,
        return_tensors="pt",
    )
    index = {a: i for i, a in enumerate(answer_vocab())}
    fams = {f: i for i, f in enumerate(I.FAMILIES)}
    return {
        "pixel_values": normalize_images(images_to_array(split)),
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": torch.tensor([index.get(a, -100) for a in split["answer"]], dtype=torch.long),
        "task_ids": torch.tensor([fams.get(t, -1) for t in split["task"]], dtype=torch.long),
    }


# ---- the world's tokenizer -------------------------------------------------------------

TOKENIZER_VERSION = "1"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def world_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Sentences of the world's language: every phrasing (held-out ones included), every
    answer, captions, referring expressions and edit instructions."""
    world = I.World(spatial_ops=tuple((op, 1.0) for op in I.SPATIAL_OPS))
    lines = list(answer_vocab())
    for train, held in I.TEMPLATES.values():
        lines += [t.replace("{", "").replace("}", "") for t in train + held]
    for i in range(n):
        rng = random.Random(f"corpus:{seed}:{i}")
        heldout = i % 3 == 0
        ex = I.generate_question(rng, I.FAMILIES[i % len(I.FAMILIES)], world, heldout=heldout)
        lines += [ex["instruction"], ex["answer"]]
        if i % 4 == 0:
            lines.append(I.caption(ex["scene"], detailed=True))
            lines.append(I.referring_expression(rng, ex["scene"], world)[1])
            lines.append(I.generate_edit(rng, world, heldout=heldout)["instruction"])
    for words in I.RELATION_WORDS.values():
        lines += list(words)
    for words in I.MOVE_WORDS.values():
        lines += list(words)
    lines += list(I.NUMBER_WORDS)
    lines.append("0 1 2 3 4 5 6 7 8 9 . , ? ! ; : ' \" - ( )")
    return lines


def train_tokenizer(lines: list[str]):
    """A BERT-style WordPiece tokenizer (lowercase, punctuation split, [CLS] ... [SEP]).

    ``tokenizers``' WordPiece trainer learns the alphabet and merges until every word of
    the corpus is one token. Its intermediate merges depend on hash-map order (they differ
    from run to run), so we keep a canonical vocabulary: the special tokens, the alphabet
    (plain and ``##``-continuation) and the corpus's whole words, sorted. The result is the
    same on every machine; unseen words fall back to characters, never to ``[UNK]``.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    def blank():
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return tok

    tok = blank()
    trainer = trainers.WordPieceTrainer(
        vocab_size=100_000, special_tokens=list(SPECIAL_TOKENS), min_frequency=1
    )
    tok.train_from_iterator(lines, trainer=trainer)
    learned = tok.get_vocab()
    words = {
        w
        for line in lines
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line))
    }
    chars = sorted(t for t in learned if len(t) == 1 and t not in SPECIAL_TOKENS)
    cont = sorted(t for t in learned if t.startswith("##") and len(t) == 3)
    whole = sorted(w for w in words if len(w) > 1 and w in learned)
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *chars, *cont, *whole])}
    tok = blank()
    tok.model = models.WordPiece(vocab=vocab, unk_token="[UNK]")
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )  # fmt: skip
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
    )  # fmt: skip


def load_tokenizer(cache: bool = True):
    """The world's WordPiece tokenizer as a ``transformers.PreTrainedTokenizerFast``.

    Trained here with ``tokenizers`` on :func:`world_corpus` (held-out phrasings included,
    so no word of any split is ``[UNK]``), deterministic (see :func:`train_tokenizer`),
    cached like the datasets. ``[PAD]`` has id 0.
    """
    from transformers import PreTrainedTokenizerFast

    h = hashlib.sha256()
    for module in (S, I):
        h.update(Path(module.__file__).read_bytes())
    h.update(f"{TOKENIZER_VERSION}".encode())
    if cache:
        from course_utils.runtime import cache_dir

        path = cache_dir("data") / f"tokenizer-{h.hexdigest()[:20]}"
        if (path / "tokenizer.json").exists():
            return PreTrainedTokenizerFast.from_pretrained(str(path))
    tok = train_tokenizer(world_corpus())
    if cache:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, path)
        except OSError:  # pragma: no cover - a concurrent writer won
            shutil.rmtree(tmp, ignore_errors=True)
    return tok


# ---- statistics and the speed benchmark -----------------------------------------------


def answer_stats(split) -> dict:
    """Per family: number of examples, distinct answers, majority answer and its rate."""
    from collections import Counter, defaultdict

    by = defaultdict(Counter)
    for task, ans in zip(split["task"], split["answer"]):
        by[task][ans] += 1
    out = {}
    for task, counts in sorted(by.items()):
        n = sum(counts.values())
        top, k = counts.most_common(1)[0]
        out[task] = {"n": n, "answers": len(counts), "majority": top, "majority_rate": k / n}
    return out


def benchmark(n: int = 20_000, seed: int = 0) -> dict:
    """Time the data pipeline on ``n`` VQA examples; returns seconds per stage.

    ``generate_s``: scenes, questions and answers; ``render_s``: Pillow drawing and PNG
    encoding; ``dataset_s``: the Arrow ``Dataset``; ``tensors_s``: :func:`to_tensors`.
    ``total_s`` is the first three (the "20,000 examples with images" figure).
    """
    import datasets

    n = _check_count(n, "n")
    world = make_world()
    t0 = time.perf_counter()
    examples = list(generate_examples("vqa", "train", n, seed, world))
    for e in examples:
        e["task"] = e["program"]["family"]
    t1 = time.perf_counter()
    cols = _columns("vqa", examples)
    t2 = time.perf_counter()
    ds = datasets.Dataset.from_dict(cols, features=_features("vqa"))
    t3 = time.perf_counter()
    tok = load_tokenizer()
    t4 = time.perf_counter()
    to_tensors(ds, tok)
    t5 = time.perf_counter()
    total = t3 - t0
    return {
        "n": n,
        "generate_s": round(t1 - t0, 3),
        "render_s": round(t2 - t1, 3),
        "dataset_s": round(t3 - t2, 3),
        "total_s": round(total, 3),
        "examples_per_s": round(n / total, 1),
        "tensors_s": round(t5 - t4, 3),
    }
