"""Hints and failure messages keep the hidden details hidden.

* every checker of ``course_utils.checks.chNN`` has at least two hints, revealed one at a
  time, and the last one names a section of its own chapter as ``chapter NN, "<heading>"``;
* no hint contains a line of its chapter's solutions (the code between ``### BEGIN
  SOLUTION`` and ``### END SOLUTION`` in the chapter's notebook);
* the message of a wrong answer never contains the reference answer (a value answer's
  repr, or tensors and arrays of expected values); the student's own value may appear.
"""

from __future__ import annotations

import importlib
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import attention, fusion, vision
from course_utils.attention import CrossAttention
from course_utils.checks import CheckFailed
from course_utils.runtime import REPO_ROOT
from course_utils.tools.notebooks import CHAPTER_REFERENCE, reference_problems

NOTEBOOKS = REPO_ROOT / "notebooks"
CHAPTERS = [f"{n:02d}" for n in range(1, 15)]
#: A solution line shorter than this (``x = 0``, ``model.train()``...) says nothing by itself.
MIN_LINE = 12


# ---- the notebooks: headings and solution lines ---------------------------------------------


def notebook(chapter: str) -> dict:
    (path,) = NOTEBOOKS.glob(f"{chapter}_*.ipynb")
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _meaningful(line: str) -> bool:
    return len(line) >= MIN_LINE and not re.fullmatch(r"return \w+", line)


def solution_lines(chapter: str) -> set[str]:
    """The lines of a chapter's solutions that would give an answer away: comments and
    trivial lines dropped, whitespace collapsed; the right-hand side of a long assignment
    or ``return`` counts as a line of its own."""
    lines, inside = set(), False
    for cell in notebook(chapter)["cells"]:
        if cell["cell_type"] != "code":
            continue
        for raw in source(cell).splitlines():
            stripped = raw.strip()
            if stripped.startswith("### BEGIN SOLUTION"):
                inside = True
            elif stripped.startswith("### END SOLUTION"):
                inside = False
            elif inside:
                code = " ".join(re.sub(r"\s+#.*$", "", stripped).split())
                if code.startswith("#") or not _meaningful(code):
                    continue
                lines.add(code)
                rhs = re.match(r"^(?:return\s+|[\w\[\]\"'.,: -]+?\s*[-+*/]?=\s+)(.+)$", code)
                if rhs and len(rhs.group(1)) >= 20:
                    lines.add(rhs.group(1))
    return lines


# ---- the checkers ---------------------------------------------------------------------------


def key(check) -> str:
    return f"{check.__module__}.{check.__name__}"


def checkers(chapter: str) -> list:
    module = importlib.import_module(f"course_utils.checks.ch{chapter}")
    found = [obj for obj in vars(module).values() if hasattr(obj, "title") and hasattr(obj, "hints")]
    return sorted({id(c): c for c in found}.values(), key=lambda c: c.title)


ALL = [pytest.param(c, ch, id=f"ch{ch}.{c.__name__}") for ch in CHAPTERS for c in checkers(ch)]


def test_every_chapter_has_checkers():
    assert all(checkers(ch) for ch in CHAPTERS)
    assert len(ALL) >= 25, len(ALL)


@pytest.mark.parametrize(("check", "chapter"), ALL)
def test_hints_end_with_the_section_to_reread(check, chapter):
    hints = check.hints
    assert isinstance(hints, tuple) and len(hints) >= 2, hints
    assert all(isinstance(h, str) and h.strip() for h in hints)
    refs = CHAPTER_REFERENCE.findall(" ".join(hints[-1].split()))
    assert refs, f"the last hint names no section: {hints[-1]!r}"
    own = [heading for number, heading in refs if number == chapter]
    assert own, f"the last hint names no section of chapter {chapter}: {refs}"
    _, problems = reference_problems(hints[-1])
    assert not problems, problems


