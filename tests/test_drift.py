"""Drift between the chapters' from-scratch code and the package's tested copy, in seconds.

Each chapter builds an idea from scratch in the notebook, asserts that its version agrees
with ``course_utils`` (``assert_close(ours(...), course_utils...)``, or an exercise checker
that compares a solution with the package), and imports the package's copy from then on.
tests/test_chapters_run.py checks those claims by executing whole notebooks, which takes minutes (data, training,
plots). This file checks the same claims without executing a notebook: ``load_definitions``
parses every code cell with ``ast`` and runs only its top-level imports, ``def`` and
``class`` statements, and the literal constants those definitions use, in a fresh namespace
per notebook. The Colab setup cell (the first code cell) and ``runtime.init(...)`` are never
run; ``device``, which every chapter gets from ``runtime.init``, is the CPU. Each test then
calls the notebook's definition and the package's object on small seeded inputs and asserts
that they agree with the tolerance the notebook (or its exercise checker) uses.

What this cannot see, the chapters' execution still checks: claims made by top-level statements rather than
by a definition (chapter 04's tokenizer pipeline in cell 7, chapter 09's confusion matrix
and F1 in cell 7), and whether whole cells still run. Chapter 01 makes no agreement claim:
its ``draw_scene`` and ``count`` have no package counterpart.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import random
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from transformers import ViTConfig, ViTModel

from course_utils import (
    attention,
    fusion,
    metrics,
    pretraining,
    runtime,
    text,
    tokenization,
    training,
    vision,
)
from course_utils.world import augment, programs, questions, scenes

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NB02, NB03, NB04, NB05 = ("02_attention.ipynb", "03_vision_encoders.ipynb",
                          "04_instruction_encoders.ipynb", "05_fusion.ipynb")
NB06, NB07, NB08, NB09 = ("06_data.ipynb", "07_pretraining.ipynb",
                          "08_instruction_tuning.ipynb", "09_evaluation.ipynb")
CHECKER = {"atol": 1e-5, "rtol": 1e-4}  # course_utils.checks.core.expect_close's default


class MissingDefinition(LookupError):
    """A notebook no longer defines (at top level) a name this file checks."""


# ---- the loader ----------------------------------------------------------------------


@functools.cache
def _execute_definitions(path: Path) -> tuple[dict, dict]:
    """Run ``path``'s top-level definitions; return (namespace, {name: why it failed})."""
    from IPython.core.inputtransformer2 import TransformerManager  # %magics -> plain Python

    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    trees = []
    for n, cell in enumerate(cells[1:], start=2):  # code cell 1 is the Colab setup: skipped
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        trees.append((n, ast.parse(TransformerManager().transform_cell(source))))
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    defs = [node for _, tree in trees for node in tree.body if isinstance(node, kinds)]
    used = {n.id for d in defs for n in ast.walk(d) if isinstance(n, ast.Name)}

    def keep(node) -> bool:
        if isinstance(node, kinds):
            return True
        if not isinstance(node, ast.Assign) or not {
                n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)} & used:
            return False
        try:  # a literal constant that a definition reads (a default argument, a global)
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError):
            return False
        return True

    namespace = {"__name__": path.stem, "device": torch.device("cpu")}
    failures = {}
    for n, tree in trees:
        for node in filter(keep, tree.body):
            where = f"{path.name}, code cell {n}, line {node.lineno}"
            try:
                exec(compile(ast.Module([node], type_ignores=[]), where, "exec"), namespace)
            except Exception as exc:
                if isinstance(node, ast.Import | ast.ImportFrom):
                    raise ImportError(f"{where}: `{ast.unparse(node)}` failed: {exc}") from exc
                failures[getattr(node, "name", "")] = f"{where}: {type(exc).__name__}: {exc}"
    return namespace, failures


def load_definitions(notebook: str | Path, *names: str):
    """The objects ``names`` as ``notebook`` defines them (one, or a tuple of several).

    The notebook's definitions run once per session; a name it does not define raises
    :class:`MissingDefinition` naming the notebook and the name.
    """
    path = notebook if isinstance(notebook, Path) else NOTEBOOK_DIR / notebook
    namespace, failures = _execute_definitions(path)
    missing = [n for n in names if n not in namespace]
    if missing:
        why = "; ".join(f"{n!r} (its definition failed at {failures[n]})" if n in failures
                        else repr(n) for n in missing)
        raise MissingDefinition(
            f"{path.name} no longer defines {why} at top level; tests/test_drift.py compares "
            "it with the package: rename it there too, or drop the check if the claim is gone")
    found = tuple(namespace[n] for n in names)
    return found[0] if len(found) == 1 else found


