"""Chapter 10's metrics: BLEU as sacreBLEU computes it, CIDEr-D as COCO's scorer does, and
grounded metrics that count every hallucination of a description against its scene."""

from __future__ import annotations

import json
import math
import random

import pytest
import sacrebleu
from pycocoevalcap.cider.cider_scorer import CiderScorer
from sacrebleu.metrics.bleu import BLEU

from course_utils.captioning import grounding, ngram
from course_utils.world import descriptions, scenes
from course_utils.world.data import load_description_dataset
from course_utils.world.phrasings import position_phrase

# ---- a corpus: the world's references, and hypotheses with a model's kinds of mistakes ----


@pytest.fixture(scope="module")
def dataset():
    return load_description_dataset(n_train=50, n_eval=20, splits=["train", "test"], cache=False)


def corrupt(text: str, rng: random.Random) -> str:
    """A plausible wrong description: a colour or shape swapped, a clause dropped, words
    repeated or lost, or the text left as it is."""
    words = text.split()
    kind = rng.choice(["same", "colour", "shape", "drop", "repeat", "truncate", "shuffle"])
    if kind == "colour":
        words = [rng.choice(list(scenes.COLORS)) if w in scenes.COLORS else w for w in words]
    elif kind == "shape":
        words = [rng.choice(scenes.SHAPES) if w in scenes.SHAPES else w for w in words]
    elif kind == "drop" and len(words) > 4:
        i = rng.randrange(len(words) - 3)
        words = words[:i] + words[i + 3 :]
    elif kind == "repeat":
        i = rng.randrange(len(words))
        words = words[: i + 1] + words[i : i + 1] * 3 + words[i + 1 :]
    elif kind == "truncate":
        words = words[: rng.randint(1, max(1, len(words) // 2))]
    elif kind == "shuffle":
        rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(dataset):
    """``(hypotheses, references)``: every image of both splits, 2 to 4 references each."""
    rng = random.Random(10)
    hyps, refs = [], []
    for split in ("train", "test"):
        for row in dataset[split]:
            scene = json.loads(row["scene"])
            texts = [descriptions.describe(scene, f) for f in descriptions.DESCRIBE_FORMS]
            texts.append(row["answer"].replace(" and ", ", and ", 1))  # a variant in punctuation
            refs.append(texts[: rng.randint(2, 4)])
            hyps.append(corrupt(row["answer"], rng))
    hyps[0], hyps[1] = "", "circle"  # no words, and one word: the length penalty's edge cases
    return hyps, refs


def test_the_corpus_is_large_and_has_several_references_per_image(corpus):
    hyps, refs = corpus
    assert len(hyps) >= 50 and {len(r) for r in refs} == {2, 3, 4}
    assert sum(h == r[0] for h, r in zip(hyps, refs)) < len(hyps) // 2  # mostly corrupted


# ---- BLEU -----------------------------------------------------------------------------------


def test_bleu4_is_sacrebleu(corpus):
    hyps, refs = corpus
    single = [r[0] for r in refs]
    assert ngram.bleu4(hyps, single) == sacrebleu.corpus_bleu(hyps, [single]).score
    two = [r[:2] for r in refs]
    streams = [[r[0] for r in two], [r[1] for r in two]]
    assert ngram.bleu4(hyps, two) == BLEU().corpus_score(hyps, streams).score
    assert ngram.bleu4(hyps, two) > ngram.bleu4(hyps, single)  # a second reference can only help
    assert ngram.bleu4([r[0] for r in refs], single) == pytest.approx(100.0)


def test_bleu4_changes_with_tokenisation():
    hyp = ["A small red circle and a blue square."]
    ref = ["A small red circle and a blue square ."]  # pre-tokenised, as many corpora ship
    assert ngram.bleu4(hyp, ref) == pytest.approx(100.0)
    assert ngram.bleu4(hyp, ref, tokenize="none") < 80.0
    raw = sacrebleu.corpus_bleu(hyp, [ref], tokenize="none").score
    assert ngram.bleu4(hyp, ref, tokenize="none") == raw


@pytest.mark.parametrize("c", [1, 2, 5, 9, 10, 11, 30])
@pytest.mark.parametrize("r", [1, 3, 10, 25])
def test_brevity_penalty_is_sacrebleus(c, r):
    want = BLEU.compute_bleu([c] * 4, [c] * 4, c, r).bp
    assert ngram.brevity_penalty(c, r) == pytest.approx(want, abs=1e-12)


def test_brevity_penalty_edges_and_the_corpus_penalty(corpus):
    assert ngram.brevity_penalty(0, 8) == 0.0 == BLEU.compute_bleu([0] * 4, [0] * 4, 0, 8).bp
    assert ngram.brevity_penalty(0, 0) == 0.0  # sacreBLEU says 1.0 here; BLEU is 0 either way
    assert ngram.brevity_penalty(4, 8) == pytest.approx(math.exp(-1))
    hyps, refs = corpus
    score = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]])
    assert ngram.brevity_penalty(score.sys_len, score.ref_len) == pytest.approx(score.bp)


