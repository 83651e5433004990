"""Editor 2: a U-Net whose every block is conditioned on the instruction by FiLM.

The image goes down three resolutions and back up, with skip connections that carry the
pixels of what does not change; the instruction, read by the same encoder as the
parser's, becomes one vector, and every block scales and shifts its channels by a
function of it (FiLM, Perez et al. 2018: ``h * (1 + gamma(c)) + beta(c)``). Two
coordinate channels tell the network where it is (an addition must land in the named
cell). The network predicts the *change*, added to the input; its last layer starts at
zero, so an untrained editor returns its input exactly and most pixels only have to stay
near zero change. (A variant that predicts a mask and a painting, ``(1 - m) * input + m *
p``, learned three times more slowly here: a closed mask passes almost no gradient.) It is
InstructPix2Pix's task without its diffusion: one deterministic regression to the edited
image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.editing.parser import InstructionConfig, InstructionEncoder


@dataclass
class EditorConfig:
    """The end-to-end editor's sizes.

    Used in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""

    text: InstructionConfig = field(default_factory=InstructionConfig)  # the instruction encoder
    image_size: int = 48  # input side in pixels (a multiple of 2 ** (len(channels) - 1))
    channels: tuple = (16, 32, 64, 128)  # channels at each resolution, full size first
    cond_dim: int = 128  # the instruction's vector that FiLM reads

    def __post_init__(self):
        if isinstance(self.text, dict):
            self.text = InstructionConfig(**self.text)
        self.channels = tuple(self.channels)
        if len(self.channels) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 or c % 8
                                         for c in self.channels):  # fmt: skip
            raise ValueError(f"channels must be at least two positive multiples of 8, got {self.channels!r}")
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"image_size ({self.image_size}) must be divisible by "
                             f"{2 ** (len(self.channels) - 1)} for {len(self.channels)} resolutions")  # fmt: skip
        if isinstance(self.cond_dim, bool) or not isinstance(self.cond_dim, int) or self.cond_dim <= 0:
            raise ValueError(f"cond_dim must be a positive int, got {self.cond_dim!r}")


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``h * (1 + gamma(c)) + beta(c)`` per channel,
    starting as the identity (``gamma = beta = 0``).

    Built in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return h * (1 + gamma) + beta  # (B, C, H, W)


class Block(nn.Module):
    """Two 3x3 convolutions, a group norm, then FiLM by the instruction.

    Built in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(8, c_out)
        self.film = FiLM(cond_dim, c_out)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.norm(self.conv2(F.silu(self.conv1(x))))
        return F.silu(self.film(h, cond))


class EditUNet(nn.Module):
    """``(images (B, 3, H, W) in [0, 1], input_ids, attention_mask) -> edited images``,
    the input plus a predicted change (not clipped: ``train.run_editor`` clips and rounds).

    Built in chapter 12, "3. Editor 2: a U-Net conditioned on the words"."""

    def __init__(self, config: EditorConfig):
        super().__init__()
        self.config = config
        ch, d = config.channels, config.cond_dim
        self.text = InstructionEncoder(config.text)
        self.cond = nn.Sequential(nn.Linear(config.text.queries * config.text.dim, d), nn.SiLU(), nn.Linear(d, d))
        self.inp = nn.Conv2d(3 + 2, ch[0], 3, padding=1)  # RGB + (y, x) coordinates
        self.down = nn.ModuleList(Block(c, c, d) for c in ch)
        self.pool = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(ch, ch[1:]))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(ch, ch[1:]))
        self.up = nn.ModuleList(Block(2 * a, a, d) for a in ch[:-1])
        self.out = nn.Conv2d(ch[0], 3, 1)
        nn.init.zeros_(self.out.weight)  # the change starts at zero: the identity edit
        nn.init.zeros_(self.out.bias)

    def condition(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The instruction as FiLM's vector ``(B, cond_dim)``."""
        return self.cond(self.text(input_ids, attention_mask).flatten(1))  # (B, d)

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        s = self.config.image_size
        if images.dim() != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"images must be (B, 3, {s}, {s}) in [0, 1], got {tuple(images.shape)}")
        if images.shape[0] != input_ids.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {input_ids.shape[0]} instructions")
        cond = self.condition(input_ids, attention_mask)  # (B, d)
        b = images.shape[0]
        grid = torch.linspace(-1, 1, s, device=images.device)
        yx = torch.stack(torch.meshgrid(grid, grid, indexing="ij"))[None].expand(b, 2, s, s)
        h = self.inp(torch.cat([images * 2 - 1, yx], 1))  # (B, ch0, s, s)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, cond)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)  # half the resolution
        for i in reversed(range(len(self.up))):
            h = self.up[i](torch.cat([self.upsample[i](h), skips[i]], 1), cond)
        return images + self.out(h)  # (B, 3, s, s): the input plus the predicted change

    def save_config(self) -> dict:
        return {**asdict(self.config), "channels": list(self.config.channels)}
