"""Runtime helpers: device choice, seeding, cache folder, offline mode, result reports."""

import json
import os
import random

import numpy as np
import pytest
import torch

from course_utils import runtime


def test_device_is_a_torch_device_and_can_be_forced(monkeypatch):
    assert runtime.get_device().type in {"cpu", "cuda", "mps"}
    assert runtime.get_device("cpu").type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device().type == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        runtime.get_device("tpu")


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(3)
    first = draw()
    runtime.seed_everything(3)
    assert draw() == first
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    path = runtime.cache_dir("data", "v1")
    assert path == tmp_path / "c" / "data" / "v1" and path.is_dir()


def test_cache_dir_is_outside_the_repository_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert not runtime.cache_dir().is_relative_to(runtime.REPO_ROOT)


def test_set_offline_sets_and_clears_the_hf_variables(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    runtime.set_offline(True)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    import huggingface_hub.constants as hub

    assert hub.HF_HUB_OFFLINE is True
    runtime.set_offline(False)
    assert "HF_HUB_OFFLINE" not in os.environ and hub.HF_HUB_OFFLINE is False
    runtime.set_offline(True)


def test_init_returns_the_device_and_prints_versions(capsys):
    device = runtime.init(seed=1, device="cpu")
    assert device == torch.device("cpu")
    out = capsys.readouterr().out
    assert "torch" in out and "seed 1" in out and "offline" in out


def test_report_prints_and_records(tmp_path, monkeypatch, capsys):
    results = tmp_path / "r.json"
    monkeypatch.setenv("COURSE_RESULTS_FILE", str(results))
    runtime.report(test_acc=torch.tensor(0.93251), steps=10)
    assert "[result] test_acc = 0.9325" in capsys.readouterr().out
    assert json.loads(results.read_text())["metrics"] == {"test_acc": 0.9325, "steps": 10}
    with pytest.raises(TypeError, match="metric 'bad'"):
        runtime.report(bad=[1, 2])


def test_torch_threads_sets_and_restores_the_number_of_threads():
    import torch

    before = torch.get_num_threads()
    with runtime.torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), runtime.torch_threads(1):
        raise RuntimeError("a failing block")
    assert torch.get_num_threads() == before  # restored after an error too
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n must be a positive int"), runtime.torch_threads(bad):
            pass


def test_stored_results_record_the_recipe_the_results_and_the_versions(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Recipe:
        steps: int = 3

    path = runtime.write_stored_results(tmp_path / "r.json", "tiny", "what it is", Recipe(), 1.234, 2,
                                        points=[{"n": 1}], extra={"a": 1})
    stored = json.loads(path.read_text())
    assert stored["name"] == "tiny" and stored["recipe"] == {"steps": 3} and stored["points"] == [{"n": 1}]
    assert stored["extra"] == {"a": 1} and stored["seconds"] == 1.2 and stored["torch_threads"] == 2
    assert stored["versions"]["torch"] == torch.__version__
