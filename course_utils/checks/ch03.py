"""Checkers for chapter 03 (vision encoders)."""

from __future__ import annotations

from course_utils.checks.core import call_student, checker, expect_close, expect_shape, expect_type

# Exercise 2: the ViT whose parameters the student counts (printed in the chapter).
COUNT_CONFIG = {
    "image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 48,
    "num_hidden_layers": 3, "intermediate_size": 96,
}


def _patch_cases():
    import torch

    g = torch.Generator().manual_seed(3)
    return {
        "2 RGB images 8x8, patch 4": (torch.randn(2, 3, 8, 8, generator=g), 4),
        "1 RGB image 12x8 (not square), patch 4": (torch.randn(1, 3, 12, 8, generator=g), 4),
        "3 one-channel images 6x6, patch 2": (torch.randn(3, 1, 6, 6, generator=g), 2),
    }


@checker(
    "Exercise 1: patchify",
    hints=(
        "No loops: one reshape splits each spatial axis into (number of patches, p), one "
        "permute puts the axes in the right order, one reshape flattens.",
        "Split both spatial axes: (B, C, H/p, p, W/p, p). The patch index (H/p, W/p) must come "
        "right after the batch, row before column; the pixels of one patch are read as a "
        "Conv2d reads its kernel: channel first, then rows, then columns. So permute to "
        "(B, H/p, W/p, C, p, p) before the last reshape.",
        'Reread chapter 03, "2. Patches: how a ViT reads an image", where patches are cut and '
        "compared with a Conv2d.",
    ),
)
def check_patchify(fn):
    """Check Exercise 1: ``(B, C, H, W)`` images cut into ``(B, N, C*p*p)`` patches, in a ViT's order.

    Used in chapter 03, "Exercise 1 — Patchify an image (★☆☆, ~5 min, 1 point)"."""
    import torch

    from course_utils.vision import patchify

    for case, (x, p) in _patch_cases().items():
        got = call_student(fn, x.clone(), p)
        want = patchify(x, p)
        expect_type(got, torch.Tensor, f"the result on case '{case}'")
        if tuple(got.shape) != tuple(want.shape):
            if got.numel() == want.numel():
                raise AssertionError(
                    f"on case '{case}' the result has shape {tuple(got.shape)}, expected "
                    f"(B, N, C*p*p) = {tuple(want.shape)}"
                )
            expect_shape(got, want.shape, f"the result on case '{case}'")
        got = got.detach().to(want.dtype)
        if torch.allclose(got, want, atol=1e-6):
            continue
        same_pixels = torch.allclose(got.sort(dim=-1).values, want.sort(dim=-1).values, atol=1e-6)
        if same_pixels:
            raise AssertionError(
                f"on case '{case}' each patch holds the right pixels, flattened in a different "
                "order: flatten channel first, then rows, then columns (as Conv2d does)"
            )
        if torch.allclose(got.sort(dim=1).values, want.sort(dim=1).values, atol=1e-6):
            raise AssertionError(
                f"on case '{case}' the patches are right but in a different sequence order: "
                "number them row by row, left to right"
            )
        expect_close(got, want, case=case, atol=1e-6)


