"""The setup cell, run as on Colab (a fake ``google.colab`` and a local clone URL), makes
``import course_utils`` work in the running interpreter; elsewhere it does nothing."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_utils.runtime import REPO_ROOT
from course_utils.tools.colab import setup_cell_source

GIT = shutil.which("git")


def _make_repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the package (what Colab would clone)."""
    src = tmp_path / "origin"
    shutil.copytree(REPO_ROOT / "course_utils", src / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy(REPO_ROOT / name, src / name)
    git = [GIT, "-C", str(src), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run([GIT, "init", "-q", str(src)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    return src


def _run_cell(tmp_path: Path, colab: bool, extra_env: dict) -> subprocess.CompletedProcess:
    fake = "import sys, types; sys.modules['google'] = types.ModuleType('google'); " \
           "sys.modules['google.colab'] = types.ModuleType('google.colab')\n" if colab else ""
    script = tmp_path / "kernel.py"
    script.write_text(
        fake
        + setup_cell_source()
        + textwrap.dedent("""

            import course_utils
            print("IMPORTED-FROM", course_utils.__file__)
            """)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(extra_env)
    # run from an empty folder so that nothing but the setup cell can put course_utils on the path
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-S", str(script)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(GIT is None, reason="git is needed to simulate Colab's clone")
def test_setup_cell_on_colab_clones_installs_and_imports(tmp_path):
    origin = _make_repo(tmp_path)
    target = tmp_path / "content" / "course"
    site = tmp_path / "site"
    env = {
        "COURSE_REPO_URL": origin.as_uri(),
        "COURSE_DIR": str(target),
        # pip really installs the clone, but offline and into a throwaway folder
        # (pip reads PIP_NO_BUILD_ISOLATION=0 as "do not isolate the build")
        "PIP_TARGET": str(site), "PIP_NO_DEPS": "1", "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    # `python -S` hides site-packages, as in a kernel that has never seen the course;
    # pip and setuptools are given back through PYTHONPATH for the install step only.
    import pip
    import setuptools

    tools = {str(Path(pip.__file__).parent.parent), str(Path(setuptools.__file__).parent.parent)}
    env["PYTHONPATH"] = os.pathsep.join(sorted(tools))
    proc = _run_cell(tmp_path, colab=True, extra_env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (target / "course_utils" / "__init__.py").is_file(), "the course was not cloned"
    assert any(site.glob("visual_instruction_tuning_course-*.dist-info")), "pip did not install it"
    imported = proc.stdout.split("IMPORTED-FROM", 1)[1].strip()
    assert Path(imported).resolve().is_relative_to(target.resolve())


def test_setup_cell_does_nothing_outside_colab(tmp_path):
    target = tmp_path / "content" / "course"
    env = {"COURSE_REPO_URL": "file:///nonexistent", "COURSE_DIR": str(target),
           "PYTHONPATH": str(REPO_ROOT)}
    proc = _run_cell(tmp_path, colab=False, extra_env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not target.exists()


def test_setup_cell_fails_loudly_when_the_clone_fails(tmp_path):
    env = {"COURSE_REPO_URL": (tmp_path / "missing").as_uri(),
           "COURSE_DIR": str(tmp_path / "content" / "course")}
    proc = _run_cell(tmp_path, colab=True, extra_env=env)
    assert proc.returncode != 0
    assert "CalledProcessError" in proc.stderr
