"""The checker machinery: pass, wrong, not attempted, student error, strict mode, records."""

import json
import re

import pytest

from course_utils.checks import (
    CheckFailed,
    NotAttemptedError,
    StudentCodeError,
    call_student,
    checker,
)


@checker("Toy exercise: double a number",
         hints=("what does doubling do to 0?", "multiply by two",
                'reread chapter 01, "8. How this course works"'))
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


@pytest.mark.parametrize("execution", ["autograde", "validate"])
def test_nbgrader_grading_is_strict_without_being_told(monkeypatch, execution):
    """nbgrader scores a test cell by whether it raised: an unattempted exercise must."""
    monkeypatch.setenv("NBGRADER_EXECUTION", execution)
    with pytest.raises(NotAttemptedError):
        check_double(None)
    monkeypatch.setenv("NBGRADER_EXECUTION", "something else")
    assert check_double(None) is False


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


def test_hints_are_kept_in_order():
    assert check_double.hints == ("what does doubling do to 0?", "multiply by two",
                                  'reread chapter 01, "8. How this course works"')
    assert check_double.title == "Toy exercise: double a number"


def test_hint_prints_the_first_hint_only(capsys):
    check_double.hint()
    out = capsys.readouterr().out
    assert out == "Hint 1/3 for Toy exercise: double a number: what does doubling do to 0?\n"


def test_hint_n_prints_the_nth_hint(capsys):
    check_double.hint(2)
    assert capsys.readouterr().out == "Hint 2/3 for Toy exercise: double a number: multiply by two\n"
    check_double.hint(n=3)
    assert "Hint 3/3" in capsys.readouterr().out


def test_a_hint_past_the_last_says_which_hints_exist(capsys):
    check_double.hint(4)
    out = capsys.readouterr().out
    assert "only 3 hints for Toy exercise: double a number" in out
    assert "hint(3)" in out and "the last one points to the section to reread" in out
    assert "multiply by two" not in out


def test_one_hint_is_enough(capsys):
    @checker("Toy exercise: one hint", hints=["the only hint"])
    def check_one(answer):
        pass

    assert check_one.hints == ("the only hint",)
    check_one.hint(2)
    assert "only 1 hint for Toy exercise: one hint" in capsys.readouterr().out


@pytest.mark.parametrize("n", [0, -1, 1.0, "2", None, True])
def test_a_bad_hint_number_raises(n):
    with pytest.raises(ValueError, match=re.escape(f"n={n!r}")):
        check_double.hint(n)


@pytest.mark.parametrize("hints, error", [("a single string", TypeError), ((), ValueError),
                                          (("ok", ""), TypeError), (("ok", 3), TypeError)])
def test_hints_must_be_a_sequence_of_strings(hints, error):
    with pytest.raises(error, match="Toy"):
        checker("Toy", hints=hints)


def test_the_old_hint_keyword_is_gone():
    with pytest.raises(TypeError):
        checker("Toy", hint="multiply by two")


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


def test_as_number_takes_numbers_and_one_element_tensors_and_names_the_rest():
    import math

    import torch

    from course_utils.checks.core import as_number

    assert as_number(0.5, "x") == 0.5 and as_number(torch.tensor([2.0]), "x") == 2.0
    with pytest.raises(AssertionError, match=r"x is a tensor of shape \(3,\) \(one value per query\)"):
        as_number(torch.zeros(3), "x", rows=3)
    with pytest.raises(AssertionError, match=r"x is a tensor of shape \(2, 2\); return one number"):
        as_number(torch.zeros(2, 2), "x", rows=3)
    with pytest.raises(AssertionError, match="x should be a number"):
        as_number(True, "x")
    with pytest.raises(AssertionError, match="x is nan, guard against dividing by 0"):
        as_number(math.nan, "x", not_finite="guard against dividing by 0")
