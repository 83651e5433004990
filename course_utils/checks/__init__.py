"""Exercise checkers, one module per chapter: ``course_utils.checks.ch01``, ``ch02``, ...

Use them from a chapter as ``from course_utils.checks import ch01`` and then
``ch01.check_components(answer)``. Every checker has a ``.hint()``.
"""

from course_utils.checks.core import (
    CheckFailed,
    NotAttemptedError,
    StudentCodeError,
    call_student,
    checker,
)

__all__ = ["CheckFailed", "NotAttemptedError", "StudentCodeError", "call_student", "checker"]
