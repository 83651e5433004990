"""Chapter 12's checkers accept the reference solutions and reject realistic mistakes, without
giving the expected values away."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.checks import CheckFailed, StudentCodeError, ch12
from course_utils.world import programs, scenes

# ---- exercise 1: preservation ------------------------------------------------------------------


def preserved(output, before, changed):
    n = changed.shape[0]
    mask = changed.view(n, 3, 1, 3, 1).expand(n, 3, 16, 3, 16).reshape(n, 48, 48)
    return ~((output != before).any(-1) & ~mask).flatten(1).any(1)


def preserved_by_loop(output, before, changed):
    out = []
    for o, b, c in zip(output.tolist(), before.tolist(), changed.tolist()):
        ok = all(o[y][x] == b[y][x] for y in range(48) for x in range(48) if not c[3 * (y // 16) + x // 16])
        out.append(ok)
    return torch.tensor(out, dtype=torch.uint8)  # another dtype is fine


def preserved_everywhere(output, before, changed):  # compares every pixel
    return ~(output != before).any(-1).flatten(1).any(1)


def preserved_transposed(output, before, changed):  # cells read column by column
    n = changed.shape[0]
    cells = changed.view(n, 3, 3).transpose(1, 2).reshape(n, 9)
    return preserved(output, before, cells)


def preserved_first_channel(output, before, changed):  # only the red channel compared
    return preserved(output[..., :1].expand_as(output), before[..., :1].expand_as(before), changed)


def test_preserved_accepts_the_reference_and_a_loop(capsys):
    assert ch12.check_preserved(preserved)
    assert ch12.check_preserved(preserved_by_loop)
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (preserved_everywhere, "you compare every pixel"),
    (preserved_transposed, "wrong preservation"),
    (preserved_first_channel, "wrong preservation"),
    (lambda o, b, c: preserved(o, b, c)[:1], "has shape"),
    (lambda o, b, c: preserved(o, b, c).tolist(), "should be a Tensor"),
])
def test_preserved_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch12.check_preserved(fn)


# ---- exercise 2: executing an edit program -----------------------------------------------------


def run_program(program, scene):
    if program["op"] == "style":
        return scenes.restyle(scene, program["style"])
    if program["op"] == "add":
        return scenes.add_object(scene, program["obj"], tuple(program["cell"]))
    target = programs.unique(scene, program["obj"])
    index = next(i for i, obj in enumerate(scene["objects"]) if obj is target)
    if program["op"] == "recolor":
        return scenes.recolor(scene, index, program["color"])
    if program["op"] == "remove":
        return scenes.remove(scene, index)
    return scenes.move(scene, index, program["direction"])


def run_in_place(program, scene):  # edits the input scene
    out = run_program(program, scene)
    scene["objects"] = out["objects"]
    return out


def run_without_style(program, scene):  # forgets the style edits
    if program["op"] == "style":
        return scenes.copy_scene(scene)
    return run_program(program, scene)


def run_first_match(program, scene):  # the first object of the right shape, not the one described
    if program["op"] in ("recolor", "remove", "move"):
        index = next(i for i, o in enumerate(scene["objects"])
                     if all(o[k] == v for k, v in program["obj"].items() if k == "shape"))
        program = {**program, "obj": {k: scene["objects"][index][k] for k in ("size", "color", "shape")}}
    return run_program(program, scene)


def test_run_program_accepts_the_reference(capsys):
    assert ch12.check_run_program(run_program)
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "message"), [
    (run_in_place, "changed the input scene"),
    (run_without_style, "style is not"),
    (lambda p, s: None, "should be a dict"),
])
def test_run_program_rejects_mistakes(fn, message):
    with pytest.raises(CheckFailed, match=message):
        ch12.check_run_program(fn)


def test_run_program_reports_a_crash_as_the_students():
    with pytest.raises((CheckFailed, StudentCodeError)):
        ch12.check_run_program(run_first_match)
    with pytest.raises(StudentCodeError, match="KeyError"):
        ch12.check_run_program(lambda p, s: p["nope"])


# ---- exercise 3: FiLM --------------------------------------------------------------------------


class FilmLayer(nn.Module):
    def __init__(self, cond_dim, channels):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h, cond):
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


class FilmNoOne(FilmLayer):  # scales by gamma, not 1 + gamma (and starts by zeroing everything)
    def forward(self, h, cond):
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return h * gamma + beta


class FilmSwapped(FilmLayer):
    def forward(self, h, cond):
        beta, gamma = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


class FilmRandomInit(FilmLayer):
    def __init__(self, cond_dim, channels):
        nn.Module.__init__(self)
        self.proj = nn.Linear(cond_dim, 2 * channels)


class FilmNoProj(nn.Module):
    def __init__(self, cond_dim, channels):
        super().__init__()
        self.lin = nn.Linear(cond_dim, 2 * channels)


class FilmGammaOne(FilmNoOne):  # h * gamma + beta, started at gamma = 1: the identity too
    def __init__(self, cond_dim, channels):
        super().__init__(cond_dim, channels)
        with torch.no_grad():
            self.proj.bias[:channels] = 1.0


def test_film_accepts_the_reference(capsys):
    assert ch12.check_film(FilmLayer)
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(("cls", "message"), [
    (FilmNoOne, "identity"),
    (FilmGammaOne, r"scales by \(1 \+ gamma\)"),
    (FilmSwapped, "swapped"),
    (FilmRandomInit, "identity"),
    (FilmNoProj, "`proj` attribute"),
])
def test_film_rejects_mistakes(cls, message):
    with pytest.raises(CheckFailed, match=message):
        ch12.check_film(cls)


def test_unattempted_exercises_say_so(capsys):
    def stub(*args):
        raise NotImplementedError

    assert ch12.check_preserved(None) is False
    assert ch12.check_run_program(stub) is False
    assert "[not attempted]" in capsys.readouterr().out
