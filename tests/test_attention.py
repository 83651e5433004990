"""course_utils.attention against PyTorch: SDPA, nn.MultiheadAttention, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from course_utils import attention


def _devices():
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devs.append("mps")
    return devs


DEVICES = _devices()
# GPU kernels use TF32 / other reduction orders; compare there a little more loosely.
TOL = {"cpu": {}, "cuda": {"atol": 2e-4, "rtol": 2e-4}, "mps": {"atol": 2e-4, "rtol": 2e-4}}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- softmax -----------------------------------------------------------------------


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch(dim):
    x = torch.randn(4, 5, 6) * 10
    assert_close(attention.stable_softmax(x, dim), torch.softmax(x, dim))


def test_softmax_is_stable_where_naive_overflows():
    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    naive = x.exp() / x.exp().sum(-1, keepdim=True)
    assert torch.isnan(naive).all()
    out = attention.stable_softmax(x)
    assert torch.isfinite(out).all()
    assert_close(out, torch.softmax(x, -1))


def test_softmax_of_fully_masked_row_is_zero():
    x = torch.tensor([[0.0, float("-inf")], [float("-inf"), float("-inf")]])
    assert_close(attention.stable_softmax(x), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_softmax_gradient_matches_torch():
    x = torch.randn(3, 7, requires_grad=True)
    g = torch.randn(3, 7)
    (ga,) = torch.autograd.grad((attention.stable_softmax(x) * g).sum(), x)
    (gb,) = torch.autograd.grad((torch.softmax(x, -1) * g).sum(), x)
    assert_close(ga, gb)


# ---- scaled dot-product attention -------------------------------------------------


def _mask(kind, B, H, N_q, N_k, device):
    if kind is None:
        return None
    if kind == "causal":
        return attention.causal_mask(N_q, N_k, device=device)
    if kind == "padding":
        lengths = torch.randint(1, N_k + 1, (B,), device=device)
        lengths[0] = N_k
        am = (torch.arange(N_k, device=device)[None] < lengths[:, None]).long()
        return attention.padding_mask(am)
    if kind == "random":  # per head, every row keeps its first key
        m = torch.rand(B, H, N_q, N_k, device=device) > 0.5
        m[..., 0] = True
        return m
    raise ValueError(kind)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_kind", [None, "causal", "padding", "random"])
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1, 1, 4, 4), (2, 3, 5, 5, 8, 8), (2, 4, 3, 7, 16, 5), (3, 2, 9, 6, 32, 32)],
    ids=["tiny", "self", "cross-dv", "cross-wide"],
)
def test_sdpa_matches_torch(device, mask_kind, shape):
    B, H, N_q, N_k, d_k, d_v = shape
    q = torch.randn(B, H, N_q, d_k, device=device)
    k = torch.randn(B, H, N_k, d_k, device=device)
    v = torch.randn(B, H, N_k, d_v, device=device)
    mask = _mask(mask_kind, B, H, N_q, N_k, device)
    out, w = attention.scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_close(out, expected, **TOL[device])
    assert w.shape == (B, H, N_q, N_k)
    assert_close(w.sum(-1), torch.ones(B, H, N_q, device=device), **TOL[device])
    if mask is not None:
        assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_causal_mask_matches_is_causal():
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    out, _ = attention.scaled_dot_product_attention(q, k, v, attention.causal_mask(6))
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert attention.causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_sdpa_scale_argument_and_3d_input():
    q, k, v = torch.randn(4, 5, 8), torch.randn(4, 6, 8), torch.randn(4, 6, 3)
    out, _ = attention.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_sdpa_fully_masked_row_is_zero_like_torch_math():
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    out, w = attention.scaled_dot_product_attention(q, k, v, mask)
    assert (w[0, 0, 1] == 0).all() and (out[0, 0, 1] == 0).all()
    assert torch.isfinite(out).all()


def test_sdpa_gradients_match_torch():
    q, k, v = (torch.randn(2, 2, 5, 8, requires_grad=True) for _ in range(3))
    mask = attention.causal_mask(5)
    ours = attention.scaled_dot_product_attention(q, k, v, mask)[0].square().sum()
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).square().sum()
    for a, b in zip(torch.autograd.grad(ours, (q, k, v)), torch.autograd.grad(theirs, (q, k, v))):
        assert_close(a, b)


# ---- masks, heads ------------------------------------------------------------------


def test_padding_mask_from_ids_and_from_attention_mask():
    ids = torch.tensor([[5, 6, 0, 0], [0, 7, 8, 9]])
    expected = torch.tensor([[True, True, False, False], [False, True, True, True]])
    assert_close(attention.padding_mask(ids, pad_id=0), expected[:, None, None, :])
    assert_close(attention.padding_mask(expected.long()), expected[:, None, None, :])
    assert_close(attention.padding_mask(expected), expected[:, None, None, :])
    assert attention.padding_mask(ids, pad_id=0).shape == (2, 1, 1, 4)


def test_split_and_merge_heads():
    x = torch.randn(2, 5, 12)
    h = attention.split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    assert_close(h[:, 1], x[..., 4:8])  # head 1 holds features 4..7 of every token
    assert_close(attention.merge_heads(h), x)
    assert_close(attention.merge_heads(h.contiguous()), x)


# ---- multi-head attention against nn.MultiheadAttention -----------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_self_attention_matches_nn_multihead(device, bias, num_heads):
    D, B, N = 16, 3, 7
    torch_mha = nn.MultiheadAttention(D, num_heads, bias=bias, batch_first=True).to(device).eval()
    ours = attention.MultiHeadAttention(D, num_heads, bias=bias).to(device).eval()
    ours.load_torch_weights(torch_mha)
    x = torch.randn(B, N, D, device=device)
    am = torch.ones(B, N, dtype=torch.long, device=device)
    am[1, 4:] = 0
    am[2, 1:] = 0
    with torch.no_grad():
        # nn.MultiheadAttention's masks mean the opposite: True = NOT allowed
        exp_out, exp_w = torch_mha(
            x, x, x, key_padding_mask=am == 0, need_weights=True, average_attn_weights=False
        )
        out, w = ours(x, mask=attention.padding_mask(am))
        fused, none = ours(x, mask=attention.padding_mask(am), need_weights=False)
    assert_close(out, exp_out, **TOL[device])
    assert_close(w, exp_w, **TOL[device])
    assert_close(fused, exp_out, **TOL[device])
    assert none is None
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in torch_mha.parameters()
    )


@pytest.mark.parametrize("device", DEVICES)
def test_causal_self_attention_matches_nn_multihead(device):
    D, N = 8, 6
    torch_mha = nn.MultiheadAttention(D, 2, batch_first=True).to(device)
    ours = attention.MultiHeadAttention(D, 2).to(device).load_torch_weights(torch_mha)
    x = torch.randn(2, N, D, device=device)
    blocked = ~attention.causal_mask(N, device=device)
    with torch.no_grad():
        exp_out, _ = torch_mha(x, x, x, attn_mask=blocked)
        out, _ = ours(x, mask=~blocked)
    assert_close(out, exp_out, **TOL[device])


@pytest.mark.parametrize("device", DEVICES)
def test_cross_attention_matches_nn_multihead(device):
    D, kv, H = 16, 12, 4
    torch_mha = nn.MultiheadAttention(D, H, kdim=kv, vdim=kv, batch_first=True).to(device)
    ours = attention.CrossAttention(D, H, vision_dim=kv).to(device).load_torch_weights(torch_mha)
    text = torch.randn(2, 5, D, device=device)  # (B, N_txt, D)
    image = torch.randn(2, 9, kv, device=device)  # (B, N_img, vision_dim)
    visual_mask = torch.ones(2, 9, dtype=torch.long, device=device)
    visual_mask[1, 6:] = 0
    with torch.no_grad():
        exp_out, exp_w = torch_mha(
            text, image, image, key_padding_mask=visual_mask == 0, average_attn_weights=False
        )
        out, w = ours(text, image, visual_mask)
    assert_close(out, exp_out, **TOL[device])
    assert_close(w, exp_w, **TOL[device])
    assert (w[1, :, :, 6:] == 0).all()


def test_cross_attention_with_one_head_and_identity_output_is_the_source_layer():
    """The source document's layer is our CrossAttention with 1 head and no output mixing."""
    D = 12
    q, k, v = (nn.Linear(D, D) for _ in range(3))
    text, image = torch.randn(2, 4, D), torch.randn(2, 9, D)
    scores = q(text) @ k(image).transpose(-2, -1) / math.sqrt(D)
    source = torch.softmax(scores, -1) @ v(image)
    ours = attention.CrossAttention(D, num_heads=1)
    with torch.no_grad():
        for mine, theirs in ((ours.q_proj, q), (ours.k_proj, k), (ours.v_proj, v)):
            mine.load_state_dict(theirs.state_dict())
        ours.out_proj.weight.copy_(torch.eye(D))
        ours.out_proj.bias.zero_()
        assert_close(ours(text, image)[0], source)


