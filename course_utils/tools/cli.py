"""The course's command line. Start it with ``python3 -m course_utils COMMAND``.

Commands:
  run [CHAPTER ...]     execute the chapters (all, or those named: 1, 02, attention, a path)
                        headless and offline; executed notebooks and HTML go to build/
  test [PYTEST ARGS]    the whole test suite: unit tests, lint, every chapter executed
  doctor                check this machine: versions, device, offline assets, a tiny training step
  release               write the student version of every chapter (solutions removed)
  grade NOTEBOOK ...    execute submitted notebooks and tabulate their exercise checks
  bench-data [--n N]    time generating N examples with images (default 20,000)
  bench-index [--sizes N ...] [--dim D] [--queries Q] [--threads T] [--json PATH]
                        time exact search against FAISS's flat, IVF, HNSW and IVF-PQ indexes
  reproduce [NAME ...]  retrain the shipped models in data/ from their recipes, and the stored
                        FLAN curve (flan-curve) and scaling sweeps (scaling-sweeps) [--threads N]
  sync-setup            rewrite every chapter's setup cell and Colab badge from course_utils.tools.colab
  exercises [--markdown]  the table of every exercise: difficulty, minutes, points, what it checks
  site                  build the course's website (build/site/) from what `run` executed
  nbgrader-course DIR [CHAPTER ...]
                        write an nbgrader course directory (config + source assignments)
  strip [NOTEBOOK ...]  remove outputs and execution counts from notebooks
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from course_utils.runtime import REPO_ROOT

DEFAULT_BUILD = REPO_ROOT / "build"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m course_utils", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="execute chapters and print a results table")
    run.add_argument("chapters", nargs="*", help="chapter numbers, names or notebook paths")
    run.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD)
    run.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    run.add_argument("--no-html", action="store_true", help="skip the HTML copies")

    test = sub.add_parser("test", help="run the whole test suite (offline)")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")

    sub.add_parser("doctor", help="check the environment")

    rel = sub.add_parser("release", help="write student notebooks without solutions")
    rel.add_argument("--out", type=Path, default=DEFAULT_BUILD / "student")

    grade = sub.add_parser("grade", help="execute submissions and tabulate exercise checks")
    grade.add_argument("notebooks", nargs="+", type=Path)
    grade.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD / "grading")
    grade.add_argument("--timeout", type=int, default=900)

    bench = sub.add_parser("bench-data", help="time the data world's generation")
    bench.add_argument("--n", type=int, default=20_000, help="number of examples")
    bench.add_argument("--seed", type=int, default=0)

    index = sub.add_parser("bench-index", help="time exact search against FAISS's indexes")
    index.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="gallery sizes")
    index.add_argument("--dim", type=int, default=64, help="embedding width")
    index.add_argument("--queries", type=int, default=1000, help="queries per timed search")
    index.add_argument("--k", type=int, default=10, help="neighbours per query")
    index.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw", "ivfpq"],
                       choices=["flat", "ivf", "hnsw", "pq", "ivfpq"], help="FAISS indexes to time")
    index.add_argument("--threads", type=int, default=None, help="torch and FAISS threads")
    index.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")

    rep = sub.add_parser("reproduce", help="retrain shipped models from their recipes")
    rep.add_argument("names", nargs="*", help="models to retrain (default: all)")
    rep.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")

    site = sub.add_parser("site", help="build the course's website from what `run` executed")
    site.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD)

    nbg = sub.add_parser("nbgrader-course", help="write an nbgrader course directory of the chapters")
    nbg.add_argument("root", type=Path, help="the course directory to write (created if missing)")
    nbg.add_argument("chapters", nargs="*", help="chapters to include (default: all)")

    ex = sub.add_parser("exercises", help="the table of every exercise of every chapter")
    ex.add_argument("--markdown", action="store_true", help="a Markdown table (the README's)")

    sub.add_parser("sync-setup", help="rewrite every chapter's setup cell and Colab badge")
    strip = sub.add_parser("strip", help="remove outputs from notebooks")
    strip.add_argument("notebooks", nargs="*", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["test"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after `test` belongs to pytest, options included (-k, -x, --durations)
        return _cmd_test(argparse.Namespace(pytest_args=argv[1:]))
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"python -m course_utils {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _cmd_run(args) -> int:
    from course_utils.tools.notebooks import resolve_chapters
    from course_utils.tools.runner import format_table, run_chapters

    paths = resolve_chapters(args.chapters)
    if not paths:
        raise ValueError("no chapters found in notebooks/")
    results = run_chapters(paths, args.build_dir, timeout=args.timeout, html=not args.no_html)
    print()
    print(format_table(results))
    for r in results:
        if not r.passed:
            print(f"\n{r.chapter} failed: {r.error}\n  executed copy: {r.executed}")
    print(f"\nexecuted notebooks and HTML: {args.build_dir}")
    return 0 if all(r.passed for r in results) else 1


def test_environment(tmp: str) -> dict[str, str]:
    """Environment for the test suite: offline, headless, caches in a temporary folder."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": os.path.join(tmp, "hf"),
        "COURSE_CACHE_DIR": os.path.join(tmp, "course-cache"),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(tmp, "mpl"),
        "IPYTHONDIR": os.path.join(tmp, "ipython"),
        "JUPYTER_RUNTIME_DIR": os.path.join(tmp, "jupyter-runtime"),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONHASHSEED": "0",
    }