def test_loader_fails_loudly_on_a_missing_name():
    with pytest.raises(MissingDefinition, match=r"02_attention\.ipynb .*'no_such_function'"):
        load_definitions(NB02, "softmax", "no_such_function")


def test_loader_runs_only_definitions(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("runtime.init was called")

    monkeypatch.setattr(runtime, "init", boom)
    path = tmp_path / "99_synthetic.ipynb"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("raise RuntimeError('the Colab setup cell ran')"),
        nbformat.v4.new_markdown_cell("# 99 · not code"),
        nbformat.v4.new_code_cell(
            "%matplotlib inline\nimport math\nfrom course_utils import runtime\n"
            "device = runtime.init(seed=0)\nraise RuntimeError('a top-level statement ran')"),
        nbformat.v4.new_code_cell(
            "RADIUS = 2.0\nUNUSED = 3\nlimit = 1 / 0\nfor i in range(3):\n    raise SystemExit\n\n"
            "def area(r=RADIUS):\n    return math.pi * r ** 2\n\n"
            "def capped(x=limit):\n    return x\n\n"
            "class Shape:\n    sides = 4\n"),
    ])
    nbformat.write(nb, path)
    area, shape, device = load_definitions(path, "area", "Shape", "device")
    assert area() == math.pi * 4 and shape.sides == 4 and device == torch.device("cpu")
    with pytest.raises(MissingDefinition, match=r"99_synthetic\.ipynb .*'UNUSED'"):
        load_definitions(path, "UNUSED")  # a constant no definition reads is not run
    with pytest.raises(MissingDefinition, match=r"'capped' \(its definition failed .*NameError"):
        load_definitions(path, "capped")  # its default needs a statement that never ran


# ---- 02 attention ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1000.0])
@pytest.mark.parametrize("dim", [-1, 0])
def test_ch02_softmax_matches_stable_softmax(scale, dim):
    softmax = load_definitions(NB02, "softmax")
    torch.manual_seed(0)
    x = scale * torch.randn(3, 5, 7)
    assert_close(softmax(x, dim=dim), attention.stable_softmax(x, dim=dim))


def _masks():
    lengths = torch.tensor([7, 4])
    real = (torch.arange(7) < lengths[:, None]).long()  # (B, N_k) 1 = real key
    return {"no mask": None, "padding": attention.padding_mask(real),
            "causal": attention.causal_mask(5, 7)}


@pytest.mark.parametrize("mask", ["no mask", "padding", "causal"])
def test_ch02_attention_matches_package(mask):
    sdpa = load_definitions(NB02, "scaled_dot_product_attention")
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 16), torch.randn(2, 4, 7, 16), torch.randn(2, 4, 7, 8)
    out, w = sdpa(q, k, v, _masks()[mask])
    ref_out, ref_w = attention.scaled_dot_product_attention(q, k, v, _masks()[mask])
    assert_close(out, ref_out)
    assert_close(w, ref_w)


def test_ch02_split_and_merge_heads_match_package():
    split_heads, merge_heads = load_definitions(NB02, "split_heads", "merge_heads")
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    assert_close(split_heads(x, 4), attention.split_heads(x, 4))
    assert_close(merge_heads(split_heads(x, 4)), attention.merge_heads(attention.split_heads(x, 4)))


@pytest.mark.parametrize("cross", [False, True], ids=["self-attention", "cross, padded keys"])
@torch.no_grad()
def test_ch02_multi_head_from_scratch_matches_module(cross):
    # "course_utils.attention.MultiHeadAttention is these lines in an nn.Module with biases"
    split_heads, merge_heads, sdpa = load_definitions(
        NB02, "split_heads", "merge_heads", "scaled_dot_product_attention")
    torch.manual_seed(0)
    D, H = 32, 4
    module = attention.MultiHeadAttention(D, H).eval()
    x = torch.randn(2, 5, D)
    context = torch.randn(2, 9, D) if cross else x
    mask = attention.padding_mask(torch.tensor([[1] * 9, [1] * 6 + [0] * 3])) if cross else None

    def linear(layer, t):
        return t @ layer.weight.T + layer.bias

    q, k, v = (split_heads(linear(lin, t), H) for lin, t in
               ((module.q_proj, x), (module.k_proj, context), (module.v_proj, context)))
    heads, weights = sdpa(q, k, v, mask)
    expected, expected_w = module(x, context if cross else None, mask=mask)
    assert_close(linear(module.out_proj, merge_heads(heads)), expected)
    assert_close(weights, expected_w)


