"""The FLAN curve: the stored curve matches the current recipe, a tiny curve reproduces end to
end, and bad arguments are named."""

from __future__ import annotations

import dataclasses

import pytest

from course_utils import flan


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


TINY = dataclasses.replace(flan.RECIPE, n_train=200, n_eval=20, steps=3, batch_size=16, templates=(1, 2),
                           kinds=("slot_read",))  # fmt: skip


def test_stored_curve_was_made_by_the_current_recipe():
    """A recipe edited without re-running the curve would make the chapter's re-run disagree."""
    curve = flan.load_curve()
    assert curve["recipe"] == {k: list(v) if isinstance(v, tuple) else v
                               for k, v in dataclasses.asdict(flan.RECIPE).items()}  # fmt: skip
    got = {(p["kind"], p["num_templates"]) for p in curve["points"]}
    assert got == {(kind, k) for kind in flan.RECIPE.kinds for k in flan.RECIPE.templates}
    for p in curve["points"]:
        assert set(flan.SPLITS) <= set(p) and all(0.0 <= p[s] <= 1.0 for s in flan.SPLITS)


def test_a_tiny_curve_reproduces_and_reloads(tmp_path):
    curve = flan.reproduce(folder=tmp_path, progress=False, recipe=TINY)
    assert flan.path(tmp_path).is_file()
    assert flan.load_curve(tmp_path) == curve
    assert [p["num_templates"] for p in curve["points"]] == [1, 2]
    again = flan.train_point("slot_read", 2, recipe=TINY, progress=False)
    stored = flan.stored_point(curve, "slot_read", 2)
    assert {s: again[s] for s in flan.SPLITS} == {s: stored[s] for s in flan.SPLITS}  # same seed, same numbers


def test_bad_points_are_named(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        flan.train_point("late_fusion", 1, recipe=TINY)
    with pytest.raises(ValueError, match="num_templates"):
        flan.train_point("slot_read", 0, recipe=TINY)
    with pytest.raises(KeyError, match="3 templates"):
        flan.stored_point({"points": []}, "slot_read", 3)
    with pytest.raises(FileNotFoundError, match="reproduce flan-curve"):
        flan.load_curve(tmp_path)
