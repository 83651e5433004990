"""Data parallelism: the course's training step under PyTorch's DistributedDataParallel.

Every process (a *rank*) holds a full replica of the model. Each step, every rank draws the
same *global* batch (the same seeded ``torch.Generator``), takes its own shard of it, runs
forward and backward on that shard, and ``DistributedDataParallel`` (DDP) all-reduces the
gradients during ``backward()``: after it, every rank holds the same gradient, the one of
the whole global batch, and every optimizer makes the same step. So ``N`` processes with
``B / N`` examples each follow the trajectory of one process with ``B`` examples, up to
the order of floating-point sums.

* :func:`train_data_parallel` is the loop (AdamW, warm-up then cosine, clipping, as
  ``training.fit``); without a process group it is a plain one-process loop.
* ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
  course_utils.distributed --data data.safetensors --config config.json --steps 20
  --global-batch 32 --out curve.json`` runs it in 2 processes (:func:`main`); gloo on the
  CPU, NCCL on GPUs (one per process, chosen by ``LOCAL_RANK``), nothing else changes.
* :func:`launch` does that from a notebook: it writes the tensors (safetensors), runs
  ``torchrun`` as a subprocess and returns the loss curve rank 0 wrote.
* :func:`train_with_accelerate` is the same loop through Hugging Face ``accelerate``, the
  script that runs unchanged on a laptop, a Colab GPU, or ``accelerate launch`` on many.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.elastic.multiprocessing.errors import record

from course_utils import fusion
from course_utils.training import LABELS, NOT_INPUTS, check_data, trim_padding, warmup_cosine

#: The module every ``torchrun`` worker runs (its :func:`main`).
WORKER_MODULE = "course_utils.distributed"
#: Labels equal to this are not counted in the loss (PyTorch's ``ignore_index``).
IGNORE_INDEX = -100


# ---- who am I: ranks, devices, backends ----------------------------------------------------


def process_group_info() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` when no process group is running.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def backend_for(device) -> str:
    """The collective backend for a device: ``"nccl"`` on CUDA GPUs, ``"gloo"`` on the CPU.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a cpu or cuda device for data parallelism, got {device}")
    return "nccl" if device.type == "cuda" else "gloo"


def worker_device(choice: str = "auto") -> torch.device:
    """The device of a ``torchrun`` worker: ``cuda:LOCAL_RANK`` (one GPU per process) when
    ``choice`` is ``"auto"`` and a GPU is present or ``choice`` is ``"cuda"``, else the CPU.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {choice!r}")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    return device


# ---- the data: one global batch order, one shard per rank ----------------------------------


def global_batches(n: int, global_batch: int, steps: int, seed: int = 0) -> Iterator[Tensor]:
    """Yield ``steps`` index tensors of exactly ``global_batch`` examples out of ``n``.

    Each epoch is a fresh permutation of ``range(n)`` drawn from a ``torch.Generator``
    seeded with ``seed``, cut into full global batches; an incomplete last one is dropped
    (as ``DistributedSampler(drop_last=True)`` does), so every step sees ``global_batch``
    examples. Every rank calls this with the same arguments and gets the same batches.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    if not isinstance(global_batch, int) or not 0 < global_batch <= n:
        raise ValueError(f"global_batch must be an int in 1..{n} (the examples), "
                         f"got {global_batch!r}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    generator = torch.Generator().manual_seed(seed)
    step = 0
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - global_batch + 1, global_batch):
            yield order[start : start + global_batch]
            step += 1
            if step == steps:
                return


