"""Every chapter runs top to bottom from a fresh kernel, offline, once: each exercise as the
student meets it first (the release's placeholder reports *not attempted*, never crashes),
then its solution (reports *passed*), every claim the chapter asserts holds, and the
chapter stays inside its time budget, measured as a multiple of the reference workload
timed right before and after it (:mod:`course_utils.tools.budget`), so that a slower or busier
machine does not change the verdict.

One execution per chapter (:func:`course_utils.tools.rehearsal.with_released_exercises`)
instead of two (the chapter, then its release): the suite's longest part at half the cost.
What the one execution cannot see, a later cell reaching a released stub, is read from the
code (:func:`course_utils.tools.rehearsal.stub_uses`).
"""

from __future__ import annotations

import nbformat
import pytest

from course_utils.tools.budget import budget, multiple, reference_seconds
from course_utils.tools.exercises import points_by_title
from course_utils.tools.notebooks import list_chapters, make_notebook, read, student_source
from course_utils.tools.rehearsal import released_cells, stub_uses, with_released_exercises
from course_utils.tools.runner import execute_notebook

CHAPTERS = list_chapters()


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_chapter_runs_its_release_then_its_solutions(path, tmp_path):
    rehearsal = tmp_path / path.name
    nbformat.write(with_released_exercises(read(path)), str(rehearsal))
    before = reference_seconds()
    result = execute_notebook(rehearsal, tmp_path / "build", html=False, progress=False, timeout=900)
    used = multiple(result.seconds, (before + reference_seconds()) / 2)  # the machine as it is now
    assert result.passed, f"{path.stem} stopped: {result.error} (executed copy: {result.executed})"
    titles = points_by_title(path)
    assert result.exercises == dict.fromkeys(titles, "passed"), result.exercises
    executed = nbformat.read(result.executed, as_version=4)
    checks = released_cells(executed)[1::2]
    assert len(checks) == len(titles)
    for cell, title in zip(checks, titles, strict=True):
        assert f"[not attempted] {title}" in _stdout(cell), (
            f"{path.stem}: the released exercise {title!r} did not report 'not attempted': "
            f"{_stdout(cell)[:300]!r}")
    assert used <= budget(path.stem), (
        f"{path.stem} took {result.seconds:.0f} s, {used:.1f} reference workloads, over its budget "
        f"of {budget(path.stem):.0f}; slowest cells: {result.slowest_cells}")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_cell_after_an_exercise_reaches_its_released_placeholder(path):
    assert stub_uses(read(path)) == []


def test_the_rehearsal_puts_the_release_before_each_solution():
    nb = read(CHAPTERS[1])
    rehearsal = with_released_exercises(nb)
    released = released_cells(rehearsal)
    assert len(released) == 2 * len(points_by_title(CHAPTERS[1]))
    first = rehearsal.cells.index(released[0])
    assert released[0].source == student_source(rehearsal.cells[first + 2].source)
    assert released[1].source == rehearsal.cells[first + 3].source  # the same check, twice
    assert "nbgrader" not in released[0].metadata  # grade ids stay unique
    ids = [c["id"] for c in rehearsal.cells]
    assert len(ids) == len(set(ids))  # and so do cell ids


def test_the_stub_check_can_fail():
    nb = make_notebook([
        ("md", "## Exercises"),
        ("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        ("code", "ch99.check_double(double)"),  # passing the stub to its checker is safe
        ("code", "y = double(3)"),  # a crash in the release
        ("code", "f = lambda: double(3)"),  # not run at the top level: safe
        ("code", "class Uses:\n    value = double(3)"),  # a class body runs: a crash
    ], setup=False)
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade_id": "ch99-ex1-answer"}
    nb.cells[0].metadata["course"] = {"exercise": {"id": "ch99-ex1"}}
    assert stub_uses(nb) == [f"cell {i} uses 'double', which the release leaves as the placeholder of ch99-ex1"
                             for i in (3, 5)]  # fmt: skip
    nb.cells.insert(3, nbformat.v4.new_code_cell("from course_utils.attention import softmax as double"))
    assert stub_uses(nb) == [], "a cell that binds the name again ends the stub's reach"
