"""course_utils: the small package that the course's notebooks import.

It holds what is not the lesson of a chapter: the runtime helpers, the exercise
checkers and the command line (``python -m course_utils``). A notebook builds an idea
in front of the student; later chapters import the tested copy from here.

Importing this package is cheap and needs only the standard library, so that
``python3 -m course_utils`` can set up its own environment before torch is installed.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "list_pretrained", "load_pretrained"]


def __getattr__(name):  # lazy, so that `python3 -m course_utils` needs only the stdlib
    if name in ("list_pretrained", "load_pretrained"):
        from course_utils import shipped

        return getattr(shipped, name)
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
