"""The question grammar: each held-out layer (cores, frames, synonyms) is held out exactly,
the FLAN knob keeps only the first cores, surface noise never touches a meaningful word,
and the world's tokenizer knows every word the grammar can say."""

from __future__ import annotations

import random
import re

import pytest

from course_utils.world import grammar, phrasings, programs, questions, scenes, vocabulary

ALL_OPS = programs.World(spatial_ops=tuple((op, 1.0) for op in programs.SPATIAL_OPS))


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def quiet(monkeypatch):
    """No surface noise: a sentence is then exactly a frame around a core."""
    monkeypatch.setattr(grammar, "NOISE", {k: 0.0 for k in grammar.NOISE})


def _alt(words) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


RELS = _alt(w for rel in programs.RELATIONS for pair in grammar.WORDS[rel] for w in pair)
_OBJECT = [w for pair in grammar.WORDS["object"] for w in pair]
_SIZES = [w for size in ("small", "large") for pair in grammar.WORDS[size] for w in pair]
_NOUNS = [*scenes.SHAPES, *(phrasings.plural_of(n) for n in (*scenes.SHAPES, *_OBJECT)), *_OBJECT]
NP = rf"(?:{_alt(_SIZES)} )?(?:{_alt(scenes.COLORS)} )?{_alt(_NOUNS)}"
PLACE = _alt(phrasings.position_phrase(p) for p in programs.POSITIONS)
THE_OBJ = rf"the (?:{NP}|{_alt(_OBJECT)} {PLACE}|{_alt(_OBJECT)} (?:{RELS}|nearest to|closest to) the {NP})"
# what each slot of a core can hold: nothing but the grammar's own words
SLOTS = {"in": r"(?: in (?:the|this) [a-z]+)?", "a_obj": rf"an? {NP}", "rel": RELS, "the_obj": THE_OBJ,
         "The_obj": THE_OBJ, "attr": "(?:color|colour|shape)", "image": _alt(w for p in grammar.WORDS["image"] for w in p),
         "see": _alt(w for p in grammar.WORDS["see"] for w in p),
         "located": _alt(w for p in grammar.WORDS["located"] for w in p)}  # fmt: skip


def _regex(template: str, loose: bool = False) -> re.Pattern:
    if loose:  # no final punctuation: matched against text stripped of it
        template = template.rstrip(".?!")
    parts = re.split(r"(\{\w+\})", template)
    body = "".join(SLOTS.get(p[1:-1], NP) if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + body + "$", re.IGNORECASE)


def _patterns(core_set, frames, loose: bool = False) -> list[re.Pattern]:
    out = []
    for direct, embedded in core_set:
        for frame in frames:
            if frame == "{q}":
                out.append(_regex(direct, loose))
            elif embedded is not None:
                out.append(_regex(frame.replace("{e}", embedded), loose))
    return out


def _sentences(language: str, n: int = 600, world=ALL_OPS):
    for i in range(n):
        family = programs.FAMILIES[i % len(programs.FAMILIES)]
        yield questions.generate_question(random.Random(f"grammar:{language}:{i}"), family, world, language=language)


def _cores(which: int):
    return tuple(c for pair in grammar.CORES.values() for c in pair[which])


def test_each_language_uses_exactly_its_layer(quiet):
    train_frames, held_frames = grammar.FRAMES
    train_core, held_core = _cores(0), _cores(1)
    expected = {
        "train": _patterns(train_core, train_frames),
        "templates": _patterns(held_core, train_frames),
        "frames": _patterns(train_core, held_frames),
        "synonyms": _patterns(train_core, train_frames),
    }
    others = {
        "train": _patterns(held_core, train_frames + held_frames) + _patterns(train_core, held_frames),
        "templates": _patterns(train_core, train_frames + held_frames),
        "frames": _patterns(held_core, train_frames) + _patterns(train_core, ("{q}",)),
    }
    held = grammar.held_words()
    for language in grammar.LANGUAGES:
        for ex in _sentences(language):
            text = ex["instruction"]
            assert any(p.match(text) for p in expected[language]), (language, text)
            assert not any(p.match(text) for p in others.get(language, ())), (language, text)
            has_held = bool(set(re.findall(r"[a-z]+", text.lower())) & held)
            assert has_held == (language == "synonyms"), (language, text)


