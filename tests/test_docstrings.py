"""From the code to the lesson, and sizes a reader can hold in their head.

Like d2l's "Defined in :numref:`...`", every public class and function of the lesson
modules says in its docstring which chapter section builds, uses or introduces it, as
``chapter NN, "<heading>"``: ``NN`` is the two-digit chapter number and ``<heading>`` the
exact text of a markdown heading (``#`` to ``####``, the ``#``'s and surrounding
whitespace stripped) of ``notebooks/NN_*.ipynb``. Every such reference anywhere in the
package must name a heading that exists, so renaming a section cannot leave stale pointers.

Sizes: a module has at most :data:`MAX_MODULE_LINES` lines and a function or method at most
:data:`MAX_FUNCTION_LINES` (``end_lineno - lineno + 1`` of its ``def``, decorators not
counted), unless the chapter teaches it as one piece and says so: then the line right
after its docstring (or, without a docstring, right after the line that ends its
signature) is a comment ``# kept whole: <why the lesson needs it whole>``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import re
import tokenize
from pathlib import Path

import course_utils
from course_utils.runtime import REPO_ROOT
from course_utils.tools.notebooks import (
    chapter_headings,
    reference_problems,
)

PACKAGE = REPO_ROOT / "course_utils"
NOTEBOOKS = REPO_ROOT / "notebooks"
#: Subpackages and modules whose objects need no chapter reference (the course machinery).
NOT_LESSONS = ("course_utils.tools", "course_utils.__main__")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
KEPT_WHOLE = re.compile(r"^\s*# kept whole: \S")


# ---- the lesson modules and their public objects -------------------------------------------


def lesson_modules() -> list:
    """Every module of the package but the course machinery (:data:`NOT_LESSONS`), imported."""
    found, todo = [course_utils], [course_utils]
    while todo:
        package = todo.pop()
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name.startswith(NOT_LESSONS):
                continue
            module = importlib.import_module(info.name)
            found.append(module)
            if info.ispkg:
                todo.append(module)
    return sorted(found, key=lambda m: m.__name__)


def defined_here(module) -> list[tuple[str, object]]:
    """``(qualified name, object)`` of the public classes and functions ``module`` defines
    (names imported from elsewhere are skipped; decorated functions count)."""
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj) or (callable(obj) and inspect.isfunction(inspect.unwrap(obj))):
            out.append((f"{module.__name__}.{name}", obj))
    return out


def missing_references(objects) -> list[str]:
    """One message per object whose own docstring names no existing chapter section."""
    problems = []
    for qualname, obj in objects:
        doc = obj.__doc__ if isinstance(obj.__doc__, str) else ""  # own docstring, not a base's
        valid, wrong = reference_problems(doc)
        if valid:
            continue
        if wrong:
            problems.append(f"{qualname}: its docstring names no existing heading ({'; '.join(wrong)})")
        elif not doc.strip():
            problems.append(f"{qualname}: has no docstring; write one that ends with e.g. "
                            'Built in chapter NN, "<a heading of notebooks/NN_*.ipynb>".')
        else:
            problems.append(f"{qualname}: its docstring names no chapter section; add e.g. "
                            'Used in chapter NN, "<a heading of notebooks/NN_*.ipynb>".')
    return problems


def test_the_notebooks_have_headings_to_point_to():
    headings = chapter_headings()
    assert len(headings) >= 9, sorted(headings)
    assert "4. Masks: padding and causality" in headings["02"][1]
    assert all(len(h) >= 5 for _, h in headings.values()), "a chapter notebook lost its headings"


def test_every_public_object_names_the_chapter_section_that_builds_it():
    objects = [item for module in lesson_modules() for item in defined_here(module)]
    assert len(objects) > 200, f"only {len(objects)} public objects found: is the scan broken?"
    problems = missing_references(objects)
    assert not problems, (f"{len(problems)} public objects do not point to their lesson:\n"
                          + "\n".join(problems))


def test_every_chapter_reference_in_the_package_names_a_real_heading():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        _, wrong = reference_problems(path.read_text(encoding="utf-8"))
        problems += [f"{path.relative_to(REPO_ROOT)}: {w}" for w in wrong]
    assert not problems, "stale chapter references:\n" + "\n".join(problems)


def test_the_reference_rule_catches_what_it_should():
    def documented():
        """Does a thing.

        Built in chapter 02, "4. Masks: padding and
        causality"."""

    def wrong_heading():
        """Does a thing. Built in chapter 02, "Masks"."""

    def no_reference():
        """Does a thing."""

    def no_docstring():
        pass

    objects = [(f.__name__, f) for f in (documented, wrong_heading, no_reference, no_docstring)]
    problems = missing_references(objects)
    assert [p.split(":")[0] for p in problems] == ["wrong_heading", "no_reference", "no_docstring"]
    assert "has no such heading" in problems[0] and "has no docstring" in problems[2]


# ---- sizes --------------------------------------------------------------------------------


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def signature_end(tokens: list[tokenize.TokenInfo], node: ast.AST) -> int:
    """The line of the ``:`` that ends ``node``'s ``def`` (brackets in the signature skipped)."""
    start = next(i for i, t in enumerate(tokens) if t.start == (node.lineno, node.col_offset))
    depth = 0
    for tok in tokens[start:]:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            return tok.start[0]
    raise AssertionError(f"no end of signature for {node.name} at line {node.lineno}")


def marker_line(lines: list[str], tokens, node: ast.AST) -> str:
    """The line that must carry ``# kept whole: ...``: right after the docstring, or right
    after the signature when there is none."""
    first = node.body[0]
    has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
               and isinstance(first.value.value, str))  # fmt: skip
    after = first.end_lineno if has_doc else signature_end(tokens, node)
    return lines[after] if after < len(lines) else ""


def long_functions(source: str, where: str) -> list[str]:
    """One message per function or method of ``source`` that is too long and not kept whole."""
    lines = source.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES and not KEPT_WHOLE.match(marker_line(lines, tokens, node)):
            problems.append(
                f"{where}:{node.lineno} {node.name} is {length} lines (limit {MAX_FUNCTION_LINES}): "
                "split it, or put '# kept whole: <why the lesson needs it whole>' on the line "
                "right after its docstring (or signature)")
    return problems


def test_modules_are_at_most_500_lines():
    too_long = {str(p.relative_to(REPO_ROOT)): n for p in package_files()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"


def test_functions_are_at_most_60_lines_unless_kept_whole():
    problems = []
    for path in package_files():
        problems += long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
    assert not problems, "\n".join(problems)


def test_the_size_rule_reads_the_marker_where_it_should():
    filler = "".join(f"    x{i} = {i}\n" for i in range(60))
    kept_doc = f'def a(\n    n: int,\n) -> int:\n    """Doc."""\n    # kept whole: one piece\n{filler}'
    kept_sig = f"def b(n=(1, 2)):\n    # kept whole: one piece\n{filler}"
    late = f'def c():\n    """Doc."""\n    y = 0\n    # kept whole: too late\n{filler}'
    short = "def d():\n    return 1\n"
    assert long_functions(kept_doc, "m") == [] and long_functions(kept_sig, "m") == []
    assert long_functions(short, "m") == []
    assert len(long_functions(late, "m")) == 1 and "c is 64 lines" in long_functions(late, "m")[0]
