"""Checkers for chapter 12 (editing: the preservation metric, executing an edit program on a
scene, FiLM conditioning).

Each compares the student's answer with :mod:`course_utils.editing` and
:mod:`course_utils.world.edits` on seeded inputs and says what is wrong without printing
the reference values.
"""

from __future__ import annotations

from course_utils.checks.core import call_student, checker, expect_close, expect_shape, expect_type

# ---- Exercise 1: preservation ---------------------------------------------------------------


def _preservation_cases() -> dict:
    """``case: (output, before, changed)``: uint8 images ``(N, 48, 48, 3)``, cells ``(N, 9)``."""
    import torch

    gen = torch.Generator().manual_seed(1201)
    before = torch.randint(0, 256, (6, 48, 48, 3), generator=gen, dtype=torch.uint8)
    changed = torch.zeros(6, 9, dtype=torch.bool)
    changed[0, 4] = changed[1, 0] = changed[2, [2, 5]] = changed[3, 8] = changed[4, :] = True
    out = before.clone()
    out[0, 16:32, 16:32] = 0  # inside its changed cell (the centre): preserved
    out[1, 0:16, 0:16] = 255  # inside the changed top-left cell ...
    out[1, 20, 40, 1] ^= 1  # ... and one channel of one pixel outside it: not preserved
    out[2, 0:32, 32:48] //= 2  # cells 2 and 5 (top right, right): preserved
    out[3, 47, 0] ^= 8  # the bottom-left corner pixel, outside the changed bottom-right cell
    out[4] = 0  # a style edit: every cell changed, so nothing is left to preserve
    out[5, 15, 15] ^= 4  # nothing changed, one pixel differs: not preserved
    return {"six edits (one pixel, one channel, whole cells, a style edit)": (out, before, changed),
            "the same edits, one image": (out[1:2], before[1:2], changed[1:2]),
            "an exact copy": (before[:3].clone(), before[:3], changed[:3])}  # fmt: skip


@checker(
    "Exercise 1: preservation outside the edited cells",
    hints=(
        "An edit is preserving when no pixel outside the cells the edit changes differs from "
        "the input. Build a pixel mask of the changed cells from `changed` (each of the nine "
        "cells is a 16 x 16 block, row by row), then look only at pixels outside it.",
        "For the pixel mask, view `changed` as `(n, 3, 1, 3, 1)` (rows and columns of cells), "
        "expand each cell to 16 x 16 pixels and reshape to `(n, 48, 48)`. A pixel differs when "
        "any of its three channels differs: `(output != before).any(-1)`. Combine the two, and "
        "ask per image whether any such pixel is left.",
        'Reread chapter 12, "4. Measuring an edit".',
    ),
)
def check_preserved(fn):
    """Check Exercise 1: ``fn(output, before, changed)`` is the ``(N,)`` bool preservation.

    Used in chapter 12, "Exercise 1 — Preservation outside the edited cells (★☆☆, ~10 min, 1 point)"."""
    import torch

    from course_utils.editing import metrics

    for case, (out, before, changed) in _preservation_cases().items():
        got = call_student(fn, out.clone(), before.clone(), changed.clone())
        expect_type(got, torch.Tensor, f"the result on case '{case}'")
        expect_shape(got, (len(out),), f"the result on case '{case}'")
        want = metrics.region_errors(out, before, out, changed)["preserved"]
        got = got.bool() if got.dtype != torch.bool else got
        if torch.equal(got, want):
            continue
        whole = ((out != before).any(-1).flatten(1).any(1) == 0)
        if torch.equal(got, whole):
            raise AssertionError(f"on case '{case}' you compare every pixel; the changed cells "
                                 "are allowed to change, only the others must stay as they were")  # fmt: skip
        if not got[4 % len(got)] and want[4 % len(got)] and len(got) == 6:
            raise AssertionError(f"on case '{case}' an image whose every cell changed (a style "
                                 "edit) has nothing outside its changed cells: it counts as preserved")  # fmt: skip
        raise AssertionError(f"wrong preservation on case '{case}' (images {torch.nonzero(got != want).flatten().tolist()})")


# ---- Exercise 2: executing an edit program -----------------------------------------------------


def _program_cases(n: int = 60) -> list:
    """Seeded chapter-12 edit examples (every op), with their input scenes."""
    import random

    from course_utils.world.edits import generate_editing
    from course_utils.world.programs import World

    rng = random.Random(1202)
    world = World()
    return [generate_editing(rng, world) for _ in range(n)]