@torch.no_grad()
def test_ch02_source_cross_attention_is_one_head_cross_attention():
    SeedCrossAttention = load_definitions(NB02, "SeedCrossAttention")
    torch.manual_seed(0)
    seed_layer = SeedCrossAttention(embed_dim=32)
    ours = attention.CrossAttention(embed_dim=32, num_heads=1)
    for mine, theirs in ((ours.q_proj, seed_layer.query), (ours.k_proj, seed_layer.key),
                         (ours.v_proj, seed_layer.value)):
        mine.load_state_dict(theirs.state_dict())
    ours.out_proj.weight.copy_(torch.eye(32))
    ours.out_proj.bias.zero_()
    instruction, image = torch.randn(2, 6, 32), torch.randn(2, 10, 32)
    assert_close(ours(instruction, image)[0], seed_layer(instruction, image))


def test_ch02_exercise_softmax_matches_stable_softmax():
    my_softmax = load_definitions(NB02, "my_softmax")
    torch.manual_seed(0)
    x = 1000 + 5 * torch.randn(3, 6)
    x[0, 1:3] = float("-inf")  # masked keys get weight 0
    for dim in (-1, 0):
        assert_close(my_softmax(x, dim=dim), attention.stable_softmax(x, dim=dim), **CHECKER)


@pytest.mark.parametrize("mask", ["no mask", "padding", "causal"])
def test_ch02_exercise_attention_matches_package(mask):
    my_attention = load_definitions(NB02, "my_attention")
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 5)
    for got, want in zip(my_attention(q, k, v, mask=_masks()[mask]),
                         attention.scaled_dot_product_attention(q, k, v, _masks()[mask])):
        assert_close(got, want, **CHECKER)


@pytest.mark.parametrize("ids, pad_id", [
    ([[5, 8, 3, 0, 0], [7, 2, 0, 0, 0]], 0),  # right padding
    ([[1, 1, 6, 7], [3, 2, 4, 6]], 1),  # left padding, pad id 1
])
def test_ch02_exercise_padding_mask_matches_package(ids, pad_id):
    my_padding_mask = load_definitions(NB02, "my_padding_mask")
    ids = torch.tensor(ids)
    assert torch.equal(my_padding_mask(ids, pad_id), attention.padding_mask(ids, pad_id))


def test_ch02_exercise_heads_match_package():
    my_split_heads, my_merge_heads = load_definitions(NB02, "my_split_heads", "my_merge_heads")
    torch.manual_seed(0)
    x = torch.randn(3, 5, 12)
    assert torch.equal(my_split_heads(x, 3), attention.split_heads(x, 3))
    heads = attention.split_heads(x, 3).contiguous()
    assert torch.equal(my_merge_heads(heads), attention.merge_heads(heads))


@pytest.mark.parametrize("kv_dim, heads", [(16, 1), (16, 4), (12, 2)])
@torch.no_grad()
def test_ch02_exercise_multi_head_attention_matches_module(kv_dim, heads):
    my_multi_head_attention = load_definitions(NB02, "my_multi_head_attention")
    torch.manual_seed(0)
    D = 16
    module = attention.MultiHeadAttention(D, heads, kv_dim=kv_dim, bias=False)
    x, context = torch.randn(2, 3, D), torch.randn(2, 7, kv_dim)
    w = [lin.weight for lin in (module.q_proj, module.k_proj, module.v_proj, module.out_proj)]
    assert_close(my_multi_head_attention(x, context, *w, heads), module(x, context)[0], **CHECKER)


# ---- 03 vision encoders --------------------------------------------------------------


@torch.no_grad()
def test_ch03_tiny_cnn_matches_conv_encoder():
    TinyCNN = load_definitions(NB03, "TinyCNN")
    torch.manual_seed(0)
    cnn = TinyCNN(hidden_size=32, widths=(8, 16, 32)).eval()
    ref = vision.ConvEncoder(hidden_size=32, widths=(8, 16, 32)).eval()
    ref.load_state_dict(cnn.state_dict())
    x = torch.randn(2, 3, 48, 48)
    assert_close(ref(x), cnn(x))


