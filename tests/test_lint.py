"""ruff over the package, the tests and the notebooks."""

import subprocess
import sys

from course_utils.runtime import REPO_ROOT


def test_ruff_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "course_utils", "tests", "notebooks"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