def shard(indices: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s part of a global batch: contiguous chunks in rank order.

    ``torch.tensor_split(indices, world_size)[rank]``: rank 0 takes the first
    ``ceil(B / world_size)`` examples, and so on; sizes differ by at most one and the
    shards, concatenated in rank order, are the global batch. (PyTorch's
    ``DistributedSampler`` interleaves instead, ``indices[rank::world_size]``; any split
    works, as long as each example goes to exactly one rank.)

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    if not isinstance(world_size, int) or world_size <= 0:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in 0..{world_size - 1}, got {rank!r}")
    if len(indices) < world_size:
        raise ValueError(f"a global batch of {len(indices)} cannot give each of {world_size} "
                         "ranks an example: global_batch must be >= world_size")
    return torch.tensor_split(indices, world_size)[rank]


def _check_training(data: dict, steps, global_batch: int, world_size: int, lr, warmup) -> int:
    n = check_data(data, "data")
    if not isinstance(global_batch, int) or not world_size <= global_batch <= n:
        raise ValueError(f"global_batch must be an int between the world size ({world_size}) "
                         f"and the number of examples ({n}), got {global_batch!r}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0 or not 0 <= warmup < 1:
        raise ValueError(f"lr must be > 0 and warmup a fraction in [0, 1), got {lr} and {warmup}")
    return n


def _local_batch(data: dict, indices: Tensor, rank: int, world_size: int, device):
    """This rank's shard of the global batch ``indices``, and the global batch's count of
    labelled examples (the denominator of the global mean loss)."""
    batch = trim_padding({k: v[indices] for k, v in data.items()})  # same T on every rank
    counted = int((batch[LABELS] != IGNORE_INDEX).sum())
    mine = shard(torch.arange(len(indices)), rank, world_size)
    # contiguous: the same memory layout (so the same kernels) as tensors read from a file
    return {k: v[mine].contiguous().to(device) for k, v in batch.items()}, max(counted, 1)


def _shard_loss(model: nn.Module, batch: dict, counted: int, world_size: int):
    """``(loss to backpropagate, summed cross-entropy of this shard)``.

    DDP *averages* the ranks' gradients, so each rank backpropagates its shard's summed
    loss times ``world_size / counted``: the average is then the gradient of the global
    batch's mean loss, whatever the shard sizes (with one process: the plain mean)."""
    output = model(**{k: v for k, v in batch.items() if k not in NOT_INPUTS})
    logits = output.logits if hasattr(output, "logits") else output  # (B_local, A)
    summed = F.cross_entropy(logits, batch[LABELS], reduction="sum", ignore_index=IGNORE_INDEX)
    return summed * (world_size / counted), summed.detach()


def _replicate(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    if world_size == 1:
        return model  # no process group (or one process): nothing to synchronise
    from torch.nn.parallel import DistributedDataParallel

    # DDP broadcasts rank 0's parameters now and all-reduces gradients in backward()
    device_ids = [device.index] if device.type == "cuda" else None  # one GPU per process
    return DistributedDataParallel(model, device_ids=device_ids)


def _all_sum(value: Tensor, world_size: int) -> float:
    if world_size > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value.item()


# ---- the loop ------------------------------------------------------------------------------


def train_data_parallel(model: nn.Module, data: dict, *, steps: int, global_batch: int,
                        lr: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.05,
                        clip_norm: float | None = 1.0, seed: int = 0, device=None) -> dict:
    """Train ``model`` for ``steps`` steps of ``global_batch`` examples, data-parallel.

    In every process of a group (started by ``torchrun``: :func:`main`), each rank trains
    on its :func:`shard` of every :func:`global_batches` batch under
    ``DistributedDataParallel``; with no process group it is a plain loop, the one-process
    baseline. AdamW, warm-up then
    cosine decay (``training.warmup_cosine``, ``warmup`` a fraction of the steps) and
    gradient clipping, as ``training.fit``. Returns, on every rank, ``{"loss", "lr",
    "world_size", "global_batch", "local_batch", "steps", "seconds"}``: ``loss`` is the
    global batch's mean cross-entropy per step (the ranks' summed losses all-reduced).

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    rank, world_size = process_group_info()
    n = _check_training(data, steps, global_batch, world_size, lr, warmup)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    replica = _replicate(model, device, world_size)
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    n_warm = max(1, int(warmup * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, steps, n_warm))
    curve: dict[str, list] = {"loss": [], "lr": []}
    start = time.perf_counter()
    for indices in global_batches(n, global_batch, steps, seed):
        batch, counted = _local_batch(data, indices, rank, world_size, device)
        loss, summed = _shard_loss(replica, batch, counted, world_size)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: the gradients are all-reduced (averaged) here
        if clip_norm is not None:  # every rank holds the same averaged gradient: same clip
            nn.utils.clip_grad_norm_(trainable, clip_norm)
        optimizer.step()
        scheduler.step()
        curve["loss"].append(_all_sum(summed, world_size) / counted)
        curve["lr"].append(scheduler.get_last_lr()[0])
    return {**curve, "world_size": world_size, "global_batch": global_batch,
            "local_batch": len(shard(torch.arange(global_batch), rank, world_size)),
            "steps": steps, "seconds": round(time.perf_counter() - start, 3)}


def train_with_accelerate(model: nn.Module, data: dict, *, steps: int, global_batch: int,
                          lr: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.05,
                          clip_norm: float | None = 1.0, seed: int = 0, cpu: bool = True) -> dict:
    """:func:`train_data_parallel` written with Hugging Face ``accelerate``.

    ``Accelerator(cpu=cpu)`` finds the processes and the device; ``prepare`` wraps the model
    (in DDP when ``accelerate launch`` starts several) and ``accelerator.backward`` replaces
    ``loss.backward()``. The same script runs on a laptop, a Colab GPU (``cpu=False``) or
    ``accelerate launch --num_processes N``. The scheduler is *not* prepared: a prepared
    one steps once per process per step (accelerate assumes the global batch grows with
    the processes); here the global batch is fixed. Accelerate keeps one state per
    process: create every ``Accelerator`` of a kernel with the same ``cpu``. Returns what
    :func:`train_data_parallel` returns.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=cpu)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    n = _check_training(data, steps, global_batch, world_size, lr, warmup)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    replica, optimizer = accelerator.prepare(model, optimizer)
    n_warm = max(1, int(warmup * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, steps, n_warm))
    replica.train()
    curve: dict[str, list] = {"loss": [], "lr": []}
    start = time.perf_counter()
    for indices in global_batches(n, global_batch, steps, seed):
        batch, counted = _local_batch(data, indices, rank, world_size, accelerator.device)
        loss, summed = _shard_loss(replica, batch, counted, world_size)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if clip_norm is not None:
            accelerator.clip_grad_norm_(trainable, clip_norm)
        optimizer.step()
        scheduler.step()
        curve["loss"].append(accelerator.reduce(summed, "sum").item() / counted)
        curve["lr"].append(scheduler.get_last_lr()[0])
    return {**curve, "world_size": world_size, "global_batch": global_batch,
            "local_batch": len(shard(torch.arange(global_batch), rank, world_size)),
            "steps": steps, "seconds": round(time.perf_counter() - start, 3)}


# ---- files the workers read ----------------------------------------------------------------


def save_tensors(data: dict, path) -> Path:
    """Write a dict of tensors with safetensors (never pickle), for the workers to read.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    from safetensors.torch import save_file

    check_data(data, "data", need_labels=False)
    if not all(isinstance(v, Tensor) for v in data.values()):
        kinds = [type(v).__name__ for v in data.values()]
        raise ValueError(f"data must map names to tensors, got {kinds}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in data.items()}, str(path))
    return path


def load_tensors(path) -> dict:
    """Read the tensors :func:`save_tensors` wrote (on the CPU).

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be a .safetensors file written by save_tensors, got {path}")
    return load_file(str(path))


def read_config(config) -> dict:
    """A model config (``fusion.build_model``'s keyword arguments, with ``kind``) from a
    dict, a JSON string, or the path of a JSON file.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    if isinstance(config, str | Path) and Path(config).suffix == ".json" and Path(config).is_file():
        config = Path(config).read_text()
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as error:
            raise ValueError(f"config must be JSON or a .json file, got {config[:80]!r}") from error
    if not isinstance(config, dict) or config.get("kind") not in fusion.MODELS:
        raise ValueError("config must be a dict of fusion.build_model arguments with a 'kind' "
                         f"in {sorted(fusion.MODELS)}, got {config!r}")
    return config


# ---- torchrun: the worker and the launcher -------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {WORKER_MODULE}",
        description="One data-parallel worker (start it with torchrun).")
    parser.add_argument("--data", required=True, help="tensors written by save_tensors")
    parser.add_argument("--config", required=True, help="model config: JSON or a .json file")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--global-batch", type=int, required=True)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--clip-norm", type=float, default=1.0, help="0: no clipping")
    parser.add_argument("--seed", type=int, default=0, help="model init and batch order")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", help="JSON file rank 0 writes the loss curve to")
    return parser


@record  # a failing worker's traceback reaches torchrun's report (and launch's error)
def main(argv: list[str] | None = None) -> dict:
    """One ``torchrun`` worker: join the process group (gloo on the CPU, NCCL on a GPU), build
    the model from its config with the same seed on every rank, train with
    :func:`train_data_parallel`, and on rank 0 write the result as JSON to ``--out``.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    import torch.distributed as dist

    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    device = worker_device(args.device)
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():  # started by torchrun
        dist.init_process_group(backend_for(device))  # env:// (torchrun's MASTER_ADDR, PORT)
    try:
        config = read_config(args.config)
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        model = fusion.build_model(**config)
        result = train_data_parallel(
            model, load_tensors(args.data), steps=args.steps, global_batch=args.global_batch,
            lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup,
            clip_norm=args.clip_norm or None, seed=args.seed, device=device)
        result.update(backend=backend_for(device), device=str(device))
        if process_group_info()[0] == 0 and args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return result
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def torchrun_command(data_path, config_path, out_path, *, nproc: int = 2, steps: int,
                     global_batch: int, **options) -> list[str]:
    """The command line :func:`launch` runs: ``python -m torch.distributed.run --standalone
    --nproc_per_node N -m course_utils.distributed --data ... --out ...``. ``options`` are
    more worker flags (``lr=1e-3`` becomes ``--lr 0.001``).

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    if not isinstance(nproc, int) or nproc <= 0:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    flags = {"data": data_path, "config": config_path, "steps": steps,
             "global-batch": global_batch, **{k.replace("_", "-"): v for k, v in options.items()},
             "out": out_path}
    known = {a.dest.replace("_", "-") for a in _parser()._actions if a.dest != "help"}
    if set(flags) - known:
        raise ValueError(f"unknown worker options {sorted(set(flags) - known)}; "
                         f"known: {sorted(known)}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(nproc), "-m", WORKER_MODULE]
    return command + [part for name, value in flags.items() for part in (f"--{name}", str(value))]


def _run(command: list[str], timeout: float) -> str:
    """Run ``command`` in a session of its own; on timeout stop torchrun with SIGTERM (it
    stops its workers, which run in sessions of their own, then exits), then SIGKILL its
    group if it is still there; raise with the last lines of the output on failure."""
    package_root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun forwards it to the workers and waits for them
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        raise RuntimeError(f"torchrun did not finish in {timeout} s; its last lines:\n"
                           + "\n".join(output.splitlines()[-30:])) from None
    if proc.returncode != 0:
        errors = [line.strip() for line in output.splitlines()  # the root cause comes last
                  if re.match(r"\s*[\w.]+(Error|Exception): ", line) and "ChildFailed" not in line]
        raise RuntimeError(f"torchrun failed (exit code {proc.returncode}): "
                           f"{errors[-1] if errors else 'see below'}; its last lines:\n"
                           + "\n".join(output.splitlines()[-30:]))
    return output


def launch(data: dict, config: dict, *, nproc: int = 2, steps: int, global_batch: int,
           device: str = "cpu", timeout: float = 300, **options) -> dict:
    """Train ``fusion.build_model(**config)`` on ``data`` in ``nproc`` processes with torchrun.

    Writes the tensors (safetensors) and the config to a temporary folder, runs
    :func:`torchrun_command` as a subprocess (``--standalone``: one machine, a free port on
    the loopback; ``OMP_NUM_THREADS=1``, ``HF_HUB_OFFLINE=1``), and returns the JSON rank 0
    wrote (:func:`train_data_parallel`'s result, with ``backend`` and ``device``) plus
    ``launch_seconds`` (wall time, process start-up included) and ``command``. ``device``:
    ``"cpu"`` (gloo), ``"cuda"`` (NCCL, one GPU per process) or ``"auto"``; ``options``:
    ``lr``, ``weight_decay``, ``warmup``, ``clip_norm``, ``seed``, ``threads``.

    Used in chapter 13, "6. From one laptop to many machines: distributed data parallel"."""
    config = read_config(config)
    if "clip_norm" in options and options["clip_norm"] is None:
        options["clip_norm"] = 0  # the worker's flag for no clipping
    _check_training(data, steps, global_batch, nproc, options.get("lr", 3e-3),
                    options.get("warmup", 0.05))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    gpus = torch.cuda.device_count()
    if (device == "cuda" or (device == "auto" and gpus)) and nproc > gpus:
        raise ValueError(f"nproc ({nproc}) must be at most the GPUs ({gpus}) on device {device!r}")
    with tempfile.TemporaryDirectory(prefix="course-ddp-") as folder:
        folder = Path(folder)
        (folder / "config.json").write_text(json.dumps(config))
        command = torchrun_command(save_tensors(data, folder / "data.safetensors"),
                                   folder / "config.json", folder / "curve.json", nproc=nproc,
                                   steps=steps, global_batch=global_batch, device=device,
                                   **options)
        start = time.perf_counter()
        _run(command, timeout)
        seconds = time.perf_counter() - start
        result = json.loads((folder / "curve.json").read_text())
    return {**result, "launch_seconds": round(seconds, 2), "command": command}


if __name__ == "__main__":
    main()
