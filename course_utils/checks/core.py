"""The machinery every exercise checker shares.

A checker is a function decorated with :func:`checker`. It receives the student's
object (a function, module, tensor or plain answer) and raises ``AssertionError`` with
a message that says *what* is wrong without giving the answer. The decorator turns
that into the four outcomes a student sees:

* correct: a one-line pass, and ``True`` is returned;
* not attempted: the placeholder is still there (``None``, ``...``, or code that raises
  ``NotImplementedError``); a one-line note, ``False`` is returned and nothing crashes,
  so a student can run a whole chapter before doing its exercises. It is an error
  instead (:class:`NotAttemptedError`) when grading: with ``COURSE_STRICT_CHECKS=1``, and
  whenever nbgrader executes the notebook (``nbgrader autograde`` and ``validate`` set
  ``NBGRADER_EXECUTION``), so an unattempted exercise scores zero;
* wrong: :class:`CheckFailed` (an ``AssertionError``) with what is wrong;
* the student's code raised: :class:`StudentCodeError`, naming the line of *their*
  code, with their traceback chained below it; it is not shown as a checker crash.

Each outcome is also recorded for ``python -m course_utils run`` / ``grade``.

A checker holds several hints, revealed one at a time: ``check.hint()`` prints the first,
``check.hint(2)`` the second, ...; the last one names the section of the chapter to reread.
Hints and messages never contain the answer.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from course_utils.runtime import append_results

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
STRICT_ENV = "COURSE_STRICT_CHECKS"
#: Set by nbgrader while it executes a notebook (``autograde``, ``validate``).
NBGRADER_ENV = "NBGRADER_EXECUTION"


def strict_mode() -> bool:
    """Whether an unattempted exercise is an error: when grading, by the course
    (``COURSE_STRICT_CHECKS=1``) or by nbgrader.

    Introduced in chapter 01, "8. How this course works"."""
    return os.environ.get(STRICT_ENV) == "1" or os.environ.get(NBGRADER_ENV) in ("autograde", "validate")


class CheckFailed(AssertionError):
    """The student's answer is wrong; the message says what is wrong.

    Introduced in chapter 01, "8. How this course works"."""


class NotAttemptedError(AssertionError):
    """Raised instead of a note when ``COURSE_STRICT_CHECKS=1`` (grading).

    Introduced in chapter 01, "8. How this course works"."""


class StudentCodeError(Exception):
    """The student's own code raised while the checker ran it.

    Introduced in chapter 01, "8. How this course works"."""


class NotAttempted(Exception):
    """Internal signal: the exercise still holds its placeholder (reported as not attempted).

    Introduced in chapter 01, "8. How this course works"."""


def is_placeholder(obj) -> bool:
    """True for the placeholders an unattempted exercise leaves: ``None`` and ``...``.

    Introduced in chapter 01, "8. How this course works"."""
    return obj is None or obj is Ellipsis


def _student_frame(tb) -> traceback.FrameSummary | None:
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(_PACKAGE_DIR)]
    return frames[-1] if frames else None


def call_student(fn: Callable, *args, **kwargs):
    """Call the student's ``fn``; turn their exceptions into clear, attributed errors.

    Introduced in chapter 01, "8. How this course works"."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise NotAttempted() from exc
    except Exception as exc:  # the student's bug, shown as theirs
        frame = _student_frame(exc.__traceback__)
        where = ""
        if frame is not None:
            line = (frame.line or "").strip()
            where = f" at line {frame.lineno} of your code" + (f": `{line}`" if line else "")
        name = getattr(fn, "__name__", "your code")
        raise StudentCodeError(
            f"your `{name}` raised {type(exc).__name__}: {exc}{where}. "
            "This error comes from your code (its traceback is above), not from the checker."
        ) from exc


