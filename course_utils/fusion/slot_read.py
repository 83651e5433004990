"""``slot_read``: a relational reader that makes the world's spatial questions learnable
(explicit grid coordinates, slots read from the instruction, two reads of the grid,
pairwise position differences), and ``slot_read_minilm``, whose words are the frozen
all-MiniLM-L6-v2's features (chapter 08, "3. The main run: stage 2 to ≥ 85 %"; chapter 09,
"6. Generalisation (FAQ 9.3)")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_utils.fusion.blocks import SelfAttentionBlock
from course_utils.fusion.config import FusionConfig
from course_utils.fusion.families import FusionModel
from course_utils.text import MINILM_DIM, mean_pool

# ---- a relational reader: explicit coordinates, text-derived slots, two reads -----------


def grid_coordinates(grid: int) -> Tensor:
    """``(grid*grid, 2*grid + 2)``: row one-hot, column one-hot, row and column in [-1, 1].

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %"."""
    rows = torch.arange(grid).repeat_interleave(grid)  # row-major cells
    cols = torch.arange(grid).repeat(grid)
    one_hot = torch.cat([nn.functional.one_hot(rows, grid), nn.functional.one_hot(cols, grid)], 1)
    centred = torch.stack([rows, cols], 1).float() / max(1, grid - 1) * 2 - 1
    return torch.cat([one_hot.float(), centred], 1)


class SlotReadFusion(FusionModel):
    """Relations made easy to learn: the model *reads* the grid with explicit coordinates.

    1. A convolutional stem turns each 16-px cell into a token, plus a projection of its
       fixed (row, column) coordinates; a joint Transformer mixes ``[cells; instruction]``.
    2. ``num_queries`` learned slots attend over the instruction tokens: each slot becomes
       a question about one object ("the red circle", "the object left of ...").
    3. Each slot reads the cells (attention over the 9 cells) ``hops`` times; a read returns
       *what* is there, *where* it is (the attention-weighted coordinates) and *how many*
       cells match (a soft count). Later hops see earlier reads, so "left of X" can be
       looked up relative to where X was found.
    4. The head sees the slots, the reads and, for each pair of slots, the differences of
       their positions and counts ("is A left of B" is the sign of a column difference),
       through a question-gated MLP.

    Not one of chapter 05's five families (:data:`KINDS`): a design measured for the data
    world's spatial questions (see chapter 08), built with the same interface.

    Used in chapter 08, "3. The main run: stage 2 to ≥ 85 %".
    """

    kind = "slot_read"

    def __init__(self, cfg: FusionConfig):
        super().__init__(cfg, shared_encoders=False)
        d, k = cfg.hidden_size, cfg.num_queries
        grid = cfg.grid
        ch = max(8, d // 2)
        self.stem = nn.Sequential(  # (B, 3, H, W) -> (B, d, grid, grid)
            nn.Conv2d(cfg.num_channels, ch, cfg.patch_size // 4, stride=cfg.patch_size // 4),
            nn.GELU(),
            nn.Conv2d(ch, d, 4, stride=4),
        )
        self.stem_norm = nn.LayerNorm(d)
        self.register_buffer("coords", grid_coordinates(grid), persistent=False)  # (N, C)
        n_coord = self.coords.shape[1]
        self.coord_proj = nn.Linear(n_coord, d)
        self.tokens = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.positions = nn.Embedding(cfg.max_length, d)
        # Word order visible from the start (std 1.0, the tokens' scale): "more X than Y"
        # differs from "more Y than X" only in order. At 0.02 the model starts nearly
        # bag-of-words and binds the second noun late and seed-dependently (chapter 08) -- but
        # generalises better to unseen sentence frames (chapter 09).
        nn.init.normal_(self.positions.weight, std=cfg.position_std)
        self.types = nn.Parameter(torch.randn(2, d) * 0.02)  # 0: image cell, 1: word
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.fusion_layers))
        self.norm = nn.LayerNorm(d)
        self.slots = nn.Parameter(torch.randn(k, d) * 0.1)
        self.slot_keys = nn.Linear(d, d)
        read = d + n_coord + 1  # value, coordinates, soft count
        self.read_q = nn.ModuleList(nn.Linear(d + (k * read if h else 0), d) for h in range(cfg.hops))
        self.read_k = nn.ModuleList(nn.Linear(d + n_coord, d) for _ in range(cfg.hops))
        self.read_v = nn.ModuleList(nn.Linear(d, d) for _ in range(cfg.hops))
        self.count_bias = nn.Parameter(torch.zeros(cfg.hops))
        pi, pj = torch.triu_indices(k, k, 1)
        self.register_buffer("pair_i", pi, persistent=False)
        self.register_buffer("pair_j", pj, persistent=False)
        n_pairs = len(pi)
        width = 4 * d
        head_in = k * d + cfg.hops * k * read + d + cfg.hops * n_pairs * 3
        self.hidden = nn.Linear(head_in, width)
        self.gate = nn.Linear(k * d + d, width)
        self.classifier = nn.Linear(width, cfg.num_answers)

    def fuse(self, pixel_values, input_ids, attention_mask):
        return self._fuse(pixel_values, input_ids, attention_mask)[0]

    @torch.no_grad()
    def read_weights(self, pixel_values: Tensor, input_ids: Tensor,
                     attention_mask: Tensor | None = None) -> Tensor:
        """The reads' attention over the cells: ``(B, hops, num_queries, grid*grid)``.

        Row-major cells (cell ``r * grid + c``); each row sums to 1. This is the model's
        cross-attention heatmap: where each slot looked on each hop (chapter 09).
        """
        attention_mask = self.check_inputs(pixel_values, input_ids, attention_mask)
        return torch.stack(self._fuse(pixel_values, input_ids, attention_mask)[1], 1)

    def embed_words(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Instruction tokens as vectors: ``(B, T) -> (B, T, D)``."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.tokens(input_ids) + self.positions(pos) + self.types[1]

    def _fuse(self, pixel_values, input_ids, attention_mask):
        cfg = self.cfg
        n = cfg.grid**2
        cells = self.stem(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D), row-major
        cells = self.stem_norm(cells) + self.coord_proj(self.coords) + self.types[0]
        words = self.embed_words(input_ids, attention_mask)  # (B, T, D)
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], n), attention_mask], 1)
        x = torch.cat([cells, words], 1)  # (B, N + T, D)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        cells, words = x[:, :n], x[:, n:]  # (B, N, D), (B, T, D)
        real = attention_mask.bool()  # (B, T)
        scores = torch.einsum("kd,btd->bkt", self.slots, self.slot_keys(words))
        slots = scores.masked_fill(~real[:, None], float("-inf")).softmax(-1) @ words  # (B, K, D)
        text = mean_pool(words, attention_mask)  # (B, D)
        coords = self.coords.expand(x.shape[0], -1, -1)  # (B, N, C)
        keys_in = torch.cat([cells, coords], -1)  # (B, N, D + C)
        reads, read_weights, previous = [], [], None
        for h in range(cfg.hops):
            query_in = slots if previous is None else torch.cat(
                [slots, previous.flatten(1)[:, None].expand(-1, cfg.num_queries, -1)], -1)
            logits = self.read_q[h](query_in) @ self.read_k[h](keys_in).transpose(1, 2)
            logits = logits / cfg.hidden_size**0.5  # (B, K, N)
            weights = logits.softmax(-1)
            read_weights.append(weights)  # (B, K, N)
            count = torch.sigmoid(logits + self.count_bias[h]).sum(-1, keepdim=True) / cfg.grid
            previous = torch.cat([weights @ self.read_v[h](cells), weights @ coords, count], -1)
            reads.append(previous)  # (B, K, D + C + 1)
        diffs = [(r[:, self.pair_i, -3:] - r[:, self.pair_j, -3:]).flatten(1) for r in reads]
        features = torch.cat([slots.flatten(1), *[r.flatten(1) for r in reads], text, *diffs], 1)
        z = nn.functional.gelu(self.hidden(features))
        z = z * (1 + self.gate(torch.cat([slots.flatten(1), text], 1)))  # question-gated
        return self.classifier(nn.functional.gelu(z)), read_weights  # (B, A)


