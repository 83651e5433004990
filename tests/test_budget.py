"""Budgets as multiples of the reference workload, and how the run table shows them."""

import pytest

from course_utils.tools.budget import (
    BUDGETS,
    COURSE_BUDGET,
    DEFAULT_BUDGET,
    REFERENCE_SECONDS,
    budget,
    multiple,
    reference_seconds,
)
from course_utils.tools.notebooks import list_chapters
from course_utils.tools.runner import ChapterResult, format_table


def test_a_chapter_budget_is_90_seconds_on_the_reference_machine():
    assert budget("03_vision_encoders") == budget("03") == DEFAULT_BUDGET
    assert DEFAULT_BUDGET * REFERENCE_SECONDS == pytest.approx(90, abs=1)
    assert budget("08_instruction_tuning") == BUDGETS["08"]


def test_the_reference_workload_takes_seconds_and_scales_with_its_steps():
    short, long_ = reference_seconds(steps=30), reference_seconds(steps=90)
    assert 0 < short < long_ < 60


def test_multiple_refuses_a_reference_that_is_not_positive():
    assert multiple(30, 1.5) == 20
    with pytest.raises(ValueError, match="reference"):
        multiple(30, 0)


def test_the_table_shows_multiples_slowest_cells_and_chapters_over_budget():
    within = ChapterResult("03_vision", True, 60.0, slowest_cells=[[29, "STEPS = 300", 43.2]], multiple=38.7)
    over = ChapterResult("05_fusion", True, 120.0, multiple=DEFAULT_BUDGET + 1)
    unmeasured = ChapterResult("06_data", True, 10.0)
    table = format_table([within, over, unmeasured])
    assert "38.7 / 58" in table and "c29 43s" in table
    assert f"{DEFAULT_BUDGET + 1:.1f} / 58 OVER" in table
    assert table.splitlines()[4].split()[3] == "-"  # the unmeasured chapter


def test_the_total_row_sums_the_multiples_and_holds_the_whole_course_to_its_budget():
    assert COURSE_BUDGET * REFERENCE_SECONDS == pytest.approx(600, abs=1)  # 20 min, twice as slow
    chapters = [p.stem for p in list_chapters()]
    assert len(chapters) >= 14
    share = COURSE_BUDGET / len(chapters)
    inside = [ChapterResult(c, True, 1.0, multiple=share - 1) for c in chapters]
    total = format_table(inside).splitlines()[-1]
    assert f"{(share - 1) * len(chapters):.0f} / {COURSE_BUDGET:.0f}" in total and "OVER" not in total
    over = [ChapterResult(c, True, 1.0, multiple=share + 1) for c in chapters]
    assert f"{(share + 1) * len(chapters):.0f} / {COURSE_BUDGET:.0f} OVER" in format_table(over).splitlines()[-1]
    # a run of some chapters only: their sum, and no course budget to compare it with
    some = format_table(inside[:3]).splitlines()[-1]
    assert f"{(share - 1) * 3:.1f}" in some and f"/ {COURSE_BUDGET:.0f}" not in some
    assert format_table([ChapterResult(chapters[0], True, 1.0)]).splitlines()[-1].split()[4] == "-"
