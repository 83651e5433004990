"""Chapter 10's captioner: the model, its decoding loops against `generate()`, its data and errors."""

import json

import pytest
import torch

from course_utils.captioning import data as cdata
from course_utils.captioning import decoding, train
from course_utils.captioning.model import Captioner, CaptionerConfig, positions
from course_utils.world import data, descriptions


def tiny(**overrides) -> Captioner:
    torch.manual_seed(0)
    config = CaptionerConfig(vocab_size=408, eos_token_id=3, vision=cdata.vision_config(),
                             width=32, layers=1, heads=2, **overrides)
    model = Captioner(config).eval()
    with torch.no_grad():  # decisive logits: a random model's near-ties flip with rounding
        model.decoder.transformer.wte.weight.mul_(40)
    return model


def prompts(model, batch=4, length=12, holes=True):
    gen = torch.Generator().manual_seed(1)
    pix = torch.randn(batch, 3, 48, 48, generator=gen)
    ids = torch.randint(5, 400, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    if holes:
        mask[0, 8:] = 0
        mask[2, 5:] = 0
    with torch.no_grad():
        return model.prefix(pix, ids * mask, mask)


def test_positions_skip_padding():
    mask = torch.tensor([[1, 1, 0, 0, 1, 1]])
    assert positions(mask).tolist() == [[0, 1, 1, 1, 2, 3]]


def test_greedy_matches_generate_with_and_without_the_cache():
    model = tiny()
    embeds, mask = prompts(model)
    cached = decoding.greedy(model, embeds, mask, 15)
    uncached = decoding.greedy(model, embeds, mask, 15, use_cache=False)
    theirs = model.decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=15,
                                    position_ids=positions(mask), do_sample=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, theirs[:, : cached.shape[1]])


@pytest.mark.parametrize("early_stopping", [True, False])
@pytest.mark.parametrize("holes", [False, True], ids=["unpadded", "padding inside the prompt"])
def test_beam_search_matches_generate(holes, early_stopping):
    model = tiny()
    embeds, mask = prompts(model, batch=4, holes=holes)
    ours = decoding.beam_search(model, embeds, mask, num_beams=3, max_new_tokens=10,
                                early_stopping=early_stopping)
    theirs = model.decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=10,
                                    position_ids=positions(mask), do_sample=False, num_beams=3,
                                    early_stopping=early_stopping)
    for a, b in zip(ours.tolist(), theirs.tolist()):  # generate fills after the end with it
        assert a[: a.index(3) + 1 if 3 in a else None] == b[: b.index(3) + 1 if 3 in b else len(a)]


def test_one_beam_is_greedy_and_sampling_is_seeded():
    model = tiny()
    embeds, mask = prompts(model, holes=False)
    greedy = decoding.greedy(model, embeds, mask, 8)
    assert torch.equal(decoding.beam_search(model, embeds, mask, num_beams=1, max_new_tokens=8), greedy)
    a = decoding.greedy(model, embeds, mask, 8, temperature=50.0, generator=torch.Generator().manual_seed(0))
    b = decoding.greedy(model, embeds, mask, 8, temperature=50.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, greedy)


def test_beam_step_picks_the_best_continuations():
    scores = torch.tensor([-1.0, -2.0])
    log_probs = torch.log(torch.tensor([[0.1, 0.9], [0.6, 0.4]]))
    best, beam, token = decoding.beam_step(scores, log_probs, 3)
    assert beam.tolist() == [0, 1, 1] and token.tolist() == [1, 0, 1]
    assert torch.allclose(best, torch.tensor([-1 + log_probs[0, 1], -2 + log_probs[1, 0], -2 + log_probs[1, 1]]))


def test_teacher_forcing_learns_a_fixed_answer():
    """A few steps on one example lower its loss: the labels line up with the answer."""
    model = tiny()
    ds = data.load_description_dataset(n_train=8, n_eval=2, splits=["train"], cache=False)
    tensors = cdata.description_tensors(ds["train"])
    before = model.loss(tensors["pixel_values"], tensors["instruction_ids"], tensors["instruction_mask"],
                        tensors["answer_ids"]).item()
    train.fit(model, tensors, steps=30, batch_size=8, lr=1e-2, warmup=1, progress=False)
    after = model.loss(tensors["pixel_values"], tensors["instruction_ids"], tensors["instruction_mask"],
                       tensors["answer_ids"]).item()
    assert after < before / 2


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    path = tmp_path / "captioner.safetensors"
    model.save(path, note="test")
    loaded, meta = Captioner.load(path)
    assert meta == {"note": "test"}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_detokenize_and_decode_give_the_world_spelling():
    tok = cdata.load_tokenizer()
    text = "There are two objects. A small red circle is in the center. A large blue square is on the left."
    ids = cdata.encode_answers([text], tok.sep_token_id, tok)
    assert cdata.decode(ids, tok) == [text]
    summary = "A picture of two objects: one circle and one square."
    assert cdata.decode(cdata.encode_answers([summary], tok.sep_token_id, tok), tok) == [summary]


