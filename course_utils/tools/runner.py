"""Execute chapters headless, keep executed copies and HTML, and tabulate results.

``python -m course_utils run`` is a thin wrapper around :func:`run_chapters`. Each
chapter runs in a fresh kernel, offline, from its own folder. What the chapter passes to
``runtime.report`` (metrics) and what its checkers record (exercises) come back through
a JSON file named by ``COURSE_RESULTS_FILE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_utils.runtime import RESULTS_ENV

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # figures go into the executed notebook whatever the caller's MPLBACKEND (tests set Agg)
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


@dataclass
class ChapterResult:
    chapter: str
    passed: bool
    seconds: float
    metrics: dict = field(default_factory=dict)
    exercises: dict = field(default_factory=dict)
    error: str = ""
    executed: str = ""
    html: str = ""
    #: the chapter's slowest code cells: ``[cell index, its first line, seconds]``, slowest first
    slowest_cells: list = field(default_factory=list)
    #: ``seconds`` as a multiple of the reference workload measured in the same run
    multiple: float | None = None


@contextmanager
def _env(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _error_line(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return f"{ename}: {evalue[0] if evalue else ''}"[:200]


def execute_notebook(
    path: Path,
    build_dir: Path,
    timeout: int = 900,
    html: bool = True,
    allow_errors: bool = False,
    progress: bool = True,
    extra_env: dict[str, str] | None = None,
) -> ChapterResult:
    """Run one notebook in a fresh kernel; write ``executed/`` and ``html/`` copies."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    (build_dir / "executed").mkdir(parents=True, exist_ok=True)
    results_file = Path(tempfile.mkstemp(prefix="course-results-", suffix=".json")[1])
    results_file.unlink()
    env = {**OFFLINE_ENV, RESULTS_ENV: str(results_file), **(extra_env or {})}
    error, seconds, cell_seconds = _run_cells(nb, path, env, timeout, allow_errors, progress)
    data = json.loads(results_file.read_text()) if results_file.exists() else {}
    results_file.unlink(missing_ok=True)
    if allow_errors and not error:
        error = _first_cell_error(nb)
    executed = build_dir / "executed" / path.name
    nbformat.write(nb, str(executed))
    html_path = ""
    if html:
        html_path = str(_write_html(nb, build_dir / "html" / (path.stem + ".html")))
    return ChapterResult(
        chapter=path.stem,
        passed=not error,
        seconds=round(seconds, 1),
        metrics=data.get("metrics", {}),
        exercises=data.get("exercises", {}),
        error=error,
        executed=str(executed),
        html=html_path,
        slowest_cells=slowest_cells(nb, cell_seconds),
    )


def _run_cells(nb, path: Path, env: dict[str, str], timeout: int, allow_errors: bool,
               progress: bool) -> tuple[str, float, dict[int, float]]:
    """Execute ``nb`` in place with ``env`` set, a progress bar over its code cells; returns
    ``(the error line or "", seconds, {cell index: seconds})``."""
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    n_code = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=n_code, desc=path.stem, unit="cell", leave=False, disable=not progress)

    started, cell_seconds = {}, {}

    def on_start(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def on_done(cell, cell_index, **_):
        if cell_index in started:
            cell_seconds[cell_index] = time.perf_counter() - started[cell_index]
        if cell.cell_type == "code":
            bar.update(1)

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent.resolve())}},
        on_cell_execute=on_start,
        on_cell_executed=on_done,
    )
    start = time.perf_counter()
    error = ""
    with _env(env):
        try:
            client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log lines are noise
        except Exception as exc:  # CellExecutionError, timeouts, dead kernels
            error = _error_line(exc)
    seconds = time.perf_counter() - start
    bar.close()
    return error, seconds, cell_seconds


def slowest_cells(nb, cell_seconds: dict[int, float], n: int = 3) -> list:
    """The ``n`` slowest cells: ``[index, first line of the source, seconds]``, slowest first."""
    top = sorted(cell_seconds.items(), key=lambda item: -item[1])[:n]
    return [[i, nb.cells[i].source.strip().split("\n")[0][:60], round(t, 1)] for i, t in top]