def checker(title: str, hints: Sequence[str]):
    """Decorate a check function ``check(answer, ...)`` that raises ``AssertionError``.

    ``hints`` is a tuple (or list) of one or more strings, revealed one at a time as
    Kaggle's learntools does: ``check.hint()`` prints the first, ``check.hint(2)`` the
    second, and so on; a nudge first, then more concrete ones, and the last one points to
    the section of the chapter that explains the idea, never to the answer. The decorated
    checker also carries ``.title`` and ``.hints`` (the tuple).

    Introduced in chapter 01, "8. How this course works"."""
    hints = _as_hints(title, hints)

    def deco(check: Callable):
        @functools.wraps(check)
        def wrapper(answer=None, *args, **kwargs):
            try:
                if is_placeholder(answer):
                    raise NotAttempted()
                check(answer, *args, **kwargs)
            except NotAttempted:
                _record(title, "not attempted")
                msg = f"[not attempted] {title}: replace the placeholder with your answer, then run this cell again."
                if strict_mode():
                    raise NotAttemptedError(msg) from None
                print(msg)
                return False
            except StudentCodeError:
                _record(title, "error in student code")
                raise
            except AssertionError as exc:
                _record(title, "wrong")
                raise CheckFailed(f"{title}: {exc}") from None
            _record(title, "passed")
            print(f"[correct] {title}")
            return True

        def hint(n: int = 1) -> None:
            """Print hint ``n`` of this exercise (``hint()`` is the first)."""
            _print_hint(title, hints, n)

        wrapper.title = title
        wrapper.hints = hints
        wrapper.hint = hint
        return wrapper

    return deco


def _as_hints(title: str, hints) -> tuple[str, ...]:
    if isinstance(hints, str) or not isinstance(hints, tuple | list):
        raise TypeError(f"checker {title!r}: hints must be a tuple or list of strings, "
                        f"got {type(hints).__name__}")  # fmt: skip
    if not hints:
        raise ValueError(f"checker {title!r}: give at least one hint")
    if not all(isinstance(h, str) and h.strip() for h in hints):
        raise TypeError(f"checker {title!r}: every hint must be a non-empty string")
    return tuple(hints)


def _print_hint(title: str, hints: tuple[str, ...], n) -> None:
    total = len(hints)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n={n!r}: ask for hint 1 to {total} of {title}, e.g. hint() or hint(2)")
    if n > total:
        there = "There is only 1 hint" if total == 1 else f"There are only {total} hints"
        which = "hint()" if total == 1 else f"hint() to hint({total})"
        print(f"{there} for {title} ({which}); the last one points to the section to reread.")
        return
    print(f"Hint {n}/{total} for {title}: {hints[n - 1]}")


def _record(title: str, outcome: str) -> None:
    append_results("exercises", {title: outcome})


# ---- small assertion helpers that give useful, answer-free messages ---------------


def expect_type(obj, types, what: str) -> None:
    """``AssertionError`` naming ``what`` unless ``obj`` is an instance of ``types``.

    Introduced in chapter 01, "8. How this course works"."""
    if not isinstance(obj, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise AssertionError(f"{what} should be a {names}, got {type(obj).__name__}")


def as_number(value, what: str, rows: int | None = None, not_finite: str = "not a finite number") -> float:
    """A student's number (a Python number or a one-element tensor) as a float; otherwise an
    ``AssertionError`` naming ``what``. A tensor of ``rows`` values is named as one value per
    query; ``not_finite`` ends the message for NaN or inf (say what usually causes it).

    Introduced in chapter 10, "Exercises"."""
    if hasattr(value, "numel") and hasattr(value, "item"):
        if value.numel() != 1:
            shape = tuple(value.shape)
            per_query = " (one value per query)" if rows is not None and shape == (rows,) else ""
            raise AssertionError(f"{what} is a tensor of shape {shape}{per_query}; return one "
                                 "number, the mean over the queries")  # fmt: skip
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AssertionError(f"{what} should be a number (a float), got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise AssertionError(f"{what} is {value}, {not_finite}")
    return value


def expect_shape(tensor, shape, what: str) -> None:
    """``AssertionError`` naming ``what`` unless ``tensor.shape`` equals ``shape``.

    Introduced in chapter 01, "8. How this course works"."""
    actual = tuple(getattr(tensor, "shape", ()))
    if actual != tuple(shape):
        raise AssertionError(f"{what} has shape {actual}, expected {tuple(shape)}")


def expect_close(actual, expected, case: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compare tensors on a named case; the message gives the size of the error only.

    Introduced in chapter 01, "8. How this course works"."""
    import torch

    expect_type(actual, torch.Tensor, f"the result on case '{case}'")
    expect_shape(actual, expected.shape, f"the result on case '{case}'")
    if actual.dtype.is_floating_point and not torch.isfinite(actual).all():
        raise AssertionError(f"the result on case '{case}' contains NaN or inf")
    actual = actual.detach().to(expected.device, expected.dtype)
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
        err = (actual - expected).abs().max().item()
        raise AssertionError(
            f"wrong values on case '{case}' (largest difference from the reference: {err:.3g})"
        )