PATCH_CASES = [(1, 3, 48, 48, 16), (2, 1, 32, 64, 8)]  # (B, C, H, W, p): non-square, 1 channel


@pytest.mark.parametrize("shape", PATCH_CASES)
def test_ch03_patchify_matches_package(shape):
    patchify = load_definitions(NB03, "patchify")
    torch.manual_seed(0)
    x = torch.randn(*shape[:4])
    assert_close(vision.patchify(x, shape[4]), patchify(x, shape[4]))


@pytest.mark.parametrize("shape", PATCH_CASES)
def test_ch03_exercise_patchify_matches_package(shape):
    my_patchify = load_definitions(NB03, "my_patchify")
    torch.manual_seed(0)
    x = torch.randn(*shape[:4])
    assert_close(my_patchify(x, shape[4]), vision.patchify(x, shape[4]), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_ch03_vit_from_scratch_matches_vision_transformer():
    # the notebook's ViT (ViTEmbeddings, Attention, Block) and the package's VisionTransformer,
    # both loaded with the weights of one small random transformers.ViTModel
    ViT, copy_from_hf = load_definitions(NB03, "ViT", "copy_from_hf")
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64)
    hf = ViTModel(cfg, add_pooling_layer=False).eval()
    ours = ViT(cfg).eval()
    copy_from_hf(ours, hf)
    ref = vision.VisionTransformer.from_hf(hf)
    x = torch.randn(2, 3, 32, 32)
    assert_close(ours(x), ref(x))
    assert vision.count_parameters(ours) == vision.count_parameters(ref) == vision.count_parameters(hf)


# ---- 04 instruction encoders -----------------------------------------------------------
# Not checked here: cell 7 trains the WordPiece tokenizer with top-level statements and
# compares its vocabulary with tokenization.train_wordpiece; there is no definition to load.


def _pool_cases():
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    garbage = hidden.masked_fill(mask[..., None] == 0, 100.0)  # padding must not matter
    return {"right padding": (hidden, mask), "garbage at padding": (garbage, mask),
            "bool mask": (hidden, mask.bool()), "left padding": (hidden.flip(1), mask.flip(1))}


@pytest.mark.parametrize("case", ["right padding", "garbage at padding", "bool mask", "left padding"])
@pytest.mark.parametrize("name, tolerance", [("masked_mean", {}), ("mean_pool", CHECKER)],
                         ids=["section 4", "exercise 2"])
def test_ch04_masked_mean_matches_mean_pool(name, tolerance, case):
    pool = load_definitions(NB04, name)
    hidden, mask = _pool_cases()[case]
    assert_close(pool(hidden, mask), text.mean_pool(hidden, mask), **tolerance)


@pytest.mark.parametrize("ids, pad_id", [([[2, 9, 3, 0, 0], [2, 3, 0, 0, 0]], 0),
                                         ([[7, 7, 2, 5, 3], [2, 5, 6, 8, 3]], 7)])
def test_ch04_exercise_attention_mask_matches_package(ids, pad_id):
    make_attention_mask = load_definitions(NB04, "make_attention_mask")
    ids = torch.tensor(ids)
    assert torch.equal(make_attention_mask(ids, pad_id), text.attention_mask_from_ids(ids, pad_id))


def test_ch04_exercise_next_token_labels_match_lm_batch():
    # section 3: text.lm_batch's labels are "the inputs shifted one step left (exercise 3)"
    next_token_labels = load_definitions(NB04, "next_token_labels")
    texts = ["what color is the circle?", "count the squares.", "a red circle left of a square."]
    batch = text.lm_batch(texts, tokenization.train_wordpiece(texts, vocab_size=200))
    labels = next_token_labels(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(labels, batch["labels"])


# ---- 05 fusion -----------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [{}, {"hidden_size": 32, "num_heads": 2, "fusion_layers": 1}],
                         ids=["default sizes", "small"])
@torch.no_grad()
def test_ch05_fixed_model_matches_cross_attention_model(sizes):
    FixedModel = load_definitions(NB05, "FixedModel")  # and its FixedBlock
    torch.manual_seed(0)
    reference = fusion.build_model("cross_attention", vocab_size=40, num_answers=7, **sizes).eval()
    ours = FixedModel(reference.cfg).eval()
    ours.load_state_dict(reference.state_dict())  # same parameter names, same shapes
    mask = (torch.arange(9) < torch.tensor([9, 5, 2, 7])[:, None]).long()
    b = {"pixel_values": torch.randn(4, 3, 48, 48),
         "input_ids": torch.randint(1, 40, (4, 9)) * mask, "attention_mask": mask}
    assert_close(ours(**b), reference(**b))