@pytest.mark.parametrize("change, message", [
    (dict(width=30, heads=4), "divisible"),
    (dict(layers=0), "layers"),
    (dict(max_instruction=0), "max_instruction"),
    (dict(instructions="bert"), "instructions must be one of"),
])
def test_bad_configs_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        CaptionerConfig(vocab_size=408, eos_token_id=3, vision=cdata.vision_config(), **change)


def test_minilm_reads_the_instruction_and_its_weights_stay_out_of_the_file(tmp_path):
    """MiniLM's frozen features, projected, replace the decoder's embeddings of the
    instruction; only the projection trains and is saved, and ids from the world's tokenizer
    are refused (every MiniLM row starts with its [CLS])."""
    model = tiny(instructions="minilm")
    tok = cdata.instruction_tokenizer("minilm")
    enc = cdata.encode_instructions(["Describe the image in detail.", "What kind of scene is this?"], 24, tok)
    words = model.embed_instruction(enc["instruction_ids"], enc["instruction_mask"])
    assert words.shape == (2, 24, 32)
    feats = model.features(enc["instruction_ids"], enc["instruction_mask"])  # (2, 24, 384)
    assert torch.allclose(words, model.instruction_in(feats))
    assert not any(k.startswith("features") for k in model.state_dict())
    names = {n for n, p in model.named_parameters() if n.startswith("instruction_in")}
    assert names == {"instruction_in.0.weight", "instruction_in.0.bias", "instruction_in.1.weight",
                     "instruction_in.1.bias"}
    model.save(tmp_path / "m.safetensors")
    loaded, _ = Captioner.load(tmp_path / "m.safetensors")
    assert torch.equal(loaded.embed_instruction(enc["instruction_ids"], enc["instruction_mask"]), words)
    world = cdata.encode_instructions(["Describe the image in detail."], 24)
    with pytest.raises(ValueError, match="do not come from the pretrained encoder's tokenizer"):
        model.embed_instruction(world["instruction_ids"], world["instruction_mask"])
    with pytest.raises(ValueError, match="instructions must be one of"):
        cdata.instruction_tokenizer("bert")


def test_bad_inputs_are_named():
    model = tiny()
    ids, mask = torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="pixel_values"):
        model.prefix(torch.zeros(2, 3, 32, 32), ids, mask)
    with pytest.raises(ValueError, match="batch"):
        model.prefix(torch.zeros(3, 3, 48, 48), ids, mask)
    with pytest.raises(ValueError, match="empty"):
        cdata.encode_instructions(["Describe it.", "  "], 24)
    with pytest.raises(ValueError, match="longer than"):
        cdata.encode_instructions(["word " * 40], 24)
    with pytest.raises(ValueError, match="max_new_tokens"):
        decoding.greedy(model, torch.zeros(1, 3, 32), torch.ones(1, 3, dtype=torch.long), 0)


def test_the_description_data_has_three_balanced_forms_and_held_out_phrasings():
    ds = data.load_description_dataset(n_train=600, n_eval=60, splits=["train", "test_paraphrase"],
                                       cache=False)
    counts = {f: list(ds["train"]["task"]).count(f) for f in descriptions.DESCRIBE_FORMS}
    assert min(counts.values()) > 150, counts
    seen = set(ds["train"]["instruction"])
    assert not seen & set(ds["test_paraphrase"]["instruction"])
    for row in ds["train"].select(range(30)):
        scene = json.loads(row["scene"])
        assert row["answer"] == descriptions.describe(scene, row["task"])


def test_the_decoders_fused_gelu_is_gpt2s_gelu():
    """The course's GPT-2 decoders (the captioner, chapter 04's and chapter 08's tiny ones) ask
    for "gelu_pytorch_tanh" (one kernel, a faster step) in place of GPT-2's default
    "gelu_new": the same function."""
    from transformers.activations import ACT2FN

    from course_utils.text import GPT2_ACTIVATION, small_gpt2_config

    x = torch.linspace(-8, 8, 2001)
    torch.testing.assert_close(ACT2FN[GPT2_ACTIVATION](x), ACT2FN["gelu_new"](x))
    assert tiny().decoder.config.activation_function == GPT2_ACTIVATION
    assert small_gpt2_config(100, 1, 2, 0).activation_function == GPT2_ACTIVATION
