"""Tokenization (chapter 04, "1. From text to ids: a WordPiece tokenizer for our world"): one
deterministic WordPiece trainer.

:func:`train_wordpiece` is the lesson's tested copy and the only trainer in the course:
chapter 04 trains a small vocabulary with it, and the world's tokenizer
(:func:`course_utils.world.vocabulary.load_tokenizer`) is the same function on the whole
world corpus with a vocabulary large enough to keep every word whole.
"""

from __future__ import annotations

import string

#: BERT's special tokens, in the order they get ids 0..4 in a trained tokenizer.
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: Characters every trained tokenizer knows, so any plain-ASCII word can be spelled in
#: pieces; only characters outside it (accents, CJK, emoji) become ``[UNK]``.
ALPHABET: tuple[str, ...] = tuple(string.ascii_lowercase + string.digits + string.punctuation)


def check_texts(texts, name: str = "texts") -> list[str]:
    """``texts`` as a list of strings; ``ValueError`` naming ``name`` otherwise.

    Used in chapter 04, "1. From text to ids: a WordPiece tokenizer for our world"."""
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a list of strings, got one string (wrap it: [text])")
    if not isinstance(texts, list | tuple):
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is empty; pass at least one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(
            f"{name} must contain only strings; item {bad[0]} is {type(texts[bad[0]]).__name__}"
        )
    return list(texts)


def train_wordpiece(
    texts,
    vocab_size: int | None = 400,
    min_frequency: int = 1,
    lowercase: bool = True,
    alphabet=ALPHABET,
    model_max_length: int = 64,
):
    """Train a WordPiece tokenizer (BERT's normaliser and pre-tokenizer) on ``texts``.

    Returns a ``PreTrainedTokenizerFast`` with BERT's special tokens (``[PAD]`` has id 0),
    a ``[CLS] ... [SEP]`` template, and right padding. Deterministic: the same texts give
    the same vocabulary. ``alphabet`` lists characters every tokenizer knows (``()``: only
    the corpus's own).

    ``vocab_size=None`` means no budget: training goes on until every word of ``texts`` is
    one token, and the vocabulary kept is *canonical*: the special tokens, then the
    characters, the continuation characters and the whole words of the corpus, each
    sorted. The intermediate pieces no word uses are dropped, so every id is a function of
    the corpus's words alone. The world's tokenizer
    (:func:`course_utils.world.vocabulary.load_tokenizer`) is trained that way.

    Built in chapter 04, "1. From text to ids: a WordPiece tokenizer for our world".
    """
    texts = check_texts(texts)
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS)):
        raise ValueError(f"vocab_size must be None or an int > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    normalizer, pre_tokenizer = _bert_text_steps(lowercase)
    vocab = _learn_vocabulary(texts, vocab_size, min_frequency, list(dict.fromkeys(alphabet)),
                              normalizer, pre_tokenizer)  # fmt: skip
    if vocab_size is None:
        vocab = _whole_word_vocabulary(vocab, texts, normalizer, pre_tokenizer)
    return _bert_tokenizer(vocab, normalizer, pre_tokenizer, model_max_length)


def _bert_text_steps(lowercase: bool):
    """BERT's normaliser (lower case, accents stripped) and pre-tokenizer (spaces, punctuation)."""
    from tokenizers import normalizers, pre_tokenizers

    return (normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase),
            pre_tokenizers.BertPreTokenizer())  # fmt: skip


def _learn_vocabulary(texts, vocab_size, min_frequency, alphabet, normalizer, pre_tokenizer) -> dict:
    """Run ``tokenizers``' WordPiece trainer; returns its vocabulary (token -> id)."""
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    # Determinism: the trainer gives ids to "##x" pieces in a random (hash) order, and ties
    # between equally frequent merges follow the ids. Listing the alphabet, in both forms,
    # after the special tokens pins every starting id, so training is reproducible.
    pinned = list(SPECIAL_TOKENS) + alphabet + ["##" + c for c in alphabet]
    budget = 100_000 if vocab_size is None else max(vocab_size, len(pinned))
    trainer = trainers.WordPieceTrainer(
        vocab_size=budget, min_frequency=min_frequency, special_tokens=pinned,
        initial_alphabet=alphabet, continuing_subword_prefix="##", show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer=trainer)
    return tok.get_vocab()


def _whole_word_vocabulary(learned: dict, texts, normalizer, pre_tokenizer) -> dict:
    """The canonical vocabulary of an unbudgeted run: specials, characters, continuation
    characters and the corpus's whole words, each sorted (no intermediate pieces)."""
    words = {w for line in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))}
    chars = sorted(t for t in learned if len(t) == 1 and t not in SPECIAL_TOKENS)
    cont = sorted(t for t in learned if t.startswith("##") and len(t) == 3)
    whole = sorted(w for w in words if len(w) > 1 and w in learned)
    return {t: i for i, t in enumerate([*SPECIAL_TOKENS, *chars, *cont, *whole])}


def _bert_tokenizer(vocab: dict, normalizer, pre_tokenizer, model_max_length: int):
    """A ``PreTrainedTokenizerFast`` over ``vocab``: only the five real special tokens are
    special, ``[CLS] ... [SEP]`` around every text, right padding."""
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=model_max_length,
        padding_side="right",
    )  # fmt: skip


def tokenizer_stats(tokenizer, texts) -> dict:
    """Tokens per text (without specials) and the fraction of ``[UNK]`` tokens.

    Used in chapter 04, "1. From text to ids: a WordPiece tokenizer for our world"."""
    texts = check_texts(texts)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    n = sum(len(x) for x in ids)
    unk = sum(x.count(tokenizer.unk_token_id) for x in ids)
    return {"tokens_per_text": n / len(texts), "unk_rate": unk / max(n, 1)}
