"""The instructor's round trip with the real nbgrader, offline, as an instructor types it:

    python3 -m course_utils nbgrader-course COURSE 01 02
    cd COURSE && nbgrader generate_assignment ch01 && nbgrader autograde ch01 --create
    nbgrader generate_feedback ch01

Three submissions per chapter: the source with its solutions (full points), the student
version as released (zero points, no crash), and the solutions with one realistic mistake
(that exercise's points lost, the others kept). The course's own ``release`` and ``grade``
must give the same student cells and the same per-exercise results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.tools.exercises import checker_title, exercises
from course_utils.tools.nbgrader_course import (
    assignment_name,
    released_notebook,
    scores,
    write_course,
)
from course_utils.tools.notebooks import (
    leaked_solution_lines,
    read,
    resolve_chapters,
    student_version,
)
from course_utils.tools.runner import execute_notebook

CHAPTERS = resolve_chapters(["01", "02"])
#: One realistic mistake per chapter: (exercise, text in its answer cell, the student's version).
MISTAKES = {
    "01_background.ipynb": ("ch01-ex3", '{"stage 1": {"projector"}', '{"stage 1": {"projector", "language_model"}'),
    "02_attention.ipynb": ("ch02-ex2", " / math.sqrt(q.shape[-1])", ""),  # forgot to scale
}
STUDENTS = ("solved", "released", "one_mistake")


def _nbgrader(root: Path, env: dict, *args: str) -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _with_mistake(nb: dict, name: str) -> dict:
    exercise_id, right, wrong = MISTAKES[name]
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == f"{exercise_id}-answer":
            source = "".join(cell["source"])
            assert right in source, f"{name}: the mistake no longer applies to {exercise_id}"
            cell["source"] = source.replace(right, wrong)
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course directory after generate_assignment, three submissions, autograde and
    generate_feedback, for chapters 01 and 02."""
    tmp = tmp_path_factory.mktemp("nbgrader")
    root = write_course(tmp / "course", CHAPTERS)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COURSE_CACHE_DIR": str(tmp / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "MPLBACKEND": "Agg"}  # fmt: skip
    env.pop("COURSE_STRICT_CHECKS", None)  # nbgrader's own execution must be enough
    for path in CHAPTERS:
        name = assignment_name(path)
        _nbgrader(root, env, "generate_assignment", name)
        solved = json.loads((root / "source" / name / path.name).read_text())
        submissions = {"solved": solved, "released": released_notebook(root, path),
                       "one_mistake": _with_mistake(solved, path.name)}  # fmt: skip
        for student, nb in submissions.items():
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            (folder / path.name).write_text(json.dumps(nb))
        _nbgrader(root, env, "autograde", name, "--create")
        _nbgrader(root, env, "generate_feedback", name)
    return root, env


def _points(path: Path) -> dict[str, int]:
    return {f"{ex['id']}-check": ex["points"] for ex in exercises(json.loads(path.read_text()))}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_solutions_score_full_points(course, path):
    root, _ = course
    assert scores(root, assignment_name(path), path.stem, "solved") == _points(path)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_released_notebook_scores_zero_and_runs_to_the_end(course, path):
    root, _ = course
    got = scores(root, assignment_name(path), path.stem, "released")
    assert got == dict.fromkeys(_points(path), 0.0)
    graded = json.loads((root / "autograded" / "released" / assignment_name(path) / path.name).read_text())
    errors = [(c["metadata"].get("nbgrader", {}).get("grade_id"), o["ename"])
              for c in graded["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if o["output_type"] == "error"]  # fmt: skip
    assert errors, "the unattempted exercises should have failed their test cells"
    assert all(gid and gid.endswith("-check") and ename == "NotAttemptedError" for gid, ename in errors), errors
    code = [c for c in graded["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "the notebook did not run to the end"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_one_mistake_loses_that_exercise_only(course, path):
    root, _ = course
    wrong = f"{MISTAKES[path.name][0]}-check"
    expected = {**_points(path), wrong: 0.0}
    assert scores(root, assignment_name(path), path.stem, "one_mistake") == expected


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_feedback_is_generated_for_every_submission(course, path):
    root, _ = course
    for student in STUDENTS:
        html = root / "feedback" / student / assignment_name(path) / f"{path.stem}.html"
        assert html.is_file() and "Score" in html.read_text()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_course_release_gives_nbgraders_student_cells(course, path):
    root, _ = course
    ours = student_version(read(path), path.name)
    theirs = released_notebook(root, path)
    assert [c.cell_type for c in ours.cells] == [c["cell_type"] for c in theirs["cells"]]
    for mine, nbg in zip(ours.cells, theirs["cells"]):
        assert mine.source == "".join(nbg["source"]), mine.source[:80]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_course_grade_agrees_with_nbgrader(course, path, tmp_path):
    """The course's `grade` (execute, then read each checker's outcome) and nbgrader give
    every exercise the same verdict on the same three submissions."""
    root, env = course
    titles = {f"{ex['id']}-check": checker_title(ex["checker"]) for ex in exercises(json.loads(path.read_text()))}
    for student in STUDENTS:
        submission = root / "submitted" / student / assignment_name(path) / path.name
        result = execute_notebook(submission, tmp_path / student, html=False, allow_errors=True,
                                  timeout=900)  # fmt: skip
        nbg = scores(root, assignment_name(path), path.stem, student)
        ours = {gid: result.exercises.get(title) for gid, title in titles.items()}
        for gid, outcome in ours.items():
            assert (outcome == "passed") == (nbg[gid] > 0), (student, gid, outcome, nbg[gid])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_line_of_a_solution_survives_in_nbgraders_release(course, path):
    import nbformat

    root, _ = course
    released = nbformat.reads(json.dumps(released_notebook(root, path)), as_version=4)
    assert not leaked_solution_lines(read(path), released)


def test_nbgrader_course_command_writes_a_course(tmp_path):
    from course_utils.tools.cli import main

    assert main(["nbgrader-course", str(tmp_path / "c"), "6"]) == 0
    assert (tmp_path / "c" / "nbgrader_config.py").is_file()
    assert (tmp_path / "c" / "source" / "ch06" / "06_data.ipynb").is_file()
    shutil.rmtree(tmp_path / "c")