# ---- CIDEr-D --------------------------------------------------------------------------------


def coco_cider(hyps, refs, sigma=6.0):
    scorer = CiderScorer(n=4, sigma=sigma)
    for h, rs in zip(hyps, refs):
        scorer += (ngram.coco_tokenize(h), [ngram.coco_tokenize(r) for r in rs])
    mean, scores = scorer.compute_score()
    return float(mean), [float(s) for s in scores]


def test_coco_tokenize_lowercases_and_drops_punctuation():
    text = "A picture of three objects: two circles, and a square."
    assert ngram.coco_tokenize(text) == "a picture of three objects two circles and a square"
    assert ngram.coco_tokenize("  There are  TWO objects . ") == "there are two objects"


@pytest.mark.parametrize("sigma", [6.0, 2.0])
def test_cider_d_is_cocos(corpus, sigma):
    hyps, refs = corpus
    mean, scores = ngram.cider_d(hyps, refs, sigma=sigma)
    want_mean, want = coco_cider(hyps, refs, sigma)
    assert len(scores) == len(hyps)
    assert mean == pytest.approx(want_mean, abs=1e-6)
    assert scores == pytest.approx(want, abs=1e-6)
    assert 0 < mean < 10 and len(set(scores)) > 10  # the corruptions score differently


def test_cider_d_prefers_the_reference_and_ignores_case_and_punctuation(corpus):
    hyps, refs = corpus
    perfect = [r[0] for r in refs]
    shouted = [r[0].upper().replace(".", " !") for r in refs]
    assert ngram.cider_d(perfect, refs)[0] > ngram.cider_d(hyps, refs)[0]
    assert ngram.cider_d(shouted, refs) == ngram.cider_d(perfect, refs)


def test_cider_d_of_a_single_image_is_zero():
    text = "A small red circle and a large blue square."
    assert ngram.cider_d([text], [[text]]) == (0.0, [0.0])
    assert coco_cider([text], [[text, "A red circle."]]) == (0.0, [0.0])
    assert ngram.cider_d([text, "A cross."], [[text], ["A cross."]])[0] > 0  # two images: not 0


# ---- grounding ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_splits():
    return load_description_dataset(n_train=50, n_eval=20, cache=False)


def test_the_references_are_perfectly_grounded_in_every_split(all_splits):
    assert len(all_splits) >= 6
    for split, rows in all_splits.items():
        m = grounding.grounded_metrics(rows["answer"], rows["scene"], rows["task"])
        assert m["n"] == len(rows) and {m["f1"], m["precision"], m["recall"]} == {1.0}, split
        assert m["chair_i"] == m["chair_s"] == 0.0, split
        assert m["exact"] == m["form_followed"] == 1.0, split
        assert m["binding_errors"] == m["position_errors"] == m["count_errors"] == 0.0, split


def scene3() -> dict:
    """Three objects: a small red circle top left, a large blue square on the right, a small
    green triangle at the bottom."""
    objects = [{"shape": "circle", "color": "red", "size": "small", "x": 8.0, "y": 8.0},
               {"shape": "square", "color": "blue", "size": "large", "x": 40.0, "y": 24.0},
               {"shape": "triangle", "color": "green", "size": "small", "x": 24.0, "y": 40.0}]
    return {"width": 48, "height": 48, "grid": 3, "style": dict(scenes.DEFAULT_STYLE),
            "objects": objects}