@torch.no_grad()
def test_ch05_exercise_gated_block_matches_package():
    GatedBlock = load_definitions(NB05, "GatedBlock")
    torch.manual_seed(0)
    block = GatedBlock(32, 4)
    x, image = torch.randn(3, 5, 32), torch.randn(3, 9, 32)
    assert_close(block(x, image), x, atol=1e-6, rtol=0)  # closed gates: the text path only
    reference = fusion.GatedCrossAttentionBlock(32, 4, ratio=2)
    reference.load_state_dict(block.state_dict())
    for gates in ((0.8, -0.5), (2.0, 0.3)):
        for b in (block, reference):
            b.attn_gate.fill_(gates[0])
            b.mlp_gate.fill_(gates[1])
        assert_close(block(x, image), reference(x, image), **CHECKER)


# ---- 06 data ---------------------------------------------------------------------------------
# Exercise 2's pad_batch has no package counterpart (its checker builds the expected tensors).


def test_ch06_annotation_check_accepts_rendered_scenes():
    check_annotation = load_definitions(NB06, "check_annotation")
    assert all(check_annotation(scenes.random_scene(seed=i)) for i in range(20))


def test_ch06_exercise_count_answer_matches_programs_answer():
    count_answer = load_definitions(NB06, "count_answer")
    world = programs.World()
    for i in range(60):
        ex = questions.generate_question(random.Random(f"drift:count:{i}"), "count", world)
        assert count_answer(ex["program"], ex["scene"]) == programs.answer(ex["program"], ex["scene"])


def test_ch06_exercise_flip_example_matches_flip_left_right():
    flip_example = load_definitions(NB06, "flip_example")
    world = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))
    for i in range(40):
        ex = questions.generate_question(random.Random(f"drift:flip:{i}"), "spatial", world)
        expected = augment.flip_left_right(ex["instruction"]), augment.flip_left_right(ex["answer"])
        assert flip_example(ex["instruction"], ex["answer"]) == expected
    probe = "The leftover brightness is right.", "upright"
    assert flip_example(*probe) == tuple(augment.flip_left_right(t) for t in probe)


# ---- 07 pretraining ------------------------------------------------------------------------


@pytest.mark.parametrize("n, temperature", [(8, 0.07), (128, 1.0), (16, torch.tensor(0.05))])
def test_ch07_clip_loss_matches_package(n, temperature):
    clip_loss_from_scratch = load_definitions(NB07, "clip_loss_from_scratch")
    torch.manual_seed(0)
    img, txt = (F.normalize(torch.randn(n, 64), dim=-1) for _ in range(2))
    assert_close(clip_loss_from_scratch(img, txt, temperature),
                 pretraining.clip_loss(img, txt, temperature))


@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
def test_ch07_exercise_clip_loss_matches_package(temperature):
    my_clip_loss = load_definitions(NB07, "my_clip_loss")
    torch.manual_seed(0)
    img, txt = 3 * torch.randn(8, 16), torch.randn(8, 16)  # raw features, not unit length
    want = pretraining.clip_loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), temperature)
    assert_close(my_clip_loss(img, txt, temperature), want, atol=1e-4, rtol=1e-4)


# ---- 08 instruction tuning -------------------------------------------------------------------
# Exercises: smoothed_cross_entropy is compared with torch's label_smoothing, and
# accumulated_step and evaluate with the checker's own references, not with the package.


@pytest.mark.parametrize("batch_size", [8, 128], ids=["epochs wrap", "one batch per epoch"])
def test_ch08_training_loop_matches_fit(batch_size):
    train_from_scratch = load_definitions(NB08, "train_from_scratch")
    torch.manual_seed(0)
    mask = (torch.arange(6) < torch.randint(2, 7, (20, 1))).long()
    data = {"pixel_values": torch.randn(20, 3, 48, 48),
            "input_ids": torch.randint(1, 30, (20, 6)) * mask, "attention_mask": mask,
            "labels": torch.randint(0, 5, (20,))}

    def model():
        torch.manual_seed(0)
        return fusion.build_model("late_fusion", vocab_size=30, num_answers=5, hidden_size=16,
                                  num_heads=2)

    ours = train_from_scratch(model(), data, steps=6, batch_size=batch_size)
    theirs = training.fit(model(), data, steps=6, batch_size=batch_size, lr=2e-3, progress=False)
    assert_close(torch.tensor(ours), torch.tensor(theirs.train_loss))


