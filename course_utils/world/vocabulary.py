"""The world's vocabulary: the corpus of its language and its WordPiece tokenizer.

:func:`world_corpus` is the one corpus builder: chapter 04 trains its lesson tokenizer on
its questions and captions, and :func:`load_tokenizer` trains the world's tokenizer on
the complete corpus (every phrasing, held-out ones included, every answer, captions,
referring expressions and edit instructions) with the same trainer,
:func:`course_utils.tokenization.train_wordpiece`.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil

from course_utils.tokenization import train_wordpiece
from course_utils.world.descriptions import caption, referring_expression
from course_utils.world.edits import generate_edit
from course_utils.world.grammar import CORES, FRAMES, PREFIXES, SUFFIXES, WORDS
from course_utils.world.phrasings import MOVE_WORDS, NUMBER_WORDS, RELATION_WORDS, TEMPLATES
from course_utils.world.programs import FAMILIES, SPATIAL_OPS, World, answer_vocab
from course_utils.world.questions import generate_question

#: Bump when the tokenizer changes in a way the source fingerprint would not catch.
TOKENIZER_VERSION = "2"
#: Every digit and punctuation mark a text of the world may contain.
SYMBOLS = "0 1 2 3 4 5 6 7 8 9 . , ? ! ; : ' \" - ( )"


def world_corpus(n: int = 2000, seed: int = 0, language: str = "train", captions: bool = True,
                 complete: bool = False) -> list[str]:
    """``n`` texts of the world's language: questions of every family, and captions.

    ``language`` says the questions in a layer of the grammar (``"templates"``: the
    held-out cores, the ``test_paraphrase`` split's language). ``complete=True`` adds
    everything the world can say: every core, frame and synonym (held-out ones included),
    every template of captions and edits, every answer, detailed captions, referring
    expressions, edit instructions and the relation, move and number words, so that a
    tokenizer trained on it knows every word of every split (typos aside).

    Used in chapter 04, "1. From text to ids: a WordPiece tokenizer for our world".
    """
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = random.Random(seed)
    world = World(spatial_ops=tuple((op, 1.0) for op in SPATIAL_OPS)) if complete else World()
    out = []
    for i in range(n):
        q = generate_question(rng, FAMILIES[i % len(FAMILIES)], world, language=language)
        out.append(caption(q["scene"]) if captions and i % 4 == 3 else q["instruction"])
        if complete and i % 4 == 0:
            out.append(caption(q["scene"], detailed=True))
            out.append(referring_expression(rng, q["scene"], world)[1])
            out.append(generate_edit(rng, world, heldout=i % 8 == 0)["instruction"])
    if complete:
        out += answer_vocab()
        for train, held in TEMPLATES.values():
            out += [_bare(t) for t in train + held]
        for train, held in CORES.values():
            out += [_bare(t) for core in train + held for t in core if t]
        out += [_bare(t) for t in (*FRAMES[0], *FRAMES[1], *PREFIXES, *SUFFIXES)]
        for words in (*RELATION_WORDS.values(), *MOVE_WORDS.values(), NUMBER_WORDS,
                      *(train + held for train, held in WORDS.values())):  # fmt: skip
            out += list(words)
        out.append(SYMBOLS)
    return out


def _bare(template: str) -> str:
    """A template's own words, without its slots: "What {attr} is {the_obj}?" -> "What is ?"."""
    return re.sub(r"\{[A-Za-z_]+\}", "", template)


def load_tokenizer(cache: bool = True):
    """The world's WordPiece tokenizer as a ``transformers.PreTrainedTokenizerFast``.

    :func:`~course_utils.tokenization.train_wordpiece` with no budget on the complete
    :func:`world_corpus` (so no word of any split is ``[UNK]``; an unseen word is spelled
    in characters), deterministic, cached
    under ``runtime.cache_dir("data")`` by a fingerprint of the world's source. ``[PAD]``
    has id 0.

    Used in chapter 06, "6. Text: tokenization, padding and attention masks"; built with
    chapter 04's trainer.
    """
    from transformers import PreTrainedTokenizerFast

    from course_utils.world.data import source_digest

    key = hashlib.sha256(f"{source_digest()}:{TOKENIZER_VERSION}".encode()).hexdigest()[:20]
    if cache:
        from course_utils.runtime import cache_dir

        path = cache_dir("data") / f"tokenizer-{key}"
        if (path / "tokenizer.json").exists():
            return PreTrainedTokenizerFast.from_pretrained(str(path))
    # no budget: every word of the world is one token; only the corpus's own characters
    tok = train_wordpiece(world_corpus(3000, complete=True), vocab_size=None, alphabet=())
    if cache:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, path)
        except OSError:  # pragma: no cover - a concurrent writer won
            shutil.rmtree(tmp, ignore_errors=True)
    return tok
