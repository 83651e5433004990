"""``doctor`` passes on a working set-up and fails clearly on a broken one."""

import io
import os
import subprocess
import sys

from course_utils.runtime import REPO_ROOT
from course_utils.tools import doctor


def test_doctor_passes_here():
    env = {**os.environ, "COURSE_NO_VENV": "1"}
    proc = subprocess.run([sys.executable, "-m", "course_utils", "doctor"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith("[OK] ") for line in lines[:-1])
    for item in ("python", "torch", "transformers", "datasets", "device", "offline assets",
                 "forward/backward", "faiss search"):
        assert any(line.startswith(f"[OK] {item}:") for line in lines), item


def test_doctor_fails_when_a_required_package_is_missing(monkeypatch):
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version",
                        lambda name: None if name == "datasets" else real(name))
    out = io.StringIO()
    assert doctor.run(out=out) == 1
    text = out.getvalue()
    assert "[FAIL] datasets: not installed" in text and "pip install 'datasets" in text
    assert "1 check(s) failed" in text


def test_doctor_fails_on_a_version_outside_the_range(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda name: "0.0.1")
    ok, detail = doctor.check_requirement("torch>=2.4")
    assert not ok and "0.0.1 installed, need >=2.4" in detail


def test_a_check_that_crashes_is_a_failure_not_a_crash():
    def broken():
        raise OSError("disk on fire")

    out = io.StringIO()
    assert doctor.run(checks=[("cache folder", broken)], out=out) == 1
    assert "[FAIL] cache folder: OSError: disk on fire" in out.getvalue()


def test_the_faiss_check_finds_each_vector_and_names_the_version():
    import faiss

    assert "faiss search" in [name for name, _ in doctor.all_checks()]
    ok, detail = doctor.check_faiss()
    assert ok and f"faiss {faiss.__version__}:" in detail and "own nearest neighbour" in detail


def test_the_faiss_check_fails_on_a_broken_index(monkeypatch):
    import faiss
    import numpy as np

    class Broken(faiss.IndexFlatIP):
        def search(self, x, k):
            scores, ids = super().search(x, k)
            return scores, np.zeros_like(ids)  # every query answered with vector 0

    monkeypatch.setattr(faiss, "IndexFlatIP", Broken)
    ok, detail = doctor.check_faiss()
    assert not ok and "missed 31 of 32 vectors" in detail and "pip install --force-reinstall" in detail


def test_requirements_come_from_the_project():
    py, reqs = doctor.requirements()
    assert py.startswith(">=3.")
    assert any(r.startswith("torch") for r in reqs)
