"""Shipped models: they load, answer plain-language questions, and still reach their
recorded metrics; the reproduce pipeline writes weights and a card that agree."""

import dataclasses
import json

import numpy as np
import pytest

import course_utils
from course_utils import pretraining, shipped
from course_utils.shipped import (
    CAPTIONER,
    CONTRASTIVE,
    EDITOR,
    RECIPES,
    RETRIEVER,
    evaluate_encoders,
    evaluate_model,
    evaluation_data,
    model_card,
)
from course_utils.world import data, encoding

NAME = "vqa-slot-read"
MINILM = "vqa-slot-read-minilm"
CLIP = "clip-stage1"
CAPTION = "describe-caption"
RETRIEVE = "retrieval-negclip"
EDIT = "edit-film-unet"
VQA_NAMES = [n for n in sorted(RECIPES) if RECIPES[n].kind not in (CONTRASTIVE, CAPTIONER, RETRIEVER, EDITOR)]


@pytest.fixture(scope="module")
def vqa():
    return course_utils.load_pretrained(NAME)


@pytest.fixture(scope="module")
def eval_tensors(tmp_path_factory):
    import os

    old = os.environ.get("COURSE_CACHE_DIR")
    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return {name: evaluation_data(RECIPES[name]) for name in RECIPES}
    finally:
        if old is None:
            os.environ.pop("COURSE_CACHE_DIR")
        else:
            os.environ["COURSE_CACHE_DIR"] = old


def test_list_and_unknown_names():
    assert course_utils.list_pretrained() == sorted([NAME, MINILM, CLIP, CAPTION, RETRIEVE, EDIT])
    with pytest.raises(ValueError, match=f"unknown pretrained model 'nope'; known: .*{NAME}"):
        course_utils.load_pretrained("nope")


@pytest.mark.parametrize("name", VQA_NAMES)
def test_shipped_vqa_model_reproduces_its_recorded_metrics(name, eval_tensors):
    recorded = model_card(name)["metrics"]
    measured = evaluate_model(course_utils.load_pretrained(name).model, eval_tensors[name])
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, abs=0.005), key


def test_shipped_encoders_reproduce_their_recorded_retrieval(eval_tensors):
    enc = course_utils.load_pretrained(CLIP)
    assert isinstance(enc.model, pretraining.ContrastiveModel) and enc.projector is not None
    recorded = model_card(CLIP)["metrics"]
    measured = evaluate_encoders(enc.model, enc.projector, eval_tensors[CLIP])
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, abs=0.005), key
    assert recorded["image_to_text@1"] >= 0.9 and recorded["stage1/image_to_text@1"] >= 0.9


def test_shipped_encoders_load_into_a_fusion_model():
    import torch

    from course_utils import fusion

    enc = course_utils.load_pretrained(CLIP)
    llava = fusion.build_model("llava_projection", **enc.model.fusion_config).eval()
    loaded = pretraining.load_pretrained_encoders(llava, path=enc.path)
    assert loaded["loaded"] == ["image_encoder", "text_encoder", "projector"]
    x = torch.zeros(2, 3, 48, 48)
    with torch.inference_mode():
        assert torch.equal(llava.image_encoder(x), enc.model.image_encoder(x))


def test_shipped_model_meets_the_course_targets():
    m = model_card(NAME)["metrics"]
    assert m["test"] >= 0.97
    assert all(m[f"test/{f}"] >= 0.95 for f in ("attribute", "count", "exist", "compare"))
    assert m["test/spatial"] >= 0.90
    # the >= 90 % compositional target held on the first language (94.6 %), not on the richer
    # one (84.5 %): recorded in chapter 09 and the card, to be won back
    assert m["test_compositional"] >= 0.80


