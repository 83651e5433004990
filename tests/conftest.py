"""Shared fixtures: every test runs offline with its caches in a temporary folder, and the
checker tests share their stand-ins for a student's answer (a placeholder left as
released, code that crashes) and strict mode."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "course-cache"))
    monkeypatch.delenv("COURSE_RESULTS_FILE", raising=False)
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module's small models (they train fastest so, and the
    machine may be shared), restored afterwards."""
    from course_utils.runtime import torch_threads

    with torch_threads(1):
        yield


# ---- the checker tests' stand-ins for a student's answer ----------------------------------


def _placeholder(*args, **kwargs):
    # YOUR CODE HERE   (an exercise as the student version releases it)
    raise NotImplementedError()


def _crashes(*args, **kwargs):
    import torch

    return torch.zeros(2, 3) @ torch.zeros(4, 5)  # a shape bug in the student's own code


@pytest.fixture
def placeholder():
    """An unattempted exercise: a function that raises ``NotImplementedError``."""
    return _placeholder


@pytest.fixture
def crashes():
    """A student's function with a bug of its own (a matmul of mismatched shapes)."""
    return _crashes


@pytest.fixture
def not_attempted(capsys):
    """``not_attempted(*results)``: each checker call returned False and printed
    ``[not attempted]`` (the exercise is reported, not crashed)."""

    def check(*results):
        assert all(r is False for r in results), results
        assert capsys.readouterr().out.count("[not attempted]") == len(results)

    return check


@pytest.fixture
def strict_checks(monkeypatch):
    """``COURSE_STRICT_CHECKS=1``: an unattempted exercise raises instead of printing a note."""
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    from course_utils.checks import NotAttemptedError

    return NotAttemptedError


def pytest_generate_tests(metafunc):
    """A checker test module declares ``CASES = {name: (checker, answer, {mistake: wrong
    answer, ...})}``; a test that asks for ``name`` and ``mistake`` runs once per mistake."""
    cases = getattr(metafunc.module, "CASES", None)
    if cases is not None and {"name", "mistake"} <= set(metafunc.fixturenames):
        metafunc.parametrize(("name", "mistake"), [
            pytest.param(name, mistake, id=f"{name}-{mistake}")
            for name, (_, _, mistakes) in cases.items() for mistake in mistakes
        ])  # fmt: skip
