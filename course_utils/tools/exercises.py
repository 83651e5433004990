"""Exercises as data: the metadata each exercise carries, checked, and the table an
instructor plans with (``python3 -m course_utils exercises``).

Every exercise is three cells, after the chapter's ``## Exercises`` cell:

1. a markdown heading ``### Exercise N — Title (★★☆, ~10 min, 2 points)`` whose cell
   metadata ``course.exercise`` holds ``id`` (``chNN-exN``), ``number``, ``title``,
   ``difficulty`` (1-3 stars), ``minutes``, ``points`` and ``checker``
   (``chNN.check_...``); the heading shows the same values;
2. the answer cell (cells that show the student something may come before it): nbgrader's
   solution cell (``grade_id`` ``<id>-answer``), its solution between
   ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
3. right after it, the check cell: nbgrader's locked, autograded test cell (``grade_id`` ``<id>-check``,
   the exercise's points) whose one line calls the declared checker.

The ``## Exercises`` cell publishes the chapter's total ("Three exercises, 4 points in all.").
"""

from __future__ import annotations

import re

EXERCISE_KEY = ("course", "exercise")
FIELDS = ("id", "number", "title", "difficulty", "minutes", "points", "checker")
STARS = {1: "★☆☆", 2: "★★☆", 3: "★★★"}
HEADING = re.compile(r"^### Exercise (\d+) — (.+) \(([★☆]{3}), ~(\d+) min, (\d+) points?\)$")
TOTAL = re.compile(r"(\w+) exercises?, (\d+) points? in all")
NUMBER_WORDS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven"}


def exercise_meta(cell) -> dict | None:
    """The ``course.exercise`` metadata of a cell, or ``None``."""
    meta = cell.get("metadata", {})
    for key in EXERCISE_KEY:
        meta = meta.get(key, {}) if isinstance(meta, dict) else {}
    return meta or None


def nbgrader_meta(cell) -> dict:
    """nbgrader's metadata of a cell (``{}`` for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def heading(meta: dict) -> str:
    """The first line of an exercise's heading cell, built from its metadata."""
    unit = "point" if meta["points"] == 1 else "points"
    return (f"### Exercise {meta['number']} — {meta['title']} ({STARS[meta['difficulty']]}, "
            f"~{meta['minutes']} min, {meta['points']} {unit})")  # fmt: skip


def total_line(metas: list[dict]) -> str:
    """The sentence of the ``## Exercises`` cell that publishes the chapter's total."""
    n, points = len(metas), sum(m["points"] for m in metas)
    return (f"{NUMBER_WORDS.get(n, n)} exercise{'s' * (n != 1)}, {points} "
            f"point{'s' * (points != 1)} in all.")  # fmt: skip


def exercises(nb) -> list[dict]:
    """The exercises of a notebook, in order: their metadata plus the cell indices of the
    heading, answer and check cells (``heading_cell``, ``answer_cell``, ``check_cell``).
    The answer cell is the first solution cell after the heading (cells that show the
    student something may come between); the check cell follows it."""
    cells, out = nb["cells"], []
    for i, cell in enumerate(cells):
        meta = exercise_meta(cell)
        if meta is not None:
            answer = next((j for j in range(i + 1, len(cells)) if nbgrader_meta(cells[j]).get("solution")
                           or exercise_meta(cells[j])), len(cells))  # fmt: skip
            out.append({**meta, "heading_cell": i, "answer_cell": answer, "check_cell": answer + 1})
    return out


def validate_exercises(nb, chapter: str) -> list[str]:
    """Problems with a notebook's exercises (an empty list when all is well)."""
    cells, problems = nb["cells"], []
    found = exercises(nb)
    if not found:
        return ["no exercise carries course.exercise metadata"]
    for n, ex in enumerate(found, start=1):
        problems += [f"{ex.get('id', n)}: {p}" for p in _exercise_problems(cells, ex, chapter, n)]
    problems += _placement_problems(cells, found)
    intro = next((c for c in cells if c["cell_type"] == "markdown"
                  and "".join(c["source"]).startswith("## Exercises")), None)  # fmt: skip
    if intro is None or total_line(found) not in "".join(intro["source"]):
        problems.append(f"the '## Exercises' cell must say {total_line(found)!r}")
    return problems


