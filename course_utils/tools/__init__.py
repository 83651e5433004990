"""The machinery that runs the course, out of the lessons' way.

=============  ================================================================
``bootstrap``  ``python3 -m course_utils`` sets up its own virtual environment
``cli``        the command line: run, test, doctor, release, grade, reproduce, ...
``runner``     executing chapters headless, their HTML copies, the results table
``notebooks``  chapter discovery, the notebook skeleton, the student version
``exercises``  every exercise's metadata, checked; the table of exercises
``nbgrader_course``  an nbgrader course directory whose student version is the course's
``site``       the course's website, built offline from the executed chapters
``doctor``     the environment check
``colab``      the repository address, the setup cell, the "Open in Colab" badges
=============  ================================================================

Nothing in the lessons imports these modules (the import contract in ``pyproject.toml``
enforces it). Importing this package needs only the standard library.
"""
