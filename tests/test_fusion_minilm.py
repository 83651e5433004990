"""slot_read_minilm: slot_read whose words come from the frozen, pretrained MiniLM.

The features are computed once per distinct instruction and cached; MiniLM's weights never
enter the state dict; ids from the wrong tokenizer fail with a clear message."""

from __future__ import annotations

import pytest
import torch

from course_utils import fusion, shipped, text
from course_utils.training import load_checkpoint, save_checkpoint
from course_utils.world import encoding, programs, vocabulary

QUESTIONS = ["What color is the red circle?", "Is there a small blue square?",
             "Are there more circles than triangles?"]


@pytest.fixture(scope="module")
def tok():
    return shipped.tokenizer_for("slot_read_minilm")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fusion.build_model("slot_read_minilm", **encoding.model_sizes(shipped.tokenizer_for("slot_read_minilm"))).eval()


def inputs(tok, questions=QUESTIONS):
    enc = tok(questions, padding=True, return_tensors="pt")
    g = torch.Generator().manual_seed(0)
    return torch.rand(len(questions), 3, 48, 48, generator=g) * 2 - 1, enc["input_ids"], enc["attention_mask"]


def test_builds_with_minilm_vocabulary_and_answers(model, tok):
    assert model.kind in fusion.PRETRAINED_TEXT_KINDS and model.kind not in fusion.ALL_KINDS
    assert model.cfg.vocab_size == tok.vocab_size == 30522 and model.cfg.pad_token_id == tok.pad_token_id
    logits = model(*inputs(tok))
    assert logits.shape == (3, len(programs.answer_vocab())) and torch.isfinite(logits).all()


def test_minilm_weights_are_not_saved_and_reload_exactly(model, tok, tmp_path):
    state = model.state_dict()
    assert not any(k.startswith(("features", "tokens")) for k in state)
    n = sum(p.numel() for p in model.parameters())
    assert 500_000 < n < 700_000, n  # the trained part only; MiniLM's 22.7 M stay in their package
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    assert path.stat().st_size < 4e6
    again = fusion.build_model(**model.config).eval()
    load_checkpoint(again, path)
    x = inputs(tok)
    torch.testing.assert_close(again(*x), model(*x))


def test_features_are_frozen_cached_and_padding_free(tok):
    feats = text.FrozenTextFeatures()
    _, ids, mask = inputs(tok)
    out = feats(ids, mask)  # (B, T, 384)
    assert out.shape == (*ids.shape, 384) and len(feats) == 3
    assert (out[mask == 0] == 0).all()
    again = feats(ids, mask)
    assert len(feats) == 3 and torch.equal(out, again)  # looked up, not recomputed
    alone = tok(QUESTIONS[:1], return_tensors="pt")  # no padding at all
    torch.testing.assert_close(feats(alone["input_ids"], alone["attention_mask"])[0],
                               out[0, : alone["input_ids"].shape[1]], atol=1e-5, rtol=1e-5)
    _, minilm = text.load_minilm()  # the same numbers as MiniLM itself
    with torch.inference_mode():
        ref = minilm(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out[mask == 1], ref[mask == 1], atol=1e-4, rtol=1e-4)


def test_gradient_reaches_the_trained_parameters_only(model, tok):
    model.train()
    model.zero_grad()
    model(*inputs(tok)).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    model.eval()
    assert not missing, missing


def test_world_tokenizer_ids_are_rejected_clearly(model):
    enc = vocabulary.load_tokenizer()(QUESTIONS, padding=True, return_tensors="pt")
    x = torch.zeros(3, 3, 48, 48)
    with pytest.raises(ValueError, match=r"do not come from the pretrained encoder's tokenizer.*\[CLS\] id 101"):
        model(x, enc["input_ids"], enc["attention_mask"])


def test_bad_shapes_are_rejected_clearly(model, tok):
    x, ids, mask = inputs(tok)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(x[:2], ids, mask)
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        model(x, ids, mask[:, :-1])
    with pytest.raises(ValueError, match="attention_mask has shape"):
        text.FrozenTextFeatures()(ids, mask[:2])
