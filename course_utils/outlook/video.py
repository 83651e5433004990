"""Two frames and a change: a small model that says which object moved, and where.

The world's clips (:mod:`course_utils.world.clips`) show a scene twice; between the frames
one object moved one cell, or nothing moved and only the rendering changed (noise, a
tint: CLEVR-Change's distractors). :class:`ChangeReader` reads each frame with one shared
convolutional cell encoder (one token per 16-px cell, as ``slot_read``'s stem does), then
fuses the two frames in one of two ways:

* ``"last"``: the second frame's cells alone (the baseline: it sees where things are, not
  what moved);
* ``"difference"``: each cell's tokens in both frames and their difference, mixed into one
  token per cell.

A small Transformer lets the cells talk, and the model reads *where* the change is as
``slot_read`` reads where an object is: two attention maps over the cells, one for where
something left and one for where it arrived, each averaging the cells' (row, column)
coordinates; the arrival point minus the departure point is the move (a direction of
one cell, or about zero). Three heads read a summary token and that move: colour, shape
and direction, each with a "none" class for "nothing moved". The
logits of the three heads are returned side by side, ``(B, C + S + R)``, so
:func:`course_utils.training.fit` trains it with :meth:`ChangeReader.loss`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.fusion.blocks import SelfAttentionBlock
from course_utils.training import fit, predict

#: The ways :class:`ChangeReader` fuses the two frames.
FUSIONS: tuple[str, ...] = ("last", "difference")


@dataclass
class VideoConfig:
    """Sizes of a :class:`ChangeReader`; the caller fills the heads' classes
    (``world.clips.label_sizes()``).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""

    num_colors: int | None = None  # classes of the colour head, "none" included
    num_shapes: int | None = None  # classes of the shape head, "none" included
    num_directions: int | None = None  # classes of the direction head, "none" included
    fusion: str = "difference"  # "difference": both frames and their change; "last": frame 2 only
    image_size: int = 48  # side of a frame in pixels
    cell_size: int = 16  # side of the cell one token stands for (a multiple of 4)
    hidden_size: int = 64  # width D of a cell token
    num_heads: int = 4  # attention heads of the Transformer over the cells
    layers: int = 1  # Transformer blocks over the cells
    mlp_ratio: int = 2  # hidden width of a block's MLP, in multiples of D

    def __post_init__(self):
        for name in ("num_colors", "num_shapes", "num_directions"):
            if getattr(self, name) is None:
                raise ValueError(f"{name} must be given: the heads are sized for the data "
                                 "(pass **course_utils.world.clips.label_sizes())")
        for name in ("num_colors", "num_shapes", "num_directions", "image_size", "cell_size",
                     "hidden_size", "num_heads", "layers", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {self.fusion!r}")
        if self.cell_size % 4 or self.image_size % self.cell_size:
            raise ValueError(f"cell_size must be a multiple of 4 that divides image_size "
                             f"({self.image_size}), got {self.cell_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")

    @property
    def grid(self) -> int:
        return self.image_size // self.cell_size

    @property
    def head_sizes(self) -> tuple[int, int, int]:
        return self.num_colors, self.num_shapes, self.num_directions


def cell_coordinates(grid: int) -> Tensor:
    """``(grid * grid, 2)``: each row-major cell's (row, column), scaled to [-1, 1].

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    rows = torch.arange(grid).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid)
    return torch.stack([rows, cols], 1).float() / max(1, grid - 1) * 2 - 1


class CellEncoder(nn.Module):
    """One token per cell of a frame: ``(B, 3, H, W) -> (B, N, D)``, row-major cells, by two
    strided convolutions (``slot_read``'s stem) and a layer norm.

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""

    def __init__(self, cfg: VideoConfig):
        super().__init__()
        d, k = cfg.hidden_size, cfg.cell_size // 4
        ch = max(8, d // 2)
        self.stem = nn.Sequential(  # (B, 3, H, W) -> (B, D, grid, grid)
            nn.Conv2d(3, ch, k, stride=k), nn.GELU(), nn.Conv2d(ch, d, 4, stride=4))
        self.norm = nn.LayerNorm(d)

    def forward(self, pixel_values: Tensor) -> Tensor:
        cells = self.stem(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D)
        return self.norm(cells)


class ChangeReader(nn.Module):
    """``frames (B, 2, 3, H, W) -> logits (B, C + S + R)``: which object moved (colour,
    shape) and where (direction), from the second frame alone or from both frames and
    their difference (``cfg.fusion``).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""

    def __init__(self, cfg: VideoConfig):
        super().__init__()
        self.cfg = cfg
        d, n = cfg.hidden_size, cfg.grid**2
        self.encoder = CellEncoder(cfg)
        width = 3 * d if cfg.fusion == "difference" else d  # [first, second, second - first]
        self.mix = nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, d))
        self.positions = nn.Parameter(torch.randn(n + 1, d) * 0.1)  # the summary token, then cells
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.where = nn.Linear(d, 2)  # per cell: a score for "left from here", "arrived here"
        self.register_buffer("coords", cell_coordinates(cfg.grid), persistent=False)  # (N, 2)
        self.heads = nn.Linear(d + 2, sum(cfg.head_sizes))  # the three heads, side by side

    def check_frames(self, frames: Tensor) -> None:
        """``ValueError`` unless ``frames`` is a float ``(B, 2, 3, H, W)`` of this model's size."""
        s = self.cfg.image_size
        if not isinstance(frames, Tensor) or frames.dim() != 5 or frames.shape[1:] != (2, 3, s, s):
            got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ValueError(f"frames must be (B, 2, 3, {s}, {s}) (before, after), got {got}")
        if not frames.is_floating_point():
            raise ValueError(f"frames must be floating point (normalised), got {frames.dtype}")

    def cells(self, frames: Tensor) -> Tensor:
        """One fused token per cell: ``(B, 2, 3, H, W) -> (B, N, D)``."""
        b = frames.shape[0]
        tokens = self.encoder(frames.flatten(0, 1)).unflatten(0, (b, 2))  # (B, 2, N, D)
        first, second = tokens[:, 0], tokens[:, 1]  # (B, N, D) each
        if self.cfg.fusion == "last":
            return self.mix(second)  # (B, N, D): the first frame is never read
        return self.mix(torch.cat([first, second, second - first], -1))  # (B, N, D)

    def forward(self, frames: Tensor) -> Tensor:
        self.check_frames(frames)
        x = self.cells(frames)  # (B, N, D)
        x = torch.cat([self.summary.expand(len(x), -1, -1), x], 1) + self.positions  # (B, 1 + N, D)
        for block in self.blocks:
            x = block(x)  # (B, 1 + N, D)
        x = self.norm(x)
        return self.heads(torch.cat([x[:, 0], self.move(x[:, 1:])], -1))  # (B, C + S + R)

    def move(self, cells: Tensor) -> Tensor:
        """Where the change went: arrival minus departure, ``(B, N, D) -> (B, 2)`` (rows,
        columns; each point an attention-weighted average of the cells' coordinates)."""
        weights = self.where(cells).softmax(1)  # (B, N, 2): departure, arrival maps
        points = weights.transpose(1, 2) @ self.coords  # (B, 2, 2)
        return points[:, 1] - points[:, 0]  # (B, 2)

    def split(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three heads' logits: colour ``(B, C)``, shape ``(B, S)``, direction ``(B, R)``."""
        return tuple(logits.split(list(self.cfg.head_sizes), -1))

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The three heads' cross-entropies, summed; ``labels`` is ``(B, 3)``."""
        return sum(F.cross_entropy(part, labels[:, i]) for i, part in enumerate(self.split(logits)))


def build_change_reader(fusion: str = "difference", seed: int = 0, **config) -> ChangeReader:
    """A :class:`ChangeReader` with initial weights fixed by ``seed``; ``config`` sets
    :class:`VideoConfig`'s other fields (the heads' sizes: ``**clips.label_sizes()``).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ChangeReader(VideoConfig(fusion=fusion, **config))


def change_accuracy(model: ChangeReader, data: dict, batch_size: int = 512) -> dict:
    """Accuracy of each head (``color``, ``shape``, ``direction``) and ``exact`` (all three
    right) on ``data`` (``frames``, ``labels`` ``(N, 3)``).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    if not isinstance(data, dict) or "frames" not in data or "labels" not in data:
        raise ValueError("data must be a dict with 'frames' (N, 2, 3, H, W) and 'labels' (N, 3)")
    labels = data["labels"]
    if labels.dim() != 2 or labels.shape[1] != 3:
        raise ValueError(f"labels must be (N, 3): colour, shape, direction; "
                         f"got {tuple(labels.shape)}")
    logits = predict(model, data, batch_size=batch_size)  # (N, C + S + R)
    right = torch.stack([part.argmax(-1) == labels[:, i]
                         for i, part in enumerate(model.split(logits))], 1)  # (N, 3)
    out = {name: right[:, i].float().mean().item()
           for i, name in enumerate(("color", "shape", "direction"))}
    out["exact"] = right.all(1).float().mean().item()
    return out


def train_change_reader(model: ChangeReader, train: dict, *, steps: int = 300, batch_size: int = 64,
                        lr: float = 3e-3, seed: int = 0, progress: bool = False):
    """Train a :class:`ChangeReader` with ``training.fit`` and its summed three-head loss;
    returns fit's ``History`` (``.seconds``: the training time).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    return fit(model, train, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
               loss_fn=model.loss, progress=progress, desc=f"change reader ({model.cfg.fusion})")


def change_experiment(n_train: int = 3000, n_test: int = 1000, distractors: float = 0.2,
                      steps: int = 300, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                      fusions=FUSIONS, **config) -> dict:
    """Generate clips, train one :class:`ChangeReader` per fusion, test on held-out clips.

    Returns ``{"data_seconds", "n_train", "n_test", fusion: {"color", "shape", "direction",
    "exact", "train_seconds", "steps"}}``; training and test clips come from different
    seeds (``seed`` and ``seed + 1``).

    Built in chapter 14, "6. Beyond still images: two frames and a change"."""
    from course_utils.world import clips

    start = time.perf_counter()
    train = clips.clip_tensors(clips.generate_clips(n_train, seed=seed, distractors=distractors))
    test = clips.clip_tensors(clips.generate_clips(n_test, seed=seed + 1, distractors=distractors))
    out = {"data_seconds": time.perf_counter() - start, "n_train": n_train, "n_test": n_test}
    for fusion in fusions:
        model = build_change_reader(fusion, seed=seed, **clips.label_sizes(), **config)
        history = train_change_reader(model, train, steps=steps, batch_size=batch_size, lr=lr,
                                      seed=seed)
        out[fusion] = {**change_accuracy(model, test), "train_seconds": history.seconds,
                       "steps": steps}
    return out
