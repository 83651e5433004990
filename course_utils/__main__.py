"""``python -m course_utils``: the course's command line.

This file uses the standard library only. Run from a clone with any Python 3.10+, it
first makes sure the course's own virtual environment exists and has what the course
needs (see ``course_utils.tools.bootstrap``), then hands over to ``course_utils.tools.cli`` inside it.
"""

import sys

from course_utils.tools.bootstrap import ensure_environment

if __name__ == "__main__":
    ensure_environment(sys.argv[1:])
    from course_utils.tools.cli import main

    sys.exit(main(sys.argv[1:]))
