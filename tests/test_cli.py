"""The command line: the runner's table, clear one-line errors, release and grading."""

import json
import os
import subprocess
import sys

import nbformat
import pytest

from course_utils.runtime import REPO_ROOT
from course_utils.tools.cli import main
from course_utils.tools.notebooks import list_chapters, read, student_version


def _cli(*args, tmp_path):
    env = {**os.environ, "COURSE_NO_VENV": "1", "COURSE_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "course_utils", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "99"], "no chapter matches '99'"),
        (["run", "no-such-topic"], "no chapter matches 'no-such-topic'"),
        (["run", "missing/00_nothing.ipynb"], "no such notebook"),
        (["grade", "missing.ipynb"], "no such notebook"),
        (["frobnicate"], "invalid choice"),
        (["bench-data", "--n", "-5"], "n"),
    ],
)
def test_bad_input_gets_a_one_line_error(args, message, tmp_path):
    proc = _cli(*args, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_run_executes_a_chapter_and_prints_the_table(tmp_path):
    build = tmp_path / "build"
    proc = _cli("run", "01", "--build-dir", str(build), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "chapter" in proc.stdout and "key metrics" in proc.stdout
    assert "01_background  pass" in proc.stdout
    assert (build / "executed" / "01_background.ipynb").is_file()
    assert (build / "html" / "01_background.html").is_file()
    results = json.loads((build / "results.json").read_text())
    assert results[0]["passed"] and results[0]["metrics"]["image_tokens"] == 197
    assert set(results[0]["exercises"].values()) == {"passed"}
    slowest = results[0]["slowest_cells"]  # [cell index, first line, seconds], slowest first
    assert len(slowest) == 3 and [t for *_, t in slowest] == sorted((t for *_, t in slowest), reverse=True)
    assert 0 < results[0]["multiple"] < 1000 and "x ref / budget" in proc.stdout
    assert "reference workload:" in proc.stdout


def test_run_fails_with_nonzero_exit_when_a_chapter_fails(tmp_path):
    nb = read(list_chapters()[0])
    nb.cells.append(nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'a broken claim'"))
    broken = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, str(broken))
    proc = _cli("run", str(broken), "--build-dir", str(tmp_path / "b"), "--no-html",
                tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "a broken claim" in proc.stdout


def test_release_writes_student_notebooks(tmp_path):
    assert main(["release", "--out", str(tmp_path)]) == 0
    for path in list_chapters():
        text = (tmp_path / path.name).read_text()
        assert "### BEGIN SOLUTION" not in text and "YOUR CODE HERE" in text


def test_grade_reports_unattempted_exercises_of_a_student_version(tmp_path):
    student = tmp_path / "01_background.ipynb"
    nbformat.write(student_version(read(list_chapters()[0])), str(student))
    proc = _cli("grade", str(student), "--build-dir", str(tmp_path / "g"), tmp_path=tmp_path)
    assert proc.returncode == 1  # nothing attempted yet: not a pass
    assert proc.stdout.count("not attempted") == 3, proc.stdout
    assert "0 of 4 points" in proc.stdout and "0/2" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_exercises_prints_the_table_of_every_exercise(capsys):
    from course_utils.tools.exercises import course_table

    assert main(["exercises"]) == 0
    out = capsys.readouterr().out
    assert "06_data" in out and "Pick the label-preserving augmentations" in out and "★☆☆" in out
    rows = course_table(list_chapters())
    assert out.strip().splitlines()[-1].startswith(f"{len(rows)} exercises, {sum(r['points'] for r in rows)} points")
    assert sum(title in out for title in (r["title"] for r in rows)) == len(rows)
    assert main(["exercises", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| chapter | exercise |")


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("run", "test", "doctor", "release", "grade", "exercises", "nbgrader-course"):
        assert command in out


def test_bench_data_reports_the_generation_time(capsys):
    assert main(["bench-data", "--n", "500"]) == 0
    out = capsys.readouterr().out
    assert "total_s" in out and "examples_per_s" in out


def test_bench_index_prints_the_table_and_writes_json(capsys, tmp_path):
    path = tmp_path / "index.json"
    assert main(["bench-index", "--sizes", "300", "500", "--dim", "16", "--queries", "20",
                 "--threads", "1", "--json", str(path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["size", "kind", "build", "s", "QPS", "recall@10", "bytes/vector", "speed-up"]
    table = [line.split() for line in lines[1:11]]
    assert [(row[0], row[1]) for row in table] == [
        (size, kind) for size in ("300", "500") for kind in ("exact", "flat", "ivf", "hnsw", "ivfpq")]
    assert table[1][4] == "1.000" and table[0][-1] == "1.0x"  # flat is exact; exact is the baseline
    rows = json.loads(path.read_text())
    assert len(rows) == 10 and rows[2]["kind"] == "ivf" and rows[2]["threads"] == 1
    assert "500 vectors: searching ivfpq" in captured.err  # the progress


def test_bench_index_bad_input_is_a_one_line_error(capsys):
    assert main(["bench-index", "--sizes", "5"]) == 2
    err = capsys.readouterr().err
    assert "bench-index: error: every size (at least k=10) must be an int >= 10, got 5" in err
    assert len(err.strip().splitlines()) == 1


def test_test_passes_options_through_to_pytest(tmp_path):
    proc = _cli("test", "--collect-only", "-q", "-k", "seed", "tests/test_runtime.py",
                tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "test_seed_everything_makes_all_generators_repeat" in proc.stdout
