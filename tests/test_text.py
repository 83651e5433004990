"""course_utils.text: tokenizer training, masks, pooling, encoders, MiniLM, the tiny decoder."""

from __future__ import annotations

import pytest
import torch

from course_utils import text, tokenization
from course_utils.world import vocabulary

CORPUS = [
    "What color is the small circle?",
    "How many red squares are there?",
    "Is there a large blue triangle?",
    "A small green cross and a large yellow diamond.",
    "Are there more circles than squares?",
] * 4


@pytest.fixture(scope="module")
def tok():
    return tokenization.train_wordpiece(CORPUS, vocab_size=150)


@pytest.fixture(scope="module")
def minilm():
    return text.load_minilm()


# ---- tokenizer -----------------------------------------------------------------------


def test_wordpiece_is_a_transformers_tokenizer_with_bert_specials(tok):
    from transformers import PreTrainedTokenizerFast

    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.convert_ids_to_tokens(list(range(5))) == list(tokenization.SPECIAL_TOKENS)
    assert tok.pad_token_id == 0
    enc = tok(["What color is the circle?", "How many squares?"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids[0, 0] == tok.cls_token_id and (ids == tok.sep_token_id).sum() == 2
    assert torch.equal(mask, (ids != tok.pad_token_id).long())
    assert tok.decode(ids[1], skip_special_tokens=True) == "how many squares?"


def test_wordpiece_is_deterministic_and_splits_unknown_words(tok):
    again = tokenization.train_wordpiece(CORPUS, vocab_size=150)
    assert again.get_vocab() == tok.get_vocab()
    pieces = tok.tokenize("purplish")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert "[UNK]" not in pieces  # every ASCII letter is in the alphabet
    assert tok.tokenize("圆") == ["[UNK]"]


def test_truncation(tok):
    enc = tok(["what color is the small circle " * 20], truncation=True, max_length=8)
    assert len(enc["input_ids"][0]) == 8 and enc["input_ids"][0][-1] == tok.sep_token_id


@pytest.mark.parametrize(
    ("texts", "match"),
    [("one string", "one string"), ([], "empty"), ([1, 2], "item 0"), (None, "list of strings")],
)
def test_bad_texts_are_named(texts, match):
    with pytest.raises(ValueError, match=match):
        tokenization.train_wordpiece(texts)
    with pytest.raises(ValueError, match=match):
        tokenization.check_texts(texts)


def test_bad_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        tokenization.train_wordpiece(CORPUS, vocab_size=3)


def test_tokenizer_stats(tok):
    n = len(tok.tokenize("What color is the circle?"))
    stats = tokenization.tokenizer_stats(tok, ["What color is the circle?", "圆"])
    assert stats["tokens_per_text"] == pytest.approx((n + 1) / 2)
    assert stats["unk_rate"] == pytest.approx(1 / (n + 1))


def test_an_unbudgeted_vocabulary_is_canonical_and_keeps_every_word_whole():
    tok = tokenization.train_wordpiece(CORPUS, vocab_size=None, alphabet=())
    words = {w for line in CORPUS for w in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(
        tok.backend_tokenizer.normalizer.normalize_str(line))}  # fmt: skip
    for (word, _) in words:
        assert tok.tokenize(word) == [word]  # one token per word of the corpus
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    specials, rest = tokens[:5], tokens[5:]
    assert specials == list(tokenization.SPECIAL_TOKENS)
    chars = [t for t in rest if len(t) == 1]
    cont = [t for t in rest if t.startswith("##")]
    whole = [t for t in rest if len(t) > 1 and not t.startswith("##")]
    assert rest == chars + cont + whole  # in that order, each sorted
    assert all(group == sorted(group) for group in (chars, cont, whole))
    assert all(len(t) == 3 for t in cont)  # no intermediate pieces
    # an id depends on the corpus's words only: the same words in another order, same ids
    again = tokenization.train_wordpiece(list(reversed(CORPUS)) * 2, vocab_size=None, alphabet=())
    assert again.get_vocab() == tok.get_vocab()


def test_the_world_tokenizer_is_the_same_trainer_on_the_complete_corpus():
    tok = vocabulary.load_tokenizer(cache=False)
    corpus = vocabulary.world_corpus(3000, complete=True)
    assert tok.get_vocab() == tokenization.train_wordpiece(corpus, vocab_size=None, alphabet=()).get_vocab()
    assert tok.unk_token_id not in tok(corpus, add_special_tokens=False)["input_ids"][0]
    ids = tok(corpus, add_special_tokens=False)["input_ids"]
    assert all(tok.unk_token_id not in row for row in ids)  # every text of every split


def test_world_texts_are_reproducible():
    a, b = vocabulary.world_corpus(20, seed=3), vocabulary.world_corpus(20, seed=3)
    assert a == b and all(isinstance(t, str) and t for t in a)
    assert vocabulary.world_corpus(20, seed=3, language="templates") != a
    with pytest.raises(ValueError, match="n must"):
        vocabulary.world_corpus(0)


# ---- masks and pooling ---------------------------------------------------------------


def test_attention_mask_from_ids():
    ids = torch.tensor([[5, 6, 0], [1, 0, 0]])
    assert torch.equal(text.attention_mask_from_ids(ids, 0), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="input_ids"):
        text.attention_mask_from_ids(torch.zeros(3), 0)
    with pytest.raises(ValueError, match="integer"):
        text.attention_mask_from_ids(torch.zeros(2, 3), 0)


def test_mean_pool_ignores_padding():
    hidden = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = text.mean_pool(hidden, mask)  # (2, 4)
    torch.testing.assert_close(pooled[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(0))
    garbage = hidden.clone()
    garbage[0, 3:] = 1e4
    torch.testing.assert_close(text.mean_pool(garbage, mask), pooled)


def test_mean_pool_bad_inputs():
    with pytest.raises(ValueError, match="hidden"):
        text.mean_pool(torch.randn(2, 5), torch.ones(2, 5))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        text.mean_pool(torch.randn(2, 5, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="attention_mask must be a tensor"):
        text.mean_pool(torch.randn(2, 5, 4), [[1] * 5] * 2)


# ---- the small encoder ---------------------------------------------------------------


def test_text_encoder_shapes_and_mask(tok):
    torch.manual_seed(0)
    enc = text.TextEncoder(text.small_bert_config(len(tok), hidden_size=32, num_attention_heads=4))
    batch = tok(["What color is the circle?", "How many?"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    out = enc(ids, mask)
    assert out.shape == (2, ids.shape[1], 32)
    torch.testing.assert_close(enc(ids), out)  # the mask is built from the pad id
    alone = enc(ids[1:, : int(mask[1].sum())])
    torch.testing.assert_close(out[1:, : int(mask[1].sum())], alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        enc(ids, mask[:, :-1])
    with pytest.raises(ValueError, match="input_ids"):
        enc(ids[0])


def test_small_bert_config_validates():
    with pytest.raises(ValueError, match="divisible"):
        text.small_bert_config(100, hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        text.small_bert_config(0)
    with pytest.raises(ValueError, match="num_labels"):
        text.TextClassifier(text.small_bert_config(10), num_labels=1)


def test_classifier_logits(tok):
    clf = text.TextClassifier(text.small_bert_config(len(tok), hidden_size=32), num_labels=3)
    ids = tok(["What color?", "How many red squares?"], padding=True, return_tensors="pt")["input_ids"]
    assert clf(ids).shape == (2, 3)
    emb = text.embed_sentences(["What color?", "How many red squares?"], tok, clf)
    assert emb.shape == (2, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))


# ---- MiniLM --------------------------------------------------------------------------


def test_minilm_embeddings_are_padding_invariant_and_semantic(minilm):
    tokenizer, model = minilm
    assert not model.training
    texts = ["What color is the circle?", "Tell me the colour of the circle.",
             "How many squares are in the image?"]  # fmt: skip
    emb = text.embed_sentences(texts, tokenizer, model)  # (3, 384)
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    alone = text.embed_sentences(texts[:1], tokenizer, model)
    torch.testing.assert_close(emb[:1], alone, atol=1e-5, rtol=1e-4)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_embed_sentences_rejects_bad_texts(minilm):
    with pytest.raises(ValueError, match="texts"):
        text.embed_sentences("a string", *minilm)


def test_group_similarity():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]]), dim=-1)
    r = text.group_similarity(emb, ["a", "a", "b", "b"])
    assert r["same"] > 0.99 and r["different"] < 0.2 and r["margin"] > 0.8
    with pytest.raises(ValueError, match="groups has"):
        text.group_similarity(emb, ["a", "b"])
    with pytest.raises(ValueError, match="two groups"):
        text.group_similarity(emb, ["a", "b", "c", "d"])


# ---- the tiny decoder ----------------------------------------------------------------


def test_lm_batch_labels_are_next_tokens(tok):
    data = text.lm_batch(["What color is the circle?", "How many?"], tok)
    ids, mask, labels = data["input_ids"], data["attention_mask"], data["labels"]
    assert labels.shape == ids.shape
    n = int(mask[1].sum())
    assert torch.equal(labels[1, : n - 1], ids[1, 1:n])
    assert (labels[1, n - 1 :] == text.IGNORE_INDEX).all()
    assert labels[0, -1] == text.IGNORE_INDEX


def test_tiny_decoder_learns_and_generates(tok):
    from transformers import GPT2LMHeadModel

    from course_utils.training import fit

    torch.manual_seed(0)
    cfg = text.small_gpt2_config(len(tok), tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, n_embd=32)
    model = GPT2LMHeadModel(cfg)
    data = text.lm_batch(CORPUS, tok)
    before = text.next_token_accuracy(model, data)
    fit(model, data, steps=60, batch_size=10, lr=1e-2, loss_fn=text.lm_loss, progress=False)
    after = text.next_token_accuracy(model, data)
    assert after > max(before, text.unigram_accuracy(data, data)) + 0.3
    generated = text.greedy_generate(model, tok, "How many", max_new_tokens=10)
    assert generated.startswith("how many") and len(generated) > len("how many")
    with pytest.raises(ValueError, match="prompt"):
        text.greedy_generate(model, tok, ["How"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        text.greedy_generate(model, tok, "How", max_new_tokens=0)


def test_lm_loss_shapes():
    with pytest.raises(ValueError, match="lm_loss"):
        text.lm_loss(torch.randn(2, 5), torch.zeros(2, dtype=torch.long))
    loss = text.lm_loss(torch.zeros(1, 3, 4), torch.tensor([[1, 2, text.IGNORE_INDEX]]))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
