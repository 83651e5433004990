"""The Hub's conventions, offline (chapter 13, section 7): the shipped VQA model saved as a Hub
folder (config.json, safetensors weights, a model card, the tokenizer) loads back with the
same logits, in a fresh process that cannot reach the network, and the folder is exactly
what publishing would upload."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import course_utils
from course_utils import fusion, hub
from course_utils.world import data, encoding

NAME = "vqa-slot-read"
INPUTS = ("pixel_values", "input_ids", "attention_mask")


@pytest.fixture(scope="module")
def vqa():
    return course_utils.load_pretrained(NAME)


@pytest.fixture(scope="module")
def examples(vqa) -> dict:
    """Eight test questions of the world, as the model's input tensors."""
    ds = data.load_instruction_dataset(seed=0, n_train=16, n_eval=8, splits=("train", "test"),
                                       progress=False)
    return {"split": ds["test"], **encoding.to_tensors(ds["test"], vqa.tokenizer)}


@pytest.fixture(scope="module")
def folder(vqa, tmp_path_factory):
    return hub.save_pretrained(vqa, tmp_path_factory.mktemp("hub") / NAME)


def logits_of(model, examples: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**{k: examples[k] for k in INPUTS})  # (B, A)


def test_the_round_trip_gives_identical_logits_and_answers(vqa, examples, folder):
    loaded = hub.from_pretrained(folder)
    assert torch.equal(logits_of(loaded.model, examples), logits_of(vqa.model, examples))
    images, questions = list(examples["split"]["image"]), list(examples["split"]["instruction"])
    assert loaded.answer(images, questions) == vqa.answer(images, questions)
    assert loaded.tokenizer(questions)["input_ids"] == vqa.tokenizer(questions)["input_ids"]
    assert loaded.card["name"] == NAME and loaded.card["model_config"] == vqa.model.config


def test_config_json_holds_the_model_config(vqa, folder):
    config = json.loads((folder / "config.json").read_text())
    assert config == vqa.model.config == hub.folder_config(folder)
    assert isinstance(fusion.build_model(**config), type(vqa.model))


def test_the_weights_are_safetensors_and_nothing_is_pickled(vqa, folder):
    names = sorted(p.name for p in folder.iterdir())
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], names
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        assert sorted(weights.keys()) == sorted(f"model.{k}" for k in vqa.model.state_dict())


def test_it_loads_offline_in_a_fresh_process(examples, folder, tmp_path):
    save_file({k: examples[k].contiguous() for k in INPUTS}, str(tmp_path / "inputs.safetensors"))
    script = (
        "import sys, torch; from safetensors.torch import load_file, save_file\n"
        "from course_utils import hub\n"
        "torch.set_num_threads(1)\n"
        "vqa = hub.from_pretrained(sys.argv[1])\n"
        "with torch.inference_mode():\n"
        "    logits = vqa.model(**load_file(sys.argv[2]))\n"
        "save_file({'logits': logits}, sys.argv[3])\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # a port nothing listens on: no Hub to reach
    files = [str(path) for path in
             (folder, tmp_path / "inputs.safetensors", tmp_path / "logits.safetensors")]
    result = subprocess.run([sys.executable, "-c", script, *files], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order: the same bits
    try:
        here = logits_of(hub.from_pretrained(folder).model,
                         load_file(str(tmp_path / "inputs.safetensors")))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(load_file(str(tmp_path / "logits.safetensors"))["logits"], here)


def test_the_model_card_metadata_parses_and_carries_the_metrics(vqa, folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["license"] == "apache-2.0" and metadata["library_name"] == "pytorch"
    assert metadata["pipeline_tag"] == "visual-question-answering"
    assert {"course_utils", "toy-model", "pytorch_model_hub_mixin"} <= set(metadata["tags"])
    results = metadata["model-index"][0]["results"]
    assert {(r["dataset"]["split"], r["metrics"][0]["value"]) for r in results} >= {
        ("test", vqa.card["metrics"]["test"]), ("handwritten", vqa.card["metrics"]["handwritten"])}
    assert hub.card_metrics(ModelCard.load(folder / "README.md")) == vqa.card["metrics"]
    assert "not a general visual question answering model" in text and "48×48" in text
    assert f"{vqa.card['train_seconds']} s of training" in text


def test_publish_plan_lists_the_folder_and_nothing_else(folder, tmp_path):
    plan = hub.publish_plan(folder)
    on_disk = sorted(p.name for p in folder.iterdir())
    assert [path for path, _ in plan] == on_disk
    assert all(size == (folder / path).stat().st_size > 0 for path, size in plan)
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / ".git").mkdir()
    (copy / ".git" / "config").write_text("[core]\n")  # never uploaded by upload_folder
    (copy / "notes").mkdir()
    (copy / "notes" / "draft.txt").write_text("not for the Hub")  # would be uploaded
    assert [path for path, _ in hub.publish_plan(copy)] == sorted([*on_disk, "notes/draft.txt"])


def test_the_mixin_alone_round_trips_a_fusion_model(tmp_path):
    model = hub.HubVQAModel("late_fusion", vocab_size=50, num_answers=5, hidden_size=16)
    model.save_pretrained(tmp_path / "tiny")
    assert json.loads((tmp_path / "tiny" / "config.json").read_text()) == model.config
    loaded = hub.HubVQAModel.from_pretrained(tmp_path / "tiny", strict=True)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bad_input_raises_value_errors(vqa, folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        ("lacks config.json, model.safetensors", lambda: hub.from_pretrained(tmp_path / "empty")),
        ("is no folder", lambda: hub.from_pretrained(tmp_path / "missing")),
        ("written by hub.save_pretrained", lambda: hub.publish_plan(tmp_path / "empty")),
        ("is not empty: pass overwrite=True", lambda: hub.save_pretrained(vqa, folder)),
        ("got the file", lambda: hub.save_pretrained(vqa, tmp_path / "a-file")),
        ("vqa must be a shipped.VQAModel", lambda: hub.to_hub_model(vqa.model)),
        ("card must be a shipped model card", lambda: hub.build_model_card({"metrics": {}})),
    ]
    for message, call in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert hub.save_pretrained(vqa, folder, overwrite=True) == folder  # on purpose: allowed
