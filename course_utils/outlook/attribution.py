"""Are attention maps explanations? Two answers to "where did the model look", tested.

``slot_read`` reads the 3×3 grid of cells with attention, and chapter 09 draws the mean of
those weights as a spotlight. An attention weight says how much of a cell's *value* a read
took, not how much the answer *depends* on that cell (Jain & Wallace 2019, "Attention is
not Explanation"). Two tests tell the difference:

* the **pointing game** (Zhang et al. 2016): is the most-attended cell the cell of the
  object the question names? The world knows that cell, so the game is exact;
* the **deletion test**: hide a cell (paint it background) and see whether the answer
  survives. A map that explains should name the cell whose loss hurts.

**Integrated gradients** (Sundararajan et al. 2017) is the gradient answer: the path
integral of the gradient of the answer's logit from a blank image to the input, times the
pixel change. It satisfies *completeness* (the attributions add up to the logit's
change), which attention weights do not. Written here from scratch and checked against
captum::

    heat = attention_heatmap(model, pixel_values, input_ids, attention_mask)  # (B, 9)
    hits = pointing_game(heat, target_cells)                                  # (B,) bool
    ig = integrated_gradients(model, pixel_values, input_ids, attention_mask, labels)
    top_cell_agreement(heat, cell_scores(ig))
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_utils.outlook.inputs import check_batch, check_images, describe
from course_utils.world import scenes

#: The world's default background colour, RGB 0-255.
BACKGROUND = tuple(scenes.DEFAULT_STYLE["background"])
#: The world's grid: 3×3 cells of 16 px on a 48-px image.
GRID = scenes.GRID

__all__ = [
    "BACKGROUND", "GRID", "normalise_rgb", "blank_like", "attention_heatmap", "pointing_game",
    "hide_cells", "integrated_gradients", "cell_scores", "top_cell_agreement", "rank_correlation",
]


# ---- argument checks ------------------------------------------------------------------------


def _check_cell_ids(cells, batch: int, n_cells: int, name: str) -> Tensor:
    cells = torch.as_tensor(cells)
    if cells.shape != (batch,) or cells.is_floating_point() or cells.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor ({batch},), one cell per image, "
                         f"got {tuple(cells.shape)} {cells.dtype}")
    if batch and not bool(((cells >= 0) & (cells < n_cells)).all()):
        raise ValueError(f"{name} must hold cell indices in [0, {n_cells}), got "
                         f"{cells.min().item()}..{cells.max().item()}")
    return cells


def _check_maps(name: str, heat) -> None:
    if not isinstance(heat, Tensor) or heat.dim() != 2:
        raise ValueError(f"{name} must be a tensor (B, cells), one score per cell, "
                         f"got {describe(heat)}")


def _cell_size(pixel_values: Tensor, grid: int) -> int:
    h, w = pixel_values.shape[-2:]
    if not isinstance(grid, int) or grid < 1 or h != w or h % grid:
        raise ValueError(f"grid must be a positive int dividing the square images' side, "
                         f"got grid={grid!r} for {h}x{w} images")
    return h // grid


# ---- colours and blank images ---------------------------------------------------------------


def normalise_rgb(rgb=BACKGROUND) -> Tensor:
    """An RGB colour in pixel levels (0-255) as a normalised ``(3,)`` tensor, the way
    ``world.encoding`` normalises images: ``(rgb / 255 - 0.5) / 0.5``.

    Used in chapter 14, "1. Are attention maps explanations?"."""
    rgb = torch.as_tensor(rgb, dtype=torch.float32)
    if rgb.shape != (3,) or not bool(((rgb >= 0) & (rgb <= 255)).all()):
        raise ValueError(f"rgb must be 3 numbers in [0, 255], got {rgb.tolist()}")
    return rgb.div(255.0).sub(0.5).div(0.5)


def _fill_of(fill, like: Tensor) -> Tensor:
    fill = normalise_rgb() if fill is None else torch.as_tensor(fill, dtype=like.dtype)
    if fill.shape != (3,) or not bool(((fill >= -1) & (fill <= 1)).all()):
        raise ValueError(f"fill must be a normalised RGB triple (3 numbers in [-1, 1]), "
                         f"got {fill.tolist()}")
    return fill.to(like.device, like.dtype).view(1, 3, 1, 1)


def blank_like(pixel_values: Tensor, fill=None) -> Tensor:
    """Images of ``pixel_values``'s shape with every pixel ``fill`` (a normalised RGB
    triple; default the world's background): an empty scene, the natural baseline of
    integrated gradients in this world.

    Used in chapter 14, "1. Are attention maps explanations?"."""
    check_images(pixel_values)
    return _fill_of(fill, pixel_values).expand_as(pixel_values).clone()


# ---- attention as a heatmap, and the pointing game ------------------------------------------


def attention_heatmap(model, pixel_values: Tensor, input_ids: Tensor,
                      attention_mask: Tensor | None = None, hop: int | None = None,
                      slot: int | None = None) -> Tensor:
    """``(B, 9)``: where a ``slot_read`` model looked, its read weights
    ``(B, hops, K, 9)`` averaged over the hops and the slots (chapter 09's spotlight), or
    only one ``hop`` and/or one ``slot`` where given. Each row sums to 1.

    Built in chapter 14, "1. Are attention maps explanations?"."""
    if not callable(getattr(model, "read_weights", None)):
        raise ValueError(f"model must be a slot_read model with read_weights(...), got "
                         f"{type(model).__name__}")
    with torch.no_grad():
        weights = model.read_weights(pixel_values, input_ids, attention_mask)  # (B, hops, K, 9)
    for dim, (name, index) in enumerate((("hop", hop), ("slot", slot)), start=1):
        n = weights.shape[dim]
        if index is not None and (not isinstance(index, int) or not 0 <= index < n):
            raise ValueError(f"{name} must be None or an int in [0, {n}), got {index!r}")
    hops = slice(None) if hop is None else slice(hop, hop + 1)
    slots = slice(None) if slot is None else slice(slot, slot + 1)
    return weights[:, hops, slots].mean((1, 2))  # (B, 9)


def pointing_game(heat: Tensor, target: Tensor) -> Tensor:
    """``(B,)`` bool: a hit where the highest-scoring cell of ``heat`` ``(B, 9)`` is the
    target. ``target`` is ``(B,)`` cell indices, or a ``(B, 9)`` bool mask of the cells
    that count as a hit (an object that covers several cells). Ties go to the first cell.

    Built in chapter 14, "1. Are attention maps explanations?"."""
    _check_maps("heat", heat)
    b, n = heat.shape
    target = torch.as_tensor(target, device=heat.device)
    top = heat.argmax(-1)  # (B,)
    if target.dtype == torch.bool:
        if target.shape != (b, n):
            raise ValueError(f"target as a mask must be bool ({b}, {n}), got {tuple(target.shape)}")
        return target.gather(1, top[:, None])[:, 0]
    return top == _check_cell_ids(target, b, n, "target")


def hide_cells(pixel_values: Tensor, cells: Tensor, fill=None, grid: int = GRID) -> Tensor:
    """A copy of ``pixel_values`` where image ``i``'s cell ``cells[i]`` (row-major, a
    ``16×16`` block in the world) is painted ``fill`` (a normalised RGB triple; default the
    world's background), as if no object were there. The input is not modified.

    Built in chapter 14, "1. Are attention maps explanations?"."""
    check_images(pixel_values)
    size = _cell_size(pixel_values, grid)
    cells = _check_cell_ids(cells, pixel_values.shape[0], grid * grid, "cells")
    fill = _fill_of(fill, pixel_values)
    out = pixel_values.clone()
    for i, (r, c) in enumerate(zip((cells // grid).tolist(), (cells % grid).tolist())):
        out[i, :, r * size:(r + 1) * size, c * size:(c + 1) * size] = fill[0]
    return out


# ---- integrated gradients -------------------------------------------------------------------


def _check_ig(pixel_values, input_ids, target, baseline, steps, batch_size) -> Tensor:
    check_images(pixel_values)
    target = torch.as_tensor(target, device=pixel_values.device)  # a list of ids will do
    check_batch(pixel_values, input_ids, target, name="target")
    shape = pixel_values.shape
    if baseline is not None and (not isinstance(baseline, Tensor) or baseline.shape != shape):
        raise ValueError(f"baseline must have the shape of pixel_values {tuple(shape)}, "
                         f"got {describe(baseline)}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return target


def integrated_gradients(model, pixel_values: Tensor, input_ids: Tensor,
                         attention_mask: Tensor | None, target: Tensor,
                         baseline: Tensor | None = None, steps: int = 32,
                         batch_size: int = 256) -> Tensor:
    """Integrated gradients of the ``target`` logits with respect to the image, ``(B, 3, H, W)``.

    ``IG(x) = (x - x') * mean_k grad f(x' + alpha_k (x - x'))`` with the midpoints
    ``alpha_k = (k + 0.5) / steps`` (a Riemann sum of the path integral), where ``f`` is the
    logit of ``target[i]`` (``(B,)`` answer ids) and ``x'`` the ``baseline`` (default: an
    empty scene, every pixel the world's background, :func:`blank_like`). Only the image is
    attributed; the instruction stays as it is. The ``B * steps`` points of the paths go
    through the model ``batch_size`` at a time. Completeness: each image's attributions
    sum to ``f(x) - f(x')`` up to the Riemann sum's error, which shrinks as ``steps`` grows.
    Equals captum's ``IntegratedGradients`` with ``method="riemann_middle"``.

    Built in chapter 14, "1. Are attention maps explanations?"."""
    target = _check_ig(pixel_values, input_ids, target, baseline, steps, batch_size)
    baseline = blank_like(pixel_values) if baseline is None else baseline
    b = pixel_values.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    alphas = torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps).tolist()  # midpoints
    alphas = torch.tensor(alphas, dtype=pixel_values.dtype, device=pixel_values.device)
    diff = pixel_values - baseline  # (B, 3, H, W)
    grads = torch.zeros_like(pixel_values)  # sum over the path of the gradients
    rows = torch.arange(b * steps, device=pixel_values.device)  # path point j: image j % B
    for chunk in rows.split(batch_size):
        image = chunk % b
        alpha = alphas[chunk // b].view(-1, 1, 1, 1)
        points = baseline[image] + alpha * diff[image]  # (n, 3, H, W)
        points.requires_grad_(True)
        with torch.enable_grad():
            logits = model(points, input_ids[image], attention_mask[image])  # (n, A)
            picked = logits.gather(1, target[image][:, None]).sum()
            (grad,) = torch.autograd.grad(picked, points)
        grads.index_add_(0, image, grad)
    return diff * grads / steps  # (B, 3, H, W)


# ---- comparing maps -------------------------------------------------------------------------


def cell_scores(attributions: Tensor, grid: int = GRID) -> Tensor:
    """``(B, 3, H, W)`` pixel attributions -> ``(B, grid * grid)``: each cell's attribution
    mass, the sum of absolute values over its channels and pixels (row-major cells).

    Built in chapter 14, "1. Are attention maps explanations?"."""
    check_images(attributions, "attributions")
    size = _cell_size(attributions, grid)
    b = attributions.shape[0]
    mass = attributions.abs().sum(1)  # (B, H, W)
    return mass.view(b, grid, size, grid, size).sum((2, 4)).reshape(b, grid * grid)


def top_cell_agreement(a: Tensor, b: Tensor) -> float:
    """The fraction of images whose two cell maps ``(B, 9)`` put their maximum in the same
    cell (chance: 1/9 for unrelated maps).

    Built in chapter 14, "1. Are attention maps explanations?"."""
    _check_maps("a", a)
    _check_maps("b", b)
    if a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"a and b must be non-empty maps of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return (a.argmax(-1) == b.argmax(-1)).float().mean().item()


def _ranks(x: Tensor) -> Tensor:
    return x.argsort(-1).argsort(-1).to(torch.float64)  # (B, N); ties broken by position


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """``(B,)``: Spearman's rank correlation between two cell maps ``(B, 9)``, per image
    (1: the same order of cells; about 0 for unrelated maps). Ties are ranked by position.

    Built in chapter 14, "1. Are attention maps explanations?"."""
    _check_maps("a", a)
    _check_maps("b", b)
    if a.shape != b.shape or a.shape[1] < 2:
        raise ValueError(f"a and b must be maps of one shape with >= 2 cells, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return ((ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))).float()  # (B,)
