"""Chapter 14, section 6: two-frame clips of the world and the model that reads them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.outlook import video
from course_utils.world import clips, scenes


@pytest.fixture(scope="module")
def some_clips():
    return clips.generate_clips(60, seed=3, distractors=0.3)


def _cell(obj, scene):
    return scenes.cell_of(obj, scene)


# ---- the clips ------------------------------------------------------------------------------


def test_a_moved_object_moved_one_cell_in_the_stated_direction_and_nothing_else_changed(some_clips):
    moves = [c for c in some_clips if c["index"] is not None]
    assert len(moves) > 20
    for clip in moves:
        before, after, i = clip["before"], clip["after"], clip["index"]
        assert len(before["objects"]) == len(after["objects"])
        row, col = _cell(before["objects"][i], before)
        dr, dc = scenes.DIRECTIONS[clip["direction"]]
        assert _cell(after["objects"][i], after) == (row + dr, col + dc)
        moved = before["objects"][i]
        assert [clip[k] for k in ("color", "shape", "size")] == \
            [moved[k] for k in ("color", "shape", "size")]
        assert {k: v for k, v in after["objects"][i].items() if k not in ("x", "y")} == \
            {k: v for k, v in moved.items() if k not in ("x", "y")}
        assert [o for j, o in enumerate(after["objects"]) if j != i] == \
            [o for j, o in enumerate(before["objects"]) if j != i]
        assert clip["answer"].endswith(f"moved {clip['direction']}")
        assert f"{moved['color']} {moved['shape']}" in clip["answer"]
        if clip["nuisance"] is None:
            assert after["style"] == before["style"]


def test_a_distractor_changes_the_pixels_and_no_object(some_clips):
    still = [c for c in some_clips if c["index"] is None]
    assert len(still) > 5
    for clip in still:
        assert clip["after"]["objects"] == clip["before"]["objects"]
        assert clip["nuisance"] in clips.NUISANCES
        assert clip["direction"] == clips.NONE and clip["answer"] == clips.NOTHING_MOVED
        assert clip["color"] is clip["shape"] is None
        assert not np.array_equal(np.asarray(scenes.render(clip["before"])),
                                  np.asarray(scenes.render(clip["after"])))


def test_moves_carry_nuisances_too_so_a_nuisance_alone_says_nothing(some_clips):
    moves = [c for c in some_clips if c["index"] is not None]
    assert 0 < sum(c["nuisance"] is not None for c in moves) < len(moves)
    assert all(c["nuisance"] is None for c in clips.generate_clips(20, seed=1, nuisance=0.0))


def test_labels_round_trip_and_frames_are_the_normalised_renders(some_clips):
    t = clips.clip_tensors(some_clips)
    assert t["frames"].shape == (60, 2, 3, 48, 48) and t["labels"].shape == (60, 3)
    assert t["frames"].dtype == torch.float32 and -1 <= t["frames"].min() and t["frames"].max() <= 1
    first = np.array(scenes.render(some_clips[0]["after"]))
    expected = (torch.from_numpy(first).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.allclose(t["frames"][0, 1], expected)
    for clip, decoded in zip(some_clips, clips.decode_labels(t["labels"])):
        assert decoded == {k: clip[k] for k in ("color", "shape", "direction")}
        with_size = clip["answer"].count(" ") == 5  # "the small red circle moved up"
        size = clip["size"] if with_size else None
        assert clips.answer_text(**decoded, size=size) == clip["answer"]
    assert set(t["labels"][:, 2].tolist()) == set(range(len(clips.DIRECTION_LABELS)))


def test_clips_are_deterministic_per_seed_and_per_index():
    a = clips.generate_clips(12, seed=5, distractors=0.2)
    assert a == clips.generate_clips(12, seed=5, distractors=0.2)
    assert a[:7] == clips.generate_clips(7, seed=5, distractors=0.2)
    assert a != clips.generate_clips(12, seed=6, distractors=0.2)
    assert torch.equal(clips.clip_tensors(a)["frames"], clips.clip_tensors(a)["frames"])


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n": -1}, "n"), ({"n": 2.5}, "n"), ({"n": 3, "distractors": 1.5}, "distractors"),
    ({"n": 3, "nuisance": -0.1}, "nuisance"), ({"n": 3, "num_objects": 9}, "num_objects"),
])
def test_bad_clip_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        clips.generate_clips(**kwargs)


def test_bad_labels_and_empty_clips_are_value_errors():
    with pytest.raises(ValueError, match="labels"):
        clips.decode_labels([[0, 1]])
    with pytest.raises(ValueError, match="clips"):
        clips.clip_tensors([])


# ---- the model ------------------------------------------------------------------------------


def _model(fusion="difference", **kw):
    return video.build_change_reader(fusion, seed=0, hidden_size=16, num_heads=2,
                                     **clips.label_sizes(), **kw).eval()


def test_the_reader_gives_three_heads_side_by_side(some_clips):
    model = _model()
    frames = clips.clip_tensors(some_clips[:4])["frames"]
    logits = model(frames)
    assert logits.shape == (4, sum(clips.label_sizes().values()))
    colour, shape, direction = model.split(logits)
    assert colour.shape == (4, len(clips.COLOR_LABELS))
    assert shape.shape == (4, len(clips.SHAPE_LABELS))
    assert direction.shape == (4, len(clips.DIRECTION_LABELS))
    assert model.move(torch.randn(4, 9, 16)).shape == (4, 2)


def test_the_single_frame_baseline_never_reads_the_first_frame(one_thread):
    torch.manual_seed(0)
    frames = torch.randn(3, 2, 3, 48, 48, requires_grad=True)
    other = frames.detach().clone()
    other[:, 0] = torch.randn(3, 3, 48, 48)
    last, both = _model("last"), _model("difference")
    assert torch.equal(last(frames), last(other))
    last(frames).sum().backward()
    assert frames.grad[:, 0].abs().max() == 0 and frames.grad[:, 1].abs().max() > 0
    assert not torch.allclose(both(frames), both(other))


def test_the_same_seed_builds_the_same_reader():
    a, b = _model(), _model()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"fusion": "average"}, "fusion"), ({"cell_size": 6}, "cell_size"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"hidden_size": 30, "num_heads": 4}, "hidden_size"), ({"layers": True}, "layers"),
    ({"num_colors": None}, "num_colors"),
])
def test_bad_config_values_are_named(kwargs, name):
    config = {**clips.label_sizes(), **kwargs}
    with pytest.raises(ValueError, match=name):
        video.VideoConfig(**config)


def test_bad_frames_are_value_errors():
    model = _model()
    with pytest.raises(ValueError, match="frames"):
        model(torch.zeros(2, 3, 48, 48))
    with pytest.raises(ValueError, match="frames"):
        model(torch.zeros(2, 2, 3, 48, 48, dtype=torch.uint8))
    with pytest.raises(ValueError, match="labels"):
        bad = {"frames": torch.zeros(2, 2, 3, 48, 48), "labels": torch.zeros(2)}
        video.change_accuracy(model, bad)


def test_a_short_training_lowers_the_loss_and_the_metrics_are_shares(some_clips, one_thread):
    data = clips.clip_tensors(some_clips)
    model = _model()
    history = video.train_change_reader(model, data, steps=30, batch_size=30, lr=3e-3)
    assert history.train_loss[-1] < history.train_loss[0]
    metrics = video.change_accuracy(model, data)
    assert set(metrics) == {"color", "shape", "direction", "exact"}
    assert all(0 <= v <= 1 for v in metrics.values())
    assert metrics["exact"] <= min(metrics["color"], metrics["shape"], metrics["direction"])