@pytest.mark.parametrize(("check", "chapter"), ALL)
def test_hints_are_revealed_one_at_a_time(check, chapter, capsys):
    for n, text in enumerate(check.hints, start=1):
        check.hint(n)
        out = capsys.readouterr().out
        assert f"Hint {n}/{len(check.hints)}" in out and text in out
    check.hint(len(check.hints) + 1)
    assert f"only {len(check.hints)} hints" in capsys.readouterr().out


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_hint_contains_a_solution_line(chapter):
    solution = solution_lines(chapter)
    assert solution, f"chapter {chapter}: no solution lines found; did the markers change?"
    leaks = [(c.__name__, line) for c in checkers(chapter) for line in solution
             if any(line in " ".join(h.split()) for h in c.hints)]
    assert not leaks, f"hints that contain a line of the solution: {leaks}"


def test_the_solution_scan_finds_what_it_should():
    lines = solution_lines("02")
    assert "e = torch.exp(x - m)" in lines and "torch.exp(x - m)" not in lines  # too short alone
    assert "return e / e.sum(dim=dim, keepdim=True)" in lines
    assert "e / e.sum(dim=dim, keepdim=True)" in lines  # a long right-hand side on its own
    assert not any(line.startswith("#") or "# (B" in line for line in lines)


# ---- wrong answers, and what their messages may say --------------------------------------


def _float_formats(x: float) -> set[str]:
    texts = {repr(x), f"{x:.3f}", f"{x:.4f}", f"{x:.3g}", f"{x:.4g}"}
    return {t for t in texts if len(t) >= 4}  # shorter ones ("0.5") occur by chance


def reference_texts(reference, top: bool = True) -> set[str]:
    """How a reference answer, or a part of it, would read in a message (for a part of a
    dict, only the part as a whole: listing the allowed names is not a leak)."""
    if isinstance(reference, bool) or reference is None:
        return set()
    if isinstance(reference, float):
        return _float_formats(reference)
    if isinstance(reference, int):
        return {str(reference), f"{reference:,}", f"{reference:_}"}
    texts = {repr(reference), str(reference)}
    if isinstance(reference, dict):
        for key, value in reference.items():
            texts |= {f"{key!r}: {value!r}", f"{key}: {value}", f"'{key}' = {value!r}"}
            texts |= reference_texts(value, top=False)
    elif isinstance(reference, set | frozenset):
        texts |= {repr(sorted(reference)), ", ".join(sorted(map(str, reference)))}
        if top:
            texts |= {t for v in reference for t in reference_texts(v, top=False)}
    elif isinstance(reference, tuple | list):
        texts.add(", ".join(map(str, reference)))
    return {t for t in texts if len(t) > 3}


#: Four or more numbers with decimals in a row: a printed array of values.
FLOAT_ARRAY = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?(?:\s*,\s*-?\d+\.\d+(?:e[-+]?\d+)?){3,}")


def leaks(message: str, reference=None, given=None) -> list[str]:
    """What of the reference answer a failure message gives away."""
    found = []
    if "tensor(" in message or "array(" in message:
        found.append("a tensor or array repr")
    if FLOAT_ARRAY.search(message):
        found.append(f"an array of numbers: {FLOAT_ARRAY.search(message).group(0)}")
    said_by_student = " ".join({repr(given), str(given)}) if given is not None else ""
    for text in reference_texts(reference):
        if text in message and text not in said_by_student:
            found.append(f"the reference {text!r}")
    numbers = (int, float)
    if isinstance(reference, numbers) and isinstance(given, numbers) and given != reference:
        # "off by 7": the student's own answer plus the distance is the reference
        distance = abs(reference - given)
        texts = {str(distance)} if isinstance(distance, int) else _float_formats(distance)
        found += [f"the distance to the reference, {t}" for t in texts
                  if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w]|\.\d)", message)]
    return found


def test_the_leak_rule_catches_what_it_should():
    assert leaks("expected tensor([0.1, 0.2])")
    assert leaks("expected 0.1000, 0.2000, 0.3000, 0.4000")
    assert leaks("the answer is 5.545", math.log(256))
    assert leaks("'stage 1': {'projector'} is right", {"stage 1": {"projector"}})
    assert leaks("should be (8, 21)", {"mask": (8, 21)})
    assert leaks("off by 7 (the total is 12345)", 12345)
    assert leaks("off by 7 (too many)", 12345, 12352) and not leaks("too many", 12345, 12352)
    assert not leaks("answer['pooled'] = (8, 21) is not right", {"mask": (8, 21)}, {"pooled": (8, 21)})
    assert not leaks("largest difference from the reference: 0.0123")
    assert not leaks("1.0 is not the loss of uniform predictions over a batch of 256", math.log(256), 1.0)


