"""Checkers for chapter 05, fusion.

Each one runs the student's code on seeded inputs, compares with
:mod:`course_utils.fusion` and says what is wrong without printing the answer.

* :func:`check_gated_block` — a class ``Block(d, heads)`` with ``forward(x, image)``:
  Flamingo's gated cross-attention block, gates named ``attn_gate`` and ``mlp_gate``;
* :func:`check_llava_shapes` — a dict of the tensor shapes inside the LLaVA-style model
  for a batch of 8 instructions of 12 tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils import fusion as ref
from course_utils.checks.core import call_student, checker, expect_close, expect_shape, expect_type

__all__ = ["check_gated_block", "check_llava_shapes", "LLAVA_SHAPE_KEYS"]

D, HEADS = 32, 4


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, D, generator=g)  # (B, T, D) instruction tokens
    image = torch.randn(3, 9, D, generator=g)  # (B, N_img, D) image tokens
    return x, image


def _variants(block: ref.GatedCrossAttentionBlock, x, image) -> dict:
    """What common mistakes compute, with the reference's weights."""
    a, m = block.attn_gate, block.mlp_gate
    with torch.no_grad():
        fused = block.xattn(block.norm1(x), image)[0]
        out = {}
        h = x + a * fused
        out["no tanh"] = h + m * block.mlp(block.norm2(h))
        h = x + torch.tanh(a) * fused
        out["no mlp"] = h
        h = x + torch.tanh(a) * block.xattn(x, image)[0]
        out["no pre-norm"] = h + torch.tanh(m) * block.mlp(block.norm2(h))
    return out


@checker(
    "Exercise 1: Flamingo's gated cross-attention block",
    hints=(
        "A gate is a learnable number that scales a branch before the branch is added to x. "
        "Flamingo's gates start at 0, so a fresh block returns x unchanged and the image "
        "cannot disturb the language model on the first step.",
        "Make each gate an nn.Parameter holding a single 0. In forward, the cross-attention "
        "reads the normalised x (norm1) with the image as keys and values, and returns "
        "(output, weights): keep the output. Each branch is multiplied by the tanh of its gate "
        "and added to x: the cross-attention branch first, then the MLP branch on norm2 of "
        "the updated x.",
        'Reread the Flamingo paragraph of chapter 05, "4. Four other ways to fuse" and, for '
        'the residual pattern, chapter 05, "3. Residual, normalisation, and a real block".',
    ),
)
def check_gated_block(cls):
    """Check Exercise 1: a Flamingo block class with tanh gates ``attn_gate``/``mlp_gate`` at 0.
    Used in chapter 05, "Exercise 1 — Flamingo's gated cross-attention block (★★☆, ~10 min, 2 points)"."""
    torch.manual_seed(0)
    block = call_student(cls, D, HEADS)
    expect_type(block, nn.Module, "your block")
    params = dict(block.named_parameters())
    for name in ("attn_gate", "mlp_gate"):
        if name not in params:
            raise AssertionError(
                f"your block has no parameter named '{name}' (make it an nn.Parameter so the "
                "optimizer can open the gate)")
        if params[name].numel() != 1:
            raise AssertionError(f"'{name}' should hold one number, it has shape {tuple(params[name].shape)}")
    x, image = _inputs()
    out = call_student(block, x.clone(), image.clone())
    expect_type(out, torch.Tensor, "the block's output")
    expect_shape(out, x.shape, "the block's output")
    if block.attn_gate.detach().abs().item() > 0 or block.mlp_gate.detach().abs().item() > 0:
        raise AssertionError(
            "the gates of a fresh block are not 0: at initialisation the image must not change "
            "the language model's activations at all")
    if not torch.allclose(out, x, atol=1e-6):
        raise AssertionError(
            "with both gates at 0 the block changes its input, so the image already alters the "
            "language path; a fresh block should return x unchanged (is x kept by a residual, "
            "and does every branch go through its gate?)")
    # open the gates and compare with the reference on the same weights
    reference = ref.GatedCrossAttentionBlock(D, HEADS, ratio=2)
    missing = reference.load_state_dict(block.state_dict(), strict=False)
    if missing.missing_keys:
        raise AssertionError(
            "keep the given submodules norm1, xattn, norm2 and mlp (the checker needs their "
            f"weights); not found: {missing.missing_keys[:3]}")
    for gates in ((0.8, -0.5), (2.0, 0.3)):
        with torch.no_grad():
            for b in (block, reference):
                b.attn_gate.fill_(gates[0])
                b.mlp_gate.fill_(gates[1])
        x, image = _inputs(1)
        out = call_student(block, x.clone(), image.clone())
        with torch.no_grad():
            expected = reference(x, image)
        expect_type(out, torch.Tensor, "the block's output")
        expect_shape(out, expected.shape, "the block's output")
        if not torch.allclose(out.detach(), expected, atol=1e-5, rtol=1e-4):
            for name, value in _variants(reference, x, image).items():
                if torch.allclose(out.detach(), value, atol=1e-5, rtol=1e-4):
                    raise AssertionError(_MESSAGES[name].format(gates=gates))
        expect_close(out.detach(), expected, case=f"gates set to {gates}")
    # a gate at zero still learns
    block.zero_grad()
    with torch.no_grad():
        block.attn_gate.zero_()
        block.mlp_gate.zero_()
    call_student(block, x, image).pow(2).sum().backward()
    if block.attn_gate.grad is None or block.attn_gate.grad.abs().item() == 0:
        raise AssertionError(
            "at gate 0 no gradient reaches attn_gate, so it could never open; keep the gate a "
            "parameter in the computation")


