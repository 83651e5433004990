"""Attention, the tested reference: chapter 02 builds each piece; later chapters import it.

Conventions (the same as :func:`torch.nn.functional.scaled_dot_product_attention`):

* tensors are ``(..., N, d)``: usually ``(B, h, N, d)`` = batch, heads, tokens, features;
* a **mask is boolean and True where attention is allowed** (a query may look at a key).
  It must broadcast to ``(..., N_q, N_k)``. Beware: ``torch.nn.MultiheadAttention``'s
  ``attn_mask`` and ``key_padding_mask`` use the opposite meaning (True = blocked);
* a query whose keys are all masked gets all-zero weights and a zero output (as the
  PyTorch math kernel does), never NaN.

Contents: :func:`stable_softmax`, :func:`scaled_dot_product_attention`,
:func:`padding_mask`, :func:`causal_mask`, :func:`split_heads`, :func:`merge_heads`,
:class:`MultiHeadAttention` (self- and cross-attention) and :class:`CrossAttention` (the
source document's layer, corrected: heads, key padding mask, output projection).

Bad input raises ``ValueError`` saying what was wrong and what was expected.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "stable_softmax",
    "scaled_dot_product_attention",
    "padding_mask",
    "causal_mask",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "CrossAttention",
]


# ---- the formula ------------------------------------------------------------------


def stable_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, without overflow.

    Subtracting the maximum first changes nothing mathematically (the factor
    ``exp(-max)`` cancels) but keeps every exponent <= 0. Entries equal to ``-inf`` get
    weight 0; a slice that is ``-inf`` everywhere gets all zeros (not NaN).

    Built in chapter 02, "2. The formula, from scratch".
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"stable_softmax expects a floating-point tensor, got {_describe(x)}")
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # an all -inf slice stays -inf
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)  # 0 / 1 = 0 for fully masked


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v``, returning ``(output, weights)``.

    Args:
        q: queries ``(..., N_q, d_k)``.
        k: keys ``(..., N_k, d_k)``.
        v: values ``(..., N_k, d_v)``.
        mask: optional boolean tensor broadcastable to ``(..., N_q, N_k)``,
            True where the query may attend to the key.
        scale: the factor on the scores; ``1 / sqrt(d_k)`` when None.

    Returns:
        ``output`` ``(..., N_q, d_v)`` and ``weights`` ``(..., N_q, N_k)`` (rows sum to 1,
        or to 0 for a query with no allowed key).

    Built in chapter 02, "2. The formula, from scratch".
    """
    _check_qkv(q, k, v)
    scores_shape = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
    if mask is not None:
        _check_mask(mask, scores_shape)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., N_q, N_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = stable_softmax(scores, dim=-1)  # (..., N_q, N_k)
    return weights @ v, weights  # (..., N_q, d_v), (..., N_q, N_k)


# ---- masks ------------------------------------------------------------------------


def padding_mask(ids_or_mask: Tensor, pad_id: int | None = None) -> Tensor:
    """The key padding mask ``(B, 1, 1, N)``: True at real tokens, False at padding.

    Pass either a Hugging Face ``attention_mask`` ``(B, N)`` (1/True = real token) and no
    ``pad_id``, or ``input_ids`` ``(B, N)`` and the tokenizer's ``pad_id``. The two
    singleton axes broadcast over heads and queries: every query ignores padded keys.

    Built in chapter 02, "4. Masks: padding and causality".
    """
    if not isinstance(ids_or_mask, Tensor) or ids_or_mask.dim() != 2:
        raise ValueError(
            "padding_mask expects input_ids or an attention_mask of shape (B, N), "
            f"got {_describe(ids_or_mask)}"
        )
    if pad_id is None:
        values = ids_or_mask.unique()
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(
                "without pad_id the input must be an attention_mask of 0/1 or bools; "
                "for token ids pass pad_id=tokenizer.pad_token_id"
            )
        real = ids_or_mask.bool()
    else:
        real = ids_or_mask != pad_id
    return real[:, None, None, :]  # (B, 1, 1, N)


def causal_mask(n_q: int, n_k: int | None = None, device=None) -> Tensor:
    """The causal mask ``(N_q, N_k)``: query ``i`` may attend to keys ``0..i``.

    Aligned at the top left, as ``scaled_dot_product_attention(..., is_causal=True)``.

    Built in chapter 02, "4. Masks: padding and causality".
    """
    n_k = n_q if n_k is None else n_k
    if not (isinstance(n_q, int) and isinstance(n_k, int) and n_q > 0 and n_k > 0):
        raise ValueError(f"causal_mask expects positive ints, got n_q={n_q!r}, n_k={n_k!r}")
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()


# ---- heads ------------------------------------------------------------------------


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, N, D)`` -> ``(B, h, N, d)`` with ``d = D // h``: head ``i`` gets features ``i*d .. (i+1)*d-1``.

    Built in chapter 02, "5. Multi-head attention"."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"split_heads expects a tensor (B, N, D), got {_describe(x)}")
    B, N, D = x.shape
    if num_heads <= 0 or D % num_heads:
        raise ValueError(f"the feature size D={D} must be divisible by num_heads={num_heads}")
    return x.view(B, N, num_heads, D // num_heads).transpose(1, 2)  # (B, h, N, d)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, h, N, d)`` -> ``(B, N, h * d)``, the inverse of :func:`split_heads`.

    Built in chapter 02, "5. Multi-head attention"."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"merge_heads expects a tensor (B, h, N, d), got {_describe(x)}")
    B, h, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, h * d)  # (B, N, D)


