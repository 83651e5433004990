"""Editor 1's first stage: read an instruction into an edit program, one classifier per slot.

The instruction encoder (token and position embeddings, a few transformer layers) is
shared with the end-to-end editor, which reads instructions the same way. The parser puts
one learned *query* per program slot on top: each query attends over the words and a
linear head reads its slot's value ("Make the red circle blue": the ``color`` query must
find "red", the ``new_color`` query "blue", so the queries learn where in a phrasing each
part of the program is said).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class InstructionConfig:
    """The instruction encoder's sizes.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""

    vocab_size: int = 512  # the world tokenizer's size (taken from the tokenizer by the caller)
    pad_token_id: int = 0  # [PAD]
    dim: int = 64  # width of the word vectors
    layers: int = 2  # transformer layers over the words
    heads: int = 4  # attention heads per layer
    max_length: int = 48  # longest instruction, in tokens (position embeddings)
    queries: int = 4  # learned queries that pool the words into the instruction's vector(s)

    def __post_init__(self):
        for name in ("vocab_size", "dim", "layers", "heads", "max_length", "queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")


class InstructionEncoder(nn.Module):
    """``(input_ids, attention_mask) (B, L) -> (B, queries, dim)``: each learned query's
    attention-weighted summary of the words.

    Built in chapter 12, "2. Editor 1: the instruction as a program"."""

    def __init__(self, config: InstructionConfig):
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.positions = nn.Embedding(config.max_length, config.dim)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, dropout=0.0,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.queries = nn.Parameter(torch.randn(config.queries, config.dim))
        self.norm = nn.LayerNorm(config.dim)

    def words(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The contextual word vectors ``(B, L, dim)``."""
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids and attention_mask must be (B, L) of one shape, got "
                             f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")  # fmt: skip
        if input_ids.shape[1] > self.config.max_length:
            raise ValueError(f"instructions of {input_ids.shape[1]} tokens; the encoder takes "
                             f"at most max_length={self.config.max_length}")  # fmt: skip
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(pos)  # (B, L, D)
        return self.encoder(x, src_key_padding_mask=attention_mask == 0)  # (B, L, D)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.words(input_ids, attention_mask)  # (B, L, D)
        scores = torch.einsum("qd,bld->bql", self.queries, h) / h.shape[-1] ** 0.5  # (B, Q, L)
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        return self.norm(torch.einsum("bql,bld->bqd", scores.softmax(-1), h))  # (B, Q, D)


@dataclass
class ParserConfig:
    """The parser: an instruction encoder with one query per slot, and each slot's size.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""

    text: InstructionConfig = field(default_factory=InstructionConfig)  # the instruction encoder
    slots: dict = field(default_factory=dict)  # slot name -> number of values (data.SLOTS' sizes)

    def __post_init__(self):
        if isinstance(self.text, dict):
            self.text = InstructionConfig(**self.text)
        if not self.slots:
            raise ValueError("slots must name at least one slot and its number of values")
        self.text = InstructionConfig(**{**asdict(self.text), "queries": len(self.slots)})


class InstructionParser(nn.Module):
    """Instruction -> one set of logits per slot: ``{slot: (B, values)}``; one encoder
    query per slot.

    Built in chapter 12, "2. Editor 1: the instruction as a program"."""

    def __init__(self, config: ParserConfig):
        super().__init__()
        self.config = config
        self.encoder = InstructionEncoder(config.text)
        self.heads = nn.ModuleDict({s: nn.Linear(config.text.dim, n) for s, n in config.slots.items()})

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        q = self.encoder(input_ids, attention_mask)  # (B, slots, D)
        return {s: head(q[:, i]) for i, (s, head) in enumerate(self.heads.items())}

    def loss(self, input_ids: Tensor, attention_mask: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """The summed cross-entropy of every slot."""
        logits = self(input_ids, attention_mask)
        return sum(F.cross_entropy(logits[s], labels[s]) for s in logits)

    @torch.no_grad()
    def predict(self, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        """The most likely value of every slot: ``{slot: (B,)}``."""
        self.eval()
        return {s: v.argmax(-1) for s, v in self(input_ids, attention_mask).items()}
