"""Every chapter's student version, as `release` writes it, runs top to bottom from a fresh
kernel and reports each of its exercises as not attempted (never crashes on them).

This executes every chapter a second time (nbval runs the versions with solutions), so it
costs as long as the notebooks themselves; it is what a student meets first.
"""

from __future__ import annotations

import nbformat
import pytest

from course_utils.tools.exercises import points_by_title
from course_utils.tools.notebooks import list_chapters, read, student_version
from course_utils.tools.runner import execute_notebook

CHAPTERS = list_chapters()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_student_version_runs_and_reports_every_exercise_not_attempted(path, tmp_path):
    student = tmp_path / path.name
    nbformat.write(student_version(read(path), path.name), str(student))
    result = execute_notebook(student, tmp_path / "build", html=False, progress=False, timeout=900)
    assert result.passed, f"the student version of {path.stem} stopped: {result.error}"
    titles = points_by_title(path)
    assert result.exercises == dict.fromkeys(titles, "not attempted")