BRIEF = "A small red circle, a large blue square and a small green triangle."
DETAILED = ("There are three objects. A small red circle is in the top left corner. A large blue "
            "square is on the right. A small green triangle is at the bottom.")
SUMMARY = "A picture of three objects: one circle, one square and one triangle."


def test_the_hand_made_scene_reads_as_written():
    scene = scene3()
    texts = [descriptions.describe(scene, f) for f in descriptions.DESCRIBE_FORMS]
    assert texts == [BRIEF, DETAILED, SUMMARY]
    for text, form in ((BRIEF, "brief"), (DETAILED, "describe_detailed"), (SUMMARY, "summary")):
        g = grounding.ground(text, scene, form)
        assert g["exact"] and g["form_followed"] and g["tp"] == g["stated"] == g["true"] == 3, g


def test_a_wrong_colour_on_a_true_shape_is_a_binding_error_when_the_colour_is_elsewhere():
    g = grounding.ground(BRIEF.replace("red circle", "blue circle"), scene3(), "brief")
    assert (g["tp"], g["stated"], g["hallucinated"], g["binding_errors"]) == (2, 3, 1, 1)
    assert not g["exact"] and g["form_followed"] and not g["count_error"]
    g = grounding.ground(BRIEF.replace("red circle", "yellow circle"), scene3(), "brief")
    assert (g["hallucinated"], g["binding_errors"]) == (1, 0)  # no yellow anywhere: not binding
    g = grounding.ground(BRIEF.replace("red circle", "red cross"), scene3(), "brief")
    assert (g["hallucinated"], g["binding_errors"]) == (1, 0)  # no cross anywhere: not binding


def test_a_wrong_position_is_a_position_error():
    wrong = DETAILED.replace("in the top left corner", position_phrase("center"))
    g = grounding.ground(wrong, scene3(), "detailed")
    assert (g["tp"], g["hallucinated"], g["position_errors"], g["binding_errors"]) == (2, 1, 1, 0)
    swapped = (DETAILED.replace("blue square", "green square")
               .replace("green triangle", "blue triangle"))
    g = grounding.ground(swapped, scene3(), "detailed")
    assert (g["hallucinated"], g["binding_errors"], g["position_errors"]) == (2, 2, 0)


def test_a_duplicated_object_is_one_hallucination():
    text = "Two small red circles, a large blue square and a small green triangle."
    g = grounding.ground(text, scene3(), "brief")
    got = (g["tp"], g["stated"], g["true"], g["hallucinated"], g["binding_errors"])
    assert got == (3, 4, 3, 1, 0)
    m = grounding.grounded_metrics([text, BRIEF], [scene3(), scene3()], "brief")
    assert m["chair_i"] == pytest.approx(1 / 7) and m["chair_s"] == 0.5
    assert m["precision"] == pytest.approx(6 / 7) and m["recall"] == 1.0


def test_a_wrong_stated_count_is_a_count_error():
    g = grounding.ground(DETAILED.replace("three objects", "four objects"), scene3(), "detailed")
    assert g["count_error"] and g["hallucinated"] == 0 and g["tp"] == 3 and not g["exact"]
    g = grounding.ground(SUMMARY.replace("three objects", "two objects"), scene3(), "summary")
    assert g["count_error"] and not g["exact"]
    g = grounding.ground(DETAILED.replace("three objects", "many objects"), scene3(), "detailed")
    assert g["count_error"]  # a number the grammar cannot read is not the right one
    assert not grounding.ground(BRIEF, scene3(), "brief")["count_error"]  # no count stated


def test_a_description_of_the_wrong_form_is_not_form_followed():
    g = grounding.ground(DETAILED, scene3(), "brief")
    assert not g["form_followed"] and not g["exact"]
    assert g["hallucinated"] == 0 and g["tp"] == 3  # true, only not what was asked
    g = grounding.ground(SUMMARY, scene3(), "describe_detailed")
    assert not g["form_followed"] and g["hallucinated"] == 0
    m = grounding.grounded_metrics([BRIEF, SUMMARY], [scene3(), json.dumps(scene3())],
                                   ["brief", "brief"])
    assert m["form_followed"] == 0.5 and m["exact"] == 0.5 and m["chair_i"] == 0.0


