"""The course's training loop: the source's section 5.2 made correct and complete.

Data is a dict of equal-length tensors prepared once (e.g. ``pixel_values``,
``input_ids``, ``attention_mask``, ``labels``); the model is called with every key but
``labels`` and ``task_ids`` and returns logits (or an object with ``.logits``). The loop handles what the
source's loop forgot: device placement, ``train()``/``eval()`` modes, shuffled batches,
AdamW with warm-up then cosine decay, gradient clipping, ``torch.inference_mode`` for
evaluation, a progress bar, a history for learning curves, and safetensors checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

LABELS = "labels"
#: Keys of a data dict that are never passed to the model: the targets, and bookkeeping
#: such as ``task_ids`` (the question family of each example, for per-family metrics).
NOT_INPUTS = frozenset({LABELS, "task_ids"})


@dataclass
class History:
    """What happened during :func:`fit`, for learning curves and reports.

    Introduced in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step", "loss", "accuracy", "seconds"}
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def best(self, key: str = "accuracy") -> float:
        return max(e[key] for e in self.evals) if self.evals else float("nan")

    @property
    def final(self) -> dict:
        return self.evals[-1] if self.evals else {}

    def to_dict(self) -> dict:
        return asdict(self)


def check_data(data: dict, name: str = "data", need_labels: bool = True) -> int:
    """Validate a dict of tensors; returns the number of examples.

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{name} must be a non-empty dict of tensors, got {type(data).__name__}")
    if need_labels and LABELS not in data:
        raise ValueError(f"{name} has no '{LABELS}' entry; keys: {sorted(data)}")
    sizes = {k: len(v) for k, v in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{name}: all tensors need the same first dimension, got {sizes}")
    return next(iter(sizes.values()))


def _inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in NOT_INPUTS}


def _logits(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


#: The token tensors of a batch that share its attention mask's length.
TOKEN_KEYS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")


def trim_padding(batch: dict) -> dict:
    """Drop the token columns that are padding in every row of the batch.

    A split is padded to its longest instruction; most batches are much shorter, and a model
    that masks padding gives the same outputs without it, in less time.

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    mask = batch.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] == 0:
        return batch
    used = mask.bool().any(0).nonzero()
    width = int(used.max()) + 1 if len(used) else 1
    if width == mask.shape[1]:
        return batch
    length = mask.shape[1]  # token-level labels (a language model's) are trimmed with the tokens
    aligned = {k for k, v in batch.items() if v.dim() == 2 and v.shape[1] == length and (k in TOKEN_KEYS or k == LABELS)}
    return {k: v[:, :width] if k in aligned else v for k, v in batch.items()}