def _first_cell_error(nb) -> str:
    """The first error output of an executed notebook (run with ``allow_errors``), or ""."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue', '')}"[:200]
    return ""


def _write_html(nb, target: Path) -> Path:
    from nbconvert import HTMLExporter

    target.parent.mkdir(parents=True, exist_ok=True)
    body, _ = HTMLExporter().from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")
    return target


def run_chapters(paths, build_dir: Path, reference: bool = True, **kwargs) -> list[ChapterResult]:
    """Execute chapters in order; print a line as each finishes; write ``results.json``.

    With ``reference`` the reference workload (:mod:`course_utils.tools.budget`) is timed
    before and after the chapters, and each chapter's seconds become a multiple of the
    mean of the two measurements."""
    from course_utils.tools.budget import multiple, reference_seconds

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    before = reference_seconds() if reference else None
    results = []
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {Path(path).stem} ...", flush=True)
        result = execute_notebook(Path(path), build_dir, **kwargs)
        status = "pass" if result.passed else f"FAIL ({result.error})"
        print(f"[{i}/{len(paths)}] {result.chapter}: {status} in {result.seconds:.1f} s", flush=True)
        results.append(result)
    if reference:
        ref = (before + reference_seconds()) / 2
        for r in results:
            r.multiple = round(multiple(r.seconds, ref), 1)
        print(f"reference workload: {ref:.2f} s", flush=True)
    (build_dir / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    (build_dir / "results.md").write_text(format_table(results, markdown=True) + "\n")
    return results


def _exercise_summary(exercises: dict) -> str:
    if not exercises:
        return "-"
    passed = sum(v == "passed" for v in exercises.values())
    return f"{passed}/{len(exercises)}"


def _metric_text(metrics: dict, limit: int = 90) -> str:
    text = ", ".join(f"{k}={v}" for k, v in metrics.items()) or "-"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _multiple_text(r: ChapterResult) -> str:
    """``31.2 / 58`` (the chapter's reference multiple and its budget), ``-`` if not measured."""
    from course_utils.tools.budget import budget

    if r.multiple is None:
        return "-"
    over = " OVER" if r.multiple > budget(r.chapter) else ""
    return f"{r.multiple:.1f} / {budget(r.chapter):.0f}{over}"


def _total_multiple_text(results: list[ChapterResult]) -> str:
    """The chapters' multiples summed; against the course's budget when every chapter of the
    course ran and was measured (``517 / 387 OVER``), else the sum alone (``-`` if none)."""
    from course_utils.tools.budget import COURSE_BUDGET
    from course_utils.tools.notebooks import list_chapters

    measured = [r.multiple for r in results if r.multiple is not None]
    if not measured:
        return "-"
    course = {p.stem for p in list_chapters()}
    if len(measured) < len(results) or not course or not course <= {r.chapter for r in results}:
        return f"{sum(measured):.1f}"
    over = " OVER" if sum(measured) > COURSE_BUDGET else ""
    return f"{sum(measured):.0f} / {COURSE_BUDGET:.0f}{over}"


def _slowest_text(r: ChapterResult) -> str:
    return ", ".join(f"c{i} {t:.0f}s" for i, _, t in r.slowest_cells) or "-"


def format_table(results: list[ChapterResult], markdown: bool = False) -> str:
    """The results table: chapter, pass/fail, wall time, its multiple of the reference
    workload against the budget, the three slowest cells, exercises passed, key metrics."""
    header = ["chapter", "result", "time (s)", "x ref / budget", "slowest cells", "exercises",
              "key metrics"]  # fmt: skip
    rows = [
        [
            r.chapter,
            "pass" if r.passed else "FAIL",
            f"{r.seconds:.1f}",
            _multiple_text(r),
            _slowest_text(r),
            _exercise_summary(r.exercises),
            _metric_text(r.metrics, limit=10_000 if markdown else 60),
        ]
        for r in results
    ]
    total = sum(r.seconds for r in results)
    rows.append(["total", f"{sum(r.passed for r in results)}/{len(results)} pass", f"{total:.1f}",
                 _total_multiple_text(results), "", "", ""])  # fmt: skip
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    sep = "  ".join("-" * w for w in widths)
    lines = [fmt.format(*header), sep] + [fmt.format(*row) for row in rows[:-1]]
    lines += [sep, fmt.format(*rows[-1])]
    return "\n".join(lines)
