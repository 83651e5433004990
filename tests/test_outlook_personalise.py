"""Chapter 14, section 5: a new word learned as one token embedding of the frozen shipped model."""

from __future__ import annotations

import random

import pytest
import torch

from course_utils import shipped
from course_utils.outlook import personalise
from course_utils.world import programs


@pytest.fixture(scope="module")
def vqa(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the tokenizer's cache, in a folder of its own
        mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.mktemp("course-cache")))
        return shipped.load_pretrained("vqa-slot-read")




@pytest.fixture(scope="module")
def questions():
    return personalise.concept_questions(30, seed=4)


def test_the_tokenizer_gains_exactly_one_token_and_reads_the_word_as_it(vqa):
    before = len(vqa.tokenizer)
    new = personalise.add_word(vqa)
    assert len(new.tokenizer) == before + 1 and len(vqa.tokenizer) == before
    ids = new.tokenizer("blicket", add_special_tokens=False)["input_ids"]
    assert ids == [before]
    said = new.tokenizer("Is there a Blicket?", add_special_tokens=False)["input_ids"]
    assert said.count(before) == 1
    assert before not in vqa.tokenizer("Is there a blicket?")["input_ids"]
    assert new.model.tokens.num_embeddings == before + 1 == new.model.cfg.vocab_size
    assert vqa.model.cfg.vocab_size == before and isinstance(vqa.model.tokens, torch.nn.Embedding)


def test_the_new_row_starts_where_init_says(vqa):
    table = vqa.model.tokens.weight
    tok = vqa.tokenizer
    ids = tok("small red triangle", add_special_tokens=False)["input_ids"]
    assert torch.allclose(personalise.add_word(vqa).model.tokens.new[0], table[ids].mean(0))
    obj = tok("object", add_special_tokens=False)["input_ids"]
    assert torch.equal(personalise.add_word(vqa, init="object").model.tokens.new[0], table[obj[0]])
    assert torch.allclose(personalise.word_init(vqa, "mean"), table[1:].mean(0))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"word": "red"}, "word"), ({"word": "Blicket"}, "word"), ({"word": "two words"}, "word"),
    ({"init": "blorp"}, "init"), ({"init": ""}, "init"),
])
def test_bad_words_and_inits_are_named(vqa, kwargs, name):
    with pytest.raises(ValueError, match=name):
        personalise.add_word(vqa, **kwargs)


def test_the_plain_words_and_the_new_word_ask_the_same_question(questions):
    assert {q["kind"] for q in questions} == set(personalise.KINDS)
    for q in questions:
        assert q["answer"] == programs.answer(q["program"], q["scene"])
        assert "blicket" in q["instruction"].lower() and "blicket" not in q["plain"].lower()
        assert "small red triangle" in q["plain"].lower()
        back = q["plain"].replace("small red triangle", "blicket")
        back = back.replace("Small red triangle", "Blicket")
        assert back == q["instruction"]
        assert personalise.needs_concept(q["program"], q["scene"], q["answer"])
    assert personalise.plain_words("Is there a blicket? Count the Blickets.") == \
        "Is there a small red triangle? Count the Small red triangles."


def test_questions_are_deterministic_and_their_answers_balanced():
    a = personalise.concept_questions(60, seed=2)
    assert a == personalise.concept_questions(60, seed=2)
    exist = [q["answer"] for q in a if q["kind"] == "exist"]
    assert 5 <= exist.count("yes") <= 15
    assert {q["answer"] for q in a if q["kind"] == "count"} <= {"0", "1", "2", "3"}
    with pytest.raises(ValueError, match="kind"):
        personalise.concept_question(random.Random(0), "nearest")


def test_only_the_new_row_learns_and_old_questions_get_the_same_answers(vqa, questions, one_thread):
    shipped_state = {k: v.clone() for k, v in vqa.model.state_dict().items()}
    new = personalise.add_word(vqa)
    start = new.model.tokens.new.detach().clone()
    trainable = [n for n, p in new.model.named_parameters() if p.requires_grad]
    assert trainable == ["tokens.new"]
    personalise.learn_word(new, questions[:10], steps=5, lr=0.1)
    assert not torch.equal(new.model.tokens.new, start)
    state = new.model.state_dict()
    for name, value in shipped_state.items():
        key = name.replace("tokens.weight", "tokens.table.weight")
        assert torch.equal(state[key], value), name
        assert torch.equal(vqa.model.state_dict()[name], value), name  # the shipped model too
    plain = [{**q, "instruction": q["plain"]} for q in questions]
    old_t = personalise.question_tensors(vqa, plain)
    new_t = personalise.question_tensors(new, plain)
    assert torch.equal(old_t["input_ids"], new_t["input_ids"])
    assert torch.equal(vqa.model(**{k: v for k, v in old_t.items() if k != "labels"}),
                       new.model(**{k: v for k, v in new_t.items() if k != "labels"}))


def test_a_second_word_needs_the_shipped_model(vqa):
    with pytest.raises(ValueError, match="vqa"):
        personalise.add_word(personalise.add_word(vqa), word="dax")


def test_learn_word_needs_a_new_word_and_examples(vqa, questions):
    with pytest.raises(ValueError, match="add_word"):
        personalise.learn_word(vqa, questions[:3])
    with pytest.raises(ValueError, match="examples"):
        personalise.learn_word(personalise.add_word(vqa), [])
