"""`pretraining.pretrain_encoders`: chapter 07's stage 1 in one call, for chapters that
start from pretrained encoders in a fresh cache."""

from __future__ import annotations

import pytest
import torch

from course_utils import fusion, pretraining
from course_utils.world import encoding


def test_pretrain_encoders_saves_weights_that_load_into_a_fusion_model(tmp_path):
    path = pretraining.pretrain_encoders(steps=3, n_train=64, batch_size=32, stage1_steps=2,
                                         path=tmp_path / "w.safetensors", progress=False)
    assert path.is_file()
    loaded = pretraining.load_pretrained_encoders(path=path)
    assert isinstance(loaded["model"], pretraining.ContrastiveModel)
    assert loaded["projector"] is not None
    meta = loaded["metadata"]
    assert meta["clip_steps"] == 3 and meta["stage1_steps"] == 2 and meta["n_train"] == 64
    llava = fusion.build_model("llava_projection", **loaded["model"].fusion_config)
    out = pretraining.load_pretrained_encoders(llava, path=path)
    assert out["loaded"] == ["image_encoder", "text_encoder", "projector"]
    x = torch.zeros(2, 3, 48, 48)
    assert torch.equal(llava.image_encoder.eval()(x), loaded["model"].image_encoder.eval()(x))


def test_pretrain_encoders_trains_the_encoders(tmp_path):
    path = pretraining.pretrain_encoders(steps=4, n_train=64, batch_size=32, progress=False,
                                         path=tmp_path / "w.safetensors", lr=1e-2)
    torch.manual_seed(0)
    fresh = pretraining.ContrastiveModel(**encoding.model_sizes())
    trained = pretraining.load_pretrained_encoders(path=path)
    assert trained["projector"] is None  # no stage 1 asked for
    changed = [k for k, v in fresh.state_dict().items() if not torch.equal(v, trained["model"].state_dict()[k])]
    assert any(k.startswith("image_encoder.") for k in changed)
    assert any(k.startswith("text_encoder.") for k in changed)


def test_pretrain_encoders_reuses_an_existing_file_unless_told(tmp_path):
    target = tmp_path / "w.safetensors"
    path = pretraining.pretrain_encoders(steps=2, n_train=32, batch_size=16, path=target, progress=False)
    stamp = path.stat().st_mtime_ns
    assert pretraining.pretrain_encoders(steps=2, n_train=32, path=target, progress=False) == path
    assert path.stat().st_mtime_ns == stamp
    pretraining.pretrain_encoders(steps=2, n_train=32, batch_size=16, path=target, overwrite=True,
                                  progress=False, seed=1)
    assert pretraining.load_pretrained_encoders(path=target)["metadata"]["seed"] == 1


def test_pretrain_encoders_default_path_is_in_the_cache():
    path = pretraining.pretrain_encoders(steps=1, n_train=16, batch_size=16, progress=False)
    assert path == pretraining.default_path() and path.is_file()


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"n_train": -1}, {"batch_size": 1.5},
                                    {"stage1_steps": -2}, {"steps": True}])
def test_pretrain_encoders_rejects_bad_arguments(kwargs, tmp_path):
    with pytest.raises(ValueError):
        pretraining.pretrain_encoders(path=tmp_path / "w.safetensors", progress=False, **kwargs)
