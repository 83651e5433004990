"""N-gram metrics of captioning: BLEU-4 as sacreBLEU reports it, and the course's copy of CIDEr-D.

Both compare a generated text with reference texts word by word; neither looks at the
image. Two traps come with them, and chapter 10 shows both:

* **tokenisation changes BLEU.** sacreBLEU's default ``"13a"`` tokeniser splits the full
  stop from the last word; with ``tokenize="none"`` ``"square."`` and ``"square"`` are two
  different words, so the same pair of texts scores differently::

      >>> ref = ["A small red circle and a blue square ."]  # pre-tokenised, as COCO's are
      >>> hyp = ["A small red circle and a blue square."]
      >>> round(bleu4(hyp, ref), 1), round(bleu4(hyp, ref, tokenize="none"), 1)
      (100.0, 74.2)

* **CIDEr-D is a corpus metric.** Its idf weights come from the references of every image
  scored together, so on a single image every n-gram has ``idf = log(1 / 1) = 0`` and
  the score is 0 whatever the text: ``cider_d(["a red circle"], [["a red circle"]])[0]``
  is ``0.0``.

:func:`cider_d` follows ``pycocoevalcap.cider.cider_scorer`` (COCO's scorer) line for line;
the tests check that they agree to 1e-6.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter

#: The n-gram orders of BLEU-4 and CIDEr-D: 1- to 4-grams.
MAX_N = 4
#: What :func:`coco_tokenize` keeps: runs of letters and digits, joined by an inner ``-``/``'``.
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


# ---- BLEU ---------------------------------------------------------------------------------


def _reference_streams(references, n_hyp: int) -> list[list[str]]:
    """``references`` as sacreBLEU wants them: one list ("stream") per reference slot."""
    if not isinstance(references, list | tuple) or len(references) != n_hyp:
        got = len(references) if isinstance(references, list | tuple) else type(references).__name__
        raise ValueError(f"references: expected one entry per hypothesis ({n_hyp}), got {got}")
    if all(isinstance(r, str) for r in references):
        return [list(references)]
    if not all(isinstance(r, list | tuple) and r and all(isinstance(t, str) for t in r)
               for r in references):  # fmt: skip
        raise ValueError("references: give one string per hypothesis, or one non-empty list "
                         "of strings per hypothesis (not a mix)")
    sizes = {len(r) for r in references}
    if len(sizes) > 1:
        raise ValueError(f"references: every hypothesis needs the same number of references, "
                         f"got {sorted(sizes)}")
    return [[r[j] for r in references] for j in range(sizes.pop())]


def bleu4(
    hypotheses: list[str], references: list[list[str]] | list[str], tokenize: str = "13a"
) -> float:
    """Corpus BLEU-4 (0 to 100) by sacreBLEU, the number papers report.

    ``references`` holds one reference per hypothesis (``list[str]``) or several
    (``list[list[str]]``, the same number for every hypothesis). ``tokenize`` is
    sacreBLEU's tokeniser: ``"13a"`` (its default, WMT's) splits punctuation off words,
    ``"none"`` splits on spaces only, so ``"square."`` does not match ``"square"``.
    BLEU is a *corpus* score: the n-gram matches of all sentences are pooled before the
    geometric mean, which is not the mean of sentence scores.

    Used in chapter 10, "5. N-gram metrics: BLEU and CIDEr-D"."""
    import sacrebleu

    if not isinstance(hypotheses, list | tuple) or not hypotheses:
        raise ValueError("hypotheses: give a non-empty list of strings")
    if not all(isinstance(h, str) for h in hypotheses):
        raise ValueError("hypotheses: every hypothesis must be a string")
    streams = _reference_streams(references, len(hypotheses))
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams, tokenize=tokenize).score)


def brevity_penalty(hyp_len: int, ref_len: int) -> float:
    """BLEU's brevity penalty: 1 if the hypotheses are longer than the references
    (``c > r``), else ``exp(1 - r / c)``; 0.0 when ``c = 0``.

    ``c`` and ``r`` are corpus totals (sacreBLEU takes, for each sentence, the reference
    length closest to the hypothesis). Precision alone rewards saying little; the penalty
    is what makes a short caption pay for the objects it leaves out. At ``c = r = 0`` this
    returns 0.0 where sacreBLEU returns 1.0; BLEU is 0 there either way.

    Used in chapter 10, "Exercise 1 — BLEU's brevity penalty (★☆☆, ~5 min, 1 point)"."""
    for name, value in (("hyp_len", hyp_len), ("ref_len", ref_len)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer (a number of tokens), "
                             f"got {value!r}")
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


# ---- CIDEr-D --------------------------------------------------------------------------------


def coco_tokenize(text: str) -> str:
    """Lower case, punctuation removed, words joined by single spaces: what COCO's
    ``PTBTokenizer`` (Stanford's, in Java) gives for the world's simple sentences.

    ``"There are two objects. A small red circle is on the left."`` becomes
    ``"there are two objects a small red circle is on the left"``. (PTB would also split
    clitics, ``"don't"`` -> ``"do n't"``; the world's texts have none.)

    Used in chapter 10, "5. N-gram metrics: BLEU and CIDEr-D"."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return " ".join(_WORD.findall(text.lower()))


def ngram_counts(text: str, n: int = MAX_N) -> Counter:
    """How often each 1- to ``n``-gram (a tuple of words) occurs in a space-split text.

    Used in chapter 10, "5. N-gram metrics: BLEU and CIDEr-D"."""
    words = text.split()
    return Counter(
        tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)
    )


def _check_cider_input(hypotheses, references) -> None:
    if not isinstance(hypotheses, list | tuple) or not hypotheses:
        raise ValueError("hypotheses: give a non-empty list of strings, one per image")
    if not all(isinstance(h, str) for h in hypotheses):
        raise ValueError("hypotheses: every hypothesis must be a string")
    if not isinstance(references, list | tuple) or len(references) != len(hypotheses):
        got = len(references) if isinstance(references, list | tuple) else type(references).__name__
        raise ValueError(
            f"references: expected one list per hypothesis ({len(hypotheses)}), got {got}")
    for i, refs in enumerate(references):
        if not (isinstance(refs, list | tuple) and refs and all(isinstance(r, str) for r in refs)):
            raise ValueError(f"references[{i}]: give a non-empty list of strings (CIDEr-D needs "
                             "the references of every image as a list)")


def _tfidf(counts: Counter, df: Counter, log_images: float) -> tuple[list[dict], list[float], int]:
    """COCO's ``counts2vec``: tf-idf weights per n-gram order, their norms, and a length.

    The tf is the raw count; the idf ``log(N) - log(max(1, df))``. The length is the
    number of *bigrams* (COCO counts ``n == 1`` of a 0-based order), the number of words
    minus one: the same differences as word counts, except against an empty text, whose
    score is 0 anyway (it shares no n-gram)."""
    vec: list[dict] = [{} for _ in range(MAX_N)]
    norm = [0.0] * MAX_N
    length = 0
    for gram, tf in counts.items():
        order = len(gram) - 1
        weight = float(tf) * (log_images - math.log(max(1.0, df[gram])))
        vec[order][gram] = weight
        norm[order] += weight**2
        if order == 1:
            length += tf
    return vec, [math.sqrt(v) for v in norm], length


def _similarity(hyp: tuple, ref: tuple, sigma: float) -> list[float]:
    """Per order: the clipped cosine of hypothesis and reference, times the length penalty."""
    (vh, nh, lh), (vr, nr, lr) = hyp, ref
    penalty = math.exp(-(float(lh - lr) ** 2) / (2 * sigma**2))
    out = []
    for order in range(MAX_N):
        ref = vr[order]
        val = sum(min(w, ref.get(g, 0.0)) * ref.get(g, 0.0) for g, w in vh[order].items())
        if nh[order] != 0 and nr[order] != 0:
            val /= nh[order] * nr[order]
        out.append(val * penalty)
    return out


def cider_d(
    hypotheses: list[str], references: list[list[str]], sigma: float = 6.0
) -> tuple[float, list[float]]:
    """CIDEr-D of a corpus as COCO's ``pycocoevalcap`` computes it: ``(mean, per-image scores)``.

    Texts go through :func:`coco_tokenize` first. Each text becomes tf-idf vectors of its
    1- to 4-grams, the idf taken from the document frequency of each n-gram over the
    *reference sets* of the whole corpus (``log N - log max(1, df)``, ``N`` images). Per
    order, the score of a hypothesis against one reference is the cosine of their vectors
    with the hypothesis's weights clipped by the reference's (saying "red" five times does
    not help), times a Gaussian length penalty ``exp(-(l_h - l_r)^2 / (2 sigma^2))``; it is
    averaged over the references and the four orders, times 10. So it lies in ``[0, 10]``:
    a text identical to its only reference scores 10 if it has four words or more (three
    words have no 4-gram, that order gives 0, and the best is 7.5), and an n-gram found in
    every image's references weighs nothing.

    On a single image every ``idf`` is ``log(1 / 1) = 0``: the score is 0 for any text.

    Used in chapter 10, "5. N-gram metrics: BLEU and CIDEr-D"."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    _check_cider_input(hypotheses, references)
    hyp_counts = [ngram_counts(coco_tokenize(h)) for h in hypotheses]
    ref_counts = [[ngram_counts(coco_tokenize(r)) for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in ref_counts:  # an n-gram counts once per image, however many references have it
        df.update({gram for counts in refs for gram in counts})
    log_images = math.log(float(len(ref_counts)))
    scores = []
    for counts, refs in zip(hyp_counts, ref_counts):
        hyp = _tfidf(counts, df, log_images)
        total = [0.0] * MAX_N
        for ref in refs:
            sim = _similarity(hyp, _tfidf(ref, df, log_images), sigma)
            total = [t + v for t, v in zip(total, sim)]
        scores.append(10.0 * (sum(total) / MAX_N) / len(refs))
    return sum(scores) / len(scores), scores
