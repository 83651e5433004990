"""The course as a website: a book built offline with Sphinx, MyST-NB and the Sphinx Book
Theme (the stack Jupyter Book 1.x wraps) from what ``run`` executed (``python3 -m
course_utils site``).

Nothing is executed again. :func:`build_site` stages a book in ``BUILD/book/``: the
landing page (what the course builds, for whom, the chapter list with each chapter's time
and key results from ``BUILD/results.json``, the two commands), one page per chapter (its
executed notebook from ``BUILD/executed/``, or its source marked as not run), the
instructors' page (the README's instructor section and the table of exercises) and the
shipped models' cards; then Sphinx writes ``BUILD/site/``. Sphinx's warnings are errors, so a broken internal link fails the build. A chapter that failed in
``run`` says so at the top of its page. Everything the pages load is local: MathJax
(``sphinx-mathjax-offline``), the theme's assets and the Colab badge's image; widget
outputs (progress bars) are dropped, their text kept. (Jupyter Book 1's own command adds
sphinx-thebe, whose script it declares twice on every page, a console error, and which
points to a CDN; calling Sphinx directly leaves it out.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from course_utils.runtime import REPO_ROOT, data_dir
from course_utils.tools.colab import COLAB_BADGE_IMAGE, REPO_URL
from course_utils.tools.notebooks import list_chapters

TITLE = "Visual Instruction Tuning, from attention to applications"
BADGE_FILE = "colab-badge.svg"
#: A local stand-in for Colab's badge image, so that no page loads anything from the network.
BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" '
    'aria-label="Open In Colab"><rect width="117" height="20" rx="3" fill="#555"/>'
    '<rect x="30" width="87" height="20" rx="3" fill="#f9ab00"/>'
    '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
    '<text x="6" y="14">CO</text><text x="36" y="14" fill="#000">Open in Colab</text></g></svg>'
)
FAVICON_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" '
               'rx="3" fill="#f9ab00"/><circle cx="6" cy="8" r="3" fill="#555"/>'
               '<rect x="9" y="5" width="5" height="6" fill="#555"/></svg>')
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _conf_py() -> str:
    return f"""\
# Sphinx configuration of the course's site (written by `python3 -m course_utils site`).
project = {TITLE!r}
author = "the course's authors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"  # the notebooks were executed by `run`
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
html_title = {TITLE!r}
html_favicon = "favicon.svg"
html_show_copyright = False
html_show_sourcelink = False
html_context = {{"default_mode": "light"}}
html_theme_options = {{"repository_url": {REPO_URL!r}, "use_repository_button": False,
                      "home_page_in_toc": True, "show_navbar_depth": 1}}
suppress_warnings = ["mystnb.unknown_mime_type"]
"""


def _results(build_dir: Path) -> dict[str, dict]:
    path = build_dir / "results.json"
    return {r["chapter"]: r for r in json.loads(path.read_text())} if path.exists() else {}


def _chapter_title(nb: dict) -> str:
    return "".join(nb["cells"][0]["source"]).split("\n")[0].lstrip("# ").strip()


def _banner(result: dict | None) -> str | None:
    """The note at the top of a chapter's page, or None when it passed."""
    if result is None:
        return ("```{warning}\nThis chapter was not executed in the last `run`: the page shows "
                "its source, without outputs.\n```")  # fmt: skip
    if not result["passed"]:
        return (f"```{{error}}\nThis chapter **failed** in the last `run` "
                f"({result['seconds']:.0f} s): `{result['error']}`. The page shows what ran.\n```")
    return None


def _stage_chapter(path: Path, result: dict | None, build_dir: Path, out: Path) -> dict:
    """Copy a chapter's executed notebook (or its source) into the book, badge image local,
    widget outputs dropped, and the failure banner on top; returns its notebook."""
    executed = build_dir / "executed" / path.name
    nb = json.loads((executed if result is not None and executed.exists() else path).read_text())
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = "".join(cell["source"]).replace(COLAB_BADGE_IMAGE, BADGE_FILE)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_MIME, None)
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("data", True)]
    banner = _banner(result)
    if banner:
        nb["cells"].insert(1, {"cell_type": "markdown", "id": "run-status", "metadata": {},
                               "source": banner})  # fmt: skip
    (out / path.name).write_text(json.dumps(nb))
    return nb


