"""The self-set-up of ``python3 -m course_utils``: when it creates, installs and re-executes."""

import pytest

from course_utils.tools import bootstrap


@pytest.fixture
def calls(monkeypatch, tmp_path):
    record = {"create": 0, "install": 0, "exec": None}
    vdir = tmp_path / "venv"

    def create(self, path):
        record["create"] += 1
        (vdir / "bin").mkdir(parents=True)
        (vdir / "bin" / "python").write_text("")

    def install(py, where, stamp):
        record["install"] += 1
        (where / bootstrap.STAMP_NAME).write_text(stamp)

    monkeypatch.setenv("COURSE_VENV", str(vdir))
    monkeypatch.delenv("COURSE_NO_VENV", raising=False)
    monkeypatch.setattr(bootstrap.venv.EnvBuilder, "create", create)
    monkeypatch.setattr(bootstrap, "_install", install)
    monkeypatch.setattr(bootstrap.os, "execv", lambda exe, args: record.update(exec=args))
    return record


def test_first_run_creates_installs_and_reexecutes(calls):
    bootstrap.ensure_environment(["run", "01"])
    assert calls["create"] == 1 and calls["install"] == 1
    assert calls["exec"][1:] == ["-m", "course_utils", "run", "01"]


def test_second_run_reuses_the_environment(calls):
    bootstrap.ensure_environment(["test"])
    bootstrap.ensure_environment(["test"])
    assert calls["create"] == 1 and calls["install"] == 1


def test_a_changed_pyproject_reinstalls(calls, monkeypatch, tmp_path):
    bootstrap.ensure_environment(["test"])
    stamp = tmp_path / "venv" / bootstrap.STAMP_NAME
    stamp.write_text("an older pyproject")
    bootstrap.ensure_environment(["test"])
    assert calls["install"] == 2


def test_no_venv_uses_the_running_python(calls, monkeypatch):
    monkeypatch.setenv("COURSE_NO_VENV", "1")
    bootstrap.ensure_environment(["doctor"])
    assert calls == {"create": 0, "install": 0, "exec": None}
