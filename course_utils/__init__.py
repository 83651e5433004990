"""course_utils: the small package that the course's notebooks import.

A notebook builds an idea in front of the student; later chapters import the tested copy
from here, one import deep and named by its concept (``attention``, ``vision``, ``text``,
``tokenization``, ``fusion``, ``pretraining``, ``training``, ``metrics``, ``shipped``,
``plots``). The course's world is the subpackage ``world``; the exercise checkers are
``checks``; the machinery that runs the course (the command line, the runner, the
doctor, the Colab setup) is ``tools``. The README's map for maintainers lists every
module; ``pyproject.toml`` holds the contracts that keep imports running one way.

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
