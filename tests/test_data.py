"""The instruction datasets: answers re-derived by an independent solver, splits, caching,
determinism, tensors, the tokenizer and argument errors."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest

from course_utils.world import (
    data,
    descriptions,
    edits,
    encoding,
    examples,
    grammar,
    phrasings,
    programs,
    questions,
    scenes,
    vocabulary,
)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


# ---- an independent solver: reads the instruction TEXT and the scene annotation --------

COLOR_WORDS = "red|green|blue|yellow|purple|cyan"
SHAPE_WORDS = "circle|square|triangle|diamond|cross"
# sizes, and the nouns that stand for "any object", with every synonym the grammar may use
SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small",
              "large": "large", "big": "large", "huge": "large"}  # fmt: skip
NP = re.compile(
    rf"\b(?:({'|'.join(SIZE_WORDS)}) )?(?:({COLOR_WORDS}) )?(circles?|squares?|triangles?|diamonds?|"
    r"cross(?:es)?|objects?|items?|things?)\b"
)
REL_WORDS = {"over": "above", "higher up than": "above", "under": "below", "lower down than": "below"}
REL = re.compile(
    r"\b(?:to the |on the )?(left|right)(?: side)? of\b|\b(above|below|over|under|higher up than|lower down than)\b"
)
PLACE = re.compile(
    r"\b(?:in the (top left|top right|bottom left|bottom right) corner|in the (center)"
    r"|on the (left|right)|at the (top|bottom))\b"
)


class Ambiguous(Exception):
    pass


def _singular(word: str) -> str:
    if word.startswith("cross"):
        return "cross"
    return word[:-1] if word.endswith("s") else word


def noun_phrases(text: str) -> list[dict]:
    out = []
    for m in NP.finditer(text.lower()):
        size, color, noun = m.groups()
        d = {}
        if size:
            d["size"] = SIZE_WORDS[size]
        if color:
            d["color"] = color
        if _singular(noun) not in ("object", "item", "thing"):
            d["shape"] = _singular(noun)
        out.append(d)
    return out


def matching(scene, d):
    return [o for o in scene["objects"] if all(o[k] == v for k, v in d.items())]


def the(scene, d):
    found = matching(scene, d)
    if len(found) != 1:
        raise Ambiguous(f"{d} names {len(found)} objects")
    return found[0]


def third(v, size):
    return min(2, int(3 * v / size))


def place_of(o, scene):
    row = ("top", "middle", "bottom")[third(o["y"], scene["height"])]
    col = ("left", "center", "right")[third(o["x"], scene["width"])]
    if row == "middle":
        return "center" if col == "center" else col
    return row if col == "center" else f"{row} {col}"


def is_rel(a, rel, b):
    return {"left": a["x"] < b["x"], "right": a["x"] > b["x"],
            "above": a["y"] < b["y"], "below": a["y"] > b["y"]}[rel]  # fmt: skip


def solve(text: str, family: str, scene: dict) -> str:
    """The answer, from the words alone (no program); raises Ambiguous if not unique."""
    low = text.lower()
    nps = noun_phrases(low)
    asks = "color" if re.search(r"\bcolou?r\b", low) else "shape" if re.search(r"\bshape\b", low) else None
    if family == "attribute":
        (d,) = nps
        return the(scene, d)[asks]
    if family == "count":
        (d,) = nps
        return str(len(matching(scene, d)))
    if family == "exist":
        (d,) = nps
        return "yes" if matching(scene, d) else "no"
    if family == "compare":
        x, y = nps[::-1] if "compared with" in low else nps
        nx, ny = len(matching(scene, x)), len(matching(scene, y))
        if re.search(r"outnumbered|fewer|smaller|\bless\b", low):
            return "yes" if nx < ny else "no"
        if "as many" in low or "equal" in low or "the same as" in low:
            return "yes" if nx == ny else "no"
        assert "more" in low or "greater" in low or "outnumber" in low, text
        return "yes" if nx > ny else "no"
    assert family == "spatial", family
    rel_m = REL.search(low)
    if rel_m:
        rel = rel_m.group(1) or rel_m.group(2)
        rel = REL_WORDS.get(rel, rel)
        after = noun_phrases(low[rel_m.end():])
        anchor = the(scene, after[0])
        if asks:  # the attribute of the one object on that side of the anchor
            side = [o for o in scene["objects"] if o is not anchor and is_rel(o, rel, anchor)]
            if len(side) != 1:
                raise Ambiguous(f"{len(side)} objects {rel} the anchor")
            return side[0][asks]
        a = the(scene, noun_phrases(low[: rel_m.start()])[0])
        if a is anchor:
            raise Ambiguous("same object twice")
        axis = "x" if rel in ("left", "right") else "y"
        if a[axis] == anchor[axis]:
            raise Ambiguous("level objects")
        return "yes" if is_rel(a, rel, anchor) else "no"
    if "nearest" in low or "closest" in low:
        anchor = the(scene, nps[-1])
        ds = sorted((math.hypot(o["x"] - anchor["x"], o["y"] - anchor["y"]), i)
                    for i, o in enumerate(scene["objects"]) if o is not anchor)  # fmt: skip
        if len(ds) > 1 and ds[1][0] - ds[0][0] < 0.3 * scene["width"] / scene["grid"]:
            raise Ambiguous("tie for nearest")
        return scene["objects"][ds[0][1]][asks]
    place = PLACE.search(low)
    if asks and place:
        name = next(g for g in place.groups() if g)
        here = [o for o in scene["objects"] if place_of(o, scene) == name]
        if len(here) != 1:
            raise Ambiguous(f"{len(here)} objects at {name}")
        return here[0][asks]
    (d,) = nps  # "Where is the red circle?"
    return place_of(the(scene, d), scene)


ALL_OPS = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))


def test_independent_solver_agrees_on_thousands_of_questions():
    checked = 0
    modes = ({}, {"novel": True}, *({"language": lang} for lang in grammar.LANGUAGES[1:]))
    for mode in modes:
        for world in (programs.World(), ALL_OPS):
            for i in range(1000):
                family = programs.FAMILIES[i % len(programs.FAMILIES)]
                ex = questions.generate_question(random.Random(f"solver:{mode}:{i}"), family, world, **mode)
                got = solve(ex["instruction"], family, ex["scene"])
                assert got == ex["answer"], (ex["instruction"], ex["scene"], ex["program"])
                checked += 1
    assert checked == 10_000


def test_solver_on_the_dataset_itself():
    dd = data.load_instruction_dataset(seed=3, n_train=400, n_eval=150)
    for split in dd.values():
        for row in split.select_columns(["instruction", "answer", "task", "scene"]):
            assert solve(row["instruction"], row["task"], json.loads(row["scene"])) == row["answer"]


def test_solver_detects_ambiguity():
    scene = scenes.make_scene([{"shape": "circle", "color": "red", "size": "small"}] * 2, [(0, 0), (1, 1)])
    with pytest.raises(Ambiguous):
        solve("What color is the circle?", "attribute", scene)
    with pytest.raises(programs.AmbiguityError):
        programs.answer({"op": "query", "attr": "color", "obj": {"shape": "circle"}}, scene)


# ---- answer distributions ------------------------------------------------------------


def test_answers_are_balanced_and_not_degenerate():
    dd = data.load_instruction_dataset(seed=0, n_train=5000, n_eval=10, splits=["train"])
    stats = data.answer_stats(dd["train"])
    assert set(stats) == set(programs.FAMILIES)
    for fam in ("exist", "compare"):
        assert abs(stats[fam]["majority_rate"] - 0.5) < 0.04, stats[fam]
    assert stats["attribute"]["majority_rate"] < 0.2
    assert stats["count"]["majority_rate"] < 0.3
    assert stats["spatial"]["majority_rate"] < 0.35
    for fam in programs.FAMILIES:  # families are balanced
        assert abs(stats[fam]["n"] - 1000) <= 1
    # yes/no per phrasing kind stays balanced too (no template tells the answer)
    by_kind = {}
    for prog, ans in zip(dd["train"]["program"], dd["train"]["answer"]):
        p = json.loads(prog)
        if ans in ("yes", "no"):
            by_kind.setdefault(phrasings.question_kind(p), []).append(ans == "yes")
    for kind, v in by_kind.items():
        assert 0.4 < sum(v) / len(v) < 0.6, kind


# ---- splits ------------------------------------------------------------------------------


def _pairs(split):
    return [{(o["color"], o["shape"]) for o in json.loads(s)["objects"]} for s in split["scene"]]


def test_compositional_split_is_disjoint_from_training():
    dd = data.load_instruction_dataset(seed=1, n_train=3000, n_eval=400)
    held = set(programs.HELDOUT_PAIRS)
    for name in ("train", "validation", "test", "test_paraphrase", "test_shift"):
        assert not any(p & held for p in _pairs(dd[name])), name
    comp = dd["test_compositional"]
    assert all(p & held for p in _pairs(comp))
    # the question is about a novel object: colour/shape answers are novel pairs' values
    novel_colors = {c for c, _ in held}
    for row in comp.select_columns(["task", "answer", "program"]):
        prog = json.loads(row["program"])
        if prog["op"] == "query" and prog["attr"] == "color":
            assert row["answer"] in novel_colors
    # training questions never name a held-out pair
    for text in dd["train"]["instruction"]:
        for c, s in held:
            assert f"{c} {s}" not in text


def test_language_splits_hold_out_their_layer():
    """Word-level checks on the datasets themselves (the grammar's tests check each layer)."""
    dd = data.load_instruction_dataset(seed=2, n_train=1500, n_eval=300)
    held = grammar.held_words()

    def words(text):
        return set(re.findall(r"[a-z]+", text.lower()))

    for name in ("train", "validation", "test", "test_compositional", "test_shift", "test_paraphrase", "test_frames"):
        assert not any(words(t) & held for t in dd[name]["instruction"]), name
    assert all(words(t) & held for t in dd["test_synonyms"]["instruction"])
    assert set(dd) == set(data.VQA_SPLITS)
    assert set(data.load_caption_dataset(seed=2, n_train=20, n_eval=5)) == set(data.SPLITS)


def test_shift_split_changes_rendering_only():
    dd = data.load_instruction_dataset(seed=2, n_train=10, n_eval=50, splits=["test", "test_shift"])
    for s in dd["test_shift"]["scene"]:
        style = json.loads(s)["style"]
        assert style["noise"] > 0 and style["scale"] < 1 and style["background"] != scenes.DEFAULT_STYLE["background"]
    assert all(json.loads(s)["style"]["noise"] == 0 for s in dd["test"]["scene"])


def test_evaluation_splits_do_not_repeat_training_examples():
    dd = data.load_instruction_dataset(seed=4, n_train=2000, n_eval=500, num_objects=(2, 3))
    key = lambda row: examples.scene_key(json.loads(row["scene"]), row["instruction"])  # noqa: E731
    train = {key(r) for r in dd["train"].select_columns(["scene", "instruction"])}
    for name in ("validation", "test"):
        assert not any(key(r) in train for r in dd[name].select_columns(["scene", "instruction"]))


def test_evaluation_splits_do_not_depend_on_the_training_size():
    """Chapter 09 regenerates the shipped model's evaluation splits with fewer training
    examples than its recipe: each split has its own random stream, so only a collision with a
    training question (rare, and then visible as a different split) could change one."""
    small = data.load_instruction_dataset(seed=3, n_train=300, n_eval=200, splits=("train", "test", "test_frames"),
                                          cache=False)  # fmt: skip
    large = data.load_instruction_dataset(seed=3, n_train=3000, n_eval=200, splits=("train", "test", "test_frames"),
                                          cache=False)  # fmt: skip
    for name in ("test", "test_frames"):
        assert small[name]["instruction"] == large[name]["instruction"]
        assert small[name]["scene"] == large[name]["scene"]


# ---- determinism and caching --------------------------------------------------------------


def test_same_seed_same_data_different_seed_different_data():
    a = data.load_instruction_dataset(seed=5, n_train=200, n_eval=50, cache=False)
    b = data.load_instruction_dataset(seed=5, n_train=200, n_eval=50, cache=False)
    c = data.load_instruction_dataset(seed=6, n_train=200, n_eval=50, cache=False)
    for name in data.SPLITS:
        assert a[name]["instruction"] == b[name]["instruction"]
        assert a[name]["scene"] == b[name]["scene"]
        ia = a[name].data.column("image").to_pylist()
        ib = b[name].data.column("image").to_pylist()
        assert [x["bytes"] for x in ia] == [x["bytes"] for x in ib]
    assert a["train"]["scene"] != c["train"]["scene"]


def test_annotations_are_stable_across_runs():
    """Scenes and questions are pure Python, so this fingerprint holds on every machine."""
    ex = [questions.generate_question(random.Random(f"golden:{i}"), programs.FAMILIES[i % 5], programs.World()) for i in range(50)]
    digest = __import__("hashlib").sha256(json.dumps(ex, sort_keys=True).encode()).hexdigest()
    again = [questions.generate_question(random.Random(f"golden:{i}"), programs.FAMILIES[i % 5], programs.World()) for i in range(50)]
    assert digest == __import__("hashlib").sha256(json.dumps(again, sort_keys=True).encode()).hexdigest()


def test_cache_is_used_and_never_stale(monkeypatch):
    first = data.load_instruction_dataset(seed=7, n_train=100, n_eval=20)
    again = data.load_instruction_dataset(seed=7, n_train=100, n_eval=20)
    assert again["train"].cache_files and first["train"]["scene"] == again["train"]["scene"]
    world = data.make_world()
    sizes = data.split_sizes(100, 20, None)
    fp = data.fingerprint("vqa", 7, sizes, world)
    assert fp != data.fingerprint("vqa", 8, sizes, world)
    assert fp != data.fingerprint("vqa", 7, data.split_sizes(101, 20, None), world)
    assert fp != data.fingerprint("vqa", 7, sizes, data.make_world(num_objects=(2, 4)))
    assert fp != data.fingerprint("edit", 7, sizes, world)
    monkeypatch.setattr(data, "DATA_VERSION", "changed")  # a generator change
    assert fp != data.fingerprint("vqa", 7, sizes, world)


def test_fingerprint_covers_every_source_file_of_the_world(tmp_path):
    """Editing any file the world's data depends on changes the digest in the fingerprint;
    the files are found from the imports, so a new dependency is covered too."""
    package = Path(data.__file__).resolve().parents[1]
    copy = tmp_path / "course_utils"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    files = data.source_files(copy)
    names = {f.relative_to(copy).as_posix() for f in files}
    world = {f"world/{m}.py" for m in ("data", "examples", "questions", "phrasings", "programs",
                                        "scenes", "descriptions", "encoding", "vocabulary")}
    assert world | {"tokenization.py"} <= names, sorted(names)
    assert "world/augment.py" not in names  # the datasets never augment
    base = data.source_digest(copy)
    assert base == data.source_digest(package)  # the same wherever the package lives
    for f in files:
        original = f.read_bytes()
        f.write_bytes(original + b"\n# edited\n")
        assert data.source_digest.__wrapped__(copy) != base, f"editing {f.name} went unnoticed"
        f.write_bytes(original)
    # a new module that the generator starts to import is covered as soon as it is imported
    (copy / "world" / "colours.py").write_text("SHADES = ()\n")
    questions_py = copy / "world" / "questions.py"
    questions_py.write_text("from course_utils.world import colours  # noqa\n" + questions_py.read_text())
    assert copy / "world" / "colours.py" in data.source_files(copy)
    assert data.source_digest.__wrapped__(copy) != base


# ---- tensors and tokenizer ------------------------------------------------------------------


def test_to_tensors_fast_path():
    import torch

    dd = data.load_instruction_dataset(seed=0, n_train=300, n_eval=20)
    tok = vocabulary.load_tokenizer()
    t = encoding.to_tensors(dd["train"], tok)
    n = 300
    assert t["pixel_values"].shape == (n, 3, 48, 48) and t["pixel_values"].dtype == torch.float32
    assert t["pixel_values"].min() >= -1 and t["pixel_values"].max() <= 1
    assert t["input_ids"].shape == t["attention_mask"].shape and t["input_ids"].shape[0] == n
    lengths = [len(tok(s)["input_ids"]) for s in dd["train"]["instruction"]]
    assert t["attention_mask"].sum(1).tolist() == lengths
    assert (t["input_ids"][t["attention_mask"] == 0] == tok.pad_token_id).all()
    vocab = programs.answer_vocab()
    assert [vocab[i] for i in t["labels"].tolist()] == dd["train"]["answer"]
    assert [programs.FAMILIES[i] for i in t["task_ids"].tolist()] == dd["train"]["task"]
    # pixel values decode exactly what Pillow sees
    img = dd["train"][0]["image"]
    import numpy as np

    want = (np.asarray(img, dtype=np.float32) / 255 - 0.5) / 0.5
    assert np.allclose(t["pixel_values"][0].permute(1, 2, 0).numpy(), want)
    fixed = encoding.to_tensors(dd["train"].select(range(5)), tok, max_length=32)
    assert fixed["input_ids"].shape == (5, 32)


def test_to_tensors_reads_the_rows_of_a_selection():
    """A ``select``-ed or ``filter``-ed split has its own rows: its images are those rows'
    (the raw Arrow table underneath still holds every row, in the old order)."""
    import numpy as np

    split = data.load_instruction_dataset(seed=0, n_train=40, n_eval=5, splits=("train",))["train"]
    rows = [7, 3, 30]
    picked = encoding.images_to_array(split.select(rows))
    assert picked.shape == (3, 48, 48, 3)
    assert all(np.array_equal(picked[i], np.asarray(split[r]["image"])) for i, r in enumerate(rows))
    counts = split.filter(lambda task: task == "count", input_columns="task")
    t = encoding.to_tensors(counts)
    assert len(t["pixel_values"]) == len(t["labels"]) == len(counts) < len(split)
    first = next(i for i, task in enumerate(split["task"]) if task == "count")
    assert np.array_equal(encoding.images_to_array(counts)[0], np.asarray(split[first]["image"]))


def test_png_round_trip_and_fallback():
    import io

    import numpy as np
    from PIL import Image

    arr = np.asarray(scenes.render(scenes.random_scene(3)))
    assert (np.asarray(Image.open(io.BytesIO(encoding.png_bytes(arr)))) == arr).all()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")  # Pillow's own PNG (filtered rows)
    assert (encoding.decode_png(buf.getvalue()) == arr).all()


def test_tokenizer_is_deterministic_and_covers_every_split():
    from transformers import PreTrainedTokenizerFast

    a = vocabulary.load_tokenizer(cache=False)
    b = vocabulary.load_tokenizer(cache=False)
    assert isinstance(a, PreTrainedTokenizerFast)
    assert a.get_vocab() == b.get_vocab()
    dd = data.load_instruction_dataset(seed=9, n_train=500, n_eval=200)
    unk = a.unk_token_id
    for name, split in dd.items():
        ids = a(list(split["instruction"]) + list(split["answer"]))["input_ids"]
        assert not any(unk in x for x in ids), name
    for kind in (data.load_caption_dataset, data.load_edit_dataset, data.load_retrieval_dataset):
        dd = kind(n_train=60, n_eval=20)
        for split in dd.values():
            ids = a(list(split["instruction"]) + list(split["answer"]))["input_ids"]
            assert not any(unk in x for x in ids)
    enc = a("Is the red circle left of the blue square?")
    assert enc["input_ids"][0] == a.cls_token_id and enc["input_ids"][-1] == a.sep_token_id


# ---- the other kinds of data -----------------------------------------------------------------


def test_caption_retrieval_and_edit_datasets():
    cap = data.load_caption_dataset(n_train=40, n_eval=10)
    for row in cap["train"]:
        scene = json.loads(row["scene"])
        assert row["answer"] == descriptions.caption(scene, row["task"] == "caption_detailed")
    ret = data.load_retrieval_dataset(n_train=40, n_eval=10)
    for split in ret.values():
        for row in split.select_columns(["scene", "program", "answer", "instruction"]):
            assert descriptions.refers_to(json.loads(row["program"]), json.loads(row["scene"]))
            assert row["answer"] in row["instruction"]
    ed = data.load_edit_dataset(n_train=80, n_eval=20)
    assert set(ed["train"]["task"]) == set(edits.EDIT_OPS)
    for split in ed.values():
        for row in split.select_columns(["scene", "program", "target_scene"]):
            before, after = json.loads(row["scene"]), json.loads(row["target_scene"])
            assert edits.apply_edit(json.loads(row["program"]), before) == after
    row = ed["train"][0]
    assert row["target_image"].size == row["image"].size


# ---- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_objects": 10}, "num_objects"),
        ({"num_objects": (3, 2)}, "num_objects"),
        ({"colors": ["red", "pink"]}, "colors"),
        ({"shapes": ["hexagon"]}, "shapes"),
        ({"n_train": -1}, "n_train"),
        ({"n_eval": -5}, "n_eval"),
        ({"n_train": 1.5}, "n_train"),
        ({"seed": -1}, "seed"),
        ({"splits": ["training"]}, "splits"),
        ({"families": ["color"]}, "families"),
        ({"grid": 1}, "grid"),
        ({"image_size": 50}, "image_size"),
        ({"heldout_pairs": [("pink", "circle")]}, "heldout_pairs"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.load_instruction_dataset(**{"n_train": 10, "n_eval": 5, **kwargs})


def test_benchmark_reports_timings():
    out = data.benchmark(n=200)
    assert out["n"] == 200 and out["total_s"] > 0 and out["examples_per_s"] > 0
    assert {"generate_s", "render_s", "dataset_s", "tensors_s"} <= set(out)


def test_caption_tensors_pair_each_image_with_its_caption():
    split = data.load_caption_dataset(seed=3, n_train=0, n_eval=12, splits=["validation"])["validation"]
    t = encoding.caption_tensors(split)
    tok = vocabulary.load_tokenizer()
    assert t["pixel_values"].shape == (12, 3, scenes.IMAGE_SIZE, scenes.IMAGE_SIZE)
    assert t["input_ids"].shape == t["attention_mask"].shape and t["input_ids"].shape[0] == 12
    assert int(t["attention_mask"].sum(1).max()) == t["input_ids"].shape[1]  # padded to the longest
    for i in (0, 11):
        real = t["input_ids"][i][t["attention_mask"][i].bool()]
        assert tok.decode(real, skip_special_tokens=True).replace(" ", "") == \
            split[i]["answer"].lower().replace(" ", "")
