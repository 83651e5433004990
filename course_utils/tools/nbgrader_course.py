"""The course under nbgrader: a course directory an instructor can use as it is.

``python3 -m course_utils nbgrader-course DIR`` writes ``DIR/nbgrader_config.py`` and one
source assignment per chapter, ``DIR/source/chNN/NN_topic.ipynb``. Then, in ``DIR``::

    nbgrader generate_assignment ch06            # release/ch06/: the student version
    nbgrader autograde ch06 --create             # submitted/<student>/ch06/ -> autograded/
    nbgrader generate_feedback ch06              # feedback/<student>/ch06/*.html

What the configuration adds to nbgrader's defaults:

* the student version is the course's own (:class:`CourseClearSolutions`): a solution
  inside a function becomes ``raise NotImplementedError()``, one at the top level leaves
  the starter value (``answer = None``), so a released notebook runs top to bottom and
  reports its exercises as not attempted; ``release`` and nbgrader give the same cells;
* cells may run for minutes (``Execute.timeout``): the chapters train models;
* nothing else: while nbgrader executes a notebook it sets ``NBGRADER_EXECUTION``, and the
  course's checkers then raise for an unattempted exercise, so it scores zero.

nbgrader itself is an optional dependency (the course's ``test`` extra installs it); this
module imports it only inside :class:`CourseClearSolutions`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

COURSE_ID = "visual-instruction-tuning"
CELL_TIMEOUT_S = 900

CONFIG = f'''\
# nbgrader configuration of the course "Visual Instruction Tuning, from attention to
# applications" (written by `python3 -m course_utils nbgrader-course`).
from nbgrader.converters import GenerateAssignment

from course_utils.tools.nbgrader_course import CourseClearSolutions

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "{COURSE_ID}"
# The student version is the course's own: the same cells as `python3 -m course_utils release`.
c.GenerateAssignment.preprocessors = [
    CourseClearSolutions if p.__name__ == "ClearSolutions" else p
    for p in GenerateAssignment.class_traits()["preprocessors"].default()
]
# The chapters train small models: give a cell minutes, not nbgrader's default 30 s.
c.Execute.timeout = {CELL_TIMEOUT_S}
'''


def assignment_name(notebook: Path) -> str:
    """``06_data.ipynb`` -> ``ch06``: the nbgrader assignment of a chapter."""
    return f"ch{notebook.name[:2]}"


def write_course(root: Path, chapters: list[Path]) -> Path:
    """Write an nbgrader course directory at ``root`` with ``chapters`` as its source
    assignments (their Colab badges already point to the student versions). Returns
    ``root``. An existing ``nbgrader_config.py`` or assignment is replaced."""
    import nbformat

    from course_utils.tools.notebooks import read, set_badge

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    for path in chapters:
        folder = root / "source" / assignment_name(path)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        nb = read(path)
        set_badge(nb, path.name, student=True)
        nbformat.write(nb, str(folder / path.name))
    return root


def scores(root: Path, assignment: str, notebook: str, student: str) -> dict[str, float]:
    """The autograded score of every test cell (``grade_id`` -> points) of one submission,
    read from the course directory's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(notebook, assignment, student)
        return {g.name: g.score for g in nb.grades if g.auto_score is not None}


def released_notebook(root: Path, path: Path) -> dict:
    """The student version nbgrader released for a chapter, as JSON."""
    return json.loads((Path(root) / "release" / assignment_name(path) / path.name).read_text())


def _course_clear_solutions():
    from nbgrader.preprocessors import ClearSolutions

    from course_utils.tools.notebooks import BEGIN, student_source

    class CourseClearSolutions(ClearSolutions):
        """nbgrader's ``ClearSolutions`` with the course's placeholders (see
        :func:`course_utils.tools.notebooks.student_source`); markdown cells and
        nbgrader's metadata checks stay nbgrader's own."""

        def _replace_solution_region(self, cell, language):
            if cell.cell_type != "code" or BEGIN not in cell.source:
                return super()._replace_solution_region(cell, language)
            cell.source = student_source(cell.source)
            return True

    return CourseClearSolutions


_BUILT: dict = {}


def __getattr__(name):  # the class is built on first use, so nbgrader stays optional
    if name != "CourseClearSolutions":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = _course_clear_solutions()
    return _BUILT[name]