def test_missing_objects_and_garble():
    g = grounding.ground("A small red circle.", scene3(), "brief")
    assert (g["tp"], g["stated"], g["true"], g["hallucinated"]) == (1, 1, 3, 0) and not g["exact"]
    garbled = "A small red circle, a blue blob and a small green triangle."
    g = grounding.ground(garbled, scene3(), "brief")
    assert g["unparsed"] == 1 and g["tp"] == 2 and not g["exact"]
    empty = {**scene3(), "objects": []}
    for form in descriptions.DESCRIBE_FORMS:
        g = grounding.ground(descriptions.describe(empty, form), empty, form)
        assert g["exact"] and g["form_followed"] and g["stated"] == 0, (form, g)
    g = grounding.ground("An empty picture.", scene3(), "summary")
    assert g["count_error"] and g["tp"] == 0 and g["true"] == 3 and g["hallucinated"] == 0


def test_chair_from_tuples_agrees_with_grounded_metrics(dataset):
    rng = random.Random(3)
    rows = dataset["train"]
    texts = [corrupt(a, rng) for a in rows["answer"]]
    m = grounding.grounded_metrics(texts, rows["scene"], rows["task"])
    assert 0 < m["chair_i"] < 1 and 0 < m["chair_s"] < 1 and m["exact"] < 1
    stated, true = [], []
    for text, scene in zip(texts, rows["scene"]):
        parsed = descriptions.parse_description(text)
        keys = grounding.FORM_KEYS[parsed["form"]]
        stated.append([tuple(o.get(k) for k in keys) for o in parsed["objects"]])
        truth = descriptions.scene_objects(json.loads(scene), parsed["form"])
        true.append([tuple(o[k] for k in keys) for o in truth])
    assert grounding.chair(stated, true) == pytest.approx({k: m[k] for k in ("chair_i", "chair_s")})
    assert grounding.chair([[], []], [[("circle",)], []]) == {"chair_i": 0.0, "chair_s": 0.0}


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ngram.bleu4(["a b"], ["a b", "c d"]), "one entry per hypothesis"),
    (lambda: ngram.bleu4(["a b", "c"], [["a b"], ["c", "d"]]), "same number of references"),
    (lambda: ngram.bleu4(["a", "b"], [["a"], "b"]), "not a mix"),
    (lambda: ngram.bleu4([], []), "hypotheses"),
    (lambda: ngram.bleu4([1], ["a"]), "hypotheses"),
    (lambda: ngram.brevity_penalty(-1, 3), "hyp_len"),
    (lambda: ngram.brevity_penalty(3, 2.5), "ref_len"),
    (lambda: ngram.cider_d(["a"], ["a"]), r"references\[0\]"),
    (lambda: ngram.cider_d(["a", "b"], [["a"]]), "one list per hypothesis"),
    (lambda: ngram.cider_d(["a"], [[]]), r"references\[0\]"),
    (lambda: ngram.cider_d(["a"], [["a"]], sigma=0), "sigma"),
    (lambda: ngram.coco_tokenize(None), "text"),
    (lambda: grounding.ground(BRIEF, scene3(), "long"), "form must be one of"),
    (lambda: grounding.ground(BRIEF, "{not json", "brief"), "scene is a string but not JSON"),
    (lambda: grounding.ground(BRIEF, {"objs": []}, "brief"), "scene must be a scene dict"),
    (lambda: grounding.ground(None, scene3(), "brief"), "text must be a string"),
    (lambda: grounding.grounded_metrics([BRIEF, BRIEF], [scene3()], "brief"), "2 texts, 1 scenes"),
    (lambda: grounding.grounded_metrics([BRIEF], [scene3()], ["brief", "brief"]), "2 forms"),
    (lambda: grounding.grounded_metrics([], [], "brief"), "texts is empty"),
    (lambda: grounding.grounded_metrics(BRIEF, [scene3()], "brief"), "texts must be a list"),
    (lambda: grounding.grounded_metrics([BRIEF], ["[]"], "brief"), r"scenes\[0\]"),
    (lambda: grounding.chair([[("circle",)]], []), "one entry per description"),
])
def test_bad_input_is_a_value_error_that_names_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
