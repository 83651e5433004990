"""Tokenization (chapter 04, "Tokenization"): one deterministic WordPiece trainer.

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
    """``texts`` as a list of strings; ``ValueError`` naming ``name`` otherwise."""
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
    vocab_size: int = 400,
    min_frequency: int = 1,
    lowercase: bool = True,
    alphabet=ALPHABET,
    model_max_length: int = 64,
):
    """Train a WordPiece tokenizer (BERT's normaliser and pre-tokenizer) on ``texts``.

    Returns a ``PreTrainedTokenizerFast`` with BERT's special tokens (``[PAD]`` has id 0),
    a ``[CLS] ... [SEP]`` template, and right padding. Deterministic: the same texts give
    the same vocabulary.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = check_texts(texts)
    if not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be an int > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    alphabet = list(dict.fromkeys(alphabet))
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # split on spaces and punctuation
    trainer_tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    trainer_tok.normalizer, trainer_tok.pre_tokenizer = normalizer, pre_tokenizer
    # Determinism: the trainer gives ids to "##x" pieces in a random (hash) order, and ties
    # between equally frequent merges follow the ids. Listing the alphabet, in both forms,
    # after the special tokens pins every starting id, so training is reproducible.
    pinned = list(SPECIAL_TOKENS) + alphabet + ["##" + c for c in alphabet]
    trainer = trainers.WordPieceTrainer(
        vocab_size=max(vocab_size, len(pinned)),
        min_frequency=min_frequency,
        special_tokens=pinned,
        initial_alphabet=alphabet,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    trainer_tok.train_from_iterator(texts, trainer=trainer)
    # Rebuild from the learned vocabulary, so only the five real special tokens are special.
    vocab = trainer_tok.get_vocab()  # token -> id
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
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        padding_side="right",
    )


def tokenizer_stats(tokenizer, texts) -> dict:
    """Tokens per text (without specials) and the fraction of ``[UNK]`` tokens.

    Built in chapter 04, "Tokenization"."""
    texts = check_texts(texts)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    n = sum(len(x) for x in ids)
    unk = sum(x.count(tokenizer.unk_token_id) for x in ids)
    return {"tokens_per_text": n / len(texts), "unk_rate": unk / max(n, 1)}
