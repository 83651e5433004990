"""Chapter 11's models and data: foils, NegCLIP's loss, the retrieval encoder, combiners,
training, relevance, and the Retriever's API (tiny, untrained models: fast)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from course_utils.pretraining import ContrastiveModel, clip_loss
from course_utils.retrieval import composed, evaluate, negatives, train
from course_utils.retrieval.model import RetrievalConfig, RetrievalEncoder
from course_utils.retrieval.pretrained import Retriever, load_retriever, save_retriever
from course_utils.world import data, descriptions, encoding, foils, scenes
from course_utils.world.descriptions import caption, refers_to
from course_utils.world.phrasings import RELATION_WORDS


def scene_of(*objects):
    """A scene from ``(shape, color, size, row, col)`` tuples."""
    return scenes.make_scene([{"shape": s, "color": c, "size": z} for s, c, z, _, _ in objects],
                             [(r, c) for *_, r, c in objects])


TWO = scene_of(("diamond", "purple", "large", 0, 1), ("cross", "green", "small", 2, 1))


@pytest.fixture(scope="module")
def world_scenes():
    ds = data.load_caption_dataset(n_train=0, n_eval=60, splits=["test"])["test"]
    return ds, [json.loads(s) for s in ds["scene"]]


@pytest.fixture(scope="module")
def foil_data(world_scenes):
    """The test scenes' texts and foils as tensors (train.foil_tensors), with the tokenizer."""
    from course_utils.world.vocabulary import load_tokenizer

    tok = load_tokenizer()
    return train.foil_tensors(world_scenes[0], tok, max_length=64), tok


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return ContrastiveModel(**encoding.model_sizes()).eval()


# ---- foils -----------------------------------------------------------------------------------


def test_a_swapped_caption_has_the_same_words_and_is_false():
    foil = foils.swapped_caption(TWO, random.Random(0))
    true = caption(TWO)
    assert foil is not None and foil != true
    assert Counter(foil.lower().split()) == Counter(true.lower().split())
    assert "purple cross" in foil and "green diamond" in foil


@pytest.mark.parametrize("scene", [scene_of(("circle", "red", "large", 0, 0)),
                                   scene_of(("circle", "red", "large", 0, 0), ("circle", "blue", "large", 1, 1))])
def test_no_foil_when_no_swap_changes_the_words(scene):
    assert foils.swapped_caption(scene, random.Random(0), key="color") is None


def test_relation_pairs_are_true_and_reversed_false(world_scenes):
    _, sc = world_scenes
    rng, found = random.Random(0), 0
    for scene in sc:
        pair = foils.relation_pair(scene, rng)
        if pair is None:
            continue
        found += 1
        true, reverse = pair
        assert Counter(true.split()) == Counter(reverse.split()) and true != reverse
    assert found > len(sc) // 2
    true, reverse = foils.relation_pair(TWO, random.Random(0))
    assert true in {"a purple diamond above a green cross", "a green cross below a purple diamond"}


def test_relation_pair_programs_agree_with_refers_to():
    prog = {"op": "refer", "a": {"color": "purple", "shape": "diamond"}, "rel": "above",
            "b": {"color": "green", "shape": "cross"}}
    assert refers_to(prog, TWO) and not refers_to({**prog, "a": prog["b"], "b": prog["a"]}, TWO)


def test_scene_overlap():
    other = scene_of(("diamond", "purple", "large", 0, 1), ("cross", "red", "small", 2, 1))
    assert foils.scene_overlap(TWO, TWO) == 1.0
    assert foils.scene_overlap(TWO, other) == foils.scene_overlap(other, TWO) == 0.5
    assert foils.scene_overlap(TWO, scene_of(("circle", "red", "large", 1, 1))) == 0.0


@pytest.mark.parametrize("call", [lambda: foils.swapped_caption("scene", random.Random(0)),
                                  lambda: foils.swapped_caption(TWO, random.Random(0), key="shape"),
                                  lambda: foils.relation_text({"shape": "circle"}, "near", {"shape": "square"}),
                                  lambda: foils.scene_overlap({}, TWO)])
def test_foils_reject_bad_input(call):
    with pytest.raises(ValueError):
        call()


# ---- NegCLIP's loss -----------------------------------------------------------------------------


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_negclip_without_foils_is_clip():
    img, txt, foil = unit(6, 8, seed=1), unit(6, 8, seed=2), unit(6, 8, seed=3)
    t = torch.tensor(0.1)
    loss = negatives.negclip_loss(img, txt, foil, t, torch.zeros(6, dtype=torch.bool))
    torch.testing.assert_close(loss, clip_loss(img, txt, t))