# ---- modules ----------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Multi-head attention for self-attention (``context=None``) and cross-attention.

    Queries come from ``x`` ``(B, N_q, D)``; keys and values from ``context``
    ``(B, N_k, kv_dim)`` (or from ``x`` itself). Each of the ``num_heads`` heads attends
    in its own ``D // num_heads``-dimensional subspace; an output projection mixes them.

    ``forward`` returns ``(output (B, N_q, D), weights (B, h, N_q, N_k))``. With
    ``need_weights=False`` it calls PyTorch's fused kernel instead and returns
    ``(output, None)``: faster, and it never stores the ``N_q x N_k`` weights (for a query
    whose keys are all masked, the fused kernels of some devices return NaN, not zeros).

    Built in chapter 02, "5. Multi-head attention".
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        kv_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not (isinstance(num_heads, int) and num_heads > 0) or embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        kv_dim = embed_dim if kv_dim is None else kv_dim
        self.embed_dim, self.num_heads, self.kv_dim = embed_dim, num_heads, kv_dim
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """``mask``: bool, broadcastable to ``(B, h, N_q, N_k)``, True = may attend."""
        context = x if context is None else context
        self._check_inputs(x, context, mask)
        h = self.num_heads
        q = split_heads(self.q_proj(x), h)  # (B, h, N_q, d)
        k = split_heads(self.k_proj(context), h)  # (B, h, N_k, d)
        v = split_heads(self.v_proj(context), h)  # (B, h, N_k, d)
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, N_q, d)
            out = F.dropout(weights, p) @ v if p else out
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        return self.out_proj(merge_heads(out)), weights  # (B, N_q, D)

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (same sizes) into this one."""
        if (mha.embed_dim, mha.num_heads, mha.kdim) != (
            self.embed_dim,
            self.num_heads,
            self.kv_dim,
        ) or mha.vdim != self.kv_dim:
            raise ValueError(
                "sizes differ: torch module has "
                f"(embed_dim, num_heads, kdim, vdim)=({mha.embed_dim}, {mha.num_heads}, "
                f"{mha.kdim}, {mha.vdim}), this one ({self.embed_dim}, {self.num_heads}, "
                f"{self.kv_dim}, {self.kv_dim})"
            )
        if mha.in_proj_weight is not None:  # one packed (3D, D) matrix
            w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn are not supported")
        has_bias = mha.in_proj_bias is not None
        if has_bias != (self.q_proj.bias is not None):
            raise ValueError("one module has biases and the other has not")
        biases = mha.in_proj_bias.chunk(3) if has_bias else (None, None, None)
        for lin, w, b in zip((self.q_proj, self.k_proj, self.v_proj), (w_q, w_k, w_v), biases):
            lin.weight.copy_(w)
            if b is not None:
                lin.bias.copy_(b)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if has_bias:
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self

    def _check_inputs(self, x: Tensor, context: Tensor, mask: Tensor | None) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must be (B, N_q, {self.embed_dim}), got {_describe(x)}")
        if (
            not isinstance(context, Tensor)
            or context.dim() != 3
            or context.shape[-1] != self.kv_dim
            or context.shape[0] != x.shape[0]
        ):
            raise ValueError(
                f"context must be (B={x.shape[0]}, N_k, {self.kv_dim}), got {_describe(context)}"
            )
        if mask is not None:
            B, N_q, N_k = x.shape[0], x.shape[1], context.shape[1]
            _check_mask(mask, (B, self.num_heads, N_q, N_k))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, kv_dim={self.kv_dim}"


class CrossAttention(MultiHeadAttention):
    """The source document's ``CrossAttention``, corrected and completed.

    Queries come from the instruction, keys and values from the image patches:
    ``forward(instruction_repr (B, N_txt, D), visual_features (B, N_img, vision_dim),
    visual_mask=None)`` returns ``(fused (B, N_txt, D), weights (B, h, N_txt, N_img))``.

    What changed from the source: several heads, each scaled by ``sqrt(head_dim)``; a key
    padding mask over patches (``visual_mask`` ``(B, N_img)``, 1 = real patch), so that
    padded patches receive no attention; an output projection that mixes the heads;
    ``vision_dim`` may differ from ``embed_dim`` (a ViT and a text encoder rarely agree).

    Built in chapter 02, "6. Self-attention and cross-attention: the source document's `CrossAttention`, corrected".
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 8,
        vision_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(embed_dim, num_heads, kv_dim=vision_dim, bias=bias, dropout=dropout)

    def forward(
        self,
        instruction_repr: Tensor,
        visual_features: Tensor,
        visual_mask: Tensor | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        mask = None if visual_mask is None else padding_mask(visual_mask)  # (B, 1, 1, N_img)
        return super().forward(instruction_repr, visual_features, mask, need_weights)


# ---- input checks -----------------------------------------------------------------


def _describe(x) -> str:
    if isinstance(x, Tensor):
        return f"a {x.dim()}-d {str(x.dtype).replace('torch.', '')} tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _check_qkv(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() < 2 or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor (..., N, d), e.g. (B, h, N, d); "
                f"got {_describe(t)}"
            )
    if not q.dim() == k.dim() == v.dim():
        raise ValueError(
            f"q, k, v must have the same number of dimensions, got {q.dim()}, {k.dim()}, {v.dim()}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d_k, got q {tuple(q.shape)} and "
            f"k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of tokens N_k, got k {tuple(k.shape)} and "
            f"v {tuple(v.shape)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "the leading (batch, head) dimensions of q, k, v do not broadcast: "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        ) from None


def _check_mask(mask, scores_shape) -> None:
    expected = tuple(scores_shape)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            "mask must be a bool tensor (True = may attend), broadcastable to "
            f"{expected}; got {_describe(mask)}"
        )
    try:
        ok = torch.broadcast_shapes(mask.shape, expected) == torch.Size(expected)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} cannot broadcast to the scores' shape "
            f"{expected} (batch, heads, N_q, N_k)"
        )
