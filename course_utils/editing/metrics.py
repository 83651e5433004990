"""Measuring an edit: distance to the true target, success judged from the pixels, and
whether what the instruction did not mention stayed as it was.

Pixel metrics (MagicBrush reports L1 and L2 against a target) count every pixel alike,
and most pixels of an edit do not change: the identity "editor" that returns its input
scores well on them and makes no edit at all. Edit success and preservation, computed per
grid cell from the cells the true edit changes, separate doing the edit from leaving the
rest alone. Directional similarity (InstructPix2Pix) needs no target: the change of the
image's embedding should point the way the change of the caption's embedding does.
Everything here takes tensors; nothing reads the world.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape or output.dim() != 4 or output.shape[-1] != 3:
        raise ValueError(f"output and target must be uint8 (N, H, W, 3) of one shape, got "
                         f"{tuple(output.shape)} and {tuple(target.shape)}")  # fmt: skip


def pixel_errors(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: ``l1`` and ``l2`` (mean absolute and squared error, pixels in ``[0, 1]``)
    and ``psnr`` in dB (``10 log10(1 / l2)``; capped at 100 dB for an exact copy).

    Used in chapter 12, "4. Measuring an edit"."""
    _check_pair(output, target)
    diff = (output.float() - target.float()) / 255.0
    l2 = diff.pow(2).mean((1, 2, 3))
    psnr = (10 * torch.log10(1 / l2.clamp_min(1e-10))).clamp(max=100.0)
    return {"l1": diff.abs().mean((1, 2, 3)), "l2": l2, "psnr": psnr}


def cell_mask(cells: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, g * g)`` bool cells -> ``(N, size, size)`` bool pixels.

    Used in chapter 12, "4. Measuring an edit"."""
    n, k = cells.shape
    g = round(k**0.5)
    if g * g != k or size % g:
        raise ValueError(f"cells must be (N, g * g) with size ({size}) a multiple of g, got {tuple(cells.shape)}")
    c = size // g
    return cells.view(n, g, 1, g, 1).expand(n, g, c, g, c).reshape(n, size, size)


def region_errors(output: torch.Tensor, before: torch.Tensor, target: torch.Tensor,
                  changed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: ``inside`` (mean absolute error against the target in the changed cells),
    ``outside`` (mean absolute change from the input elsewhere) and ``preserved`` (no pixel
    outside the changed cells differs from the input; True when every cell changes).

    Used in chapter 12, "4. Measuring an edit"."""
    _check_pair(output, target)
    _check_pair(before, target)
    mask = cell_mask(changed, output.shape[1])  # (N, H, W)
    to_target = (output.float() - target.float()).abs().mean(-1) / 255.0
    from_input = (output.float() - before.float()).abs().mean(-1) / 255.0
    n_in, n_out = mask.sum((1, 2)), (~mask).sum((1, 2))
    inside = (to_target * mask).sum((1, 2)) / n_in.clamp_min(1)
    outside = (from_input * ~mask).sum((1, 2)) / n_out.clamp_min(1)
    preserved = ((output != before).any(-1) & ~mask).sum((1, 2)) == 0
    return {"inside": inside, "outside": outside, "preserved": preserved}


def edit_success(perceived: dict, target: dict, changed: torch.Tensor, style_edit: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the output, as perception reads it, is the target in every changed
    cell (every cell, for a style edit) and in its style. ``perceived`` and ``target`` hold
    ``shape``, ``color``, ``size`` ``(N, cells)`` and ``style`` ``(N,)``; a target label of
    ``-100`` (a colour in a grey image, the size of an empty cell) is not checked.

    Used in chapter 12, "4. Measuring an edit"."""
    cells = changed | style_edit[:, None]
    ok = perceived["style"] == target["style"]
    for key in ("shape", "color", "size"):
        agree = (perceived[key] == target[key]) | (target[key] == IGNORE)
        ok &= (agree | ~cells).all(1)
    return ok


def directional_similarity(image_before: torch.Tensor, image_after: torch.Tensor,
                           text_before: torch.Tensor, text_after: torch.Tensor) -> torch.Tensor:
    """InstructPix2Pix's CLIP directional similarity per pair:
    ``cos(E(image_after) - E(image_before), E(text_after) - E(text_before))``, from
    embeddings ``(N, E)``; 0 where either change is zero.

    Used in chapter 12, "4. Measuring an edit"."""
    di, dt = image_after - image_before, text_after - text_before
    return F.cosine_similarity(di, dt, dim=-1, eps=1e-8)
