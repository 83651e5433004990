"""The instruction datasets of the course's world, as Hugging Face ``datasets``.

Four kinds of data, one loader each, all with the same splits and the stable columns
``image`` (an ``Image`` feature), ``instruction``, ``answer``, ``task``, ``scene`` (the
annotation as a JSON string: ``json.loads(row["scene"])``) and ``program`` (the
question's program as JSON; models never see it, evaluation may)::

    load_instruction_dataset()   visual question answering: task = the question family
    load_caption_dataset()       task = "caption_short" / "caption_detailed"
    load_retrieval_dataset()     instruction = "Find the image with a small red circle ..."
    load_edit_dataset()          adds target_image / target_scene; task = the edit kind
    load_editing_dataset()       chapter 12's edits: as above, plus adding objects and a cartoon style
    load_description_dataset()   task = "describe_brief" / "describe_detailed" / "describe_summary"

Splits: ``train``, ``validation``, ``test`` (one distribution); ``test_compositional``
(every image has an object of a colour-shape pair that no training image contains, and
the question is about it); ``test_paraphrase`` (phrasings never used in training: for
questions, the grammar's held-out cores); ``test_shift`` (rendering change: tinted
background, pixel noise, smaller objects); and for questions only ``test_frames``
(held-out frames around training cores) and ``test_synonyms`` (held-out words).

Everything is deterministic from ``seed`` and cached under
``runtime.cache_dir("data")`` in a folder named by a fingerprint of the generator's
source code, its version, the Pillow version and every argument, so a changed
generator never returns stale data. :func:`~course_utils.world.encoding.to_tensors` is
the fast path to training tensors; :func:`~course_utils.world.vocabulary.load_tokenizer`
gives the world's WordPiece tokenizer.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from course_utils.world import scenes
from course_utils.world.encoding import image_cell, to_tensors
from course_utils.world.examples import generate_examples, scene_key
from course_utils.world.programs import FAMILIES, HELDOUT_PAIRS, World
from course_utils.world.vocabulary import load_tokenizer

#: Bump when the data changes in a way the source fingerprint would not catch.
DATA_VERSION = "2"
SPLITS: tuple[str, ...] = (
    "train",
    "validation",
    "test",
    "test_compositional",
    "test_paraphrase",
    "test_shift",
)
#: The question splits: the common ones, and one per held-out layer of the question grammar.
VQA_SPLITS: tuple[str, ...] = (*SPLITS, "test_frames", "test_synonyms")
KINDS: tuple[str, ...] = ("vqa", "caption", "retrieval", "edit", "describe", "editing")


# ---- argument checking --------------------------------------------------------------


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return value


def _check_splits(splits, kind: str = "vqa") -> tuple[str, ...]:
    known = VQA_SPLITS if kind == "vqa" else SPLITS
    if splits is None:
        return known
    if isinstance(splits, str):
        splits = [splits]
    unknown = [s for s in splits if s not in known]
    if unknown or not splits:
        raise ValueError(f"splits: unknown split(s) {unknown} for {kind} data; expected some of {list(known)}")
    return tuple(s for s in known if s in splits)


def make_world(
    image_size: int = scenes.IMAGE_SIZE,
    grid: int = scenes.GRID,
    num_objects=(2, 5),
    colors=None,
    shapes=None,
    families=None,
    heldout_pairs=HELDOUT_PAIRS,
    num_templates=None,
) -> World:
    """A :class:`~course_utils.world.programs.World`, with ``ValueError`` naming a bad argument.

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    return World(
        image_size=image_size,
        grid=grid,
        colors=tuple(scenes.check_names(colors, tuple(scenes.COLORS), "colors")),
        shapes=tuple(scenes.check_names(shapes, scenes.SHAPES, "shapes")),
        families=tuple(scenes.check_names(families, FAMILIES, "families")),
        num_objects=scenes.check_num_objects(num_objects, grid),
        heldout_pairs=tuple(tuple(p) for p in heldout_pairs),
        num_templates=num_templates,
    )


def dataset_features(kind: str):
    """The ``datasets.Features`` of a kind's splits (edits add the target image and scene).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    import datasets

    cols = {
        "image": datasets.Image(),
        "instruction": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "task": datasets.Value("string"),
        "scene": datasets.Value("string"),
        "program": datasets.Value("string"),
    }
    if kind in ("edit", "editing"):
        cols["target_image"] = datasets.Image()
        cols["target_scene"] = datasets.Value("string")
    return datasets.Features(cols)


def dataset_columns(kind: str, examples: list[dict]) -> dict:
    """The columns of a split from its raw examples (images rendered, scene and program as JSON).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    cols = {
        "image": [image_cell(e["scene"]) for e in examples],
        "instruction": [e["instruction"] for e in examples],
        "answer": [e["answer"] for e in examples],
        "task": [e["task"] for e in examples],
        "scene": [json.dumps(e["scene"]) for e in examples],
        "program": [json.dumps(e["program"]) for e in examples],
    }
    if kind in ("edit", "editing"):
        cols["target_image"] = [image_cell(e["target_scene"]) for e in examples]
        cols["target_scene"] = [json.dumps(e["target_scene"]) for e in examples]
    return cols


