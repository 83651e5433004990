"""The one place that names the course's repository, and the setup cell built from it.

Every chapter's first code cell is exactly :func:`setup_cell_source` (a test checks
this). On Google Colab it clones the course, installs it with its dependencies, and puts
the clone first on ``sys.path`` so that ``import course_utils`` works in the running
kernel without a restart; anywhere else it does nothing. ``COURSE_REPO_URL`` and
``COURSE_DIR`` override where it clones from and to (forks, tests).

The same address gives every chapter its "Open in Colab" badge (:func:`badge`, the line
after the chapter's title): the chapters on :data:`BRANCH`, the student versions that
``release`` writes on :data:`STUDENT_BRANCH`, where a maintainer publishes them.

After changing ``REPO_URL``, run ``python -m course_utils sync-setup`` to rewrite the
setup cell and the badge in every notebook.
"""

REPO_URL = "https://github.com/visual-instruction-tuning/course"
COLAB_DIR = "/content/visual-instruction-tuning"
#: The branch the chapters are opened from.
BRANCH = "main"
#: The branch that holds the student versions (``release``'s output, in ``notebooks/``).
STUDENT_BRANCH = "student"
COLAB_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

_TEMPLATE = '''\
# Setup (the same first cell in every chapter). On Google Colab: download and install
# the course, then make `course_utils` importable. Anywhere else: nothing to do.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO = os.environ.get("COURSE_REPO_URL", "{repo}")
    HOME = os.environ.get("COURSE_DIR", "{home}")
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPO, HOME], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", HOME], check=True)
    os.environ.setdefault("COURSE_DATA_DIR", os.path.join(HOME, "data"))
    if HOME not in sys.path:
        sys.path.insert(0, HOME)'''


def setup_cell_source(repo_url: str = REPO_URL, colab_dir: str = COLAB_DIR) -> str:
    """The source of the setup cell, identical in every notebook."""
    return _TEMPLATE.format(repo=repo_url, home=colab_dir)


def colab_url(notebook: str, branch: str = BRANCH, repo_url: str = REPO_URL) -> str:
    """The address that opens ``notebooks/<notebook>`` of ``branch`` in Google Colab."""
    owner_repo = repo_url.removeprefix("https://github.com/").removesuffix(".git").strip("/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{notebook}"


def badge(notebook: str, student: bool = False, repo_url: str = REPO_URL) -> str:
    """The "Open in Colab" badge of a chapter (markdown), or of its student version."""
    url = colab_url(notebook, STUDENT_BRANCH if student else BRANCH, repo_url)
    return f"[![Open In Colab]({COLAB_BADGE_IMAGE})]({url})"