def _exercise_problems(cells, ex: dict, chapter: str, n: int) -> list[str]:
    problems = [f"metadata misses {k!r}" for k in FIELDS if k not in ex]
    if problems:
        return problems
    if ex["id"] != f"ch{chapter}-ex{n}" or ex["number"] != n:
        problems.append(f"id/number should be ch{chapter}-ex{n} / {n}")
    if ex["difficulty"] not in STARS or not (isinstance(ex["points"], int) and ex["points"] > 0):
        problems.append("difficulty must be 1-3 and points a positive int")
        return problems
    first = "".join(cells[ex["heading_cell"]]["source"]).splitlines()[0]
    if first != heading(ex):
        problems.append(f"heading {first!r} does not show the metadata: {heading(ex)!r}")
    if ex["check_cell"] >= len(cells) or exercise_meta(cells[ex["answer_cell"]]):
        return problems + ["the answer and check cells are missing"]
    answer, check = cells[ex["answer_cell"]], cells[ex["check_cell"]]
    want_answer = {"solution": True, "grade": False, "locked": False, "grade_id": f"{ex['id']}-answer"}
    want_check = {"solution": False, "grade": True, "locked": True, "grade_id": f"{ex['id']}-check",
                  "points": ex["points"]}  # fmt: skip
    for cell, want, what in ((answer, want_answer, "answer"), (check, want_check, "check")):
        meta = nbgrader_meta(cell)
        wrong = {k: meta.get(k) for k, v in want.items() if meta.get(k) != v}
        if cell["cell_type"] != "code" or wrong or meta.get("schema_version") != 3:
            problems.append(f"the {what} cell needs nbgrader metadata {want} (schema 3); wrong: {wrong}")
    if "### BEGIN SOLUTION" not in "".join(answer["source"]):
        problems.append("the answer cell has no solution region")
    call = "".join(check["source"]).strip()
    if not re.fullmatch(rf"{re.escape(ex['checker'])}\([^\n]*\)", call):
        problems.append(f"the check cell should be one call of {ex['checker']}, not {call!r}")
    return problems


def _placement_problems(cells, found: list[dict]) -> list[str]:
    """Solution regions only in answer cells; grade ids unique."""
    answers = {ex["answer_cell"] for ex in found}
    problems = [f"cell {i}: a solution region outside an exercise's answer cell"
                for i, c in enumerate(cells)
                if "### BEGIN SOLUTION" in "".join(c["source"]) and i not in answers]  # fmt: skip
    ids = [nbgrader_meta(c).get("grade_id") for c in cells if nbgrader_meta(c)]
    problems += [f"grade_id {g!r} is used twice" for g in sorted({g for g in ids if ids.count(g) > 1})]
    return problems


def checker_function(checker: str):
    """The checker an exercise declares (``"ch06.check_count_answer"``)."""
    import importlib

    module, name = checker.split(".")
    return getattr(importlib.import_module(f"course_utils.checks.{module}"), name)


def what_it_checks(checker: str) -> str:
    """The first sentence of a checker's docstring (``"ch06.check_count_answer"``)."""
    doc = checker_function(checker).__doc__ or ""
    doc = " ".join(doc.strip().split("\n\n")[0].split()).split(". ")[0].rstrip(".")
    doc = re.sub(r"^Check(s)? Exercise \d+: ", "", doc)
    doc = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", doc)  # Sphinx roles -> code
    return doc.replace("``", "`")


def checker_title(checker: str) -> str:
    """The title a checker records its outcome under (``"ch06.check_count_answer"``)."""
    return checker_function(checker).title


def points_by_title(path) -> dict[str, int]:
    """A notebook's exercises as ``{checker title: points}`` (how ``grade`` scores them)."""
    import json
    from pathlib import Path

    return {checker_title(ex["checker"]): ex["points"] for ex in exercises(json.loads(Path(path).read_text()))}


def course_table(paths) -> list[dict]:
    """One row per exercise of every chapter in ``paths`` (notebooks, in course order)."""
    import json

    rows = []
    for path in paths:
        nb = json.loads(path.read_text())
        for ex in exercises(nb):
            rows.append({"chapter": path.stem, **{k: ex[k] for k in FIELDS},
                         "checks": what_it_checks(ex["checker"])})  # fmt: skip
    return rows


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The exercises table, with each chapter's and the course's totals."""
    header = ["chapter", "exercise", "difficulty", "minutes", "points", "what it checks"]
    body = [[r["chapter"], f"{r['number']}. {r['title']}", STARS[r["difficulty"]], str(r["minutes"]),
             str(r["points"]), r["checks"]] for r in rows]  # fmt: skip
    chapters = sorted({r["chapter"] for r in rows})
    totals = [f"{c}: {sum(r['points'] for r in rows if r['chapter'] == c)}" for c in chapters]
    footer = (f"{len(rows)} exercises, {sum(r['points'] for r in rows)} points, "
              f"~{sum(r['minutes'] for r in rows)} min in all (points per chapter: {', '.join(totals)})")  # fmt: skip
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines) + f"\n\n{footer}\n"
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join([fmt.format(*header), *(fmt.format(*cells) for cells in body), "", footer]) + "\n"