# -- value answers: the reference itself is what must not leak


def _ch01():
    from course_utils.checks import ch01

    roles = dict(ch01._ROLE_OF)
    shapes = ch01._expected_shapes()
    stages = {k: set(v) for k, v in ch01._LLAVA_TRAINABLE.items()}
    return [
        (ch01.check_components, roles, {**roles, "projector": "C", "cross-attention": "E"}),
        (ch01.check_components, roles, {**roles, "answer head": roles["instruction encoder"]}),
        (ch01.check_components, roles, {c: "A" for c in roles}),
        (ch01.check_pipeline_shapes, shapes, {**shapes, "visual_features": (8, 196, 768)}),
        (ch01.check_pipeline_shapes, shapes, {**shapes, "fused": shapes["visual_features"]}),
        (ch01.check_pipeline_shapes, shapes, {**shapes, "logits": (8, 10)}),
        (ch01.check_pipeline_shapes, shapes, {k: v for k, v in shapes.items() if k != "pooled"}),
        (ch01.check_llava_stages, stages, {"stage 1": {"projector"}, "stage 2": {"projector"}}),
        (ch01.check_llava_stages, stages, {"stage 1": {"language_model"}, "stage 2": {"projector"}}),
        (ch01.check_llava_stages, stages, {"stage 2": {"projector"}}),
    ]


def _ch03():
    from course_utils.checks import ch03

    r = ch03._reference_count(ch03.COUNT_CONFIG)
    total = r["patch"] + r["cls"] + r["pos"] + r["layers"] * r["block"] + r["final_ln"]
    return [(ch03.check_vit_param_count, total, total + delta)
            for delta in (7, -7, -1000, -r["pos"], -r["d"], r["d"] ** 2 + r["d"], -r["block"], total)]


def _ch05():
    from course_utils.checks import ch05

    shapes = ch05.llava_shapes()
    return [
        (ch05.check_llava_shapes, shapes, {**shapes, "image_tokens": (8, 10, 64)}),
        (ch05.check_llava_shapes, shapes, {**shapes, "sequence": (8, 12, 64)}),
        (ch05.check_llava_shapes, shapes, {**shapes, "mask": (8, 21, 64)}),
        (ch05.check_llava_shapes, shapes, {**shapes, "pooled": (8, 21)}),
        (ch05.check_llava_shapes, shapes, {**shapes, "logits": (8, 20)}),
        (ch05.check_llava_shapes, shapes, {"logits": shapes["logits"]}),
    ]


def _ch06():
    from course_utils.checks import ch06

    truth = ch06.label_preserving()
    some = sorted(truth)
    return [
        (ch06.check_label_preserving, truth, set(some[:-1])),
        (ch06.check_label_preserving, truth, truth | {"hflip"}),
        (ch06.check_label_preserving, truth, {"jpeg", some[0]}),
        (ch06.check_label_preserving, truth, some[0]),
        (ch06.check_label_preserving, truth, set()),
    ]


def _ch07_values():
    from course_utils.checks import ch07

    want = math.log(ch07.CHANCE_BATCH)
    return [(ch07.check_chance_loss, want, wrong)
            for wrong in (2 * want, math.log2(256), math.log(255), 1 / 256, 1.0, 5.5, 0)]


VALUE_CASES = [pytest.param(check, ref, wrong, id=f"{check.__name__}-{i}")
               for i, (check, ref, wrong) in enumerate(_ch01() + _ch03() + _ch05() + _ch06()
                                                       + _ch07_values())]


@pytest.mark.parametrize(("check", "reference", "wrong"), VALUE_CASES)
def test_a_wrong_value_is_not_answered_with_the_reference(check, reference, wrong):
    with pytest.raises(CheckFailed) as info:
        check(wrong)
    message = str(info.value)
    assert not leaks(message, reference, wrong), (message, leaks(message, reference, wrong))


# -- code answers: the expected outputs on the checker's hidden cases must not leak


def _softmax_cooler(x, dim=-1):  # sums to 1, wrong values
    return torch.softmax(x / 2, dim)


