"""Training the captioner with teacher forcing, and describing a split with it.

``fit`` draws random batches of every form together. Batches of one form at a time would
pad less (brief answers are short, detailed ones long), but measured they learn far more
slowly: after 1,200 steps the loss was 0.47 with one-form batches against 0.10 with mixed
ones (chapter 10, "3. Teacher forcing: training on the reference text").
"""

from __future__ import annotations

import time

import torch

from course_utils.captioning import decoding
from course_utils.captioning.data import decode
from course_utils.training import adamw, warmup_cosine


def _trim(batch: dict) -> dict:
    """Drop the padding columns no example of the batch needs."""
    ins = int(batch["instruction_mask"].sum(1).max())
    out = {**batch, "instruction_ids": batch["instruction_ids"][:, :ins],
           "instruction_mask": batch["instruction_mask"][:, :ins]}  # fmt: skip
    if "answer_ids" in batch:
        out["answer_ids"] = batch["answer_ids"][:, : int((batch["answer_ids"] != 0).sum(1).max())]
    return out


def warmup_stable_decay(step: int, total: int, warmup: int, decay: float) -> float:
    """Learning-rate multiplier: linear warm-up, constant, then a cosine to 0 over the last
    ``decay`` fraction of the steps (``decay=1``: warm-up then cosine).

    Used in chapter 10, "3. Teacher forcing: training on the reference text"."""
    start = int(total * (1 - decay))
    if step < warmup:
        return (step + 1) / warmup
    if step < start:
        return 1.0
    return warmup_cosine(step - start, total - start, 0)


def fit(model, data: dict, steps: int = 600, batch_size: int = 64, lr: float = 3e-3,
        warmup: int = 50, decay: float = 1.0, seed: int = 0, progress: bool = True,
        device=None) -> dict:
    """AdamW with warm-up, a constant phase and a cosine decay over the last ``decay``
    fraction, clipping at 1; returns the loss per step and the seconds taken.

    Used in chapter 10, "3. Teacher forcing: training on the reference text"."""
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_stable_decay(s, steps, warmup, decay))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="training the captioner", mininterval=0.5)
    losses, start = [], time.perf_counter()
    n = len(data["answer_ids"])
    for _ in range(steps):
        idx = torch.randint(n, (batch_size,), generator=gen)
        b = _trim({k: data[k][idx].to(device) for k in
                   ("pixel_values", "instruction_ids", "instruction_mask", "answer_ids")})  # fmt: skip
        loss = model.loss(b["pixel_values"], b["instruction_ids"], b["instruction_mask"], b["answer_ids"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    if bar is not None:
        bar.close()
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - start}


@torch.inference_mode()
def describe_tensors(model, data: dict, batch_size: int = 256, method: str = "greedy",
                     num_beams: int = 3, max_new_tokens: int = 80, device=None, **kwargs) -> list[str]:
    """The model's descriptions of every example of ``data`` (``description_tensors``).

    ``method`` is ``"greedy"``, ``"beam"`` or ``"sample"`` (``temperature=`` and
    ``generator=`` in ``kwargs``).

    Used in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    if method not in ("greedy", "beam", "sample"):
        raise ValueError(f"method must be 'greedy', 'beam' or 'sample', got {method!r}")
    model.eval()
    texts = []
    for start in range(0, len(data["pixel_values"]), batch_size):
        sl = slice(start, start + batch_size)
        b = _trim({k: data[k][sl].to(device) for k in ("pixel_values", "instruction_ids",
                                                       "instruction_mask")})  # fmt: skip
        embeds, mask = model.prefix(b["pixel_values"], b["instruction_ids"], b["instruction_mask"])
        if method == "beam":
            ids = decoding.beam_search(model, embeds, mask, num_beams, max_new_tokens, **kwargs)
        else:
            if method == "greedy":
                kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature",)}
            ids = decoding.greedy(model, embeds, mask, max_new_tokens, **kwargs)
        texts += decode(ids.cpu())
    return texts