@checker(
    "Exercise 2: executing an edit program on a scene",
    hints=(
        "Every program has an `op`. A style edit changes the whole scene (`scenes.restyle`); "
        "an addition puts `program['obj']` in `program['cell']` (`scenes.add_object`). The "
        "other three name an object by a description: find the one object it names first.",
        "`programs.unique(scene, program['obj'])` returns that object; its index in "
        "`scene['objects']` is what `scenes.recolor`, `scenes.remove` and `scenes.move` take. "
        "None of them changes its input scene: each returns a new one.",
        'Reread chapter 12, "2. Editor 1: the instruction as a program".',
    ),
)
def check_run_program(fn):
    """Check Exercise 2: ``fn(program, scene)`` returns the edited scene, as
    ``edits.apply_edit`` does, and leaves its input unchanged.

    Used in chapter 12, "Exercise 2 — Executing an edit program (★★☆, ~15 min, 2 points)"."""
    import copy

    for i, ex in enumerate(_program_cases()):
        scene, program = ex["scene"], ex["program"]
        kept = copy.deepcopy(scene)
        got = call_student(fn, copy.deepcopy(program), scene)
        op = program["op"] + (f" ({program['style']})" if program["op"] == "style" else "")
        if scene != kept:
            raise AssertionError(f"on example {i} (a {op} edit) your function changed the input "
                                 "scene; return a new scene and leave the input as it was")  # fmt: skip
        expect_type(got, dict, f"the result on example {i}")
        if got == ex["target_scene"]:
            continue
        if got.get("objects") == ex["target_scene"]["objects"]:
            raise AssertionError(f"on example {i} (a {op} edit) the objects are right but the "
                                 "style is not")  # fmt: skip
        raise AssertionError(f"wrong scene on example {i}, a {op} edit: \"{ex['instruction']}\"")


# ---- Exercise 3: FiLM ------------------------------------------------------------------------


@checker(
    "Exercise 3: FiLM conditioning",
    hints=(
        "FiLM maps the condition vector to two numbers per channel, gamma and beta, with one "
        "linear layer of 2 * channels outputs, and returns h multiplied by one plus gamma, plus "
        "beta, with gamma and beta broadcast over the image's height and width.",
        "`gamma, beta = self.proj(cond).chunk(2, dim=1)`; reshape each to `(B, C, 1, 1)`. "
        "Initialise the layer's weight and bias to zero so that the block starts as the "
        "identity, whatever the condition.",
        'Reread chapter 12, "3. Editor 2: a U-Net conditioned on the words".',
    ),
)
def check_film(cls):
    """Check Exercise 3: ``cls(cond_dim, channels)`` is a FiLM module with a linear ``proj``
    (gamma first, then beta) that starts as the identity.

    Used in chapter 12, "Exercise 3 — FiLM conditioning (★★☆, ~15 min, 2 points)"."""
    import torch

    from course_utils.editing.unet import FiLM

    gen = torch.Generator().manual_seed(1203)
    module = call_student(cls, 5, 4)
    expect_type(module, torch.nn.Module, "your FiLM(5, 4)")
    proj = getattr(module, "proj", None)
    if not isinstance(proj, torch.nn.Linear) or (proj.in_features, proj.out_features) != (5, 8):
        raise AssertionError("your module needs a `proj` attribute: an nn.Linear from the condition "
                             "(5 values) to 2 * channels (8) outputs")  # fmt: skip
    h, cond = torch.randn(3, 4, 6, 6, generator=gen), torch.randn(3, 5, generator=gen)
    out = call_student(module, h, cond)
    expect_close(out, h, "at initialisation (it must start as the identity: zero the layer's weight and bias)")
    ref = FiLM(5, 4)
    with torch.no_grad():
        for p in (proj.weight, proj.bias):
            p.copy_(torch.randn(p.shape, generator=gen))
        ref.proj.load_state_dict(proj.state_dict())
    got = call_student(module, h, cond)
    gamma, beta = ref.proj(cond).chunk(2, dim=1)
    if torch.allclose(got, h * gamma[:, :, None, None] + beta[:, :, None, None], atol=1e-5):
        raise AssertionError("you scale by gamma; FiLM here scales by (1 + gamma), so that gamma = 0 is the identity")
    if torch.allclose(got, h * (1 + beta[:, :, None, None]) + gamma[:, :, None, None], atol=1e-5):
        raise AssertionError("gamma and beta are swapped: the first half of proj's outputs is gamma, the second beta")
    expect_close(got, ref(h, cond), "with random weights (3 images, 4 channels, 6 x 6)")