def _landing(chapters: list[tuple[Path, str, dict | None]]) -> str:
    rows = []
    for path, title, result in chapters:
        if result is None:
            status, seconds, key = "not run", "", ""
        else:
            status = "passed" if result["passed"] else "**failed**"
            seconds = f"{result['seconds']:.0f} s"
            key = ", ".join(f"{k} {v}" for k, v in list(result["metrics"].items())[:4])
        rows.append(f"| [{title}](chapters/{path.stem}.ipynb) | {status} | {seconds} | {key} |")
    readme = (REPO_ROOT / "README.md").read_text()
    intro = readme.split("\n\n", 2)[1]  # the README's first paragraph: what the course builds
    return "\n".join([
        f"# {TITLE}", "", intro, "",
        "It is for students who know Python and a little PyTorch and want to see every idea "
        "built and measured, and for instructors who assign the chapters and grade their "
        "exercises automatically ([for instructors](instructors.md)).", "",
        "## Run it", "", "```bash",
        "python3 -m course_utils run     # execute every chapter, print a results table",
        "python3 -m course_utils test    # every test: unit tests, lint, every notebook",
        "```", "",
        "## The chapters", "",
        "Times and key results are those of the last `python3 -m course_utils run` that built "
        "this site.", "",
        "| chapter | last run | time | key results |", "|---|---|---|---|", *rows, "",
        "The models the later chapters load are described in [the shipped models](models.md).",
    ]) + "\n"  # fmt: skip


def _instructors() -> str:
    from course_utils.tools.exercises import course_table, format_table

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## For instructors", 1)[1].split("\n## ", 1)[0]
    table = format_table(course_table(list_chapters()), markdown=True)
    start = section.index("| chapter | exercise |")
    end = section.index("\n\n", section.index(" points, ~", start)) + 2
    section = section[:start] + table + "\n" + section[end:]
    section = section.replace("\n### ", "\n## ")  # the README's subsections are the page's sections
    return "# For instructors\n" + section


def _models() -> str:
    lines = ["# The shipped models", "",
             "The weights (safetensors) and cards in `data/`; `course_utils.load_pretrained(name)` "
             "loads one, `python3 -m course_utils reproduce NAME` retrains it from its recipe.", ""]  # fmt: skip
    from course_utils.shipped import list_pretrained, paths

    for name in list_pretrained():  # the models' cards (data/ also holds stored results)
        card_path = paths(name, data_dir())[1]
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        lines += [f"## {card['name']}", "", card["description"], "",
                  f"- parameters: {card['parameters']:,}; trained in {card['train_seconds']:.0f} s",
                  "- metrics: " + ", ".join(f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in card["metrics"].items()), "",
                  "```json", json.dumps(card["recipe"], indent=1), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _toctree(caption: str, pages: list[str]) -> str:
    """A MyST ``toctree``: the sidebar's navigation, in course order."""
    return "\n".join(["```{toctree}", ":maxdepth: 1", f":caption: {caption}", "", *pages, "```", ""])


def stage_book(build_dir: Path) -> Path:
    """Write the book's sources to ``build_dir/book`` (replaced); returns that folder."""
    build_dir = Path(build_dir)
    book = build_dir / "book"
    shutil.rmtree(book, ignore_errors=True)
    (book / "chapters").mkdir(parents=True)
    results = _results(build_dir)
    chapters = []
    for path in list_chapters():
        result = results.get(path.stem)
        nb = _stage_chapter(path, result, build_dir, book / "chapters")
        chapters.append((path, _chapter_title(nb), result))
    (book / "chapters" / BADGE_FILE).write_text(BADGE_SVG)
    (book / "favicon.svg").write_text(FAVICON_SVG)
    (book / "conf.py").write_text(_conf_py())
    toc = [_toctree("Chapters", [f"chapters/{path.stem}" for path, _, _ in chapters]),
           _toctree("Using the course", ["instructors", "models"])]
    (book / "index.md").write_text(_landing(chapters) + "\n" + "\n".join(toc))
    (book / "instructors.md").write_text(_instructors())
    (book / "models.md").write_text(_models())
    return book


def build_site(build_dir: Path, quiet: bool = True) -> Path:
    """Stage the book and build it; returns the site's folder, ``build_dir/site``."""
    return sphinx_build(stage_book(build_dir), Path(build_dir) / "site", quiet)


def sphinx_build(book: Path, out: Path, quiet: bool = True) -> Path:
    """Build a staged book into ``out`` with Sphinx, warnings as errors (a broken internal
    link fails); ``RuntimeError`` with Sphinx's messages if the build fails."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q",
               str(book), str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=quiet, text=True)
    if result.returncode != 0:
        raise RuntimeError("the site did not build:\n" + ((result.stdout or "") + (result.stderr or ""))[-6000:])
    return out
