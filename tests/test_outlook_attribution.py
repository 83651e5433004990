"""Chapter 14, section 1: attention heatmaps, the pointing game, hiding cells and integrated
gradients (checked against captum and against the completeness axiom)."""

from __future__ import annotations

import json

import pytest
import torch

from course_utils import shipped
from course_utils.outlook import attribution
from course_utils.world import data, encoding, programs, scenes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch():
    """The shipped model and four attribute questions of a freshly generated ``test`` split,
    with the cell of the object each question names."""
    vqa = shipped.load_pretrained("vqa-slot-read")
    split = data.load_instruction_dataset(seed=0, n_train=0, n_eval=4, splits=("test",),
                                          families=("attribute",), cache=False)["test"]
    t = encoding.to_tensors(split, vqa.tokenizer)
    cells = []
    for scene, program in zip(split["scene"], split["program"]):
        scene, program = json.loads(scene), json.loads(program)
        row, col = scenes.cell_of(programs.unique(scene, program["obj"]), scene)
        cells.append(row * scenes.GRID + col)
    return vqa.model, t, torch.tensor(cells)


def _inputs(t):
    return t["pixel_values"], t["input_ids"], t["attention_mask"]


# ---- attention as a heatmap, the pointing game ------------------------------------------------


def test_the_heatmap_is_the_mean_of_the_reads(batch):
    model, t, _ = batch
    heat = attribution.attention_heatmap(model, *_inputs(t))
    reads = model.read_weights(*_inputs(t))  # (B, hops, K, 9)
    assert heat.shape == (4, 9)
    torch.testing.assert_close(heat, reads.mean((1, 2)))
    torch.testing.assert_close(heat.sum(-1), torch.ones(4))
    one = attribution.attention_heatmap(model, *_inputs(t), hop=1, slot=2)
    torch.testing.assert_close(one, reads[:, 1, 2])
    torch.testing.assert_close(attribution.attention_heatmap(model, *_inputs(t), hop=0),
                               reads[:, 0].mean(1))


def test_the_heatmap_refuses_a_model_without_reads_and_a_bad_hop(batch):
    model, t, _ = batch
    with pytest.raises(ValueError, match="model must be a slot_read model"):
        attribution.attention_heatmap(torch.nn.Linear(3, 3), *_inputs(t))
    with pytest.raises(ValueError, match=r"hop must be None or an int in \[0, 2\)"):
        attribution.attention_heatmap(model, *_inputs(t), hop=2)
    with pytest.raises(ValueError, match="slot must be"):
        attribution.attention_heatmap(model, *_inputs(t), slot=-1)


def test_the_pointing_game_on_hand_made_maps():
    heat = torch.zeros(3, 9)
    heat[0, 4], heat[1, 0], heat[2, 8] = 1.0, 0.5, 0.9
    heat[1, 3] = 0.4
    hits = attribution.pointing_game(heat, torch.tensor([4, 3, 8]))
    assert hits.tolist() == [True, False, True]
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[0, 4] = mask[1, 3] = mask[1, 0] = True  # image 1: either cell counts
    assert attribution.pointing_game(heat, mask).tolist() == [True, True, False]
    tie = torch.ones(1, 9)
    assert attribution.pointing_game(tie, torch.tensor([0])).tolist() == [True]


def test_the_pointing_game_refuses_bad_targets():
    heat = torch.rand(2, 9)
    with pytest.raises(ValueError, match="target must be an integer tensor"):
        attribution.pointing_game(heat, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"target must hold cell indices in \[0, 9\)"):
        attribution.pointing_game(heat, torch.tensor([1, 9]))
    with pytest.raises(ValueError, match="target as a mask must be bool"):
        attribution.pointing_game(heat, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="heat must be a tensor"):
        attribution.pointing_game(torch.rand(9), torch.tensor([1]))


# ---- hiding a cell ----------------------------------------------------------------------------


def test_hide_cells_paints_exactly_one_block_and_leaves_the_input_alone():
    pixel_values = torch.rand(2, 3, 48, 48) * 2 - 1
    before = pixel_values.clone()
    hidden = attribution.hide_cells(pixel_values, torch.tensor([5, 0]))
    assert torch.equal(pixel_values, before)
    background = (225 / 255 - 0.5) / 0.5
    changed = (hidden != pixel_values).any(1)  # (B, H, W)
    expected = torch.zeros(2, 48, 48, dtype=torch.bool)
    expected[0, 16:32, 32:48] = True  # cell 5: row 1, column 2
    expected[1, 0:16, 0:16] = True
    assert torch.equal(changed, expected)
    torch.testing.assert_close(hidden[0, :, 16:32, 32:48], torch.full((3, 16, 16), background))
    red = attribution.normalise_rgb((255, 0, 0))
    painted = attribution.hide_cells(pixel_values, torch.tensor([8, 8]), fill=red)
    assert torch.equal(painted[:, 0, 32:, 32:], torch.ones(2, 16, 16))
    assert torch.equal(painted[:, 1, 32:, 32:], -torch.ones(2, 16, 16))


