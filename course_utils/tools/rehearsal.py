"""The student release rehearsed inside the chapter's own execution.

A student meets the release first: every exercise still holds its placeholder, and the
chapter must run to the end and report each exercise as *not attempted*. Executing the
release as a second notebook would double the test suite's time, so the tests execute each
chapter once, as :func:`with_released_exercises` builds it: before every exercise's answer
cell, the release's own answer cell and check cell run (tagged ``course.released``), so the
same kernel first meets the placeholder, then the solution.

What that order cannot see, a released stub reached by code that runs later at the top
level (``out = my_attention(q, k, v)`` in a later cell crashes the release, never the
rehearsal), :func:`stub_uses` finds by reading the code instead.
"""

from __future__ import annotations

import ast
import copy
import re

from course_utils.tools.exercises import exercises
from course_utils.tools.notebooks import strip_outputs, student_source

#: The metadata key (under ``course``) of the release's cells in a rehearsal.
RELEASED_KEY = "released"
#: A checker call (``ch02.check_softmax(my_softmax)``): passing a stub to it is safe.
CHECKER = re.compile(r"^ch\d\d$")


def with_released_exercises(nb):
    """A copy of ``nb`` (outputs removed) in which each exercise's released answer cell and
    check cell run just before its answer cell; those cells carry ``course.released: true``."""
    nb = strip_outputs(copy.deepcopy(nb))
    for ex in reversed(exercises(nb)):
        answer, check = ex["answer_cell"], ex["check_cell"]
        released = [copy.deepcopy(nb.cells[answer]), copy.deepcopy(nb.cells[check])]
        released[0].source = student_source(released[0].source)
        for cell in released:
            if "id" in cell:  # cell ids are unique within a notebook
                cell["id"] = f"{cell['id']}-released"[-64:]
            cell.metadata.pop("nbgrader", None)
            cell.metadata.setdefault("course", {})[RELEASED_KEY] = True
        nb.cells[answer:answer] = released
    return nb


def released_cells(nb) -> list:
    """The cells :func:`with_released_exercises` added (answer, check, answer, check, ...)."""
    return [c for c in nb.cells if c.get("metadata", {}).get("course", {}).get(RELEASED_KEY)]


def _top_level_loads(tree: ast.AST) -> set[str]:
    """Names a module loads when it runs: not inside a function or lambda body (a class body
    does run), and not a bare argument of a checker call (``chNN.check_...(name)``)."""
    loads, todo = set(), [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args  # decorators and default values run; the body does not
            todo += [*getattr(node, "decorator_list", []), *args.defaults, *filter(None, args.kw_defaults)]
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.add(node.id)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and CHECKER.match(node.func.value.id)):
            todo += [a for a in [*node.args, *(k.value for k in node.keywords)]
                     if not isinstance(a, ast.Name)]  # fmt: skip
            continue
        todo += list(ast.iter_child_nodes(node))
    return loads


def _top_level_binds(tree: ast.Module, imports: bool = True) -> set[str]:
    """Names a cell binds at its top level: assignments, functions, classes, and with
    ``imports`` the names it imports."""
    names = set()
    for node in tree.body:
        if imports and isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def stub_uses(nb) -> list[str]:
    """Where the release would reach a placeholder outside a checker: a later code cell that
    uses, at its top level, a name an exercise's answer cell binds (its stub or placeholder
    in the release). An empty list when the release runs to the end whatever is left undone."""
    answer_cells = {ex["answer_cell"]: ex["id"] for ex in exercises(nb)}
    stubs, problems = {}, []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(student_source(cell.source))
        for name in sorted(_top_level_loads(tree) & set(stubs)):
            problems.append(f"cell {i} uses {name!r}, which the release leaves as the "
                            f"placeholder of {stubs[name]}")  # fmt: skip
        if i in answer_cells:
            stubs.update(dict.fromkeys(_top_level_binds(tree, imports=False), answer_cells[i]))
        else:
            for name in _top_level_binds(tree):
                stubs.pop(name, None)  # the chapter binds it again: no longer the stub
    return problems
