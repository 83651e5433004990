"""The package's shape, enforced: imports run one way, privates stay private, names explain
themselves, and the README's map is the tree.

The layers live in ``pyproject.toml`` (``[tool.importlinter]``) as import-linter contracts;
these tests run them on the real package and show that they fail on a planted upward
import, a model that imports the data world, and a module placed in no layer.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.runtime import REPO_ROOT

PACKAGE = REPO_ROOT / "course_utils"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` with the project's contracts."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """A copy of the package and its contracts, to plant violations in."""
    shutil.copytree(PACKAGE, tmp_path / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _plant(root: Path, module: str, line: str) -> None:
    path = root / "course_utils" / module
    path.write_text(line + "\n" + path.read_text())


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # the world must not depend on training (an upward import)
        ("world/scenes.py", "from course_utils import training  # noqa", "course_utils.world is not allowed to import course_utils.training"),
        # a lesson must not depend on the course machinery
        ("metrics.py", "from course_utils.tools import runner  # noqa", "course_utils.metrics is not allowed to import course_utils.tools"),
        # a model takes its sizes from its config, never from the world
        ("fusion/config.py", "from course_utils.world import encoding  # noqa", "course_utils.fusion.config -> course_utils.world.encoding"),
    ],
)  # fmt: skip
def test_the_contracts_fail_on_a_planted_violation(package_copy, module, line, message):
    _plant(package_copy, module, line)
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout


def test_a_module_outside_every_layer_fails(package_copy):
    (package_copy / "course_utils" / "unplaced.py").write_text('"""Not yet placed in a layer."""\n')
    result = lint_imports(package_copy)
    assert result.returncode != 0 and "course_utils.unplaced" in result.stdout, result.stdout


# ---- what crosses a module boundary is public ---------------------------------------------


def _code_sources() -> dict[str, str]:
    """Every Python source of the package, and the code cells of every notebook."""
    out = {str(p.relative_to(REPO_ROOT)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}
    for nb in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = [
            "".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and not "".join(c["source"]).lstrip().startswith(("%", "!"))
        ]  # fmt: skip
        out[str(nb.relative_to(REPO_ROOT))] = "\n\n".join(code)
    return out


def _course_imports(tree: ast.AST):
    """(local name, imported course_utils name) for every import of the course's code."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
            for alias in node.names:
                yield alias.asname or alias.name, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("course_utils"):
                    yield alias.asname or alias.name, alias.name


def test_no_private_name_crosses_a_module_boundary():
    problems = []
    for where, source in _code_sources().items():
        tree = ast.parse(source)
        modules = {local for local, _ in _course_imports(tree)}
        for _, full in _course_imports(tree):
            if full.rsplit(".", 1)[-1].startswith("_") and not full.endswith("__version__"):
                problems.append(f"{where}: imports private {full}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):  # fmt: skip
                problems.append(f"{where}:{node.lineno}: uses private {node.value.id}.{node.attr}")
    assert not problems, "\n".join(problems)


# ---- names that explain themselves -------------------------------------------------------

#: The one short alias allowed: PyTorch's own documentation writes ``F`` for this module.
ALLOWED_SHORT_ALIASES = {("torch.nn.functional", "F")}


def test_no_one_letter_module_aliases_anywhere():
    sources = _code_sources()
    sources.update({str(p.relative_to(REPO_ROOT)): p.read_text()
                    for p in sorted((REPO_ROOT / "tests").glob("*.py"))})  # fmt: skip
    problems = []
    for where, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                    if alias.asname and len(alias.asname) == 1 and (full, alias.asname) not in ALLOWED_SHORT_ALIASES:
                        problems.append(f"{where}:{node.lineno}: {full} as {alias.asname}")
    assert not problems, "one-letter aliases hide what a name is:\n" + "\n".join(problems)


# ---- the README's map is the tree -----------------------------------------------------------


def _readme_map() -> list[str]:
    """The module paths the README's maintainer map names (``course_utils/...`` entries)."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## For maintainers\s+```\n(.*?)```", text, re.S)
    assert block, "README.md has no code block under '## For maintainers'"
    names, folders = [], []
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip())
        entry = line.strip().split(" ")[0] if line.strip() else ""
        if not entry or not (entry.endswith((".py", "/")) or entry == "course_utils/"):
            continue
        depth = indent // 2
        folders = folders[:depth]
        if entry.endswith("/"):
            folders.append(entry)
            names.append("".join(folders) + "__init__.py")  # a package is named by its folder
        else:
            names.append("".join(folders) + entry)
    return names


def test_the_readme_map_names_every_module_and_only_modules_that_exist():
    named = {n for n in _readme_map() if n.startswith("course_utils/")}
    modules = {str(p.relative_to(REPO_ROOT)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    named -= {n for n in named if n.endswith("__init__.py") and n not in modules and n.count("/") > 1}
    assert named, "the README's map names no module"
    assert not named - modules, f"the README names modules that do not exist: {sorted(named - modules)}"
    assert not modules - named, f"modules missing from the README's map: {sorted(modules - named)}"


def _module_level(tree: ast.AST):
    """The statements that bind global names: everything but function and class bodies."""
    for node in ast.iter_child_nodes(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            yield node
            yield from _module_level(node)


def test_no_notebook_rebinds_a_module_it_imported():
    """``programs = [...]`` after ``from course_utils.world import programs`` breaks every
    later cell that meant the module."""
    problems = []
    for where, source in _code_sources().items():
        if not where.endswith(".ipynb"):
            continue
        tree = ast.parse(source)
        modules = {local for local, _ in _course_imports(tree)}
        for node in _module_level(tree):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For) else [])
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and name.id in modules:
                        problems.append(f"{where}: line {node.lineno} rebinds {name.id}")
    assert not problems, "\n".join(problems)