def _build(kind: str, seed: int, sizes: dict, world: World, progress: bool):
    import datasets

    out = {}
    seen: set[str] | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(sizes.values()), desc=f"generating {kind} data", unit="ex",
                   mininterval=0.5)  # at most 2 refreshes a second: widgets flood the notebook client
    for split, n in sizes.items():
        examples = []
        for ex in generate_examples(kind, split, n, seed, world, avoid=None if split == "train" else seen):
            examples.append(ex)
            if bar is not None and len(examples) % 500 == 0:
                bar.update(500)
        if bar is not None:
            bar.update(len(examples) % 500)
        if split == "train":  # evaluation splits never repeat a training example
            seen = {scene_key(e["scene"], e["instruction"]) for e in examples}
        out[split] = datasets.Dataset.from_dict(dataset_columns(kind, examples), features=dataset_features(kind))
    if bar is not None:
        bar.close()
    return datasets.DatasetDict(out)


# ---- caching -------------------------------------------------------------------------


def source_files(package_root: Path | None = None) -> list[Path]:
    """Every source file the world's data depends on: this module and, transitively, every
    ``course_utils`` module it imports (found by reading the imports, not by a list that
    could fall behind). ``package_root`` is the ``course_utils`` folder (default: this one).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    root = Path(package_root or Path(__file__).resolve().parent.parent)
    todo, seen = [root / "world" / "data.py"], set()
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        if path != root / "__init__.py":  # the package's lazy facade imports everything
            todo += _imported_files(path, root)
    return sorted(seen)


def _imported_files(path: Path, root: Path) -> list[Path]:
    """The ``course_utils`` source files that ``path`` imports (module or package)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(root.name):
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith(root.name)]
    files = []
    for name in names:
        parts = name.split(".")[1:]
        candidates = [root / Path(*parts).with_suffix(".py")] if parts else []
        files += [f for f in (*candidates, root.joinpath(*parts, "__init__.py")) if f.exists()]
    return files


@functools.lru_cache(maxsize=4)
def source_digest(package_root: Path | None = None) -> str:
    """SHA-256 of :func:`source_files` (their paths inside the package and their bytes).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    root = Path(package_root or Path(__file__).resolve().parent.parent)
    h = hashlib.sha256()
    for f in source_files(root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def fingerprint(kind: str, seed: int, sizes: dict, world: World) -> str:
    """Hash of every source file the data depends on (:func:`source_digest`), the data
    version, the Pillow version and all arguments: a changed generator never returns
    stale data.

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    import PIL

    meta = {"version": DATA_VERSION, "pillow": PIL.__version__, "kind": kind, "seed": seed,
            "sizes": sizes, "world": world.as_dict(), "source": source_digest()}  # fmt: skip
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:20]


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


