"""Decoding, from scratch: greedy (with and without the KV cache), beam search, sampling.

Each function takes a :class:`~course_utils.captioning.model.Captioner` and the decoder's
prefix (``Captioner.prefix``: image tokens and instruction, ``(B, S, D)`` with its mask)
and returns token ids ``(B, T)``: the answer, its end token, then padding. A step feeds
the decoder only the newest token when the cache holds the keys and values of all
earlier ones (``use_cache=True``); without the cache every step recomputes the whole
sequence, which gives the same tokens and costs more each step.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import Tensor

from course_utils.captioning.model import positions


@functools.cache
def _cache_argument(decoder_class) -> str:
    """transformers 5.2x calls the KV cache ``cache``; earlier versions ``past_key_values``."""
    params = inspect.signature(decoder_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _forward(model, embeds: Tensor, mask: Tensor, past=None):
    """Logits of the last position ``(B, V)`` and the cache, for ``embeds`` after ``past``."""
    pos = positions(mask)[:, -embeds.shape[1]:]  # the new tokens' positions
    name = _cache_argument(type(model.decoder))
    out = model.decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                        use_cache=True, **{name: past})  # fmt: skip
    return out.logits[:, -1].float(), out[name]


def _check(embeds: Tensor, mask: Tensor, max_new_tokens: int) -> None:
    if embeds.ndim != 3 or mask.shape != embeds.shape[:2]:
        raise ValueError(f"embeds must be (B, S, D) with a (B, S) mask, got {tuple(embeds.shape)} "
                         f"and {tuple(mask.shape)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")


@torch.inference_mode()
def greedy(model, embeds: Tensor, mask: Tensor, max_new_tokens: int = 80, use_cache: bool = True,
           temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Greedy decoding (``temperature=0``) or sampling at a temperature, token by token.

    Introduced in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    _check(embeds, mask, max_new_tokens)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    cfg = model.config
    done = torch.zeros(embeds.shape[0], dtype=torch.bool, device=embeds.device)
    out, past, new = [], None, embeds
    for _ in range(max_new_tokens):
        if use_cache:
            logits, past = _forward(model, new, mask, past)
        else:  # recompute every position, every step
            logits, _ = _forward(model, embeds, mask)
        if temperature > 0:
            probs = (logits / temperature).softmax(-1)  # (B, V)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            token = logits.argmax(-1)  # (B,)
        token = token.masked_fill(done, cfg.pad_token_id)
        out.append(token)
        done |= token == cfg.eos_token_id
        if done.all():
            break
        new = model.embed_tokens(token[:, None])  # (B, 1, D)
        if not use_cache:  # the whole sequence goes in again next step
            embeds = torch.cat([embeds, new], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return torch.stack(out, dim=1)  # (B, T)


def beam_step(beam_scores: Tensor, log_probs: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """One step of beam search: the ``k`` best of all ``K x V`` continuations.

    ``beam_scores`` ``(K,)`` are the beams' summed log-probabilities, ``log_probs``
    ``(K, V)`` the next token's; returns ``(scores, beam_idx, token_idx)``, each ``(k,)``,
    best first.

    Built in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    total = beam_scores[:, None] + log_probs  # (K, V)
    scores, flat = total.flatten().topk(k)  # (k,)
    return scores, flat // log_probs.shape[1], flat % log_probs.shape[1]


@torch.inference_mode()
def beam_search(model, embeds: Tensor, mask: Tensor, num_beams: int = 3, max_new_tokens: int = 80,
                length_penalty: float = 1.0, early_stopping: bool = False) -> Tensor:
    """Beam search with the KV cache, one example at a time, as ``generate(num_beams=K,
    early_stopping=...)`` does it: keep the ``K`` best unfinished beams; a beam that ends
    among the top ``K`` candidates is finished with score ``sum log p / length **
    length_penalty``. ``early_stopping=True`` stops as soon as ``K`` are finished;
    ``False`` (``generate``'s default) goes on while the best unfinished beam, scored at
    its current length, could still beat the ``K``-th best finished one. Returns the best.

    Introduced in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    _check(embeds, mask, max_new_tokens)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams <= 0:
        raise ValueError(f"num_beams must be a positive int, got {num_beams!r}")
    rows = [_beam_one(model, embeds[i : i + 1], mask[i : i + 1], num_beams, max_new_tokens,
                      length_penalty, early_stopping) for i in range(embeds.shape[0])]  # fmt: skip
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), model.config.pad_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out.to(embeds.device)


def _beam_one(model, embeds, mask, k, max_new_tokens, length_penalty, early_stopping) -> list[int]:
    eos = model.config.eos_token_id
    logits, past = _forward(model, embeds, mask)
    scores = torch.zeros(1, device=embeds.device)  # one beam to start
    seqs: list[list[int]] = [[]]
    finished: list[tuple[float, list[int]]] = []
    for step in range(max_new_tokens):
        cand, beam, token = beam_step(scores, logits.log_softmax(-1), 2 * k)
        keep_beam, keep_tok, keep_score = [], [], []
        for rank, (s, b, t) in enumerate(zip(cand.tolist(), beam.tolist(), token.tolist())):
            if t == eos:
                if rank < k:
                    finished.append((s / (step + 1) ** length_penalty, [*seqs[b], eos]))
            elif len(keep_beam) < k:
                keep_beam.append(b), keep_tok.append(t), keep_score.append(s)
        if len(finished) >= k:
            worst = sorted(f[0] for f in finished)[-k]  # the K-th best finished score
            if early_stopping or max(keep_score) / (step + 1) ** length_penalty <= worst:
                break
        idx = torch.tensor(keep_beam, device=embeds.device)
        past.reorder_cache(idx)
        seqs = [[*seqs[b], t] for b, t in zip(keep_beam, keep_tok)]
        scores = torch.tensor(keep_score, device=embeds.device)
        mask = torch.cat([mask[:1].expand(len(idx), -1), mask.new_ones(len(idx), 1)], dim=1)
        new = model.embed_tokens(torch.tensor(keep_tok, device=embeds.device)[:, None])  # (k, 1, D)
        logits, past = _forward(model, new, mask, past)
    if not finished:  # ran out of length: the best unfinished beam
        finished = [(s / len(q) ** length_penalty, q) for s, q in zip(scores.tolist(), seqs)]
    return max(finished, key=lambda f: f[0])[1]