def _reference_count(cfg: dict) -> dict:
    d, i = cfg["hidden_size"], cfg["intermediate_size"]
    n = (cfg["image_size"] // cfg["patch_size"]) ** 2
    patch = cfg["num_channels"] * cfg["patch_size"] ** 2 * d + d
    block = 4 * (d * d + d) + (d * i + i) + (i * d + d) + 4 * d
    return {"patch": patch, "cls": d, "pos": (n + 1) * d, "block": block, "final_ln": 2 * d,
            "layers": cfg["num_hidden_layers"], "d": d, "i": i}


@checker(
    "Exercise 2: count a ViT's parameters",
    hints=(
        "List the parts and count each one on its own: the patch embedding, the [CLS] token, "
        "the position embeddings, one encoder block (times the number of blocks), the final "
        "LayerNorm. This encoder has no pooler.",
        "A Linear layer from a to b features has a*b + b parameters and a LayerNorm of width D "
        "has 2D. Per block: four D x D projections with biases, a two-layer MLP D -> I -> D and "
        "two LayerNorms. Embeddings: the patch Conv2d (3 p^2 D weights and D biases), D for "
        "[CLS], and one position vector per token: every patch and the [CLS] token.",
        'Reread chapter 03, "3. Patch embedding, the `[CLS]` token and position embeddings" '
        'and chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`", '
        "whose count_parameters lets you check your total.",
    ),
)
def check_vit_param_count(answer):
    """Check Exercise 2: the parameter count of the ViT described by :data:`COUNT_CONFIG`.

    Used in chapter 03, "Exercise 2 — Count a ViT's parameters (★★☆, ~10 min, 2 points)"."""
    expect_type(answer, int, "your answer")
    r = _reference_count(COUNT_CONFIG)
    total = r["patch"] + r["cls"] + r["pos"] + r["layers"] * r["block"] + r["final_ln"]
    if answer == total:
        return
    d, n_layers = r["d"], r["layers"]
    diff = total - answer
    if diff == r["pos"]:
        raise AssertionError("you left out the position embeddings")
    if diff == d:
        raise AssertionError(
            "one D-sized vector short: did you count the [CLS] token and its position embedding?"
        )
    if diff == 2 * d:
        raise AssertionError("two D-sized vectors short: count the final LayerNorm (weight and bias)")
    biases = 4 * d + r["i"] + d  # attention and MLP biases in one block
    if diff == n_layers * biases or diff == n_layers * biases + d:
        raise AssertionError("the Linear layers' biases are missing")
    if diff == n_layers * 4 * d:
        raise AssertionError("the LayerNorms inside the blocks are missing")
    if -diff == d * d + d:
        raise AssertionError("this encoder has no pooler (add_pooling_layer=False): leave it out")
    if diff % r["block"] == 0:
        raise AssertionError("the number of encoder blocks is off")
    # not "off by N": the student's number plus N would be the answer
    raise AssertionError(
        f"you counted {'too few' if diff > 0 else 'too many'} parameters; count each part "
        "on its own (the patch embedding, [CLS], positions, one block, the final LayerNorm) "
        "and add them up again")


def _processor_cases():
    import numpy as np

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    return {
        "ViT's mean/std (0.5, 0.5)": (img, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        "ImageNet mean/std": (img, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    }


def reference_preprocess(image, mean, std):
    """What ``ViTImageProcessor(do_resize=False)`` does to an ``(H, W, 3)`` uint8 image.

    Used in chapter 03, "Exercise 3 — Rescale and normalize like `ViTImageProcessor` (★☆☆, ~5 min, 1 point)"."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # rescale: [0, 1]
    x = (x - torch.tensor(mean)) / torch.tensor(std)  # normalize, per channel
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, H, W)


@checker(
    "Exercise 3: rescale and normalize like ViTImageProcessor",
    hints=(
        "Three steps, in this order: rescale the uint8 values to [0, 1], normalize each "
        "channel with its mean and std, then arrange the axes as the model wants them, "
        "(1, 3, H, W).",
        "Convert to float and divide by 255; subtract the mean and divide by the std, each "
        "as a tensor of 3 values, which broadcasts over the last axis while the channels are "
        "last; then move the channels first and add a batch axis (permute, then unsqueeze).",
        'Reread chapter 03, "5. The image processor: what happens to the pixels".',
    ),
)
def check_preprocess(fn):
    """Check Exercise 3: rescaling and normalisation of a uint8 image to ``(1, 3, H, W)``.

    Used in chapter 03, "Exercise 3 — Rescale and normalize like `ViTImageProcessor` (★☆☆, ~5 min, 1 point)"."""
    import torch

    for case, (img, mean, std) in _processor_cases().items():
        got = call_student(fn, img.copy(), mean, std)
        want = reference_preprocess(img, mean, std)
        expect_type(got, torch.Tensor, f"the result on case '{case}'")
        h, w = img.shape[:2]
        if tuple(got.shape) in ((1, h, w, 3), (h, w, 3)):
            raise AssertionError(
                f"on case '{case}' channels are last; the model wants (1, 3, H, W)"
            )
        if tuple(got.shape) == (3, h, w):
            raise AssertionError(f"on case '{case}' the batch dimension is missing: (1, 3, H, W)")
        expect_shape(got, want.shape, f"the result on case '{case}'")
        if not got.dtype.is_floating_point:
            raise AssertionError(f"on case '{case}' the result should be floating point")
        got = got.detach().float()
        if got.abs().max() > 20:
            raise AssertionError(
                f"on case '{case}' values reach {got.abs().max():.0f}: rescale to [0, 1] first"
            )
        if torch.allclose(got, (want * torch.tensor(std).view(1, 3, 1, 1)
                                + torch.tensor(mean).view(1, 3, 1, 1)), atol=1e-5):
            raise AssertionError(f"on case '{case}' values are in [0, 1]: normalize them too")
        expect_close(got, want, case=case, atol=1e-5)
