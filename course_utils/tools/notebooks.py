"""The course's notebooks as data: finding chapters, the skeleton every chapter follows,
building a notebook from cells, and the student release (solutions removed).

The skeleton, in order: a ``# Title`` cell; a motivation paragraph; ``## Learning goals``
with 3-5 bullets; the setup cell (first code cell, see :mod:`course_utils.tools.colab`);
numbered sections ``## 1. ...``, ``## 2. ...``; ``## Exercises``; ``## Summary`` with 3-6
bullets; ``## Further reading``. Exercise solutions sit between nbgrader's markers.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from course_utils.runtime import REPO_ROOT
from course_utils.tools.colab import badge, setup_cell_source

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NAME_RE = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
REQUIRED_HEADINGS = ("Learning goals", "Exercises", "Summary", "Further reading")
#: A solution line this long quoted in a chapter's prose gives the exercise away.
PROSE_LEAK_CHARS = 20
#: A markdown heading of levels 1-4; its text is what ``chapter NN, "..."`` references name.
HEADING = re.compile(r"^#{1,4}\s+(.*?)\s*$")
#: ``chapter NN, "<heading>"``: how the package and the hints point to a section.
CHAPTER_REFERENCE = re.compile(r'\bchapter (\d\d), "([^"]+)"', re.IGNORECASE)


class ChapterNotFound(ValueError):
    pass


def list_chapters(folder: Path | None = None) -> list[Path]:
    """Every ``NN_topic.ipynb`` in course order."""
    folder = Path(folder or NOTEBOOK_DIR)
    return sorted(p for p in folder.glob("*.ipynb") if NAME_RE.match(p.name))


def resolve_chapters(names: list[str], folder: Path | None = None) -> list[Path]:
    """Map ``["1", "02", "attention", "notebooks/03_x.ipynb"]`` to notebook paths."""
    chapters = list_chapters(folder)
    if not names:
        return chapters
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb":
            if not path.is_file():
                raise ChapterNotFound(f"no such notebook: {name}")
            found.append(path)
            continue
        if name.isdigit():
            matches = [p for p in chapters if int(p.name[:2]) == int(name)]
        else:
            matches = [p for p in chapters if name.lower() in p.stem.lower()]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in chapters) or "none"
            why = "no chapter matches" if not matches else "several chapters match"
            raise ChapterNotFound(f"{why} {name!r}; chapters: {known}")
        found.append(matches[0])
    return found


def read(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def markdown_headings(cells) -> set[str]:
    """The text of every markdown heading (``#`` to ``####``) of a notebook's cells (dicts
    or nbformat nodes), code fences skipped."""
    found = set()
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in "".join(cell["source"]).splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            match = None if fenced else HEADING.match(line)
            if match:
                found.add(match.group(1))
    return found


@functools.lru_cache(maxsize=4)
def chapter_headings(folder: Path | None = None) -> dict[str, tuple[Path, frozenset[str]]]:
    """``{"04": (notebook path, its headings)}`` for every chapter (read once per process)."""
    import json

    return {p.name[:2]: (p, frozenset(markdown_headings(json.loads(p.read_text())["cells"])))
            for p in list_chapters(folder)}  # fmt: skip


def reference_problems(text: str, folder: Path | None = None) -> tuple[int, list[str]]:
    """``(valid references, problems)`` of the ``chapter NN, "heading"`` references in
    ``text`` (whitespace collapsed first, so a reference may wrap across lines)."""
    headings = chapter_headings(folder)
    valid, problems = 0, []
    for number, heading in CHAPTER_REFERENCE.findall(" ".join(text.split())):
        if number not in headings:
            problems.append(f'chapter {number}, "{heading}": there is no notebooks/{number}_*.ipynb')
        elif heading in headings[number][1]:
            valid += 1
        else:
            problems.append(f'chapter {number}, "{heading}": {headings[number][0].name} has no such heading')
    return valid, problems


def make_notebook(cells: list[tuple[str, str]], setup: bool = True):
    """Build a notebook from ``("md"|"code", source)`` pairs.

    With ``setup=True`` the setup cell is inserted as the first code cell.
    """
    import nbformat.v4 as v4

    nb = v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    out, placed = [], not setup
    for kind, source in cells:
        source = source.strip("\n")
        if kind == "code":
            if not placed:
                out.append(v4.new_code_cell(setup_cell_source()))
                placed = True
            out.append(v4.new_code_cell(source))
        elif kind == "md":
            out.append(v4.new_markdown_cell(source))
        else:
            raise ValueError(f"cell kind must be 'md' or 'code', got {kind!r}")
    for i, cell in enumerate(out):  # stable ids keep diffs clean
        cell["id"] = f"cell-{i:03d}"
    nb.cells = out
    return nb


def strip_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def _headings(cell) -> list[str]:
    return [ln.strip() for ln in cell.source.splitlines() if ln.startswith("#")]


def set_badge(nb, name: str, student: bool = False) -> bool:
    """Put the chapter's "Open in Colab" badge on the line after its title (replacing an
    old one); returns whether the notebook changed."""
    title = nb.cells[0]
    lines = title.source.split("\n")
    rest = lines[1:]
    while rest and (not rest[0].strip() or rest[0].startswith("[![Open In Colab]")):
        rest = rest[1:]
    source = "\n".join([lines[0], "", badge(name, student), "", *rest]).rstrip("\n")
    changed = source != title.source
    title.source = source
    return changed


def validate_skeleton(nb, filename: str | None = None) -> list[str]:
    """Problems with a notebook's structure, as readable strings (empty when fine). With
    the notebook's ``filename``, its Colab badge and its exercises are checked too."""
    problems = []
    cells = nb.cells
    code = [c for c in cells if c.cell_type == "code"]
    md = [c for c in cells if c.cell_type == "markdown"]
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        problems.append("the first cell must be a markdown title starting with '# '")
    else:
        body = cells[0].source.split("\n", 1)[1].strip() if "\n" in cells[0].source else ""
        if not body and (len(cells) < 2 or cells[1].cell_type != "markdown"):
            problems.append("a motivation paragraph must follow the title")
    if not code or code[0].source != setup_cell_source():
        problems.append("the first code cell must be the setup cell (python -m course_utils sync-setup)")
    for cell in code:
        if cell.get("outputs") or cell.get("execution_count"):
            problems.append("committed with outputs or execution counts (strip them)")
            break
    # headings in order
    h2 = [h[3:].strip() for c in md for h in _headings(c) if h.startswith("## ")]
    numbered = [h for h in h2 if re.match(r"^\d+\.", h)]
    for name in REQUIRED_HEADINGS:
        if name not in h2:
            problems.append(f"missing the '## {name}' section")
    if not numbered:
        problems.append("no numbered sections ('## 1. ...')")
    else:
        nums = [int(h.split(".")[0]) for h in numbered]
        if nums != list(range(1, len(nums) + 1)):
            problems.append(f"numbered sections are not 1..n in order: {nums}")
    if not problems:
        order = ["Learning goals", numbered[0], "Exercises", "Summary", "Further reading"]
        positions = [h2.index(h) for h in order]
        if positions != sorted(positions):
            problems.append(
                "sections out of order; expected Learning goals, numbered sections, "
                "Exercises, Summary, Further reading"
            )
    for name, lo, hi in (("Learning goals", 3, 5), ("Summary", 3, 6)):
        n = _bullets_after(md, name)
        if n is not None and not lo <= n <= hi:
            problems.append(f"'## {name}' should have {lo}-{hi} bullets, has {n}")
    for i, cell in enumerate(code):
        if cell.source.count(BEGIN) != cell.source.count(END):
            problems.append(f"code cell {i}: unbalanced solution markers")
    if filename is not None:
        from course_utils.tools.exercises import validate_exercises

        lines = cells[0].source.split("\n") if cells else []
        if len(lines) < 3 or lines[2] != badge(filename):
            problems.append("the line after the title must be the Colab badge (python -m course_utils sync-setup)")
        problems += validate_exercises(nb, filename[:2])
    return problems