def _cmd_test(args) -> int:
    extra = [a for a in args.pytest_args if a != "--"]
    cmd = [sys.executable, "-m", "pytest", *extra]
    with tempfile.TemporaryDirectory(prefix="course-test-") as tmp:
        print("$ " + " ".join(["pytest", *cmd[3:]]), flush=True)
        return subprocess.run(cmd, cwd=REPO_ROOT, env=test_environment(tmp)).returncode


def _cmd_doctor(args) -> int:
    from course_utils.tools import doctor

    return doctor.run()


def _cmd_release(args) -> int:
    import nbformat

    from course_utils.tools.notebooks import list_chapters, read, student_version

    args.out.mkdir(parents=True, exist_ok=True)
    for path in list_chapters():
        nbformat.write(student_version(read(path), path.name), str(args.out / path.name))
        print(f"wrote {args.out / path.name}")
    return 0


def _cmd_grade(args) -> int:
    from course_utils.tools.exercises import points_by_title
    from course_utils.tools.runner import execute_notebook

    failed = 0
    for path in args.notebooks:
        if not path.is_file():
            raise FileNotFoundError(f"no such notebook: {path}")
    for path in args.notebooks:
        result = execute_notebook(path, args.build_dir, timeout=args.timeout, html=False,
                                  allow_errors=True)
        points = points_by_title(path)
        earned = sum(p for title, p in points.items() if result.exercises.get(title) == "passed")
        print(f"\n{path}: {len(result.exercises)} exercise check(s) ran, "
              f"{earned} of {sum(points.values())} points")
        for title, outcome in result.exercises.items():
            got = points.get(title, 0) if outcome == "passed" else 0
            print(f"  {outcome:<22} {got}/{points.get(title, '?')}  {title}")
            failed += outcome != "passed"
        if result.error:
            print(f"  first error in the notebook: {result.error}")
    return 1 if failed else 0


def _cmd_bench_data(args) -> int:
    from course_utils.world.data import benchmark

    result = benchmark(n=args.n, seed=args.seed)
    for key, value in result.items():
        print(f"{key:>16}: {value:,.2f}" if isinstance(value, float) else f"{key:>16}: {value}")
    return 0


