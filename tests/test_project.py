"""Project files stay consistent: environment.yml mirrors pyproject, CI calls the README's command."""

import re
import tomllib

import yaml

from course_utils.runtime import REPO_ROOT

CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_every_dependency():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep.get("pip", [])}
        else:
            names.add(_name(dep))
    missing = [r for r in wanted if CONDA_NAMES.get(_name(r), _name(r)) not in names]
    assert not missing, f"environment.yml lacks {missing}"


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in quick_start.strip().splitlines()]
    assert commands == ["python3 -m course_utils run", "python3 -m course_utils test"]
    assert "python3 -m course_utils test" in ci


def test_torch_range_admits_the_tested_build():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(Requirement(r) for r in project["dependencies"] if _name(r) == "torch")
    assert torch_req.specifier.contains("2.13.0")
    from course_utils.tools.bootstrap import TESTED_TORCH

    assert TESTED_TORCH == "torch==2.13.0"


def test_no_personal_paths_in_tracked_text():
    pattern = re.compile(r"/(home|Users)/[a-z]|/root/|/work/main")
    for path in list(REPO_ROOT.glob("course_utils/**/*.py")) + list(REPO_ROOT.glob("notebooks/*.ipynb")) \
            + [REPO_ROOT / "README.md", REPO_ROOT / "pyproject.toml"]:
        assert not pattern.search(path.read_text()), f"machine path in {path.name}"
