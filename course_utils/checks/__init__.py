"""Exercise checkers, one module per chapter: ``course_utils.checks.ch01``, ``ch02``, ...

Use them from a chapter as ``from course_utils.checks import ch01`` and then
``ch01.check_components(answer)``. Every checker has hints, revealed one at a time by
``.hint()``, ``.hint(2)``, ... (``.hints`` holds them all); the last one points to the
section of the chapter to reread.
"""

from course_utils.checks.core import (
    CheckFailed,
    NotAttemptedError,
    StudentCodeError,
    call_student,
    checker,
)

__all__ = ["CheckFailed", "NotAttemptedError", "StudentCodeError", "call_student", "checker"]