_MESSAGES = {
    "no tanh": "with the gates set to {gates} your block multiplies by the raw gate; Flamingo "
    "squashes it first (so each branch's weight stays between -1 and 1)",
    "no mlp": "with the gates set to {gates} the MLP branch is missing",
    "no pre-norm": "with the gates set to {gates} the cross-attention reads x without its "
    "LayerNorm (norm1)",
}


# ---- Exercise 2 ---------------------------------------------------------------------

LLAVA_SHAPE_KEYS = ("image_tokens", "projected", "sequence", "mask", "pooled", "logits")
BATCH, LENGTH = 8, 12


def llava_shapes() -> dict:
    """The true shapes, measured on the default ``llava_projection`` model.

    Used in chapter 05, "Exercise 2 — predict the shapes inside the LLaVA-style model (★☆☆, ~10 min, 1 point)"."""
    torch.manual_seed(0)
    model = ref.build_model("llava_projection", vocab_size=300, num_answers=34)  # sizes do not change a shape
    c = model.cfg
    pixel_values = torch.zeros(BATCH, c.num_channels, c.image_size, c.image_size)
    input_ids = torch.ones(BATCH, LENGTH, dtype=torch.long)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.shape)  # returns None: the output is left as it is

        return hook

    hooks = [
        model.image_encoder.register_forward_hook(record("image_tokens")),
        model.projector.register_forward_hook(record("projected")),
        model.blocks[0].register_forward_pre_hook(
            lambda m, args: seen.update(sequence=args[0].shape, mask=args[1].shape)),
        model.norm.register_forward_hook(record("pooled")),
    ]
    with torch.no_grad():
        seen["logits"] = model(pixel_values, input_ids).shape
    for h in hooks:
        h.remove()
    return {k: tuple(seen[k]) for k in LLAVA_SHAPE_KEYS}


@checker(
    "Exercise 2: the shapes inside the LLaVA-style model",
    hints=(
        "Follow one batch through the model: image encoder, projector, joint sequence, "
        "blocks, pooling, classifier. Every shape keeps the batch first.",
        "How many 16-px cells does a 48-px side have? Unlike chapter 03's ViT, this image "
        "encoder adds no [CLS] token. The projector maps each image token to the model's "
        "width and keeps the number of tokens. The joint sequence is the image tokens followed "
        "by the instruction tokens, and its mask needs one entry per position of that "
        "sequence. Check yourself with fusion.trace_shapes.",
        'Reread the LLaVA paragraph of chapter 05, "4. Four other ways to fuse".',
    ),
)
def check_llava_shapes(answer):
    """Check Exercise 2: the predicted shapes of :data:`LLAVA_SHAPE_KEYS` in ``llava_projection``.

    Used in chapter 05, "Exercise 2 — predict the shapes inside the LLaVA-style model (★☆☆, ~10 min, 1 point)"."""
    expect_type(answer, dict, "your answer")
    missing = [k for k in LLAVA_SHAPE_KEYS if k not in answer]
    if missing:
        raise AssertionError(f"your answer lacks the keys {missing}; expected keys {list(LLAVA_SHAPE_KEYS)}")
    truth = llava_shapes()
    n_img = truth["image_tokens"][1]
    for key in LLAVA_SHAPE_KEYS:
        got = answer[key]
        try:
            got = tuple(int(v) for v in got)
        except (TypeError, ValueError):
            raise AssertionError(f"answer['{key}'] should be a tuple of ints, got {got!r}") from None
        want = truth[key]
        if got == want:
            continue
        if key == "image_tokens" and len(got) == 3 and got[1] == n_img + 1:
            raise AssertionError(
                f"answer['{key}'] counts one token too many: a ViT has a [CLS] token, but this "
                "image encoder returns only the patch tokens")
        if key in ("sequence", "mask") and len(got) >= 2 and got[1] == want[1] + 1:
            raise AssertionError(f"answer['{key}'] is one token too long: is a [CLS] counted twice?")
        if key in ("sequence", "mask") and len(got) >= 2 and got[1] == LENGTH:
            raise AssertionError(
                f"answer['{key}'] has only the instruction's tokens; the image tokens are part of "
                "the sequence (and of its mask) too")
        if key == "mask" and len(got) == 3:
            raise AssertionError("answer['mask'] has a feature axis; a padding mask is one number per token")
        if key == "logits" and len(got) == 3:
            raise AssertionError("answer['logits'] still has a token axis; the model pools before its classifier")
        raise AssertionError(f"answer['{key}'] = {got} is not right")