def test_hide_cells_refuses_bad_cells_and_fills():
    pixel_values = torch.zeros(2, 3, 48, 48)
    with pytest.raises(ValueError, match=r"cells must hold cell indices in \[0, 9\)"):
        attribution.hide_cells(pixel_values, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="cells must be an integer tensor"):
        attribution.hide_cells(pixel_values, torch.tensor([0]))
    with pytest.raises(ValueError, match="fill must be a normalised RGB triple"):
        attribution.hide_cells(pixel_values, torch.tensor([0, 1]), fill=(225, 225, 225))
    with pytest.raises(ValueError, match="grid must be a positive int"):
        attribution.hide_cells(pixel_values, torch.tensor([0, 1]), grid=5)
    with pytest.raises(ValueError, match="rgb must be 3 numbers"):
        attribution.normalise_rgb((300, 0, 0))


# ---- integrated gradients ---------------------------------------------------------------------


def test_integrated_gradients_equals_captum(batch):
    from captum.attr import IntegratedGradients

    model, t, _ = batch
    pixel_values, input_ids, attention_mask = _inputs(t)
    labels = t["labels"]
    for baseline in (None, torch.zeros_like(pixel_values)):
        ours = attribution.integrated_gradients(model, pixel_values, input_ids, attention_mask,
                                                labels, baseline=baseline, steps=16, batch_size=10)
        reference = IntegratedGradients(model).attribute(
            pixel_values, target=labels, n_steps=16, method="riemann_middle",
            baselines=attribution.blank_like(pixel_values) if baseline is None else baseline,
            additional_forward_args=(input_ids, attention_mask))
        assert ours.shape == pixel_values.shape
        scale = reference.abs().max().item()
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6 * scale)


def test_integrated_gradients_are_complete(batch):
    model, t, _ = batch
    pixel_values, input_ids, attention_mask = _inputs(t)
    labels = t["labels"]
    blank = attribution.blank_like(pixel_values)
    with torch.no_grad():
        change = (model(pixel_values, input_ids, attention_mask)
                  - model(blank, input_ids, attention_mask)).gather(1, labels[:, None])[:, 0]
    errors = []
    for steps in (4, 32, 128):
        ig = attribution.integrated_gradients(model, pixel_values, input_ids, attention_mask,
                                              labels, steps=steps)
        errors.append((ig.sum((1, 2, 3)) - change).abs().mean().item())
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.01 * change.abs().mean().item(), (errors, change)


def test_integrated_gradients_refuse_bad_arguments(batch):
    model, t, _ = batch
    pixel_values, input_ids, attention_mask = _inputs(t)
    labels = t["labels"]
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        attribution.integrated_gradients(model, *_inputs(t), labels, steps=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        attribution.integrated_gradients(model, *_inputs(t), labels, batch_size=0)
    with pytest.raises(ValueError, match=r"target must be an integer tensor \(4,\)"):
        attribution.integrated_gradients(model, *_inputs(t), labels[:2])
    with pytest.raises(ValueError, match="baseline must have the shape of pixel_values"):
        attribution.integrated_gradients(model, *_inputs(t), labels, baseline=pixel_values[:1])
    with pytest.raises(ValueError, match="pixel_values must be a float tensor"):
        attribution.integrated_gradients(model, pixel_values[0], input_ids, attention_mask, labels)


# ---- comparing maps ---------------------------------------------------------------------------


def test_cell_scores_sum_the_absolute_mass_of_each_cell():
    attributions = torch.zeros(2, 3, 48, 48)
    attributions[0, 0, 20, 40] = -2.0  # cell 5
    attributions[0, 2, 21, 41] = 1.0  # cell 5
    attributions[1, 1, 47, 0] = 3.0  # cell 6
    scores = attribution.cell_scores(attributions)
    expected = torch.zeros(2, 9)
    expected[0, 5], expected[1, 6] = 3.0, 3.0
    assert torch.equal(scores, expected)
    noisy = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(attribution.cell_scores(noisy).sum(-1), noisy.abs().sum((1, 2, 3)))
    with pytest.raises(ValueError, match="grid must be a positive int"):
        attribution.cell_scores(noisy, grid=5)


def test_agreement_and_rank_correlation_of_maps():
    a = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    same_top = torch.tensor([[0.0, 9.0, 1.0], [0.0, 0.0, 1.0]])
    assert attribution.top_cell_agreement(a, same_top) == 0.5
    torch.testing.assert_close(attribution.rank_correlation(a, a * 10), torch.ones(2))
    torch.testing.assert_close(attribution.rank_correlation(a, -a), -torch.ones(2))
    with pytest.raises(ValueError, match="a and b must be"):
        attribution.top_cell_agreement(a, a[:1])
    with pytest.raises(ValueError, match="b must be a tensor"):
        attribution.rank_correlation(a, a[0])
