"""The fusion models of chapter 05: one interface, shapes, masks, gates, bad inputs, checkpoints."""

from __future__ import annotations

import pytest
import torch

from course_utils import fusion
from course_utils.training import load_checkpoint, save_checkpoint
from course_utils.world import encoding, programs, vocabulary

KINDS = fusion.ALL_KINDS  # the five families of chapter 05 and slot_read
SMALL = {"vocab_size": 50, "num_answers": 7, "hidden_size": 32, "num_heads": 4}


def batch(b=3, t=6, seed=0, image_size=48, channels=3):
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.rand(b, channels, image_size, image_size, generator=g) * 2 - 1
    input_ids = torch.randint(5, 50, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, t - 2 :] = 0  # the second instruction is padded
    mask[2, t - 3 :] = 0
    input_ids[mask == 0] = 0
    return pixel_values, input_ids, mask


def small(kind, **kw):
    torch.manual_seed(0)
    return fusion.build_model(kind, **{**SMALL, **kw})


def test_the_five_kinds_are_there():
    assert set(KINDS) == set(fusion.KINDS) | {"slot_read"}
    assert set(fusion.KINDS) == {"cross_attention", "gated_cross_attention", "llava_projection",
                          "qformer", "late_fusion"}


@pytest.mark.parametrize("kind", KINDS)
def test_output_shape(kind):
    logits = small(kind)(*batch())
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize("kind", KINDS)
def test_the_world_sizes_fit_the_data_world(kind):
    model = fusion.build_model(kind, **encoding.model_sizes())
    assert model.cfg.num_answers == len(programs.answer_vocab())
    assert model.cfg.vocab_size == len(vocabulary.load_tokenizer())
    assert model.config["kind"] == kind and model.config["image_size"] == 48
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < (750_000 if kind == "slot_read" else 500_000), n
    pixel_values, input_ids, mask = batch()
    assert model(pixel_values, input_ids, mask).shape == (3, len(programs.answer_vocab()))


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_every_parameter(kind):
    model = small(kind)
    if kind == "gated_cross_attention":  # closed gates block the gradient to the xattn branch
        with torch.no_grad():
            for block in model.xattn:
                block.attn_gate.fill_(0.5)
                block.mlp_gate.fill_(0.5)
    model(*batch()).logsumexp(-1).sum().backward()
    dead = [n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
            and not n.endswith("tokens.weight")]  # only the ids used get embedding gradient
    assert dead == []
    tokens = model.text_encoder.tokens if hasattr(model, "text_encoder") else model.tokens
    assert tokens.weight.grad.abs().sum() > 0


def test_gated_model_is_its_text_only_path_at_init():
    model = small("gated_cross_attention")
    pixel_values, input_ids, mask = batch()
    logits = model(pixel_values, input_ids, mask)
    torch.testing.assert_close(logits, model.text_only(input_ids, mask))
    torch.testing.assert_close(logits, model(torch.randn_like(pixel_values), input_ids, mask))
    assert set(model.gates().values()) == {0.0}
    # only the gates get gradient from the image branch at step 0, and they do get it
    model(pixel_values, input_ids, mask).logsumexp(-1).sum().backward()
    assert model.xattn[0].attn_gate.grad.abs().item() > 0
    assert model.xattn[0].xattn.q_proj.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_image_matters_once_gates_open(kind):
    model = small(kind)
    if kind == "gated_cross_attention":
        with torch.no_grad():
            model.xattn[0].attn_gate.fill_(1.0)
    pixel_values, input_ids, mask = batch()
    a = model(pixel_values, input_ids, mask)
    b = model(torch.flip(pixel_values, dims=[-1]), input_ids, mask)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_matter(kind):
    model = small(kind).eval()
    pixel_values, input_ids, mask = batch()
    a = model(pixel_values, input_ids, mask)
    other = input_ids.clone()
    other[mask == 0] = 17  # change what sits at the padded positions
    torch.testing.assert_close(a, model(pixel_values, other, mask))
    longer = torch.cat([input_ids, torch.zeros(3, 4, dtype=torch.long)], 1)
    longer_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(a, model(pixel_values, longer, longer_mask), atol=1e-5, rtol=1e-4)
    # and without a mask it is built from the pad id
    torch.testing.assert_close(a, model(pixel_values, input_ids))