def test_dropout_only_in_training():
    m = attention.MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    assert_close(a, b)
    m.train()
    c, _ = m(x)
    assert not torch.allclose(a, c)


def test_gradients_flow_to_all_parameters():
    m = attention.CrossAttention(8, 2, vision_dim=6)
    out, _ = m(torch.randn(2, 3, 8), torch.randn(2, 5, 6))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


# ---- bad input: ValueError naming what is wrong --------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.randn(5), torch.randn(5, 4), torch.randn(5, 4)), "q must be"),
        ((torch.randn(2, 5, 4), torch.randn(2, 5, 3), torch.randn(2, 5, 4)), "feature size d_k"),
        ((torch.randn(2, 5, 4), torch.randn(2, 6, 4), torch.randn(2, 5, 4)), "number of tokens"),
        ((torch.randn(2, 2, 5, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)), "same number of dim"),
        ((torch.randn(2, 5, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 4)), "do not broadcast"),
        ((torch.ones(2, 5, 4, dtype=torch.long),) * 3, "floating-point"),
    ],
)
def test_sdpa_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        attention.scaled_dot_product_attention(*args)


def test_sdpa_bad_mask():
    q = k = v = torch.randn(2, 3, 5, 4)
    with pytest.raises(ValueError, match="cannot broadcast"):
        attention.scaled_dot_product_attention(q, k, v, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor"):
        attention.scaled_dot_product_attention(q, k, v, torch.ones(5, 5))
    with pytest.raises(ValueError, match="cannot broadcast"):  # (B, N) forgot the axes
        attention.scaled_dot_product_attention(q, k, v, torch.ones(2, 5, dtype=torch.bool))


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        attention.padding_mask(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="pad_id"):
        attention.padding_mask(torch.tensor([[5, 6, 0]]))
    with pytest.raises(ValueError, match="positive ints"):
        attention.causal_mask(0)
    with pytest.raises(ValueError, match="divisible"):
        attention.split_heads(torch.randn(2, 3, 10), 3)
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        attention.split_heads(torch.randn(3, 10), 2)
    with pytest.raises(ValueError, match=r"\(B, h, N, d\)"):
        attention.merge_heads(torch.randn(3, 10, 2))
    with pytest.raises(ValueError, match="divisible"):
        attention.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="softmax expects"):
        attention.stable_softmax(torch.tensor([1, 2]))


def test_module_bad_input():
    m = attention.CrossAttention(8, 2, vision_dim=6)
    text, image = torch.randn(2, 3, 8), torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match=r"x must be \(B, N_q, 8\)"):
        m(torch.randn(2, 3, 6), image)
    with pytest.raises(ValueError, match=r"context must be \(B=2, N_k, 6\)"):
        m(text, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"context must be \(B=2"):
        m(text, torch.randn(3, 5, 6))
    with pytest.raises(ValueError, match="cannot broadcast"):
        m(text, image, torch.ones(2, 4))
    with pytest.raises(ValueError, match="sizes differ"):
        attention.MultiHeadAttention(8, 2).load_torch_weights(nn.MultiheadAttention(8, 4))