def test_foils_raise_the_loss_and_a_foil_equal_to_its_caption_costs_log_2():
    img, txt, foil = unit(6, 8, seed=1), unit(6, 8, seed=2), unit(6, 8, seed=3)
    base = negatives.negclip_loss(img, txt, foil, 0.1, torch.zeros(6, dtype=torch.bool))
    assert negatives.negclip_loss(img, txt, foil, 0.1) > base
    # a perfect model whose foils equal its captions: each image splits its vote in two
    perfect = torch.eye(6)
    loss = negatives.negclip_loss(perfect, perfect, perfect, 0.001)
    torch.testing.assert_close(loss, torch.tensor(0.6931 / 2), atol=1e-3, rtol=0)


def test_negclip_loss_has_gradients():
    img = unit(4, 8, seed=1).requires_grad_()
    negatives.negclip_loss(img, unit(4, 8, seed=2), unit(4, 8, seed=3), 0.07).backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


@pytest.mark.parametrize("args", [(unit(4, 8), unit(5, 8), unit(4, 8), 0.1), (unit(4, 8), unit(4, 8), unit(4), 0.1),
                                  (unit(4, 8), unit(4, 8), unit(4, 8), 0.0),
                                  (unit(4, 8), unit(4, 8), unit(4, 8), 0.1, torch.ones(4))])
def test_negclip_loss_rejects_bad_input(args):
    with pytest.raises(ValueError):
        negatives.negclip_loss(*args)


def test_foil_accuracy():
    img = torch.eye(3)
    assert negatives.foil_accuracy(img, torch.eye(3), torch.roll(torch.eye(3), 1, 0)) == 1.0
    assert negatives.foil_accuracy(img, torch.roll(torch.eye(3), 1, 0), torch.eye(3)) == 0.0


# ---- the retrieval encoder ----------------------------------------------------------------------


