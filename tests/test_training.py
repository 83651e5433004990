"""The training loop learns, evaluates without gradients, freezes, checkpoints, and validates."""

import pytest
import torch
from torch import nn

from course_utils import training


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, features):
        return self.head(torch.relu(self.embed(features)))


def toy_data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return {"features": x, "labels": y}


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    model = Toy()
    history = training.fit(model, toy_data(), toy_data(256, seed=1), steps=200, batch_size=64,
                           lr=1e-2, progress=False)
    assert len(history.train_loss) == 200 and len(history.evals) == 10
    assert history.final["accuracy"] > 0.9
    assert history.train_loss[-1] < history.train_loss[0] / 2
    assert history.samples_per_second > 0
    assert max(history.lr) == pytest.approx(1e-2, rel=0.05) and history.lr[-1] < 1e-4


def test_fit_is_reproducible_with_a_seed():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Toy()
        runs.append(training.fit(model, toy_data(), steps=20, batch_size=32, progress=False).train_loss)
    assert runs[0] == runs[1]


def test_sgd_optimizer_learns_and_unknown_optimizers_are_refused():
    torch.manual_seed(0)
    model = Toy()
    history = training.fit(model, toy_data(), toy_data(256, seed=1), steps=200, batch_size=64,
                           lr=0.1, optimizer="sgd", progress=False)
    assert history.final["accuracy"] > 0.9
    torch.manual_seed(0)
    adam = training.fit(Toy(), toy_data(), steps=5, batch_size=64, progress=False).train_loss
    torch.manual_seed(0)
    sgd = training.fit(Toy(), toy_data(), steps=5, batch_size=64, optimizer="sgd", progress=False).train_loss
    assert adam[1:] != sgd[1:]  # a different update rule, not a silently ignored argument
    with pytest.raises(ValueError, match="optimizer must be 'adamw' or 'sgd', got 'adam'"):
        training.fit(Toy(), toy_data(), steps=1, optimizer="adam", progress=False)


def test_params_restricts_training_to_a_subset():
    torch.manual_seed(0)
    model = Toy()
    frozen = model.embed.weight.clone()
    training.fit(model, toy_data(), steps=10, params=model.head.parameters(), progress=False)
    assert torch.equal(model.embed.weight, frozen)


def test_evaluate_restores_train_mode_and_uses_no_grad():
    model = Toy().train()
    logits = training.predict(model, toy_data(10))
    assert model.training and not logits.requires_grad and logits.shape == (10, 3)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    a, b = Toy(), Toy()
    path = training.save_checkpoint(a, tmp_path / "m.safetensors", test_accuracy=0.9)
    meta = training.load_checkpoint(b, path)
    assert meta == {"test_accuracy": 0.9}
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        training.load_checkpoint(b, tmp_path / "missing.safetensors")


def test_warmup_cosine_shape():
    values = [training.warmup_cosine(s, 100, 10) for s in range(100)]
    assert values[9] == pytest.approx(1.0) and values[0] == pytest.approx(0.1)
    assert values[-1] < 0.01 and all(a >= b for a, b in zip(values[10:], values[11:]))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"features": torch.zeros(3, 4)}, "no 'labels' entry"),
        ({"features": torch.zeros(3, 4), "labels": torch.zeros(2)}, "same first dimension"),
        ([1, 2], "dict of tensors"),
    ],
)
def test_bad_data_is_named(data, message):
    with pytest.raises(ValueError, match=message):
        training.fit(Toy(), data, steps=1, progress=False)


def test_nothing_to_train_is_an_error():
    model = Toy().requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        training.fit(model, toy_data(), steps=1, progress=False)


def test_task_ids_are_bookkeeping_not_model_inputs():
    data = {**toy_data(64), "task_ids": torch.zeros(64, dtype=torch.long)}
    history = training.fit(Toy(), data, data, steps=2, progress=False)
    assert len(history.evals) == 2  # evaluated, so the model never saw task_ids
