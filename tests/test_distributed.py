"""Data parallelism (chapter 13, section 6): two gloo processes with half of each global batch
follow the curve of one process with the whole batch, the shards partition every batch, and
a different global batch gives a different curve (so the comparison can fail).

Tolerance: the two runs differ only in the order of float32 sums (two half-batch gradients
averaged by the all-reduce, against one full-batch gradient): measured at most 1.2e-7 on
losses near 1 over 20 steps (one float32 ulp at 1.0 is 1.2e-7), so ``atol=1e-5`` leaves a
margin of about 100 while a different global batch moves the curve by about 0.5.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from course_utils import distributed, fusion

CONFIG = {"kind": "late_fusion", "vocab_size": 50, "num_answers": 5, "hidden_size": 16}
STEPS, GLOBAL_BATCH = 20, 32
TOLERANCE = {"atol": 1e-5, "rtol": 0.0}


@pytest.fixture(scope="module")
def data() -> dict:
    """96 random examples with padded instructions and a few ignored labels (-100)."""
    gen = torch.Generator().manual_seed(0)
    n, length = 96, 10
    lengths = torch.randint(3, length + 1, (n,), generator=gen)
    attention_mask = (torch.arange(length)[None] < lengths[:, None]).long()
    labels = torch.randint(0, CONFIG["num_answers"], (n,), generator=gen)
    labels[::7] = -100
    return {
        "pixel_values": torch.randn(n, 3, 48, 48, generator=gen),
        "input_ids": attention_mask * torch.randint(1, CONFIG["vocab_size"], (n, length),
                                                    generator=gen),
        "attention_mask": attention_mask,
        "labels": labels,
        "task_ids": torch.zeros(n, dtype=torch.long),
    }




def in_process(data: dict, global_batch: int = GLOBAL_BATCH, accelerate: bool = False) -> dict:
    torch.manual_seed(0)  # what every worker does before building the model
    model = fusion.build_model(**CONFIG)
    train = distributed.train_with_accelerate if accelerate else distributed.train_data_parallel
    return train(model, data, steps=STEPS, global_batch=global_batch)


@pytest.fixture(scope="module")
def one_process(data, one_thread) -> dict:
    return in_process(data)


@pytest.fixture(scope="module")
def two_processes(data) -> dict:
    return distributed.launch(data, CONFIG, nproc=2, steps=STEPS, global_batch=GLOBAL_BATCH,
                              timeout=240)


# ---- the shards -----------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_the_shards_partition_each_global_batch(world_size):
    batches = list(distributed.global_batches(100, 30, steps=7, seed=1))
    assert len(batches) == 7 and all(len(b) == 30 for b in batches)
    for indices in batches:
        parts = [distributed.shard(indices, r, world_size) for r in range(world_size)]
        assert torch.equal(torch.cat(parts), indices)  # in rank order, each example once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    epoch = torch.cat(batches[:3])  # 3 full batches of 30 per epoch of 100 (10 dropped)
    assert len(set(epoch.tolist())) == 90
    assert torch.equal(distributed.shard(torch.arange(8), 1, 2), torch.arange(4, 8))  # contiguous


def test_every_rank_draws_the_same_global_batches():
    first = list(distributed.global_batches(50, 8, steps=10, seed=3))
    again = list(distributed.global_batches(50, 8, steps=10, seed=3))
    other = list(distributed.global_batches(50, 8, steps=10, seed=4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


# ---- one process against two ----------------------------------------------------------------


def test_two_processes_follow_the_one_process_curve(one_process, two_processes):
    assert two_processes["world_size"] == 2 and two_processes["backend"] == "gloo"
    assert two_processes["local_batch"] == GLOBAL_BATCH // 2 and one_process["world_size"] == 1
    assert len(two_processes["loss"]) == len(one_process["loss"]) == STEPS
    torch.testing.assert_close(torch.tensor(two_processes["loss"]),
                               torch.tensor(one_process["loss"]), **TOLERANCE)
    assert two_processes["lr"] == one_process["lr"]
    assert one_process["loss"][-1] < 0.6 * one_process["loss"][0]  # it does learn


def test_a_different_global_batch_gives_a_different_curve(data, one_thread, two_processes):
    smaller = in_process(data, global_batch=GLOBAL_BATCH // 2)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(torch.tensor(smaller["loss"]),
                                   torch.tensor(two_processes["loss"]), **TOLERANCE)


def test_accelerate_gives_the_plain_loop_in_one_process(data, one_process):
    through_accelerate = in_process(data, accelerate=True)
    assert through_accelerate["world_size"] == 1
    torch.testing.assert_close(torch.tensor(through_accelerate["loss"]),
                               torch.tensor(one_process["loss"]), **TOLERANCE)


def test_the_worker_runs_as_a_plain_loop_without_torchrun(data, one_process, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    args = distributed.torchrun_command(
        distributed.save_tensors(data, tmp_path / "data.safetensors"), tmp_path / "config.json",
        tmp_path / "curve.json", nproc=2, steps=STEPS, global_batch=GLOBAL_BATCH, device="cpu")
    assert args[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", "-m"] and args[7] == "course_utils.distributed"
    distributed.main(args[8:])
    written = json.loads((tmp_path / "curve.json").read_text())
    assert written["world_size"] == 1 and written["backend"] == "gloo"
    torch.testing.assert_close(torch.tensor(written["loss"]), torch.tensor(one_process["loss"]),
                               **TOLERANCE)


def test_a_failing_worker_shows_its_error(data):
    broken = {**data, "labels": data["labels"].clone()}
    broken["labels"][3] = 9  # no such answer: cross-entropy fails inside the worker
    expected = r"torchrun failed \(exit code 1\): IndexError: Target 9 is out of bounds"
    with pytest.raises(RuntimeError, match=expected):
        distributed.launch(broken, CONFIG, nproc=1, steps=2, global_batch=8, timeout=240)


# ---- bad input ------------------------------------------------------------------------------


def test_bad_arguments_raise_value_errors(data, tmp_path):
    model = fusion.build_model(**CONFIG)

    def train(source=data, steps=2, global_batch=8, **options):
        return distributed.train_data_parallel(model, source, steps=steps,
                                               global_batch=global_batch, **options)

    def launch(config=CONFIG, nproc=2, global_batch=8):
        return distributed.launch(data, config, nproc=nproc, steps=2, global_batch=global_batch)

    cases = [
        ("global_batch must be an int between", lambda: train(global_batch=0)),
        ("global_batch must be an int between", lambda: train(global_batch=97)),
        ("steps must be a positive int", lambda: train(steps=0)),
        ("lr must be > 0", lambda: train(lr=0.0)),
        ("no 'labels' entry", lambda: train({"input_ids": data["input_ids"]})),
        ("rank must be an int in 0..1", lambda: distributed.shard(torch.arange(8), 2, 2)),
        ("world_size must be a positive int", lambda: distributed.shard(torch.arange(8), 0, 0)),
        ("global_batch must be >= world_size", lambda: distributed.shard(torch.arange(2), 0, 3)),
        ("global_batch must be an int in 1..10",
         lambda: next(distributed.global_batches(10, 11, 1))),
        ("nproc must be a positive int", lambda: launch(nproc=0)),
        (r"global_batch must be an int between the world size \(4\)",
         lambda: launch(nproc=4, global_batch=2)),
        ("config must be a dict of fusion.build_model arguments", lambda: launch({"kind": "no"})),
        ("config must be JSON", lambda: distributed.read_config("{not json")),
        (r"unknown worker options \['colour'\]",
         lambda: distributed.torchrun_command("d", "c", "o", steps=1, global_batch=2, colour=1)),
        ("all tensors need the same first dimension",
         lambda: distributed.save_tensors({"a": torch.zeros(2), "b": torch.zeros(3)}, tmp_path)),
        ("path must be a .safetensors file",
         lambda: distributed.load_tensors(tmp_path / "missing")),
        ("device must be a cpu or cuda device", lambda: distributed.backend_for("meta")),
        ("device must be 'auto', 'cpu' or 'cuda'", lambda: distributed.worker_device("tpu")),
        ("device must be 'auto', 'cpu' or 'cuda'",
         lambda: distributed.launch(data, CONFIG, steps=2, global_batch=8, device="gpu")),
    ]
    for message, call in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert distributed.backend_for("cpu") == "gloo" and distributed.backend_for("cuda:1") == "nccl"
    assert distributed.process_group_info() == (0, 1)
