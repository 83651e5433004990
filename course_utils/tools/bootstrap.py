"""Create or reuse the course's virtual environment, then re-run the command inside it.

Standard library only: this runs before anything is installed.

Rules, in order:
1. ``COURSE_NO_VENV=1`` (conda users, Colab, your own environment): use the running
   Python as it is and install nothing.
2. Not a clone (no ``pyproject.toml`` beside the package): nothing to set up.
3. Otherwise use ``<repo>/.venv`` (or ``$COURSE_VENV``): create it if missing; when
   ``pyproject.toml`` changed since the last install, install torch first (the tested
   CPU build, ``torch==2.13.0`` unless ``$COURSE_TORCH_SPEC`` says otherwise, and only
   if no torch is there yet) and then the course with its test extra; re-execute the
   same command with the environment's Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTED_TORCH = "torch==2.13.0"
STAMP_NAME = ".course-install-stamp"


def _venv_dir() -> Path:
    return Path(os.environ.get("COURSE_VENV", REPO_ROOT / ".venv")).resolve()


def _venv_python(vdir: Path) -> Path:
    if os.name == "nt":
        return vdir / "Scripts" / "python.exe"
    return vdir / "bin" / "python"


def _inside(vdir: Path) -> bool:
    return Path(sys.prefix).resolve() == vdir


def _say(msg: str) -> None:
    print(f"[course] {msg}", file=sys.stderr, flush=True)


def _pip(py: Path, *args: str) -> None:
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", *args]
    _say("$ " + " ".join(cmd[1:]))
    subprocess.run(cmd, check=True)


def _install(py: Path, vdir: Path, stamp_value: str) -> None:
    has_torch = subprocess.run(
        [str(py), "-c", "import torch"], capture_output=True
    ).returncode == 0
    if not has_torch:
        spec = os.environ.get("COURSE_TORCH_SPEC", TESTED_TORCH)
        try:
            _pip(py, spec)
        except subprocess.CalledProcessError:
            _say(f"could not install {spec}; falling back to the newest torch for this platform")
            _pip(py, "torch")
    _pip(py, "-e", f"{REPO_ROOT}[test]")
    (vdir / STAMP_NAME).write_text(stamp_value)


def ensure_environment(argv: list[str]) -> None:
    """Make sure we run inside an environment that has the course installed."""
    if os.environ.get("COURSE_NO_VENV") == "1":
        return
    pyproject = REPO_ROOT / "pyproject.toml"
    if not pyproject.is_file():
        return
    vdir = _venv_dir()
    py = _venv_python(vdir)
    stamp_value = hashlib.sha256(pyproject.read_bytes()).hexdigest()
    if not py.exists():
        _say(f"creating the course's virtual environment in {vdir.name}/ (once)")
        venv.EnvBuilder(with_pip=True).create(vdir)
    stamp = vdir / STAMP_NAME
    if not stamp.exists() or stamp.read_text() != stamp_value:
        _say("installing the course and what it needs (first run, or pyproject.toml changed)")
        try:
            _install(py, vdir, stamp_value)
        except subprocess.CalledProcessError as exc:
            sys.exit(f"[course] installation failed ({exc}); see the pip output above")
    if _inside(vdir):
        return
    args = [str(py), "-m", "course_utils", *argv]
    if os.name == "nt":  # no exec on Windows: run and pass the exit code on
        sys.exit(subprocess.run(args).returncode)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(str(py), args)
