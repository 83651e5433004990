"""Perception: read a scene back from its pixels, one classifier per grid cell.

Objects sit one per cell of the world's grid, so reading a scene is reading each cell:
is it empty, and if not, what shape, colour and size; and which whole-image style the
picture is drawn in. The same reader does two jobs in chapter 12: it is editor 1's eyes
(the program runs on the scene it perceives), and it is the judge of every editor's
output (did the recoloured object come out blue?).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class PerceptionConfig:
    """The scene reader's sizes.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""

    image_size: int = 48  # input side in pixels
    grid: int = 3  # cells per side (one object per cell at most)
    width: int = 32  # channels of the first convolution (twice that after it)
    num_shapes: int = 6  # shape classes, "empty" included
    num_colors: int = 6  # colour classes
    num_sizes: int = 2  # size classes
    num_styles: int = 5  # whole-image styles

    def __post_init__(self):
        for name in ("image_size", "grid", "width", "num_shapes", "num_colors", "num_sizes", "num_styles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size % (4 * self.grid):  # 4x4 patches, whole cells
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of 4 * grid ({4 * self.grid})")


class SceneReader(nn.Module):
    """``(B, 3, H, W)`` in ``[0, 1]`` -> ``{"shape", "color", "size": (B, cells, classes),
    "style": (B, styles)}``.

    Built in chapter 12, "2. Editor 1: the instruction as a program"."""

    def __init__(self, config: PerceptionConfig):
        super().__init__()
        self.config = c = config
        self.stem = nn.Sequential(
            nn.Conv2d(6, c.width, 4, stride=4), nn.ReLU(),  # (B, w, H/4, W/4): 4x4 patches
            nn.Conv2d(c.width, 2 * c.width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * c.width, 2 * c.width, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        per_cell = c.image_size // 4 // c.grid  # feature positions per cell side
        d = 4 * c.width
        # a cell's features, kept in their places (a shape is an arrangement), to one vector
        self.cell = nn.Sequential(nn.Linear(2 * c.width * per_cell**2, d), nn.ReLU())
        self.heads = nn.ModuleDict({"shape": nn.Linear(d, c.num_shapes), "color": nn.Linear(d, c.num_colors),
                                    "size": nn.Linear(d, c.num_sizes)})  # fmt: skip
        self.style = nn.Linear(2 * d, c.num_styles)  # from the mean and the max over the cells

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        c = self.config
        if images.dim() != 4 or images.shape[1:] != (3, c.image_size, c.image_size):
            raise ValueError(f"images must be (B, 3, {c.image_size}, {c.image_size}) in [0, 1], "
                             f"got {tuple(images.shape)}")  # fmt: skip
        background = images.flatten(2).median(-1).values[:, :, None, None]  # (B, 3, 1, 1): most pixels
        x = torch.cat([images, images - background], 1)  # (B, 6, H, W): the shapes against their paper
        f = self.stem(x)  # (B, 2w, 4g, 4g) for 16-px cells: 4x4 positions per cell
        b, ch, h, _ = f.shape
        k = h // c.grid
        f = f.view(b, ch, c.grid, k, c.grid, k).permute(0, 2, 4, 1, 3, 5).reshape(b, c.grid**2, ch * k * k)
        cells = self.cell(f)  # (B, cells, d)
        out = {k: head(cells) for k, head in self.heads.items()}
        out["style"] = self.style(torch.cat([cells.mean(1), cells.amax(1)], -1))  # (B, styles)
        return out

    def loss(self, images: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """Cross-entropy of every cell's shape, colour and size (ignored labels skipped) and the style."""
        out = self(images)
        total = F.cross_entropy(out["style"], labels["style"])
        for k in ("shape", "color", "size"):
            total = total + F.cross_entropy(out[k].flatten(0, 1), labels[k].flatten(), ignore_index=-100)
        return total

    @torch.no_grad()
    def read(self, images: Tensor) -> dict[str, Tensor]:
        """The most likely labels: ``shape``, ``color``, ``size`` ``(B, cells)``, ``style`` ``(B,)``."""
        self.eval()
        return {k: v.argmax(-1) for k, v in self(images).items()}
