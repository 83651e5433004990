"""course_utils: the small package that the course's notebooks import.

It holds what is not the lesson of a chapter: the runtime helpers, the exercise
checkers and the command line (``python -m course_utils``). A notebook builds an idea
in front of the student; later chapters import the tested copy from here.

Importing this package is cheap and needs only the standard library, so that
``python3 -m course_utils`` can set up its own environment before torch is installed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
