"""Shipped models: they load, answer plain-language questions, and still reach their
recorded metrics; the reproduce pipeline writes weights and a card that agree."""

import dataclasses

import numpy as np
import pytest

import course_utils
from course_utils import data, shipped
from course_utils.shipped import RECIPES, evaluate_model, evaluation_data, model_card

NAME = "vqa-slot-read"


@pytest.fixture(scope="module")
def vqa():
    return course_utils.load_pretrained(NAME)


@pytest.fixture(scope="module")
def eval_tensors(tmp_path_factory):
    import os

    old = os.environ.get("COURSE_CACHE_DIR")
    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return evaluation_data(RECIPES[NAME])
    finally:
        if old is None:
            os.environ.pop("COURSE_CACHE_DIR")
        else:
            os.environ["COURSE_CACHE_DIR"] = old


def test_list_and_unknown_names():
    assert NAME in course_utils.list_pretrained()
    with pytest.raises(ValueError, match=f"unknown pretrained model 'nope'; known: .*{NAME}"):
        course_utils.load_pretrained("nope")


def test_shipped_model_reproduces_its_recorded_metrics(vqa, eval_tensors):
    recorded = model_card(NAME)["metrics"]
    measured = evaluate_model(vqa.model, eval_tensors)
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, abs=0.005), key


def test_shipped_model_meets_the_course_targets():
    m = model_card(NAME)["metrics"]
    assert m["test"] >= 0.97
    assert all(m[f"test/{f}"] >= 0.95 for f in ("attribute", "count", "exist", "compare"))
    assert m["test/spatial"] >= 0.90
    assert m["test_compositional"] >= 0.90


def test_answer_takes_pil_images_and_plain_text(vqa, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
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


def test_reproduce_writes_weights_and_a_card_that_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dataclasses.replace(RECIPES[NAME], n_train=256, n_eval=32, steps=3, batch_size=32,
                               model_config={"hidden_size": 16, "num_heads": 2})
    monkeypatch.setitem(RECIPES, "tiny", tiny)
    card = shipped.reproduce("tiny", folder=tmp_path, progress=False)
    assert (tmp_path / "tiny.safetensors").is_file() and (tmp_path / "tiny.json").is_file()
    model = shipped.load_pretrained("tiny", folder=tmp_path)
    assert model.card["metrics"] == card["metrics"]
    assert evaluate_model(model.model, evaluation_data(tiny)) == card["metrics"]