def _softmax_naive(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)


def _attention_unscaled(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def _attention_wrong_output(q, k, v, mask=None):
    out, w = attention.scaled_dot_product_attention(q, k, v, mask)
    return 2 * out, w


def _split_view_only(x, num_heads):
    b, n, d = x.shape
    return x.view(b, num_heads, n, d // num_heads)


def _merge_view_only(x):
    b, h, n, d = x.shape
    return x.reshape(b, n, h * d)


def _mha_no_output_projection(x, context, w_q, w_k, w_v, w_o, num_heads):
    q, k, v = (attention.split_heads(t, num_heads) for t in (x @ w_q.T, context @ w_k.T, context @ w_v.T))
    return attention.merge_heads(attention.scaled_dot_product_attention(q, k, v)[0])


def _patchify_naive(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def _patchify_channels_last(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, c * p * p)


def _preprocess_half(img, mean, std):  # ignores the mean and std it is given
    from course_utils.checks import ch03

    return ch03.reference_preprocess(img, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _preprocess_no_rescale(img, mean, std):
    x = (torch.tensor(img, dtype=torch.float32) - torch.tensor(mean)) / torch.tensor(std)
    return x.permute(2, 0, 1).unsqueeze(0)


def _pool_doubled(hidden, mask):
    m = mask.float().unsqueeze(-1)
    return 2 * (hidden * m).sum(1) / m.sum(1)


def _labels_padding_kept(ids, mask):
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    return labels


def _gated_block(use_tanh=True, gate_init=0.0, pre_norm=True, scale=1.0):
    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.xattn = CrossAttention(d, heads)
            self.mlp = fusion.MLP(d)
            self.attn_gate = nn.Parameter(torch.full((1,), gate_init))
            self.mlp_gate = nn.Parameter(torch.full((1,), gate_init))

        def forward(self, x, image):
            squash = torch.tanh if use_tanh else (lambda g: g)
            h = self.norm1(x) if pre_norm else x
            x = x + scale * squash(self.attn_gate) * self.xattn(h, image)[0]
            return x + squash(self.mlp_gate) * self.mlp(self.norm2(x))

    return Block


def _count_ignores_empty(program, scene):
    want = program["objs"]
    if not want:
        return "0"
    return str(sum(all(o[k] == v for k, v in want.items()) for o in scene["objects"]))


def _pad_by_comparison(seqs, pad_id):
    longest = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (longest - len(s)) for s in seqs])
    return ids, (ids != pad_id).long()


def _flip_naive(instruction, answer):
    def f(text):
        return text.replace("left", "\0").replace("right", "left").replace("\0", "right")

    return f(instruction), f(answer)


def _clip_scaled(image_features, text_features, temperature):  # right idea, 10 % too large
    a, b = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(len(a))
    return 1.1 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _clip_one_direction(image_features, text_features, temperature):
    a, b = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
    return F.cross_entropy(a @ b.T / temperature, torch.arange(len(a)))


def _recall_half(similarity, k):
    return 0.5


def _recall_columns(similarity, k):
    right = similarity.diagonal()
    return ((similarity > right[None, :]).sum(0) < k).float().mean().item()


def _step(weight="share", zero_each=False, loss_factor=1.0):
    def accumulated_step(model, optimizer, micro_batches, clip_norm):
        model.train()
        optimizer.zero_grad()
        total = sum(len(b["labels"]) for b in micro_batches)
        mean_loss = 0.0
        for b in micro_batches:
            if zero_each:
                optimizer.zero_grad()
            loss = F.cross_entropy(model(x=b["x"]), b["labels"])
            loss = loss * len(b["labels"]) / total if weight == "share" else loss / len(micro_batches)
            loss.backward()
            mean_loss += loss.item()
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        return loss_factor * mean_loss

    return accumulated_step


def _evaluate_mean_of_batches(model, batches):
    model.eval()
    with torch.inference_mode():
        accs = [(model(x=b["x"]).argmax(-1) == b["labels"]).float().mean().item() for b in batches]
    return sum(accs) / len(accs)


def _smoothing_over_others(logits, labels, epsilon):
    k = logits.shape[-1]
    onehot = F.one_hot(labels, k).float()
    target = (1 - epsilon) * onehot + epsilon / (k - 1) * (1 - onehot)
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def _prf(cm, f1_factor=1.0, swap=False):
    cm = cm.double()
    tp, predicted, support = cm.diag(), cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = f1_factor * torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0.0)
    if swap:
        precision, recall = recall, precision
    present = (predicted + support) > 0
    return {"precision": precision.float(), "recall": recall.float(), "f1": f1.float(),
            "macro_f1": f1[present].mean().item(), "micro_f1": (tp.sum() / cm.sum()).item()}


def _bootstrap(shift=0.0, level_offset=0.0):
    def bootstrap_interval(correct, n_boot, level, seed):
        c = torch.as_tensor(correct, dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        means = c[torch.randint(0, len(c), (n_boot, len(c)), generator=g)].mean(1)
        a = (1 - level + level_offset) / 2
        low, high = torch.quantile(means, torch.tensor([a, 1 - a], dtype=torch.float64))
        return low.item() + shift, high.item() + shift

    return bootstrap_interval


def _hidden_results() -> dict:
    """The expected outputs (numbers) on the hidden cases of the checkers that return them."""
    from course_utils import metrics
    from course_utils.checks import ch07, ch08, ch09
    from course_utils.pretraining import clip_loss

    out = {}
    feats = [ch07._features(8, 16, 0), ch07._features(5, 12, 1, aligned=1.0), ch07._features(12, 8, 2, aligned=0.5)]
    out["course_utils.checks.ch07.check_clip_loss"] = {clip_loss(F.normalize(i, dim=-1), F.normalize(t, dim=-1), tau).item()
                              for (i, t), tau in zip(feats, (0.07, 0.5, 1.0))}
    out["course_utils.checks.ch07.check_recall_at_k"] = {ch07.recall_at_k(s, k) for s in ch07._similarities() for k in (1, 3, 5)}
    out["course_utils.checks.ch08.check_evaluate"] = {
        ch08._reference_evaluate(ch08.ToyModel(dropout=0.5, seed=seed).train(), ch08.toy_batches(sizes, seed=seed))
        for sizes, seed in (((32, 32, 3), 0), ((10,), 1), ((50, 1), 2))}
    losses = set()
    for sizes, clip, seed in (((8, 8), 100.0, 0), ((8, 8, 3), 100.0, 1), ((6, 6, 6), 0.05, 2)):
        model, batches, clip = ch08._step_case(sizes, clip, seed)
        losses.add(ch08._reference_step(model, torch.optim.SGD(model.parameters(), lr=0.5), batches, clip))
    out["course_utils.checks.ch08.check_accumulated_step"] = losses
    out["course_utils.checks.ch09.check_prf_from_confusion"] = {ref[key] for cm in ch09._confusion_cases().values()
                                       for ref in [ch09._reference_from_confusion(cm)]
                                       for key in ("macro_f1", "micro_f1")}
    out["course_utils.checks.ch09.check_bootstrap"] = {v for c, level in ch09._bootstrap_cases().values()
                              for v in metrics.bootstrap_ci(c, n_boot=20_000, level=level, seed=1)[1:]}
    from course_utils.captioning import grounding, ngram
    from course_utils.checks import ch10

    out["course_utils.checks.ch10.check_brevity_penalty"] = {ngram.brevity_penalty(c, r)
                                                             for c, r in ch10._BP_CASES.values()}
    out["course_utils.checks.ch10.check_chair"] = {v for stated, true in ch10._chair_cases().values()
                                                   for v in grounding.chair(stated, true).values()}
    out["course_utils.checks.ch10.check_beam_step"] = {
        v for case in ch10._beam_cases().values() for v in ch10._reference_beam_step(*case)[0].tolist()}
    from course_utils.checks import ch11
    from course_utils.retrieval import negatives, ranking, search

    out["course_utils.checks.ch11.check_recall_at_k"] = {
        ranking.recall_at_k(s, r, ks=(k,), mode="hit")[f"R@{k}"] for s, r, k in ch11._recall_cases().values()}
    out["course_utils.checks.ch11.check_negclip_loss"] = {negatives.negclip_loss(*case).item()
                                                          for case in ch11._negclip_cases().values()}
    out["course_utils.checks.ch11.check_recall_against_exact"] = {
        search.recall_against_exact(a, e) for a, e in ch11._ann_cases().values()}
    from course_utils import scaling
    from course_utils.checks import ch13, ch14
    from course_utils.outlook import attribution

    out["course_utils.checks.ch13.check_power_law"] = {
        v for n, e in ch13._power_law_cases().values() for v in scaling.fit_power_law(n, e)}
    out["course_utils.checks.ch14.check_pointing_game"] = {
        attribution.pointing_game(h, t).float().mean().item() for h, t in ch14._pointing_cases().values()}
    return out


def _chair_as_sets(stated, true):  # sets, not multisets: a duplicated object is not counted
    wrong = [len(set(s) - set(t)) for s, t in zip(stated, true)]
    total = sum(len(s) for s in stated)
    return {"chair_i": sum(wrong) / total if total else 0.0, "chair_s": sum(w > 0 for w in wrong) / len(stated)}


def _beam_step_unscored(beam_scores, log_probs, k):  # forgets the beams' scores
    scores, flat = log_probs.flatten().topk(k)
    return scores, flat // log_probs.shape[1], flat % log_probs.shape[1]


def _recall_fraction(scores, relevance, k):  # the textbook recall, not the "hit" Recall@K
    top = scores.topk(k, dim=1).indices
    return (relevance.gather(1, top).sum(1) / relevance.sum(1)).mean().item()


def _negclip_without_foils(image_emb, text_emb, foil_emb, temperature):  # plain CLIP
    logits = image_emb @ text_emb.T / temperature
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _negclip_scaled(image_emb, text_emb, foil_emb, temperature):  # right idea, 30 % too large
    from course_utils.retrieval import negatives

    return 1.3 * negatives.negclip_loss(image_emb, text_emb, foil_emb, temperature)


def _recall_position_wise(approx_indices, exact_indices):  # order matters: it should not
    return (approx_indices == exact_indices).float().mean().item()


class _FilmScaledByGamma(nn.Module):  # h * gamma + beta: not the identity at the start
    def __init__(self, cond_dim, channels):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h, cond):
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return h * gamma + beta


def _film_scaled_by_gamma(cond_dim, channels):
    return _FilmScaledByGamma(cond_dim, channels)


def _power_law_linear(n, error):  # a line through the raw values, not their logs
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(n, float), np.asarray(error, float), 1)
    return float(intercept), float(-slope)


