"""Every chapter follows the skeleton, is committed without outputs, and has a student version."""

import ast
import copy

import pytest

from course_utils.tools.colab import REPO_URL, badge, colab_url, setup_cell_source
from course_utils.tools.exercises import exercises, validate_exercises
from course_utils.tools.notebooks import (
    BEGIN,
    END,
    NAME_RE,
    leaked_solution_lines,
    list_chapters,
    make_notebook,
    read,
    solution_lines,
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
    """The structure, the Colab badge, and every exercise's metadata (nbgrader's and the
    course's: difficulty, minutes, points shown in the heading, the checker it calls)."""
    assert validate_skeleton(read(path), path.name) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_without_outputs(path):
    for cell in read(path).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 cell ids, read from the file as committed (``nbformat.read`` would add
    missing ones silently, with a warning that will become an error)."""
    import json

    ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
    assert None not in ids, f"cell {ids.index(None)} has no id"
    assert len(set(ids)) == len(ids), "two cells share an id"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_has_no_solution_and_still_parses(path):
    student = student_version(read(path), path.name)
    n_exercises = 0
    for cell in student.cells:
        assert BEGIN not in cell.source and END not in cell.source
        if cell.cell_type == "code":
            ast.parse(cell.source)  # valid Python after the solution is removed
            n_exercises += "# YOUR CODE HERE" in cell.source
    assert n_exercises >= 2, "every chapter has exercises"
    assert solution_lines(read(path)), "the chapter's solutions have lines to look for"
    leaked = leaked_solution_lines(read(path), student)
    assert not leaked, f"solution lines left in the student version: {leaked}"


def test_the_leak_check_can_fail():
    nb = read(CHAPTERS[1])
    student = student_version(nb, CHAPTERS[1].name)
    line = solution_lines(nb)[0]
    student.cells[-1].source += f"\n\nA hint that gives it away: `{line}`"
    assert leaked_solution_lines(nb, student) == [line]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_badge_opens_its_own_notebook(path):
    url = f"https://colab.research.google.com/github/{REPO_URL.removeprefix('https://github.com/')}"
    title = read(path).cells[0].source.split("\n")
    assert title[2] == badge(path.name) and f"{url}/blob/main/notebooks/{path.name})" in title[2]
    student = student_version(read(path), path.name).cells[0].source.split("\n")
    assert student[2] == badge(path.name, student=True)
    assert f"{url}/blob/student/notebooks/{path.name})" in student[2]


def test_colab_urls_come_from_the_one_repository_address():
    assert colab_url("06_data.ipynb", repo_url="https://github.com/someone/fork.git") == (
        "https://colab.research.google.com/github/someone/fork/blob/main/notebooks/06_data.ipynb")


def test_points_add_up_to_the_published_totals():
    from course_utils.tools.exercises import course_table, format_table

    rows = course_table(CHAPTERS)
    assert len(rows) == sum(len(exercises(read(p))) for p in CHAPTERS) >= 2 * len(CHAPTERS)
    footer = format_table(rows).strip().splitlines()[-1]
    assert footer.startswith(f"{len(rows)} exercises, {sum(r['points'] for r in rows)} points")
    for path in CHAPTERS:
        total = sum(r["points"] for r in rows if r["chapter"] == path.stem)
        assert f"{path.stem}: {total}" in footer


def test_the_readme_exercise_table_is_generated_from_the_notebooks():
    from course_utils.runtime import REPO_ROOT
    from course_utils.tools.exercises import course_table, format_table

    readme = (REPO_ROOT / "README.md").read_text()
    assert format_table(course_table(CHAPTERS), markdown=True) in readme, (
        "README's exercise table is stale: paste `python3 -m course_utils exercises --markdown`")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda nb, ex: nb.cells[ex["heading_cell"]].metadata["course"]["exercise"].update(points=7),
         "does not show the metadata"),
        (lambda nb, ex: nb.cells[ex["check_cell"]].metadata["nbgrader"].update(locked=False), "check cell"),
        (lambda nb, ex: nb.cells[ex["answer_cell"]].metadata.pop("nbgrader"), "answer cell"),
        (lambda nb, ex: setattr(nb.cells[ex["check_cell"]], "source", "print(1)"), "one call of"),
        (lambda nb, ex: nb.cells[ex["check_cell"]].metadata["nbgrader"].update(
            grade_id=nb.cells[ex["answer_cell"]].metadata["nbgrader"]["grade_id"]), "used twice"),
        (lambda nb, ex: nb.cells.insert(1, copy.deepcopy(nb.cells[ex["answer_cell"]])) or
         nb.cells[1].metadata.pop("nbgrader"), "outside an exercise"),
    ],
)
def test_the_exercise_validator_can_fail(edit, problem):
    nb = read(CHAPTERS[5])
    edit(nb, exercises(nb)[0])
    problems = validate_exercises(nb, CHAPTERS[5].name[:2])
    assert any(problem in p for p in problems), problems


# ---- the validator itself can fail ---------------------------------------------------

GOOD = [
    ("md", "# 99 · Title\n\nWhy this matters."),
    ("md", "## Learning goals\n\n- one\n- two\n- three"),
    ("code", "x = 1"),
    ("md", "## 1. First idea"),
    ("md", "## 2. Second idea"),
    ("md", "## Exercises"),
    ("code", "answer = None\n### BEGIN SOLUTION\nanswer = 2\n### END SOLUTION"),
    ("code", "ch99.check_answer(answer)"),
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
        (lambda c: c.__setitem__(8, ("md", "## Summary\n\n- only one")), "3-6 bullets"),
        (lambda c: c.__setitem__(6, ("code", "### BEGIN SOLUTION\nanswer = 2\nprint(answer)")),
         "unbalanced"),
        (lambda c: c.insert(0, c.pop(8)), "title"),
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
