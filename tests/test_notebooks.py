"""Every chapter follows the skeleton, is committed without outputs, and has a student version."""

import ast
import copy

import pytest

from course_utils.tools.colab import setup_cell_source
from course_utils.tools.notebooks import (
    BEGIN,
    END,
    NAME_RE,
    list_chapters,
    make_notebook,
    read,
    student_source,
    student_version,
    validate_skeleton,
)

CHAPTERS = list_chapters()


def test_there_are_chapters_in_course_order():
    assert CHAPTERS, "no notebooks found"
    numbers = [int(p.name[:2]) for p in CHAPTERS]
    assert numbers == sorted(set(numbers)), "chapter numbers must be unique"
    assert CHAPTERS[0].name == "01_background.ipynb"


def test_every_ipynb_is_named_as_a_chapter():
    from course_utils.tools.notebooks import NOTEBOOK_DIR

    for path in NOTEBOOK_DIR.rglob("*.ipynb"):
        if ".ipynb_checkpoints" not in path.parts:
            assert NAME_RE.match(path.name), f"{path.name} is not named NN_topic.ipynb"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_skeleton(path):
    assert validate_skeleton(read(path)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_without_outputs(path):
    for cell in read(path).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_has_no_solution_and_still_parses(path):
    student = student_version(read(path))
    n_exercises = 0
    for cell in student.cells:
        assert BEGIN not in cell.source and END not in cell.source
        if cell.cell_type == "code":
            ast.parse(cell.source)  # valid Python after the solution is removed
            n_exercises += "# YOUR CODE HERE" in cell.source
    assert n_exercises >= 2, "every chapter has exercises"


# ---- the validator itself can fail ---------------------------------------------------

GOOD = [
    ("md", "# 99 · Title\n\nWhy this matters."),
    ("md", "## Learning goals\n\n- one\n- two\n- three"),
    ("code", "x = 1"),
    ("md", "## 1. First idea"),
    ("md", "## 2. Second idea"),
    ("md", "## Exercises"),
    ("code", "answer = None\n### BEGIN SOLUTION\nanswer = 2\n### END SOLUTION\nch99.check_answer(answer)"),
    ("md", "## Summary\n\n- a\n- b\n- c"),
    ("md", "## Further reading\n\n- a paper"),
]


def test_validator_accepts_a_good_notebook():
    assert validate_skeleton(make_notebook(GOOD)) == []


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda c: c.pop(0), "markdown title"),
        (lambda c: c.pop(1), "Learning goals"),
        (lambda c: c.__setitem__(4, ("md", "## 3. Third idea")), "not 1..n"),
        (lambda c: c.pop(5), "Exercises"),
        (lambda c: c.__setitem__(7, ("md", "## Summary\n\n- only one")), "3-6 bullets"),
        (lambda c: c.__setitem__(6, ("code", "### BEGIN SOLUTION\nanswer = 2\nprint(answer)")),
         "unbalanced"),
        (lambda c: c.insert(0, c.pop(7)), "title"),
    ],
)
def test_validator_rejects_broken_notebooks(mutate, problem):
    cells = copy.deepcopy(GOOD)
    mutate(cells)
    problems = validate_skeleton(make_notebook(cells))
    assert any(problem in p for p in problems), problems


def test_validator_rejects_outputs_and_a_changed_setup_cell():
    nb = make_notebook(GOOD)
    nb.cells[2].outputs = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    assert any("outputs" in p for p in validate_skeleton(nb))
    nb = make_notebook(GOOD)
    nb.cells[2].source = setup_cell_source(repo_url="https://example.org/fork")
    assert any("setup cell" in p for p in validate_skeleton(nb))


def test_student_source_keeps_placeholders_and_raises_inside_functions():
    top = "answer = None\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\ncheck(answer)"
    assert student_source(top) == "answer = None\n# YOUR CODE HERE\ncheck(answer)"
    func = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ncheck(f)"
    assert student_source(func) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\ncheck(f)"
    )
    with pytest.raises(ValueError, match="not closed"):
        student_source("### BEGIN SOLUTION\nx = 1")