def _bullets_after(md_cells, name: str) -> int | None:
    for cell in md_cells:
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.strip() == f"## {name}":
                count = 0
                for rest in lines[i + 1 :]:
                    if rest.startswith("#"):
                        break
                    if re.match(r"^\s*[-*] ", rest) and not rest.startswith("  "):
                        count += 1
                return count
    return None


def student_source(source: str) -> str:
    """Replace every solution region by a placeholder, as nbgrader does.

    Inside a function (indented markers) the placeholder raises ``NotImplementedError``;
    at the top level it leaves the starter code's placeholder (e.g. ``answer = None``) as is.
    """
    out, skipping = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            if indent:
                out.append(f"{indent}raise NotImplementedError()")
            skipping = True
        elif stripped == END:
            skipping = False
        elif not skipping:
            out.append(line)
    if skipping:
        raise ValueError("a solution region is not closed by '### END SOLUTION'")
    return "\n".join(out)


def solution_lines(nb) -> list[str]:
    """The lines of a notebook's solution regions that a student version must not show:
    stripped, without blank lines, comments and lone brackets, and without the lines that
    the chapter's own code shows outside every solution region (the lesson builds the idea
    before an exercise asks for it again)."""
    inside, outside = [], set()
    for cell in nb.cells:
        skipping = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped in (BEGIN, END):
                skipping = stripped == BEGIN
            elif skipping:
                inside.append(stripped)
            elif cell.cell_type == "code":
                outside.add(stripped)
    keep = [s for s in inside if s and not s.startswith("#") and any(ch.isalnum() for ch in s)]
    return [s for s in dict.fromkeys(keep) if s not in outside]


def leaked_solution_lines(source_nb, student_nb) -> list[str]:
    """Solution lines (:func:`solution_lines`) that ``student_nb`` still shows: as a line of
    its code, or quoted in its prose (lines of at least :data:`PROSE_LEAK_CHARS` characters:
    the prose may well name ``model.train()``)."""
    code = {ln.strip() for c in student_nb.cells if c.cell_type == "code" for ln in c.source.splitlines()}
    prose = "\n".join(c.source for c in student_nb.cells if c.cell_type == "markdown")
    return [s for s in solution_lines(source_nb)
            if s in code or (len(s) >= PROSE_LEAK_CHARS and s in prose)]  # fmt: skip


def student_version(nb, name: str | None = None):
    """A copy of ``nb`` without solutions (and without outputs); with the notebook's file
    ``name``, its badge opens the student version."""
    import copy

    nb = strip_outputs(copy.deepcopy(nb))
    if name is not None:
        set_badge(nb, name, student=True)
    for cell in nb.cells:
        if BEGIN in cell.source:
            cell.source = student_source(cell.source)
    return nb