def test_every_group_has_room_for_the_flan_curve():
    for name, (train, held) in grammar.CORES.items():
        assert len(train) >= 8 and len(held) >= 3, name
        assert len(set(train + held)) == len(train) + len(held), name
    for name, (train, held) in grammar.WORDS.items():
        assert train and not set(train) & set(held), name
    assert len(grammar.FRAMES[0]) >= 5 and len(grammar.FRAMES[1]) >= 3


@pytest.mark.parametrize("k", [1, 2, 4])
def test_num_templates_keeps_the_first_cores(quiet, k):
    world = programs.World(spatial_ops=ALL_OPS.spatial_ops, num_templates=k)
    allowed = _patterns(tuple(c for train, _ in grammar.CORES.values() for c in train[:k]), grammar.FRAMES[0])
    used = set()
    for ex in _sentences("train", 400, world):
        matches = [p for p in allowed if p.match(ex["instruction"])]
        assert matches, ex["instruction"]
        used.update(p.pattern for p in matches)
    beyond = _patterns(tuple(c for train, _ in grammar.CORES.values() for c in train[k:]), ("{q}",))
    assert not any(p.match(ex["instruction"]) for ex in _sentences("train", 200, world) for p in beyond
                   if not any(q.match(ex["instruction"]) for q in allowed))  # fmt: skip


def test_bad_languages_and_knobs_are_named():
    with pytest.raises(ValueError, match="language"):
        questions.generate_question(random.Random(0), "count", programs.World(), language="klingon")
    with pytest.raises(ValueError, match="num_templates"):
        programs.World(num_templates=0)
    with pytest.raises(ValueError, match="kind"):
        grammar.group("caption_short")


def test_surface_noise_is_there_and_spares_meaningful_words():
    texts = [ex["instruction"] for ex in _sentences("train", 2000)]
    assert sum(t == t.lower() for t in texts) > 0.1 * len(texts)
    assert sum(not t.endswith((".", "?", "!")) for t in texts) > 0.1 * len(texts)
    assert any(t.lower().startswith(("hey", "quick question", "ok,", "so,")) for t in texts)
    rng = random.Random(0)
    for _ in range(2000):
        text = "Hey, is the little red circle to the left of the photo's blue square in this picture?"
        changed = grammar._typo(rng, text)
        kept = set(re.findall(r"[a-z]+", changed.lower()))
        for word in ("little", "red", "circle", "left", "blue", "square", "photo"):
            assert word in kept, changed


def test_the_tokenizer_knows_every_word_of_the_grammar():
    tok = vocabulary.load_tokenizer(cache=False)
    vocab = tok.get_vocab()
    words = set()
    for train, held in grammar.CORES.values():
        for core in train + held:
            words |= {w.lower() for t in core if t for w in re.findall(r"[A-Za-z]+", re.sub(r"\{\w+\}", "", t))}
    for train, held in grammar.WORDS.values():
        words |= {w.lower() for phrase in train + held for w in phrase.split()}
    for frame in grammar.FRAMES[0] + grammar.FRAMES[1]:
        words |= {w.lower() for w in re.findall(r"[A-Za-z]+", frame.replace("{q}", "").replace("{e}", ""))}
    missing = sorted(w for w in words if w not in vocab)
    assert not missing, missing


def test_handwritten_questions_are_not_sentences_of_the_grammar():
    """The hand-written set tests language the templates do not generate."""
    from course_utils.world import handwritten

    every = _patterns(_cores(0) + _cores(1), grammar.FRAMES[0] + grammar.FRAMES[1], loose=True)
    prefixes = tuple(p.strip(" ,:").lower() for p in grammar.PREFIXES)
    said = []
    for row in handwritten.load_handwritten():
        text = row["instruction"].strip().rstrip(".?!")
        for p in prefixes:  # the grammar's politeness is not what makes a sentence new
            if text.lower().startswith(p):
                text = text[len(p):].lstrip(" ,:")
        if any(p.match(text) for p in every):
            said.append(row["instruction"])
    assert not said, said