class MiniLMSlotReadFusion(SlotReadFusion):
    """``slot_read`` whose instruction tokens come from the frozen, pretrained all-MiniLM-L6-v2.

    The only change is :meth:`embed_words`: instead of learned token embeddings, each word
    is MiniLM's contextual feature (384-d, the last layer, frozen, computed once per
    distinct instruction by :func:`course_utils.text.minilm_features`), normalised and
    projected to the model width. ``input_ids`` must come from MiniLM's tokenizer
    (``vocab_size`` 30,522). MiniLM's weights are not part of the state dict; only the
    0.55 M trained parameters are saved. (Adding MiniLM's pooled sentence embedding to every
    word was tried and measured no better on unseen phrasings.)

    Used in chapter 09, "6. Generalisation (FAQ 9.3)".
    """

    kind = "slot_read_minilm"
    text_dim = MINILM_DIM

    def __init__(self, cfg: FusionConfig, features=None):
        super().__init__(cfg)
        from course_utils.text import minilm_features

        del self.tokens  # the vocabulary is MiniLM's; its embeddings stay frozen inside MiniLM
        d = cfg.hidden_size
        self.text_in = nn.Sequential(nn.LayerNorm(self.text_dim), nn.Linear(self.text_dim, d))
        object.__setattr__(self, "features", features or minilm_features())  # not a submodule

    def embed_words(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        feats = self.features(input_ids, attention_mask)  # (B, T, 384), frozen, cached
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.text_in(feats) + self.positions(pos) + self.types[1]  # (B, T, D)


