"""Training chapter 12's models on :func:`~course_utils.editing.data.edit_tensors`.

One loop (:func:`fit`) serves the three models: each brings a function from a batch of
the tensors to its loss. The editor's loss weighs the pixels the edit changes
(:func:`edit_loss`): a few hundred changed pixels among 2,304 would otherwise count for
little against a background that only has to be copied.
"""

from __future__ import annotations

import time

import torch

from course_utils.editing import data as edata
from course_utils.training import adamw, warmup_cosine


def fit(model, loss_of, tensors: dict, steps: int, batch_size: int = 64, lr: float = 2e-3,
        warmup: int = 50, seed: int = 0, progress: bool = True, desc: str = "training") -> dict:
    """AdamW with warm-up and cosine decay for ``steps`` steps; ``loss_of(model, batch)``
    gives a batch's loss. Returns ``{"losses", "seconds"}``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    from tqdm.auto import tqdm

    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    n = len(next(v for v in tensors.values() if isinstance(v, torch.Tensor)))
    device = next(model.parameters()).device
    opt = adamw(model.parameters(), lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, min(warmup, steps)))
    gen = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for _ in bar:
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        batch = {k: v[idx].to(device) for k, v in tensors.items() if isinstance(v, torch.Tensor)}
        loss = loss_of(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    bar.close()
    model.eval()
    return {"losses": losses, "seconds": round(time.perf_counter() - start, 2)}


def parser_loss(model, batch: dict) -> torch.Tensor:
    """The parser's loss on a batch: every slot's cross-entropy.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    labels = {s: batch[f"slot_{s}"] for s in edata.SLOTS}
    return model.loss(batch["input_ids"], batch["attention_mask"], labels)


def perception_loss(model, batch: dict, noise: float = 0.05, permute: float = 0.5) -> torch.Tensor:
    """Perception's loss on a batch of :func:`~course_utils.editing.data.perception_tensors`,
    with pixel noise of up to ``noise`` so that it also reads imperfect outputs.
    A share ``permute`` of the images has its colour channels shuffled: their colours are
    no colour of the world (their colour labels are dropped), so that shape and size must
    be read without leaning on colour, as they must be for the held-out pairs.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    images = edata.to_unit(batch["images"])
    labels = {k: batch[k] for k in ("shape", "color", "size", "style")}
    shuffled = torch.rand(len(images), device=images.device) < permute
    if shuffled.any():
        order = torch.stack([torch.randperm(3) for _ in range(int(shuffled.sum()))]).to(images.device)
        images[shuffled] = torch.gather(images[shuffled], 1, order[:, :, None, None].expand(-1, -1, *images.shape[2:]))
        labels["color"] = labels["color"].masked_fill(shuffled[:, None], edata.IGNORE)
    images = images + torch.randn_like(images) * noise * torch.rand(len(images), 1, 1, 1, device=images.device)
    return model.loss(images, labels)


def edit_loss(model, batch: dict, changed_weight: float = 20.0) -> torch.Tensor:
    """Mean squared error of the edited image, each changed pixel weighted
    ``1 + changed_weight``.

    Used in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""
    before, after = edata.to_unit(batch["before"]), edata.to_unit(batch["after"])
    out = model(before, batch["input_ids"], batch["attention_mask"])
    weight = 1 + changed_weight * (before != after).any(1, keepdim=True).float()  # (B, 1, H, W)
    return (weight * (out - after) ** 2).mean() / weight.mean()


@torch.no_grad()
def run_editor(model, before: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               batch_size: int = 256) -> torch.Tensor:
    """The edited images, uint8 ``(N, H, W, 3)``, of uint8 inputs ``(N, H, W, 3)``.

    Used in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(before), batch_size):
        sl = slice(i, i + batch_size)
        x = edata.to_unit(before[sl]).to(device)
        out.append(edata.to_uint8(model(x, input_ids[sl].to(device), attention_mask[sl].to(device))).cpu())
    return torch.cat(out) if out else before.clone()


@torch.no_grad()
def read_images(reader, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Perceived labels of uint8 images ``(N, H, W, 3)``: ``shape``/``color``/``size`` ``(N, 9)``, ``style``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    device = next(reader.parameters()).device
    parts = [reader.read(edata.to_unit(images[i : i + batch_size]).to(device)) for i in range(0, len(images), batch_size)]
    return {k: torch.cat([p[k].cpu() for p in parts]) for k in ("shape", "color", "size", "style")}

