"""course_utils.pretraining: the CLIP loss, the dual encoder, Recall@K, LLaVA stage 1, saving."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import fusion
from course_utils.pretraining import (
    ContrastiveModel,
    Projector,
    clip_loss,
    count_trainable,
    freeze,
    load_pretrained_encoders,
    retrieval_accuracy,
    save_pretrained_encoders,
    stage1_embeddings,
    stage1_loss,
)

VOCAB = 50


def unit(n, e, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, e, generator=g), dim=-1)


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    return ContrastiveModel(embed_dim=16, vocab_size=VOCAB, num_answers=5, hidden_size=32,
                            max_length=12, **kw)


def batch(n=6, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[0, 4:] = 0
    ids[0, 4:] = 0
    return {"pixel_values": torch.randn(n, 3, 48, 48, generator=g), "input_ids": ids,
            "attention_mask": mask}


# ---- clip_loss ------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.07, 0.5, 1.0])
def test_clip_loss_equals_cross_entropy_both_ways(t):
    a, b = unit(9, 8, 0), unit(9, 8, 1)
    logits = a @ b.T / t
    labels = torch.arange(9)
    want = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(clip_loss(a, b, t), want)


def test_clip_loss_is_symmetric_and_accepts_a_tensor_temperature():
    a, b = unit(7, 5, 2), unit(7, 5, 3)
    torch.testing.assert_close(clip_loss(a, b, 0.1), clip_loss(b, a, 0.1))
    t = torch.tensor(0.1, requires_grad=True)
    loss = clip_loss(a, b, t)
    loss.backward()
    assert t.grad is not None and torch.isfinite(t.grad)


def test_uniform_logits_give_log_n_and_perfect_alignment_a_low_loss():
    same = torch.zeros(16, 4)
    same[:, 0] = 1.0  # every embedding identical: the model cannot tell pairs apart
    assert clip_loss(same, same, 0.07).item() == pytest.approx(math.log(16), abs=1e-5)
    eye = torch.eye(16)  # perfectly aligned, orthogonal pairs
    assert clip_loss(eye, eye, 0.07).item() < 1e-4
    assert clip_loss(eye, eye.flip(0), 0.07).item() > 10  # every pair wrong


def test_temperature_sets_the_loss_floor():
    eye = torch.eye(32)
    floors = [clip_loss(eye, eye, t).item() for t in (1.0, 0.3, 0.07, 0.01)]
    assert floors == sorted(floors, reverse=True)
    assert floors[0] == pytest.approx(math.log(math.e + 31) - 1, rel=1e-5)  # can't be confident at T=1


@pytest.mark.parametrize(
    ("a", "b", "t", "message"),
    [
        (torch.randn(4, 8) * 3, unit(4, 8, 0), 0.1, "unit length"),
        (unit(4, 8, 0), unit(5, 8, 1), 0.1, "same shape"),
        (unit(4, 8, 0)[None], unit(4, 8, 0)[None], 0.1, r"\(N, E\)"),
        (torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long), 0.1, "float"),
        (unit(4, 8, 0), unit(4, 8, 1), 0.0, "positive"),
        (unit(4, 8, 0), unit(4, 8, 1), -1.0, "positive"),
        (unit(4, 8, 0), unit(4, 8, 1), torch.ones(2), "one positive number"),
    ],
)
def test_clip_loss_rejects_bad_inputs(a, b, t, message):
    with pytest.raises(ValueError, match=message):
        clip_loss(a, b, t)


# ---- retrieval_accuracy ---------------------------------------------------------------


def test_retrieval_on_hand_made_cases():
    eye = torch.eye(4)
    assert retrieval_accuracy(eye, eye, k=(1, 2)) == {
        "image_to_text@1": 1.0, "text_to_image@1": 1.0, "image_to_text@2": 1.0, "text_to_image@2": 1.0}
    # images 0..3 all point at caption 0: image->text only image 0 is right at K=1;
    # text->image: caption 0's true image ties with the others (a tie is not a miss)
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    r = retrieval_accuracy(img, txt, k=(1, 3, 4))
    assert r["image_to_text@1"] == 0.25  # only image 0's own caption is the best
    assert r["image_to_text@3"] == 0.75  # caption 3 (-1, 0) is last for every image
    assert r["image_to_text@4"] == 1.0  # K = N: always a hit
    assert r["text_to_image@1"] == 1.0  # every image scores the same for each caption


def test_retrieval_is_by_cosine_and_axis_matters():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(30, 6, generator=g), torch.randn(30, 6, generator=g)
    r = retrieval_accuracy(img, txt, k=5)
    assert r == retrieval_accuracy(img * 7, txt * 0.1, k=5)  # scale-free
    swapped = retrieval_accuracy(txt, img, k=5)
    assert r["image_to_text@5"] == swapped["text_to_image@5"]
    sim = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    top = sim.topk(5, dim=1).indices
    want = (top == torch.arange(30)[:, None]).any(1).float().mean().item()
    assert r["image_to_text@5"] == pytest.approx(want)


@pytest.mark.parametrize("k", [0, 5, (1, 6), 1.0, True])
def test_retrieval_rejects_bad_k(k):
    with pytest.raises(ValueError, match="K must be an int"):
        retrieval_accuracy(unit(4, 3, 0), unit(4, 3, 1), k=k)


# ---- the model -----------------------------------------------------------------------


def test_model_uses_the_fusion_encoders_and_returns_unit_embeddings():
    model = small_model()
    assert type(model.image_encoder) is fusion.ImageEncoder
    assert type(model.text_encoder) is fusion.InstructionEncoder
    out = model(**batch())
    assert out["image_embeds"].shape == out["text_embeds"].shape == (6, 16)
    for key in ("image_embeds", "text_embeds"):
        torch.testing.assert_close(out[key].norm(dim=-1), torch.ones(6))
    assert out["temperature"].item() == pytest.approx(0.07)
    loss = model.loss(**batch())
    loss.backward()
    assert model.logit_scale.grad is not None


def test_padding_does_not_change_the_text_embedding():
    model = small_model().eval()
    b = batch()
    short = model.encode_text(b["input_ids"][:1, :4], b["attention_mask"][:1, :4])
    padded = model.encode_text(b["input_ids"][:1], b["attention_mask"][:1])
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-4)


def test_temperature_is_clamped_at_a_logit_scale_of_100():
    model = small_model()
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.temperature.item() == pytest.approx(0.01)


def test_model_rejects_mismatched_batches_and_bad_config():
    model = small_model()
    b = batch()
    with pytest.raises(ValueError, match="one caption per image"):
        model(b["pixel_values"][:3], b["input_ids"], b["attention_mask"])
    with pytest.raises(ValueError, match="unknown config"):
        ContrastiveModel(vocab_size=VOCAB, num_answers=2, hiden_size=8)
    with pytest.raises(ValueError, match="embed_dim"):
        ContrastiveModel(embed_dim=0, vocab_size=VOCAB, num_answers=2)


def test_a_few_steps_of_training_lower_the_loss():
    model = small_model()
    b = batch(n=16, seed=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss(**b).item()
    for _ in range(30):
        loss = model.loss(**b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 2


# ---- LLaVA stage 1 ----------------------------------------------------------------------


def test_stage1_trains_only_the_projector():
    model = freeze(small_model())
    projector = Projector(32)
    assert count_trainable(model)[0] == 0
    assert count_trainable(projector)[0] == count_trainable(projector)[1] > 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    b = batch(n=12, seed=5)
    opt = torch.optim.AdamW(projector.parameters(), lr=1e-2)
    first = stage1_loss(model, projector, **b).item()
    for _ in range(25):
        loss = stage1_loss(model, projector, **b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.5
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    img, txt = stage1_embeddings(model, projector, **b)
    assert img.shape == txt.shape == (12, 32)


def test_projector_has_the_llava_fusion_layout():
    llava = fusion.build_model("llava_projection", vocab_size=VOCAB, num_answers=5, hidden_size=32)
    llava.projector.load_state_dict(Projector(32).state_dict())  # strict: names and shapes match


# ---- saving -----------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    model, projector = small_model(seed=1).eval(), Projector(32)
    path = save_pretrained_encoders(model, projector, tmp_path / "w.safetensors", steps=3)
    loaded = load_pretrained_encoders(path=path)
    assert loaded["metadata"] == {"steps": 3}
    again = loaded["model"].eval()
    assert again.config == model.config
    b = batch()
    with torch.no_grad():
        for key in ("image_embeds", "text_embeds"):
            assert torch.equal(again(**b)[key], model(**b)[key])
        x = torch.randn(2, 9, 32)
        assert torch.equal(loaded["projector"](x), projector(x))


def test_default_path_is_the_course_cache_and_fusion_models_load_it():
    model = small_model(seed=2).eval()
    path = save_pretrained_encoders(model, Projector(32))
    assert path.parent.name == "pretrained" and path.suffix == ".safetensors"
    llava = fusion.build_model("llava_projection", **model.fusion_config).eval()
    out = load_pretrained_encoders(llava)
    assert out["loaded"] == ["image_encoder", "text_encoder", "projector"]
    b = batch()
    with torch.no_grad():
        assert torch.equal(llava.image_encoder(b["pixel_values"]),
                           model.image_encoder(b["pixel_values"]))
    late = fusion.build_model("late_fusion", **model.fusion_config)
    assert load_pretrained_encoders(late)["loaded"] == ["image_encoder", "text_encoder"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="chapter 07"):
        load_pretrained_encoders(path=tmp_path / "missing.safetensors")
    path = save_pretrained_encoders(small_model(), path=tmp_path / "w.safetensors")
    wrong = fusion.build_model("late_fusion", vocab_size=VOCAB, num_answers=5, hidden_size=64)
    with pytest.raises(ValueError, match="does not fit"):
        load_pretrained_encoders(wrong, path=path)
    with pytest.raises(ValueError, match="ContrastiveModel"):
        save_pretrained_encoders(wrong, path=tmp_path / "x.safetensors")