def _cmd_bench_index(args) -> int:
    import json

    from course_utils.retrieval.search import benchmark

    rows = benchmark(sizes=args.sizes, dim=args.dim, n_queries=args.queries, k=args.k,
                     kinds=args.kinds, threads=args.threads, progress=True)
    print(f"{'size':>10}  {'kind':<6} {'build s':>8} {'QPS':>10} {f'recall@{args.k}':>10} "
          f"{'bytes/vector':>13} {'speed-up':>9}")
    for row in rows:
        print(f"{row['size']:>10,}  {row['kind']:<6} {row['build_s']:>8.2f} {row['qps']:>10,.0f} "
              f"{row['recall']:>10.3f} {row['bytes_per_vector']:>13.1f} {row['speedup']:>8.1f}x")
    print(f"{rows[0]['dim']}-d synthetic embeddings, {args.queries} queries, "
          f"{rows[0]['threads']} thread(s); QPS: the median of 3 searches")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _cmd_reproduce(args) -> int:
    from dataclasses import replace

    from course_utils import flan, scaling
    from course_utils.shipped import list_pretrained, reproduce

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    stored = {flan.NAME: flan, scaling.NAME: scaling}  # results stored beside the models
    known = [*list_pretrained(), *stored]
    names = args.names or known
    for name in names:  # check every name before hours of training
        if name not in known:
            raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(known)}")
    for name in names:
        if name in stored:
            module = stored[name]
            recipe = module.RECIPE if args.threads is None else replace(module.RECIPE, threads=args.threads)
            result = module.reproduce(recipe=recipe)
            print(f"{name}: {len(result['points'])} points in {result['seconds']} s")
            continue
        card = reproduce(name, threads=args.threads)
        print(f"{name}: trained in {card['train_seconds']} s; metrics {card['metrics']}")
    return 0


def _cmd_sync_setup(args) -> int:
    import nbformat

    from course_utils.tools.colab import setup_cell_source
    from course_utils.tools.notebooks import list_chapters, read, set_badge

    for path in list_chapters():
        nb = read(path)
        code = [c for c in nb.cells if c.cell_type == "code"]
        changed = set_badge(nb, path.name)
        if code and code[0].source != setup_cell_source():
            code[0].source = setup_cell_source()
            changed = True
        if changed:
            nbformat.write(nb, str(path))
            print(f"updated {path.name}")
    return 0


def _cmd_site(args) -> int:
    from course_utils.tools.site import build_site

    if not (args.build_dir / "executed").is_dir():
        print(f"note: {args.build_dir}/executed/ does not exist: every chapter will show as not run "
              "(run `python3 -m course_utils run` first)")
    site = build_site(args.build_dir)
    print(f"built {site}/index.html\nopen it, or serve it: python3 -m http.server -d {site} 8000")
    return 0


def _cmd_nbgrader_course(args) -> int:
    from course_utils.tools.nbgrader_course import assignment_name, write_course
    from course_utils.tools.notebooks import resolve_chapters

    chapters = resolve_chapters(args.chapters)
    write_course(args.root, chapters)
    names = " ".join(assignment_name(p) for p in chapters)
    print(f"wrote {args.root}/nbgrader_config.py and source/ for {names}\n"
          f"next: cd {args.root} && nbgrader generate_assignment {assignment_name(chapters[0])}")
    return 0


def _cmd_exercises(args) -> int:
    from course_utils.tools.exercises import course_table, format_table
    from course_utils.tools.notebooks import list_chapters

    print(format_table(course_table(list_chapters()), markdown=args.markdown), end="")
    return 0


def _cmd_strip(args) -> int:
    import nbformat

    from course_utils.tools.notebooks import list_chapters, read, strip_outputs

    for path in args.notebooks or list_chapters():
        nbformat.write(strip_outputs(read(path)), str(path))
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "test": _cmd_test,
    "doctor": _cmd_doctor,
    "release": _cmd_release,
    "grade": _cmd_grade,
    "bench-data": _cmd_bench_data,
    "bench-index": _cmd_bench_index,
    "reproduce": _cmd_reproduce,
    "exercises": _cmd_exercises,
    "nbgrader-course": _cmd_nbgrader_course,
    "site": _cmd_site,
    "sync-setup": _cmd_sync_setup,
    "strip": _cmd_strip,
}
