"""Checkers for chapter 01 (background)."""

from __future__ import annotations

from course_utils.checks.core import checker, expect_type

# Exercise 1: which component plays which role (the roles are printed in the chapter).
COMPONENTS = ("vision encoder", "instruction encoder", "cross-attention", "projector", "answer head")
ROLES = {
    "A": "turns the instruction's tokens into one contextual vector per token",
    "B": "turns the fused sequence into one score per possible answer (pooling + a linear layer)",
    "C": "lets each instruction token gather information from the image patches",
    "D": "turns pixels into a sequence of feature vectors, one per patch or region",
    "E": "maps image features into the space of the language model's token embeddings",
}
_ROLE_OF = {
    "vision encoder": "D",
    "instruction encoder": "A",
    "cross-attention": "C",
    "projector": "E",
    "answer head": "B",
}

# Exercise 2: the seed's pipeline, with the numbers given in the chapter.
PIPELINE = {
    "batch": 8, "image_size": 224, "patch_size": 16, "hidden": 768,
    "instruction_tokens": 12, "num_answers": 20,
}
_SHAPE_KEYS = ("pixel_values", "visual_features", "instruction_repr", "fused", "pooled", "logits")


def _expected_shapes() -> dict[str, tuple]:
    p = PIPELINE
    n_patches = (p["image_size"] // p["patch_size"]) ** 2
    b, d, t = p["batch"], p["hidden"], p["instruction_tokens"]
    return {
        "pixel_values": (b, 3, p["image_size"], p["image_size"]),
        "visual_features": (b, n_patches + 1, d),
        "instruction_repr": (b, t, d),
        "fused": (b, t, d),
        "pooled": (b, d),
        "logits": (b, p["num_answers"]),
    }


# Exercise 3: LLaVA's two stages.
LLAVA_PARTS = ("vision_encoder", "projector", "language_model")
_LLAVA_TRAINABLE = {
    "stage 1": {"projector"},
    "stage 2": {"projector", "language_model"},
}


@checker(
    "Exercise 1: components and their roles",
    hints=(
        "Follow an image and an instruction through the pipeline, left to right: what must "
        "happen to each of them on its own first, where do they meet, and what comes out at "
        "the end?",
        "Each input is encoded on its own first; then the two meet, one side gathering "
        "information from the other; then a head turns the result into one score per answer. "
        "The projector is not part of the source's model: it belongs to LLaVA's design, where "
        "image features must look like word embeddings to the language model.",
        'Reread chapter 01, "4. The building blocks, and where you build each one" (its '
        "diagram) and, for the projector, the LLaVA bullet of "
        'chapter 01, "6. The landscape: three ways to connect vision to language".',
    ),
)
def check_components(answer):
    """Check Exercise 1: one role letter of :data:`ROLES` for each of :data:`COMPONENTS`.

    Used in chapter 01, "Exercise 1 — Components and their roles (★☆☆, ~5 min, 1 point)"."""
    expect_type(answer, dict, "your answer")
    missing = [c for c in COMPONENTS if c not in answer]
    if missing:
        raise AssertionError(f"give a role letter for every component; missing: {missing}")
    extra = [c for c in answer if c not in COMPONENTS]
    if extra:
        raise AssertionError(f"unknown component(s) {extra}; use exactly {list(COMPONENTS)}")
    letters = {c: str(v).strip().upper() for c, v in answer.items()}
    bad = [v for v in letters.values() if v not in ROLES]
    if bad:
        raise AssertionError(f"roles are letters {sorted(ROLES)}; got {bad}")
    if len(set(letters.values())) != len(letters):
        raise AssertionError("each role belongs to exactly one component; you used a letter twice")
    wrong = [c for c in COMPONENTS if letters[c] != _ROLE_OF[c]]
    if wrong:
        raise AssertionError(f"{len(wrong)} of {len(COMPONENTS)} are wrong: look again at {wrong}")


@checker(
    "Exercise 2: tensor shapes through the pipeline",
    hints=(
        "Every tensor keeps the batch dimension first. Then count tokens: how many 16-pixel "
        "squares does a 224-pixel image hold, and does the ViT add a token of its own?",
        "A ViT cuts the image into (224 / 16)^2 patches and puts one [CLS] token in front. "
        "Attention returns one output vector per query, and in the source's cross-attention "
        "the queries come from the instruction. Pooling removes the sequence dimension; the "
        "head maps the hidden size to the number of answers.",
        """Reread chapter 01, "5. Following the shapes through the source's model", which """
        "follows these tensors one step at a time.",
    ),
)
def check_pipeline_shapes(answer):
    """Check Exercise 2: the shape of each tensor of :data:`PIPELINE`'s forward pass.

    Used in chapter 01, "Exercise 2 — Tensor shapes through the pipeline (★★☆, ~10 min, 2 points)"."""
    expect_type(answer, dict, "your answer")
    expected = _expected_shapes()
    missing = [k for k in _SHAPE_KEYS if k not in answer]
    if missing:
        raise AssertionError(f"missing the shape(s) of {missing}")
    for key in _SHAPE_KEYS:
        got = answer[key]
        try:
            got = tuple(int(x) for x in got)
        except (TypeError, ValueError):
            raise AssertionError(f"the shape of '{key}' should be a tuple of ints, got {got!r}") from None
        want = expected[key]
        if got == want:
            continue
        if len(got) != len(want):
            raise AssertionError(
                f"'{key}' should have {len(want)} dimensions, yours has {len(got)} "
                "(every tensor keeps the batch dimension first)"
            )
        if got[0] != want[0]:
            raise AssertionError(f"'{key}': the first dimension is the batch size")
        if key == "visual_features" and got[1] == want[1] - 1:
            raise AssertionError("'visual_features' is one token short: did you forget the [CLS] token?")
        if key == "fused" and got[1] == expected["visual_features"][1]:
            raise AssertionError(
                "'fused' has one vector per image token; which side provides the queries?"
            )
        raise AssertionError(f"the shape of '{key}' is not right")


@checker(
    "Exercise 3: what LLaVA trains in each stage",
    hints=(
        "Ask of each part, stage by stage: does LLaVA update its weights there? One part is "
        "trained in both stages, and one is never trained.",
        "Stage 1 is called feature alignment: which part's only job is to align the image "
        "features with the word embeddings? Stage 2 is instruction tuning: which part that "
        "writes the text must change for the model to follow instructions? Name the parts "
        "as in LLAVA_PARTS.",
        "Reread the LLaVA bullet of "
        'chapter 01, "6. The landscape: three ways to connect vision to language".',
    ),
)
def check_llava_stages(answer):
    """Check Exercise 3: the parts of :data:`LLAVA_PARTS` that each LLaVA stage trains.

    Used in chapter 01, "Exercise 3 — What LLaVA trains, stage by stage (★☆☆, ~5 min, 1 point)"."""
    expect_type(answer, dict, "your answer")
    if set(answer) != set(_LLAVA_TRAINABLE):
        raise AssertionError(f"give the trainable parts for exactly {sorted(_LLAVA_TRAINABLE)}")
    for stage, want in _LLAVA_TRAINABLE.items():
        got = answer[stage]
        if isinstance(got, str):
            got = {got}
        got = set(got)
        unknown = got - set(LLAVA_PARTS)
        if unknown:
            raise AssertionError(f"{stage}: unknown part(s) {sorted(unknown)}; use {list(LLAVA_PARTS)}")
        if "vision_encoder" in got:
            raise AssertionError(f"{stage}: does LLaVA update its CLIP vision encoder?")
        if got != want:
            too_many = "too many" if got > want else "not the right"
            raise AssertionError(f"{stage}: {too_many} parts are trained")
