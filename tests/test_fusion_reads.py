"""SlotReadFusion.read_weights: the reads' attention over the grid cells (chapter 09)."""

from __future__ import annotations

import pytest
import torch

from course_utils import fusion


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = fusion.build_model("slot_read", vocab_size=50, num_answers=7).eval()
    pixel_values = torch.randn(3, 3, 48, 48)
    input_ids = torch.randint(5, 50, (3, 8))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    input_ids[1, 5:] = 0
    return model, pixel_values, input_ids, attention_mask


def test_shape_and_rows_sum_to_one(model_and_batch):
    model, pv, ids, mask = model_and_batch
    w = model.read_weights(pv, ids, mask)
    cfg = model.cfg
    assert w.shape == (3, cfg.hops, cfg.num_queries, cfg.grid**2)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(3, cfg.hops, cfg.num_queries))
    assert not w.requires_grad


def test_forward_is_unchanged_and_weights_depend_on_the_image(model_and_batch):
    model, pv, ids, mask = model_and_batch
    logits = model(pv, ids, mask)
    assert logits.shape == (3, 7)
    torch.testing.assert_close(model._fuse(pv, ids, mask)[0], logits)
    w1 = model.read_weights(pv, ids, mask)
    w2 = model.read_weights(pv.flip(-1), ids, mask)
    assert not torch.allclose(w1, w2)


def test_padding_does_not_change_the_reads(model_and_batch):
    model, pv, ids, mask = model_and_batch
    short = model.read_weights(pv[1:2], ids[1:2, :5], mask[1:2, :5])
    padded = model.read_weights(pv[1:2], ids[1:2], mask[1:2])
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-4)


def test_bad_inputs_raise(model_and_batch):
    model, pv, ids, mask = model_and_batch
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.read_weights(pv[:2], ids, mask)