def test_it_starts_as_the_contrastive_model_it_came_from(world_scenes, clip):
    ds, _ = world_scenes
    pixels = encoding.normalize_images(encoding.images_to_array(ds))[:8]
    enc = RetrievalEncoder.from_contrastive(clip, query_std=0.0).eval()
    ids = torch.tensor([[2, 26, 277, 134, 78, 26, 165, 123, 3, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_image(pixels), clip.encode_image(pixels), atol=1e-5, rtol=1e-4)
        # zero queries attend uniformly: the pooling is a mean, the text embedding clip's
        torch.testing.assert_close(enc.encode_text(ids), clip.encode_text(ids), atol=1e-5, rtol=1e-4)


def test_random_queries_tell_a_sentence_from_its_reversal(clip):
    a = torch.tensor([[2, 26, 277, 134, 78, 26, 165, 123, 3]])
    b = torch.tensor([[2, 26, 165, 123, 78, 26, 277, 134, 3]])
    enc = RetrievalEncoder.from_contrastive(clip, query_std=1.0, text_layers=2).eval()
    with torch.no_grad():
        mean_cos = (clip.encode_text(a) * clip.encode_text(b)).sum().item()
        query_cos = (enc.encode_text(a) * enc.encode_text(b)).sum().item()
    assert query_cos < mean_cos
    assert len(enc.text_encoder.blocks) == 2


def test_embeddings_are_unit_vectors_and_padding_does_not_matter(clip):
    enc = RetrievalEncoder.from_contrastive(clip).eval()
    ids = torch.tensor([[2, 26, 277, 134, 3]])
    padded = torch.tensor([[2, 26, 277, 134, 3, 0, 0, 0]])
    with torch.no_grad():
        e = enc.encode_text(ids)
        torch.testing.assert_close(e, enc.encode_text(padded), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(1))


def test_a_wider_space_starts_with_the_images_where_they_were(world_scenes, clip):
    ds, _ = world_scenes
    pixels = encoding.normalize_images(encoding.images_to_array(ds))[:8]
    enc = RetrievalEncoder.from_contrastive(clip, embed_dim=3 * clip.embed_dim).eval()
    ids = torch.tensor([[2, 26, 277, 134, 78, 26, 165, 123, 3]])
    with torch.no_grad():
        image = enc.encode_image(pixels)  # (8, 3E): the new dimensions are zero
        torch.testing.assert_close(image[:, :clip.embed_dim], clip.encode_image(pixels), atol=1e-5, rtol=1e-4)
        assert image[:, clip.embed_dim:].abs().max() == 0
        text = enc.encode_text(ids)  # the new text dimensions are small but not zero: no saddle
        assert 0 < text[:, clip.embed_dim:].norm() < 0.5
    loss = (enc.encode_image(pixels) @ enc.encode_text(ids).T).sum()
    loss.backward()
    assert enc.cell_proj.weight.grad[clip.embed_dim:].abs().sum() > 0
    for bad in (clip.embed_dim - 1, 64.0, True):
        with pytest.raises(ValueError, match="embed_dim"):
            RetrievalEncoder.from_contrastive(clip, embed_dim=bad)


@pytest.mark.parametrize("kw", [{"embed_dim": 0}, {"num_queries": 1.5}, {"query_std": -1.0}])
def test_retrieval_config_rejects_bad_sizes(kw):
    with pytest.raises(ValueError):
        RetrievalConfig(**kw)


# ---- combiners -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", composed.COMBINERS)
def test_every_combiner_returns_unit_queries(kind):
    comb = composed.build_combiner(kind, 8, hidden=16)
    img, txt = unit(5, 8, seed=1), unit(5, 8, seed=2)
    out = comb(img, txt)
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    if kind == "image":
        torch.testing.assert_close(out, img)
    if kind == "sum":
        torch.testing.assert_close(out, F.normalize(img + txt, dim=-1))


def test_tirg_learns_a_change():
    """A toy world: the target is the image with the text's direction added."""
    g = torch.Generator().manual_seed(0)
    shifts = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    which = torch.randint(0, 4, (2000,), generator=g)
    img = F.normalize(torch.randn(2000, 16, generator=g), dim=-1)
    txt = shifts[which]
    target = F.normalize(img + txt, dim=-1)
    comb = composed.build_combiner("tirg", 16, hidden=64)
    losses = composed.train_combiner(comb, img, txt, target, steps=300, batch_size=128)
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 / 2


@pytest.mark.parametrize("call", [lambda: composed.build_combiner("late", 8),
                                  lambda: composed.build_combiner("tirg", 0),
                                  lambda: composed.build_combiner("sum", 8)(unit(3, 8), unit(3, 4)),
                                  lambda: composed.train_combiner(composed.build_combiner("concat", 8), unit(3, 8),
                                                                  unit(3, 8), unit(3, 8), batch_size=1)])
def test_combiners_reject_bad_input(call):
    with pytest.raises(ValueError):
        call()


# ---- training data and fine-tuning -----------------------------------------------------------------


def test_foil_tensors_and_a_few_steps(world_scenes, foil_data, clip):
    t, _ = foil_data
    n = len(world_scenes[1])
    assert t["input_ids"].shape == t["foil_ids"].shape == (3, n, 64)
    assert t["has_foil"].shape == (3, n) and t["has_foil"][:2].float().mean() > 0.5
    # no foil where it would equal its text
    same = (t["input_ids"] == t["foil_ids"]).all(-1)
    assert not (same & t["has_foil"]).any()
    enc = RetrievalEncoder.from_contrastive(clip)
    losses = train.finetune(enc, t, steps=3, batch_size=8)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    with pytest.raises(ValueError, match="kind_weights"):
        train.finetune(enc, t, steps=1, kind_weights=(1, 1))
    for bad in (1.5, -0.1, True):
        with pytest.raises(ValueError, match="mirror"):
            train.finetune(enc, t, steps=1, mirror=bad)
    assert len(train.finetune(enc, t, steps=2, batch_size=8, mirror=1.0)) == 2


def test_a_mirrored_relation_exchanges_left_and_right(world_scenes, foil_data):
    sc = world_scenes[1]
    t, tok = foil_data
    rel = train.RELATION
    texts = tok.batch_decode(t["input_ids"][rel], skip_special_tokens=True)
    mirrored = tok.batch_decode(t["mirror_ids"], skip_special_tokens=True)
    foils_ = tok.batch_decode(t["mirror_foil_ids"], skip_special_tokens=True)
    horizontal = [i for i, text in enumerate(texts) if "left" in text.split() or "right" in text.split()]
    assert horizontal and len(horizontal) < len(texts)  # some of each
    words = {w: rel_ for rel_, ws in RELATION_WORDS.items() for w in ws}

    def program(text):  # "a red circle to the left of a blue square" -> a refer program
        m = re.fullmatch(r"an? (\w+) (\w+) (.+) an? (\w+) (\w+)", text)
        return {"op": "refer", "a": {"color": m[1], "shape": m[2]}, "rel": words[m[3]],
                "b": {"color": m[4], "shape": m[5]}}

    for i in horizontal:
        assert mirrored[i].split() == [{"left": "right", "right": "left"}.get(w, w) for w in texts[i].split()]
        if t["has_foil"][rel, i]:  # true of the mirrored scene, and its foil false
            assert refers_to(program(mirrored[i]), scenes.hflip(sc[i]))
            assert not refers_to(program(foils_[i]), scenes.hflip(sc[i]))


def test_a_brief_foil_trades_sizes_or_colours(foil_data):
    t, tok = foil_data
    brief = train.TEXT_KINDS.index("brief")
    texts = tok.batch_decode(t["input_ids"][brief], skip_special_tokens=True)
    foils_ = tok.batch_decode(t["foil_ids"][brief], skip_special_tokens=True)
    changed = Counter()
    for text, foil, has in zip(texts, foils_, t["has_foil"][brief].tolist()):
        if has:  # the words that moved, or that regrouping ("two large ...") added or dropped
            diff = (set(text.split()) ^ set(foil.split())) | {a for a, b in zip(text.split(), foil.split()) if a != b}
            changed["size" if diff & {"large", "small"} else "color"] += 1
    assert changed["size"] > 0 and changed["color"] > 0, changed


# ---- relevance and scores ---------------------------------------------------------------------------


def test_relevance_from_the_annotation():
    rel = evaluate.same_text_relevance(["a", "b", "a"], ["a", "c", "a", "b"])
    assert rel.tolist() == [[True, False, True, False], [False, False, False, True], [True, False, True, False]]
    prog = {"op": "refer", "a": {"shape": "cross"}, "rel": None, "b": None}
    assert evaluate.refers_relevance([prog], [TWO, scene_of(("circle", "red", "large", 0, 0))]).tolist() == [[True, False]]


def test_a_perfect_composed_query_scores_one():
    src, tgt = unit(5, 8, seed=1), unit(5, 8, seed=2)
    sources = [scene_of(("circle", "red", "large", i % 3, i // 3)) for i in range(5)]
    targets = [scene_of(("square", "blue", "small", i % 3, i // 3)) for i in range(5)]
    out = evaluate.composed_scores(tgt, src, tgt, sources, targets, ["recolor"] * 5)
    assert out["R@1"] == 1.0 and out["R@1/recolor"] == 1.0
    assert evaluate.composed_scores(src, src, tgt, sources, targets)["R@1"] == 0.0


# ---- the Retriever's API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retriever(clip):
    return Retriever(RetrievalEncoder.from_contrastive(clip), composed.build_combiner("tirg", 64))


def test_the_api_shapes_and_norms(retriever, world_scenes):
    ds, _ = world_scenes
    images = list(ds["image"])[:6]
    g = retriever.embed_images(images)
    q = retriever.embed_texts(["a red circle", "a blue square above a cross"])
    assert g.shape == (6, 64) and q.shape == (2, 64)
    torch.testing.assert_close(g.norm(dim=-1), torch.ones(6))
    assert retriever.compose(images[:2], ["Make the circle blue.", "Remove the square."]).shape == (2, 64)
    scores, idx = retriever.search(q, g, k=3)
    assert idx.shape == (2, 3) and (scores[:, :-1] >= scores[:, 1:]).all()
    _, faiss_idx = retriever.search(q, g, k=3, index="flat")
    assert torch.equal(faiss_idx, idx.cpu())


@pytest.mark.parametrize("call, match", [
    (lambda r, im: r.embed_texts("a red circle"), "list of strings"),
    (lambda r, im: r.embed_texts(["a red circle", " "]), "item 1"),
    (lambda r, im: r.embed_images([im[0].resize((32, 32))]), "48x48"),
    (lambda r, im: r.embed_images(["not an image"]), "image 0"),
    (lambda r, im: r.compose(im[:2], ["Make it blue."]), "2 images but 1 instructions"),
])
def test_bad_input_is_named(retriever, world_scenes, call, match):
    ds, _ = world_scenes
    with pytest.raises(ValueError, match=match):
        call(retriever, list(ds["image"])[:2])


def test_save_and_load_round_trip(retriever, world_scenes, tmp_path):
    ds, _ = world_scenes
    images = list(ds["image"])[:4]
    path = save_retriever(tmp_path / "r.safetensors", retriever.encoder, retriever.combiner, name="test")
    loaded = load_retriever(path)
    torch.testing.assert_close(loaded.embed_images(images), retriever.embed_images(images))
    torch.testing.assert_close(loaded.compose(images[:1], ["Make the circle blue."]),
                               retriever.compose(images[:1], ["Make the circle blue."]))
    with pytest.raises(ValueError, match="save_retriever"):
        from course_utils.training import save_checkpoint

        load_retriever(save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "other.safetensors"))


def test_describe_captions_match_the_world():
    assert descriptions.caption(TWO) == "A large purple diamond and a small green cross."


def test_refers_relevance_is_refers_to_for_every_pair():
    ds = data.load_retrieval_dataset(n_train=0, n_eval=80, splits=["test"])["test"]
    sc = [json.loads(s) for s in ds["scene"]]
    programs = [json.loads(p) for p in ds["program"]]
    programs.append({"op": "refer", "a": {"color": "gold"}, "rel": None, "b": None})  # a colour no scene has
    expected = torch.tensor([[refers_to(p, s) for s in sc] for p in programs])
    assert torch.equal(evaluate.refers_relevance(programs, sc), expected)
    assert expected.any(1)[:-1].all() and not expected[-1].any()
