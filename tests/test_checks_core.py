"""The checker machinery: pass, wrong, not attempted, student error, strict mode, records."""

import json

import pytest

from course_utils.checks import (
    CheckFailed,
    NotAttemptedError,
    StudentCodeError,
    call_student,
    checker,
)


@checker("Toy exercise: double a number", hint="multiply by two")
def check_double(fn):
    for x in (0, 1, 5):
        if call_student(fn, x) != 2 * x:
            raise AssertionError(f"wrong result for input {x}")


def test_correct_answer_passes(capsys):
    assert check_double(lambda x: 2 * x) is True
    assert "[correct] Toy exercise" in capsys.readouterr().out


def test_wrong_answer_raises_with_the_exercise_title():
    with pytest.raises(CheckFailed, match="Toy exercise: double a number: wrong result for input 0"):
        check_double(lambda x: x + 1)
    assert issubclass(CheckFailed, AssertionError)


@pytest.mark.parametrize("placeholder", [None, ...])
def test_placeholders_are_not_attempted(placeholder, capsys):
    assert check_double(placeholder) is False
    assert "[not attempted]" in capsys.readouterr().out


def test_not_implemented_is_not_attempted(capsys):
    def stub(x):
        raise NotImplementedError()

    assert check_double(stub) is False
    assert "[not attempted]" in capsys.readouterr().out


def test_strict_mode_turns_not_attempted_into_a_failure(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(NotAttemptedError):
        check_double(None)


def test_error_in_student_code_is_attributed_to_the_student():
    def buggy(x):
        return 2 * x / 0

    with pytest.raises(StudentCodeError) as info:
        check_double(buggy)
    message = str(info.value)
    assert "your `buggy` raised ZeroDivisionError" in message
    assert "return 2 * x / 0" in message  # names the student's line
    assert isinstance(info.value.__cause__, ZeroDivisionError)  # their traceback is chained


def test_call_student_passes_results_through():
    assert call_student(lambda a, b=1: a + b, 2, b=3) == 5


def test_hint_prints(capsys):
    check_double.hint()
    assert "multiply by two" in capsys.readouterr().out


def test_outcomes_are_recorded_for_the_runner(tmp_path, monkeypatch):
    results = tmp_path / "results.json"
    monkeypatch.setenv("COURSE_RESULTS_FILE", str(results))
    check_double(lambda x: 2 * x)
    with pytest.raises(CheckFailed):
        check_double(lambda x: x)
    data = json.loads(results.read_text())
    assert data["exercises"] == {"Toy exercise: double a number": "wrong"}
    check_double(None)
    assert json.loads(results.read_text())["exercises"]["Toy exercise: double a number"] == "not attempted"