def _code_cases():
    from course_utils.checks import (
        ch02,
        ch03,
        ch04,
        ch05,
        ch06,
        ch07,
        ch08,
        ch09,
        ch10,
        ch11,
        ch12,
        ch13,
        ch14,
    )

    return [
        (ch02.check_softmax, (_softmax_cooler,)), (ch02.check_softmax, (_softmax_naive,)),
        (ch02.check_attention, (_attention_unscaled,)), (ch02.check_attention, (_attention_wrong_output,)),
        (ch02.check_padding_mask, (lambda ids, pad: (ids != 0)[:, None, None, :],)),
        (ch02.check_padding_mask, (lambda ids, pad: (ids == pad)[:, None, None, :],)),
        (ch02.check_heads, (_split_view_only, attention.merge_heads)),
        (ch02.check_heads, (attention.split_heads, _merge_view_only)),
        (ch02.check_multi_head_attention, (_mha_no_output_projection,)),
        (ch03.check_patchify, (_patchify_naive,)), (ch03.check_patchify, (_patchify_channels_last,)),
        (ch03.check_patchify, (lambda x, p: vision.patchify(x, p).transpose(1, 2),)),
        (ch03.check_preprocess, (_preprocess_half,)), (ch03.check_preprocess, (_preprocess_no_rescale,)),
        (ch04.check_attention_mask, (lambda ids, pad: (ids != 0).long(),)),
        (ch04.check_attention_mask, (lambda ids, pad: (ids == pad).long(),)),
        (ch04.check_mean_pool, (_pool_doubled,)), (ch04.check_mean_pool, (lambda h, m: h.mean(1),)),
        (ch04.check_lm_labels, (_labels_padding_kept,)), (ch04.check_lm_labels, (lambda ids, m: ids.clone(),)),
        (ch05.check_gated_block, (_gated_block(use_tanh=False),)),
        (ch05.check_gated_block, (_gated_block(gate_init=1.0),)),
        (ch05.check_gated_block, (_gated_block(scale=1.5),)),
        (ch06.check_count_answer, (lambda program, scene: "1",)),
        (ch06.check_count_answer, (_count_ignores_empty,)),
        (ch06.check_pad_batch, (_pad_by_comparison,)),
        (ch06.check_flip_example, (_flip_naive,)),
        (ch06.check_flip_example, (lambda i, a: (i.replace("left", "right"), a),)),
        (ch07.check_clip_loss, (_clip_scaled,)), (ch07.check_clip_loss, (_clip_one_direction,)),
        (ch07.check_recall_at_k, (_recall_half,)), (ch07.check_recall_at_k, (_recall_columns,)),
        (ch08.check_accumulated_step, (_step(weight="per_batch"),)),
        (ch08.check_accumulated_step, (_step(zero_each=True),)),
        (ch08.check_accumulated_step, (_step(loss_factor=2.0),)),
        (ch08.check_evaluate, (_evaluate_mean_of_batches,)),
        (ch08.check_label_smoothing, (_smoothing_over_others,)),
        (ch09.check_prf_from_confusion, (lambda cm: _prf(cm, f1_factor=0.9),)),
        (ch09.check_prf_from_confusion, (lambda cm: _prf(cm, swap=True),)),
        (ch09.check_bootstrap, (_bootstrap(shift=0.05),)),
        (ch09.check_bootstrap, (_bootstrap(level_offset=0.1),)),
        (ch10.check_brevity_penalty, (lambda c, r: 1.0 if c > r else math.exp(1 - c / r) if c else 0.0,)),
        (ch10.check_brevity_penalty, (lambda c, r: 1.0,)),
        (ch10.check_chair, (_chair_as_sets,)),
        (ch10.check_beam_step, (_beam_step_unscored,)),
        (ch11.check_recall_at_k, (_recall_fraction,)), (ch11.check_recall_at_k, (lambda s, r, k: 0.42,)),
        (ch11.check_negclip_loss, (_negclip_without_foils,)), (ch11.check_negclip_loss, (_negclip_scaled,)),
        (ch11.check_recall_against_exact, (_recall_position_wise,)),
        (ch11.check_recall_against_exact, (lambda a, e: 0.3,)),
        (ch12.check_preserved, (lambda o, b, c: ~(o != b).any(-1).flatten(1).any(1),)),
        (ch12.check_run_program, (lambda program, scene: scene,)),
        (ch12.check_film, (_film_scaled_by_gamma,)),
        (ch13.check_power_law, (lambda n, e: (1.0, 0.5),)), (ch13.check_power_law, (_power_law_linear,)),
        (ch13.check_sampler_share, (lambda n, r, w: list(range(n))[r::w],)),
        (ch13.check_all_reduce, (lambda grads, counts: [torch.stack(g).mean(0) for g in zip(*grads)],)),
        (ch14.check_pointing_game, (lambda h, t: 0.3,)),
        (ch14.check_fgsm, (lambda m, x, i, a, y, e: x.clamp(-0.5, 0.5),)),
        (ch14.check_integrated_gradients, (lambda f, x, b, s: (x - b) * 0.5,)),
    ]


CODE_CASES = [pytest.param(check, args, id=f"{check.__name__}-{i}") for i, (check, args) in enumerate(_code_cases())]


@pytest.fixture(scope="module")
def hidden_results():
    return _hidden_results()


@pytest.mark.parametrize(("check", "args"), CODE_CASES)
def test_a_wrong_function_is_not_answered_with_expected_values(check, args, hidden_results):
    with pytest.raises(CheckFailed) as info:
        check(*args)
    message = str(info.value)
    reference = hidden_results.get(key(check))
    assert not leaks(message, reference), (message, leaks(message, reference))


def test_every_checker_is_driven_with_a_wrong_answer():
    driven = {key(p.values[0]) for p in VALUE_CASES + CODE_CASES}
    assert driven == {key(p.values[0]) for p in ALL}