def test_pretrained_instruction_encoder_generalises_to_unseen_words_and_people():
    """Issue 11's targets, from the card (which the test above re-evaluates): 97 % on test, 93 %
    on unseen words, 90 % on hand-written questions; 95 % on unseen templates is missed by one
    question of 2,000 (templates that name the comparison's reference first; chapter 09)."""
    scratch, minilm = model_card(NAME)["metrics"], model_card(MINILM)["metrics"]
    assert minilm["test"] >= 0.97 and minilm["test_synonyms"] >= 0.93 and minilm[shipped.HANDWRITTEN] >= 0.90
    assert minilm["test_paraphrase"] >= 0.94
    for split in ("test_paraphrase", "test_synonyms", shipped.HANDWRITTEN):
        assert minilm[split] > scratch[split] + 0.05, split
    assert RECIPES[MINILM].init_from == NAME  # started from the from-scratch model's weights


@pytest.mark.parametrize("name", [NAME, MINILM])
def test_vqa_cards_cover_every_language_split_and_the_handwritten_set(name):
    assert set(model_card(name)["metrics"]) >= {*shipped.EVAL_SPLITS, shipped.HANDWRITTEN}


@pytest.mark.parametrize("name", VQA_NAMES)
def test_answer_takes_pil_images_and_plain_text(name, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    vqa = course_utils.load_pretrained(name)
    split = data.load_instruction_dataset(seed=123, n_train=0, n_eval=64, splits=["test"])["test"]
    answers = vqa.answer(split["image"], split["instruction"], batch_size=16)
    assert len(answers) == 64 and all(isinstance(a, str) for a in answers)
    assert np.mean([a == b for a, b in zip(answers, split["answer"])]) >= 0.9
    one = vqa.answer(split[0]["image"], split[0]["instruction"])
    assert one == answers[:1]


@pytest.mark.parametrize(
    "images, instructions, message",
    [
        ([np.zeros((48, 48, 3), np.uint8)] * 2, ["What color is the circle?"], "2 images but 1"),
        ([np.zeros((64, 64, 3), np.uint8)], ["What color is the circle?"], "expected a 48x48"),
        ([np.zeros((48, 48, 3), np.uint8)], [""], "non-empty strings"),
    ],
)
def test_answer_rejects_bad_input_clearly(vqa, images, instructions, message):
    with pytest.raises(ValueError, match=message):
        vqa.answer(images, instructions)


@pytest.mark.parametrize("name, vocab_size", [(NAME, 408), (MINILM, 30522)])
def test_reproduce_writes_weights_and_a_card_that_agree(name, vocab_size, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    def small(recipe):
        return dataclasses.replace(recipe, n_train=256, n_eval=32, steps=3, batch_size=32,
                                   model_config={**recipe.model_config, "hidden_size": 16, "num_heads": 2})

    tiny = small(RECIPES[name])
    if tiny.init_from:  # the model it starts from, at the same small size, trained here first
        monkeypatch.setitem(RECIPES, "tiny-source", small(RECIPES[tiny.init_from]))
        shipped.reproduce("tiny-source", folder=tmp_path, progress=False)
        tiny = dataclasses.replace(tiny, init_from="tiny-source")
    monkeypatch.setitem(RECIPES, "tiny", tiny)
    card = shipped.reproduce("tiny", folder=tmp_path, progress=False)
    assert (tmp_path / "tiny.safetensors").is_file() and (tmp_path / "tiny.json").is_file()
    model = shipped.load_pretrained("tiny", folder=tmp_path)
    assert card["model_config"]["vocab_size"] == len(model.tokenizer) == vocab_size  # the kind's tokenizer
    assert model.card["metrics"] == card["metrics"]
    assert evaluate_model(model.model, evaluation_data(tiny)) == card["metrics"]


def test_warm_start_copies_every_tensor_of_the_same_name_and_shape(tmp_path):
    import torch

    from course_utils import fusion
    from course_utils.training import save_checkpoint

    sizes = {"hidden_size": 16, "num_heads": 2, "num_queries": 6}
    torch.manual_seed(0)
    source = fusion.build_model("slot_read", vocab_size=50, num_answers=34, **sizes)
    save_checkpoint(source, tmp_path / "source.safetensors")
    target = fusion.build_model("slot_read_minilm", vocab_size=30522, num_answers=34, **sizes)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    copied = shipped.warm_start(target, tmp_path / "source.safetensors")
    after, theirs = target.state_dict(), source.state_dict()
    assert "tokens.weight" not in copied and "positions.weight" in copied
    assert set(copied) == set(after) - {k for k in after if k.startswith("text_in.")}
    assert all(torch.equal(after[k], theirs[k]) for k in copied)
    assert all(torch.equal(after[k], before[k]) for k in after if k not in copied)  # MiniLM's projection
    with pytest.raises(FileNotFoundError, match="no weights to start from"):
        shipped.warm_start(target, tmp_path / "missing.safetensors")
    other = fusion.build_model("slot_read", vocab_size=50, num_answers=3, hidden_size=8, num_heads=2)
    save_checkpoint(other, tmp_path / "other.safetensors")
    copied = shipped.warm_start(target, tmp_path / "other.safetensors")  # only shape-free tensors match
    assert all(after[k].shape == other.state_dict()[k].shape for k in copied)


@pytest.mark.parametrize("kind, field, value", [(CONTRASTIVE, "freeze", "image_encoder"),
                                                (CAPTIONER, "init_from", NAME)])
def test_a_recipe_field_its_kind_does_not_read_is_refused(kind, field, value, monkeypatch):
    source = next(r for r in RECIPES.values() if r.kind == kind)
    monkeypatch.setitem(RECIPES, "odd", dataclasses.replace(source, **{field: value}))
    with pytest.raises(ValueError, match=f"odd: {field} is read by"):
        shipped.reproduce("odd", progress=False)


def test_reproduce_encoders_writes_a_card_that_agrees(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dataclasses.replace(RECIPES[CLIP], n_train=256, n_eval=64, steps=3, stage1_steps=2,
                               batch_size=32, model_config={"hidden_size": 16, "num_heads": 2})
    monkeypatch.setitem(RECIPES, "tiny-clip", tiny)
    card = shipped.reproduce("tiny-clip", folder=tmp_path, progress=False)
    enc = shipped.load_pretrained("tiny-clip", folder=tmp_path)
    assert enc.model.cfg.hidden_size == 16 and card["training"]["stage1_steps"] == 2
    assert evaluate_encoders(enc.model, enc.projector, evaluation_data(tiny)) == card["metrics"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_cards_record_the_current_recipes(name):
    """A recipe edited without retraining would make `reproduce` build a different model."""
    from course_utils import fusion

    card, recipe = model_card(name), RECIPES[name]
    assert card["recipe"] == {k: v for k, v in dataclasses.asdict(recipe).items() if k != "description"}
    if recipe.kind == CAPTIONER:
        from course_utils.captioning.model import CaptionerConfig

        loaded = course_utils.load_pretrained(name).model
        assert {k: card["model_config"][k] for k in recipe.model_config} == recipe.model_config
        assert dataclasses.asdict(loaded.config) == card["model_config"]
        assert isinstance(loaded.config, CaptionerConfig)
        assert card["parameters"] == sum(p.numel() for p in loaded.parameters())
    elif recipe.kind == RETRIEVER:
        loaded = course_utils.load_pretrained(name)
        header = loaded.encoder.header()
        assert card["model_config"] == {"encoder": header, "combiner": loaded.combiner.config,
                                        "instructions": loaded.instructions is not None}
        assert header["num_queries"] == recipe.model_config["num_queries"]
        assert header["fusion"]["text_layers"] == recipe.model_config["text_layers"]
        parts = (loaded.encoder, loaded.combiner, loaded.instructions)
        assert card["parameters"] == sum(p.numel() for part in parts for p in part.parameters())
    elif recipe.kind == EDITOR:
        loaded = course_utils.load_pretrained(name)
        parts = {"unet": loaded.unet, "parser": loaded.parser, "reader": loaded.reader}
        configs = {k: dataclasses.asdict(v.config) for k, v in parts.items()}
        assert card["model_config"] == json.loads(json.dumps(configs))  # as the card's JSON holds them
        counts = {k: sum(p.numel() for p in v.parameters()) for k, v in parts.items()}
        assert card["parameters_by_part"] == counts and card["parameters"] == sum(counts.values())
    elif recipe.kind != CONTRASTIVE:
        sizes = encoding.model_sizes(shipped.tokenizer_for(recipe.kind))  # as `reproduce` sizes it
        assert fusion.build_model(recipe.kind, **sizes, **recipe.model_config).config == card["model_config"]
        assert card["parameters"] == sum(p.numel() for p in course_utils.load_pretrained(name).model.parameters())


# ---- the captioner (chapter 10) ---------------------------------------------------------


def test_shipped_captioner_reproduces_its_recorded_metrics(eval_tensors):
    from course_utils.captioning.pretrained import evaluate_captioner

    describer = course_utils.load_pretrained(CAPTION)
    recorded = model_card(CAPTION)["metrics"]
    measured = evaluate_captioner(describer.model, eval_tensors[CAPTION])
    assert set(measured) == set(recorded)
    for split, values in recorded.items():
        for key, value in values.items():
            assert measured[split][key] == pytest.approx(value, abs=0.005), (split, key)


def test_describe_takes_pil_images_and_plain_text():
    from PIL import Image

    from course_utils.world import descriptions, scenes

    describer = course_utils.load_pretrained(CAPTION)
    ds = data.load_description_dataset(n_train=8, n_eval=6, splits=["train", "test"], cache=False)
    texts = describer.describe(list(ds["test"]["image"]), list(ds["test"]["instruction"]), batch_size=4)
    assert len(texts) == 6 and all(isinstance(t, str) and t for t in texts)
    scene = {"width": 48, "height": 48, "grid": 3, "style": dict(scenes.DEFAULT_STYLE),
             "objects": [{"shape": "circle", "color": "red", "size": "large", "x": 8.0, "y": 8.0},
                         {"shape": "square", "color": "blue", "size": "small", "x": 24.0, "y": 24.0}]}
    image = scenes.render(scene)
    assert isinstance(image, Image.Image)
    one = describer.describe(image, "Describe the image in detail.")
    assert one == [descriptions.describe(scene, "describe_detailed")]


@pytest.mark.parametrize("images, instructions, message", [
    ([np.zeros((32, 32, 3), np.uint8)], ["Describe the image."], "image 0 is"),
    ([np.zeros((48, 48, 3), np.uint8)] * 2, ["Describe the image."], "2 images but 1 instructions"),
    ([np.zeros((48, 48, 3), np.uint8)], ["   "], "instruction 0 is empty"),
])
def test_describe_rejects_bad_input_clearly(images, instructions, message):
    describer = course_utils.load_pretrained(CAPTION)
    with pytest.raises(ValueError, match=message):
        describer.describe(images, instructions)


def test_reproduce_captioner_writes_weights_and_a_card_that_agree(tmp_path, monkeypatch):
    from course_utils.captioning.pretrained import evaluate_captioner

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dataclasses.replace(RECIPES[CAPTION], n_train=64, n_eval=8, steps=3, stage1_steps=2,
                               batch_size=16, model_config={**RECIPES[CAPTION].model_config, "width": 16,
                                                            "layers": 1, "heads": 2})  # fmt: skip
    monkeypatch.setitem(RECIPES, "tiny-caption", tiny)
    card = shipped.reproduce("tiny-caption", folder=tmp_path, progress=False)
    describer = shipped.load_pretrained("tiny-caption", folder=tmp_path)
    assert describer.model.config.width == 16 and describer.model.config.instructions == "minilm"
    assert describer.tokenizer.vocab_size == 30_522  # the instructions are read with MiniLM's tokenizer
    assert evaluate_captioner(describer.model, evaluation_data(tiny)) == card["metrics"]
    import torch
    from safetensors.torch import load_file

    clip = load_file(str(shipped.paths(CLIP)[0]))  # the frozen part is exactly as loaded
    assert tiny.freeze == "image_encoder"
    assert all(torch.equal(v, clip[f"image_encoder.{k}"])
               for k, v in describer.model.image_encoder.state_dict().items())
    monkeypatch.setitem(RECIPES, "bad-freeze", dataclasses.replace(tiny, freeze="nope"))
    with pytest.raises(ValueError, match="freeze='nope' names no part of the captioner"):
        shipped.reproduce("bad-freeze", folder=tmp_path, progress=False)


# ---- the retriever (chapter 11) -----------------------------------------------------------


def assert_same_metrics(measured: dict, recorded: dict, abs_tol: float = 0.005):
    assert set(measured) == set(recorded)
    for group, values in recorded.items():
        assert set(measured[group]) == set(values), group
        for key, value in values.items():
            assert measured[group][key] == pytest.approx(value, abs=abs_tol), (group, key)


def test_shipped_retriever_reproduces_its_recorded_metrics(eval_tensors):
    from course_utils.retrieval.pretrained import evaluate_retriever

    retriever = course_utils.load_pretrained(RETRIEVE)
    recorded = model_card(RETRIEVE)["metrics"]
    assert_same_metrics(evaluate_retriever(retriever, *eval_tensors[RETRIEVE]), recorded)
    clip_r1 = model_card(CLIP)["metrics"]["text_to_image@1"]
    assert recorded["test"]["R@1"] >= clip_r1 - 0.01  # hard negatives must not cost ordinary recall
    # chapter 11's targets: caption recall, both kinds of foil, composed retrieval
    assert recorded["test"]["R@1"] >= 0.98 and recorded["composed"]["R@1"] >= 0.9
    assert recorded["foils"]["swap"] >= 0.95 and recorded["foils"]["relation"] >= 0.95


def test_the_retriever_takes_pil_images_and_plain_text():
    import torch

    from course_utils.world import descriptions, scenes

    retriever = course_utils.load_pretrained(RETRIEVE)
    ds = data.load_caption_dataset(n_train=0, n_eval=40, splits=["test"], cache=False)["test"]
    scenes_ = [__import__("json").loads(s) for s in ds["scene"]]
    gallery = retriever.embed_images(list(ds["image"]))
    assert gallery.shape == (40, model_card(RETRIEVE)["model_config"]["encoder"]["embed_dim"])
    torch.testing.assert_close(gallery.norm(dim=-1), torch.ones(40))
    queries = retriever.embed_texts([descriptions.caption(s) for s in scenes_])
    _, idx = retriever.search(queries, gallery, k=1)
    assert (idx[:, 0] == torch.arange(40)).float().mean() >= 0.9
    scene = {"width": 48, "height": 48, "grid": 3, "style": dict(scenes.DEFAULT_STYLE),
             "objects": [{"shape": "circle", "color": "red", "size": "large", "x": 8.0, "y": 8.0}]}
    blue = scenes.recolor(scene, 0, "blue")
    query = retriever.compose([scenes.render(scene)], ["Make the circle blue."])
    candidates = retriever.embed_images([scenes.render(scene), scenes.render(blue)])
    assert (query @ candidates.T).argmax().item() == 1


@pytest.mark.parametrize("call, message", [
    (lambda r: r.embed_images([np.zeros((32, 32, 3), np.uint8)]), "image 0 is"),
    (lambda r: r.embed_texts("a red circle"), "list of strings"),
    (lambda r: r.embed_texts([""]), "item 0"),
    (lambda r: r.compose([np.zeros((48, 48, 3), np.uint8)] * 2, ["Make it blue."]), "2 images but 1"),
])
def test_the_retriever_rejects_bad_input_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call(course_utils.load_pretrained(RETRIEVE))


def test_reproduce_retriever_writes_weights_and_a_card_that_agree(tmp_path, monkeypatch):
    from course_utils.retrieval.pretrained import evaluate_retriever

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dataclasses.replace(RECIPES[RETRIEVE], n_train=64, n_eval=12, steps=3, stage1_steps=2, batch_size=16)
    monkeypatch.setitem(RECIPES, "tiny-retrieval", tiny)
    card = shipped.reproduce("tiny-retrieval", folder=tmp_path, progress=False)
    retriever = shipped.load_pretrained("tiny-retrieval", folder=tmp_path)
    assert retriever.combiner is not None and card["model_config"]["combiner"]["kind"] == "tirg"
    assert_same_metrics(evaluate_retriever(retriever, *evaluation_data(tiny)), card["metrics"], abs_tol=1e-6)


# ---- the editors (chapter 12) -------------------------------------------------------------


def assert_same_nested(measured, recorded, abs_tol: float = 0.005, where=()):
    if isinstance(recorded, dict):
        assert isinstance(measured, dict) and set(measured) == set(recorded), where
        for key, value in recorded.items():
            assert_same_nested(measured[key], value, abs_tol, (*where, key))
    elif isinstance(recorded, int) and not isinstance(recorded, bool) and "errors" in where:
        assert abs(measured - recorded) <= max(2, abs_tol * 1000), where  # failure counts
    else:
        assert measured == pytest.approx(recorded, abs=abs_tol if where[-1] != "psnr" else 0.1), where


def test_shipped_editor_reproduces_its_recorded_metrics(eval_tensors):
    from course_utils.editing.pretrained import evaluate_editor

    editor = course_utils.load_pretrained(EDIT)
    recorded = model_card(EDIT)["metrics"]
    assert_same_nested(evaluate_editor(editor, eval_tensors[EDIT]), recorded)
    test = recorded["test"]
    assert test["program"]["success"] >= 0.98 and test["program"]["preserved"] >= 0.99
    assert test["identity"]["success"] == 0.0 and test["unet"]["success"] > 0.5


def test_the_editor_takes_pil_images_and_plain_text():
    from PIL import Image

    from course_utils.world import scenes

    editor = course_utils.load_pretrained(EDIT)
    scene = scenes.make_scene([{"shape": "circle", "color": "red", "size": "large"},
                               {"shape": "square", "color": "blue", "size": "small"}], [(1, 0), (2, 2)])
    image = scenes.render(scene)
    asks = ["Make the circle green.", "Remove the square.", "Move the circle up."]
    truths = [scenes.recolor(scene, 0, "green"), scenes.remove(scene, 1), scenes.move(scene, 0, "up")]
    programmed = editor.program_edit([image] * 3, asks)
    for out, truth in zip(programmed, truths):
        assert np.array_equal(np.asarray(out), np.asarray(scenes.render(truth)))
    edited = editor.edit([image] * 3, asks)
    assert all(isinstance(im, Image.Image) and im.size == (48, 48) for im in edited)
    assert editor.parse("Remove the square.") == [{"op": "remove", "obj": {"shape": "square"}}]
    assert editor.perceive([np.asarray(image)])[0]["objects"] == scene["objects"]
    assert editor.edit([], []) == []


@pytest.mark.parametrize("call, message", [
    (lambda e: e.edit([np.zeros((32, 32, 3), np.uint8)], ["Remove the square."]), "image 0 is"),
    (lambda e: e.edit([np.zeros((48, 48, 3), np.uint8)] * 2, ["Remove the square."]), "2 images but 1"),
    (lambda e: e.edit([np.zeros((48, 48, 3), np.uint8)], [""]), "instruction 0"),
    (lambda e: e.program_edit([np.zeros((48, 48, 3), np.uint8)], [3]), "instruction 0"),
    (lambda e: e.perceive(["not an image"]), "image 0 is"),
])
def test_the_editor_rejects_bad_input_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call(course_utils.load_pretrained(EDIT))


def test_reproduce_editor_writes_weights_and_a_card_that_agree(tmp_path, monkeypatch):
    from course_utils.editing.pretrained import evaluate_editor

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dataclasses.replace(RECIPES[EDIT], n_train=64, n_eval=12, steps=3, stage1_steps=2, batch_size=8)
    monkeypatch.setitem(RECIPES, "tiny-edit", tiny)
    card = shipped.reproduce("tiny-edit", folder=tmp_path, progress=False)
    editor = shipped.load_pretrained("tiny-edit", folder=tmp_path)
    assert set(card["parameters_by_part"]) == {"unet", "parser", "reader"}
    assert_same_nested(evaluate_editor(editor, evaluation_data(tiny)), card["metrics"], abs_tol=1e-6)
