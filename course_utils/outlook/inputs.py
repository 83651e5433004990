"""The argument checks chapter 14's attacks and attributions share: a batch of normalised
images, one instruction per image and one answer id per image, each failing with a
``ValueError`` that names the argument and what was expected.
"""

from __future__ import annotations

import torch
from torch import Tensor


def describe(x) -> str:
    """How a bad argument reads in an error message: a tensor's shape, else its type.

    Used in chapter 14, "2. Adversarial pixels: FGSM and PGD"."""
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def check_images(x, name: str = "pixel_values") -> None:
    """``x`` must be normalised images: a floating-point tensor ``(B, 3, H, W)``.

    Used in chapter 14, "1. Are attention maps explanations?"."""
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a float tensor (B, 3, H, W), got {describe(x)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point (normalised), got {x.dtype}")


def check_batch(pixel_values, input_ids, answer_ids, name: str = "labels") -> None:
    """Images (:func:`check_images`), ``input_ids`` ``(B, T)`` and ``answer_ids`` (called
    ``name`` in the message) an integer tensor ``(B,)``: one instruction and one answer per image.

    Used in chapter 14, "2. Adversarial pixels: FGSM and PGD"."""
    check_images(pixel_values)
    b = pixel_values.shape[0]
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.shape[0] != b:
        raise ValueError(f"input_ids must be (B, T) with B = {b}, one instruction per image")
    if (not isinstance(answer_ids, Tensor) or answer_ids.shape != (b,)
            or answer_ids.is_floating_point() or answer_ids.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor ({b},), one answer id per image, "
                         f"got {describe(answer_ids)}"
                         + (f" {answer_ids.dtype}" if isinstance(answer_ids, Tensor) else ""))