@pytest.mark.parametrize("kind", KINDS)
def test_examples_do_not_leak_across_the_batch(kind):
    model = small(kind).eval()
    pixel_values, input_ids, mask = batch()
    full = model(pixel_values, input_ids, mask)
    one = model(pixel_values[1:2], input_ids[1:2], mask[1:2])
    torch.testing.assert_close(full[1:2], one, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("size", "48x48"),
        ("channels", "3 channels"),
        ("no batch axis", "4 dimensions"),
        ("batch mismatch", "batch sizes differ"),
        ("mask shape", "attention_mask"),
        ("float ids", "input_ids"),
        ("too long", "max_length"),
    ],
)
def test_bad_inputs_say_what_was_expected(kind, change, match):
    model = small(kind, max_length=16)
    pixel_values, input_ids, mask = batch()
    if change == "size":
        pixel_values = torch.zeros(3, 3, 64, 64)
    elif change == "channels":
        pixel_values = torch.zeros(3, 1, 48, 48)
    elif change == "no batch axis":
        pixel_values = pixel_values[0]
    elif change == "batch mismatch":
        input_ids, mask = input_ids[:2], mask[:2]
    elif change == "mask shape":
        mask = mask[:, :3]
    elif change == "float ids":
        input_ids = input_ids.float()
    elif change == "too long":
        input_ids = torch.ones(3, 20, dtype=torch.long)
        mask = torch.ones(3, 20, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        model(pixel_values, input_ids, mask)


def test_build_model_rejects_unknown_kinds_and_fields():
    with pytest.raises(ValueError, match="known kinds: cross_attention"):
        fusion.build_model("perceiver")
    with pytest.raises(ValueError, match="unknown config fields"):
        fusion.build_model("qformer", hidden=32, **SMALL)
    with pytest.raises(ValueError, match="divisible"):
        fusion.build_model("qformer", **{**SMALL, "num_heads": 5})


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip(kind, tmp_path):
    model = small(kind, fusion_layers=1).eval()
    path = save_checkpoint(model, tmp_path / f"{kind}.safetensors", config=model.config)
    torch.manual_seed(1)
    meta = load_checkpoint(rebuilt := fusion.build_model(**meta_config(path)), path)
    assert meta["config"] == model.config
    rebuilt.eval()
    torch.testing.assert_close(model(*batch()), rebuilt(*batch()))


def meta_config(path):
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["course"])["config"]


def test_trace_shapes_lists_the_steps():
    model = small("llava_projection")
    rows = dict(fusion.trace_shapes(model, *batch(t=6)))
    assert rows["image_encoder"] == (3, 9, 32)
    assert rows["projector"] == (3, 9, 32)
    assert rows["blocks.0"] == (3, 15, 32)
    assert rows["classifier"] == (3, 7)


@pytest.mark.parametrize("kind", KINDS)
def test_overfits_one_small_batch(kind):
    model = small(kind)
    pixel_values, input_ids, mask = batch(b=8, t=6, seed=3)
    labels = torch.arange(8) % 7
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(pixel_values, input_ids, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_position_std_sets_the_scale_of_slot_reads_word_positions():
    loud, quiet = small("slot_read"), small("slot_read", position_std=0.02)
    assert 0.8 < loud.positions.weight.std() < 1.2
    assert 0.015 < quiet.positions.weight.std() < 0.025
    torch.testing.assert_close(quiet.positions.weight, loud.positions.weight * 0.02)  # same draws
    for bad in (0, -1.0, "big"):
        with pytest.raises(ValueError, match="position_std must be a positive number"):
            fusion.build_model("slot_read", position_std=bad, **SMALL)


def test_a_model_without_its_data_sizes_is_refused_clearly():
    with pytest.raises(ValueError, match="vocab_size and num_answers must be given.*model_sizes"):
        fusion.build_model("slot_read")
    with pytest.raises(ValueError, match="num_answers must be given"):
        fusion.build_model("late_fusion", vocab_size=50)
