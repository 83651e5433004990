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


def test_fused_adamw_is_asked_for_where_pytorch_has_it_and_follows_the_same_rule():
    assert training.fused_for("cpu") == {"fused": True}
    assert training.fused_for(torch.device("cuda")) == {"fused": True}
    assert training.fused_for("mps") == {} and training.fused_for("meta") == {}
    assert training.adamw(Toy().parameters(), 1e-3).defaults["fused"] is True
    with pytest.raises(ValueError, match="nothing to train"):
        training.adamw([], 1e-3)
    # fit's fused AdamW and the default (foreach) AdamW take the same steps, up to rounding
    torch.manual_seed(0)
    fused = training.fit(Toy(), toy_data(), steps=30, batch_size=32, progress=False).train_loss
    torch.manual_seed(0)
    model, data = Toy(), toy_data()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: training.warmup_cosine(s, 30, 1))
    gen, plain = torch.Generator().manual_seed(0), []
    while len(plain) < 30:  # 16 batches an epoch
        for batch in training.batches(data, 32, shuffle=True, generator=gen):
            loss = nn.functional.cross_entropy(model(batch["features"]), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            plain.append(loss.item())
            if len(plain) == 30:
                break
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(plain), rtol=1e-4, atol=1e-5)


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


def test_batches_drop_padding_no_example_needs_and_keep_predictions():
    from course_utils import fusion

    ids = torch.zeros(6, 12, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate([3, 5, 4, 2, 5, 3]):
        ids[i, :n], mask[i, :n] = torch.arange(1, n + 1), 1
    data = {"pixel_values": torch.randn(6, 3, 48, 48), "input_ids": ids, "attention_mask": mask,
            "labels": torch.arange(6), "task_ids": torch.zeros(6, dtype=torch.long)}  # fmt: skip
    (batch,) = training.batches(data, batch_size=6)
    assert batch["input_ids"].shape == (6, 5) and batch["attention_mask"].shape == (6, 5)
    assert batch["pixel_values"].shape == (6, 3, 48, 48) and batch["labels"].shape == (6,)
    lm = {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    assert training.trim_padding(lm)["labels"].shape == (6, 5)  # token-level labels follow their tokens
    left = {"input_ids": ids.flip(1), "attention_mask": mask.flip(1)}
    assert training.trim_padding(left)["input_ids"].shape == (6, 12)  # left padding: nothing to trim
    torch.manual_seed(0)
    model = fusion.build_model("slot_read", vocab_size=16, num_answers=8, hidden_size=16, num_heads=2).eval()
    with torch.no_grad():
        full = model(data["pixel_values"], ids, mask)
    torch.testing.assert_close(training.predict(model, data), full, atol=1e-5, rtol=1e-5)