def batches(data: dict, batch_size: int, shuffle: bool = False, generator=None, device=None):
    """Yield dicts of tensors of at most ``batch_size`` examples, moved to ``device``, without
    the padding columns no example of the batch needs (:func:`trim_padding`).

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    n = check_data(data, need_labels=False)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        batch = trim_padding({k: v[idx] for k, v in data.items()})
        yield {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def fused_for(device) -> dict:
    """``{"fused": True}`` where PyTorch has a fused AdamW kernel for ``device`` (CPU, CUDA),
    else ``{}``: one kernel updates every parameter, about a tenth faster per step for the
    course's small models on a 2-core CPU (8-13 % measured), with the same update rule.

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    return {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {}


def adamw(params, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW over ``params`` (tensors that require grad), fused where PyTorch has the kernel
    (:func:`fused_for`, on the parameters' device): the optimizer of every training loop in the
    package. No parameters is a ``ValueError``.

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    params = list(params)
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused_for(params[0].device))


#: CLIP clips its learned logit scale at 100 (temperature >= 0.01) to keep training stable.
MAX_LOGIT_SCALE = 100.0


def contrastive_temperature(logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's learned temperature: ``1 / exp(logit_scale)``, the scale clamped at
    :data:`MAX_LOGIT_SCALE` (a scalar tensor that gradients flow through). The rule of every
    contrastive model of the course: chapter 07's encoders, chapter 11's retriever and combiner.

    Used in chapter 07, "3. The temperature"."""
    return 1 / logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0.

    Built in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.inference_mode()
def predict(model: nn.Module, data: dict, batch_size: int = 512, device=None) -> torch.Tensor:
    """Logits for every example, on the CPU, in the data's order.

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %"."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [_logits(model(**_inputs(b))).float().cpu()
           for b in batches(data, batch_size, device=device)]
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, data: dict, batch_size: int = 512, device=None,
             loss_fn: Callable | None = None) -> dict:
    """``{"loss", "accuracy"}`` on ``data`` (mean cross-entropy unless ``loss_fn`` is given).

    Used in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`"."""
    check_data(data)
    logits = predict(model, data, batch_size, device)
    labels = data[LABELS].cpu()
    loss_fn = loss_fn or nn.functional.cross_entropy
    return {
        "loss": loss_fn(logits, labels).item(),
        "accuracy": (logits.argmax(-1) == labels).float().mean().item(),
    }


def fit(
    model: nn.Module,
    train: dict,
    val: dict | None = None,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    warmup: float = 0.05,
    clip_norm: float | None = 1.0,
    loss_fn: Callable | None = None,
    label_smoothing: float = 0.0,
    optimizer: str = "adamw",
    eval_every: int | None = None,
    params=None,
    device=None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
    on_eval: Callable[[History], None] | None = None,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps; evaluate on ``val`` as it goes.

    ``params`` restricts what is trained (e.g. only a projector: freezing); ``warmup`` is
    the fraction of steps spent warming up; ``loss_fn(logits, labels)`` replaces
    cross-entropy (e.g. to compare with MSE); ``optimizer`` is ``"adamw"`` or ``"sgd"``
    (momentum 0.9, no weight decay: to see what Adam's per-parameter scaling does). Returns
    a :class:`History`.

    Built in chapter 08, "2. A correct loop, from scratch — and the course's `training.fit`".
    """
    # kept whole: chapter 08 reads this loop top to bottom against its own from-scratch loop
    from tqdm.auto import tqdm

    check_data(train, "train")
    if val is not None:
        check_data(val, "val")
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    device = device or next(model.parameters()).device
    model.to(device)
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to train: no parameter requires grad")
    if optimizer == "adamw":
        optimizer = adamw(trainable, lr, weight_decay)
    elif optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=lr, momentum=0.9)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    n_warm = max(1, int(warmup * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, steps, n_warm))
    if loss_fn is None:
        def loss_fn(logits, labels):
            return nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    eval_every = eval_every or max(1, steps // 10)
    gen = torch.Generator().manual_seed(seed)
    history = History()
    # at most two refreshes a second: a notebook kernel sends each one as a message, and a
    # flood of them during a long cell can overflow the output channel (the notebook client then times out)
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, mininterval=0.5)
    start, step, seen = time.perf_counter(), 0, 0
    model.train()
    while step < steps:
        for batch in batches(train, batch_size, shuffle=True, generator=gen, device=device):
            loss = loss_fn(_logits(model(**_inputs(batch))), batch[LABELS])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(trainable, clip_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(batch[LABELS])
            history.step.append(step)
            history.train_loss.append(loss.item())
            history.lr.append(scheduler.get_last_lr()[0])
            bar.update(1)
            if val is not None and (step % eval_every == 0 or step == steps):
                result = evaluate(model, val, device=device)
                result.update(step=step, seconds=round(time.perf_counter() - start, 2))
                history.evals.append(result)
                bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{result['accuracy']:.3f}")
                if on_eval is not None:
                    on_eval(history)
                model.train()
            if step >= steps:
                break
    bar.close()
    history.seconds = time.perf_counter() - start
    history.samples_per_second = seen / max(history.seconds, 1e-9)
    return history


def save_checkpoint(model: nn.Module, path, **metadata) -> Path:
    """Save weights as safetensors, with JSON-serialisable metadata beside them.

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %"."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"course": json.dumps(metadata)})
    return path


def load_checkpoint(model: nn.Module, path, strict: bool = True) -> dict:
    """Load safetensors weights into ``model`` (never unpickles); returns the metadata.

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %"."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(path), device=str(device)), strict=strict)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    return json.loads(meta.get("course", "{}"))