# ---- 09 evaluation ---------------------------------------------------------------------------
# Cell 7's confusion matrix and F1 are top-level statements; exercise 1 is the same formulas.


@pytest.mark.parametrize("seed", [0, 1])
def test_ch09_exercise_prf_matches_precision_recall_f1(seed):
    prf_from_confusion = load_definitions(NB09, "prf_from_confusion")
    torch.manual_seed(seed)
    y = torch.randint(0, 6, (200,))  # classes 6 and 7 never occur
    p = torch.where(torch.rand(200) < 0.7, y, torch.randint(0, 7, (200,)))  # 7 never predicted
    out = prf_from_confusion(metrics.confusion_matrix(y, p, 8))
    ref = metrics.precision_recall_f1(y, p, 8)
    for key in ("precision", "recall", "f1"):
        assert_close(out[key], ref[key], atol=1e-4, rtol=1e-4)
    for key in ("macro_f1", "micro_f1"):
        assert float(out[key]) == pytest.approx(ref[key], abs=1e-4)


@pytest.mark.parametrize("accuracy, level", [(0.8, 0.95), (0.5, 0.9)])
def test_ch09_exercise_bootstrap_matches_bootstrap_ci(accuracy, level):
    # "metrics.bootstrap_ci does this (you write it in Exercise 2)"; the checker's tolerance
    bootstrap_interval = load_definitions(NB09, "bootstrap_interval")
    torch.manual_seed(0)
    correct = (torch.rand(400) < accuracy).long()
    low, high = bootstrap_interval(correct, 4000, level, 0)
    _, ref_low, ref_high = metrics.bootstrap_ci(correct, n_boot=20_000, level=level, seed=1)
    width = ref_high - ref_low
    assert (high - low) / width == pytest.approx(1, abs=0.1)
    assert max(abs(low - ref_low), abs(high - ref_high)) <= 0.15 * width


# ---- 13 the FAQ, measured ------------------------------------------------------------------------
# Exercise 1 fits what scaling.fit_power_law fits; exercise 2 deals out what DistributedSampler deals.

NB13, NB14 = "13_faq.ipynb", "14_outlook.ipynb"


def test_ch13_exercise_power_law_matches_fit_power_law():
    from course_utils import scaling

    power_law = load_definitions(NB13, "power_law")
    n, error = [500, 1000, 2000, 4000, 8000], [0.31, 0.18, 0.12, 0.061, 0.04]
    assert power_law(n, error) == pytest.approx(scaling.fit_power_law(n, error), rel=1e-9)


@pytest.mark.parametrize(("n", "world"), [(10, 3), (8, 4), (3, 5)])
def test_ch13_exercise_sampler_share_matches_distributed_sampler(n, world):
    from torch.utils.data import DistributedSampler

    sampler_share = load_definitions(NB13, "sampler_share")
    for rank in range(world):
        assert sampler_share(n, rank, world) == list(
            DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))


# ---- 14 outlook ----------------------------------------------------------------------------------


def test_ch14_exercises_match_the_outlook_package():
    from course_utils.outlook import attacks, attribution

    pointing_game, fgsm, integrated_gradients = load_definitions(
        NB14, "pointing_game", "fgsm", "integrated_gradients")
    torch.manual_seed(0)
    heat, target = torch.rand(30, 9), torch.randint(0, 9, (30,))
    assert pointing_game(heat, target) == pytest.approx(
        attribution.pointing_game(heat, target).float().mean().item())
    model = fusion.build_model("late_fusion", vocab_size=20, num_answers=5, hidden_size=16)
    x = torch.rand(4, 3, 48, 48) * 2 - 1
    ids, mask, labels = torch.randint(1, 20, (4, 6)), torch.ones(4, 6, dtype=torch.long), torch.randint(0, 5, (4,))
    assert_close(fgsm(model, x, ids, mask, labels, 8.0), attacks.fgsm(model, x, ids, mask, labels, 8.0))
    ours = integrated_gradients(lambda v: model(v, ids, mask).gather(1, labels[:, None])[:, 0], x,
                                attribution.blank_like(x), 8)
    assert_close(ours, attribution.integrated_gradients(model, x, ids, mask, labels, steps=8), **CHECKER)