def split_sizes(n_train, n_eval, splits=None, kind: str = "vqa") -> dict:
    """Examples per split: ``n_train`` for ``train``, ``n_eval`` for every other split.

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    n_train = _check_count(n_train, "n_train")
    n_eval = _check_count(n_eval, "n_eval")
    return {s: (n_train if s == "train" else n_eval) for s in _check_splits(splits, kind)}


def _loader(kind: str):
    def load(
        seed: int = 0,
        n_train: int = 20_000,
        n_eval: int = 2_000,
        splits=None,
        image_size: int = scenes.IMAGE_SIZE,
        grid: int = scenes.GRID,
        num_objects=(2, 5),
        colors=None,
        shapes=None,
        families=None,
        heldout_pairs=HELDOUT_PAIRS,
        num_templates=None,
        cache: bool = True,
        progress: bool = False,
    ):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        world = make_world(image_size, grid, num_objects, colors, shapes, families, heldout_pairs,
                           num_templates)  # fmt: skip
        return _load(kind, seed, split_sizes(n_train, n_eval, splits, kind), world, cache, progress)

    return load


_ARGS_DOC = """
    Arguments (a bad one raises ``ValueError`` naming it):
        seed: the whole dataset is a function of it (and of the other arguments).
        n_train, n_eval: examples in ``train`` and in each other split.
        splits: a subset of :data:`SPLITS` (default: all six; questions: :data:`VQA_SPLITS`, all eight).
        image_size, grid: image side in pixels and the grid of object positions.
        num_objects: objects per scene, an int or an inclusive ``(min, max)``.
        colors, shapes: subsets of ``scenes.COLORS`` / ``scenes.SHAPES``.
        families: question families (VQA only), a subset of ``programs.FAMILIES``.
        heldout_pairs: ``(color, shape)`` pairs kept out of every training image.
        num_templates: training cores per question group (None: all; chapter 09's FLAN curve).
        cache: read/write the fingerprinted cache (``runtime.cache_dir("data")``).
        progress: show a progress bar while generating.
"""

load_instruction_dataset = _loader("vqa")
load_instruction_dataset.__name__ = "load_instruction_dataset"
load_instruction_dataset.__doc__ = (
    """The visual question answering dataset: a ``datasets.DatasetDict`` of :data:`SPLITS`.

    Columns: ``image``, ``instruction``, ``answer``, ``task`` (the question family:
    attribute, count, exist, spatial, compare), ``scene`` and ``program`` (JSON).

    Used in chapter 06, "2. Questions with exactly one answer";
    chapter 06, "5. Building, transforming and saving with 🤗 `datasets`" shows how it works.
    """
    + _ARGS_DOC
)
load_caption_dataset = _loader("caption")
load_caption_dataset.__name__ = "load_caption_dataset"
load_caption_dataset.__doc__ = (
    """Captioning: ``instruction`` asks for a short or a detailed description, ``answer``
    is the caption, ``task`` is ``caption_short`` or ``caption_detailed``.

    Used in chapter 07, "1. One space for images and captions".
    """
    + _ARGS_DOC
)
load_description_dataset = _loader("describe")
load_description_dataset.__name__ = "load_description_dataset"
load_description_dataset.__doc__ = (
    """Descriptions as the instruction asks: ``task`` is one of
    ``descriptions.DESCRIBE_FORMS`` (a brief caption, a detailed description with every
    object's place, or a one-line summary of the shapes), ``answer`` its reference text
    (``descriptions.describe``). ``test_paraphrase`` uses the held-out phrasings.

    Used in chapter 10, "1. Instructions that change the output".
    """
    + _ARGS_DOC
)
load_retrieval_dataset = _loader("retrieval")
load_retrieval_dataset.__name__ = "load_retrieval_dataset"
load_retrieval_dataset.__doc__ = (
    """Retrieval: ``instruction`` is a query ("Find the image with a small red circle above
    a square."), ``answer`` the bare referring expression, ``program`` its structure:
    ``descriptions.refers_to(json.loads(program), scene)`` tells whether any image matches.

    Serves chapter 01, "7. Three applications, previewed" (retrieval).
    """
    + _ARGS_DOC
)
load_edit_dataset = _loader("edit")
load_edit_dataset.__name__ = "load_edit_dataset"
load_edit_dataset.__doc__ = (
    """Instruction-driven editing: ``image`` + ``instruction`` ("Make the circle blue.")
    -> ``target_image`` / ``target_scene``; ``task`` is recolor, remove, move or style;
    ``answer`` is the short caption of the edited scene.

    Serves chapter 01, "7. Three applications, previewed" (editing).
    """
    + _ARGS_DOC
)

load_editing_dataset = _loader("editing")
load_editing_dataset.__name__ = "load_editing_dataset"
load_editing_dataset.__doc__ = (
    """Chapter 12's editing data, the columns of :func:`load_edit_dataset`: ``task`` is one
    of ``edits.EDITING_OPS`` (recolor, remove, move, add, style; equally often), the styles
    include ``cartoon``, and in ``test_compositional`` every object edit produces (recolour,
    add) or acts on (remove, move) a held-out colour-shape pair. ``test_paraphrase`` uses
    the held-out phrasings.

    Used in chapter 12, "1. Edits with one right answer".
    """
    + _ARGS_DOC
)


# ---- statistics and the speed benchmark -----------------------------------------------


def answer_stats(split) -> dict:
    """Per family: number of examples, distinct answers, majority answer and its rate.

    Used in chapter 06, "3. Honest answers: statistics and a blind baseline"."""
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

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`".
    """
    import datasets

    n = _check_count(n, "n")
    world = make_world()
    t0 = time.perf_counter()
    examples = list(generate_examples("vqa", "train", n, seed, world))
    for e in examples:
        e["task"] = e["program"]["family"]
    t1 = time.perf_counter()
    cols = dataset_columns("vqa", examples)
    t2 = time.perf_counter()
    ds = datasets.Dataset.from_dict(cols, features=dataset_features("vqa"))
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
