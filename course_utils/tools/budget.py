"""Time budgets that travel between machines: a chapter's seconds as a multiple of a fixed
reference workload measured in the same run.

A chapter that takes 60 s here takes about 120 s on a machine twice as slow, and so does
the reference workload; their ratio stays put. ``python3 -m course_utils run`` measures the
reference before and after the chapters, reports each chapter's multiple beside its seconds,
and the test suite fails a chapter whose multiple goes over its budget
(``tests/test_chapters_run.py``).

The reference is what the chapters spend their time on: :data:`REFERENCE_STEPS` Adam steps
of a small transformer encoder (2 layers, width 64, 4 heads) on a batch of 64 sequences of
32 tokens, at the machine's default number of threads, timed after a warm-up.
"""

from __future__ import annotations

import time

#: Adam steps of the reference workload.
REFERENCE_STEPS = 100
#: What the reference took on the machine the budgets were set on (2 cores, idle; the
#: median of 20 measurements, which ranged from 1.42 s to 2.58 s).
REFERENCE_SECONDS = 1.55
#: The budgets, in reference multiples: 90 s there for a chapter (58 references), 120 s for
#: chapter 08 (77), which keeps a chapter within 3 minutes (08: 4) on a machine twice as slow.
DEFAULT_BUDGET = 58.0
#: Chapter 08 is not there yet (issue 17): about 166-175 references today (about 190 before its
#: AdamW was fused), on both cores (it ran on one, at about 230, until its models were measured
#: faster on two when nothing else runs). Its main run alone is about 70 references, and shorter
#: runs miss the chapter's claim (1,500 steps: spatial questions at 86 %, under the asserted
#: 90 %). Its limit here (a third above, for the machine's swings) stops it from growing; its
#: target is 77.
#: (Chapter 10 had a limit of 85 until its own training run froze the pretrained image encoder:
#: 500 steps now read the image where 700 did not, and it measures about 48.)
BUDGETS = {"08": 235.0}
#: The whole course, every chapter in one run (issue 17's target): 20 minutes on a machine twice
#: as slow as the one the budgets were set on, so 600 s there, 387 references. Not met yet: the
#: course measured 517 (chapter 08 alone 166). The run table's total row shows it whenever
#: every chapter ran.
COURSE_BUDGET = 387.0


def budget(chapter: str) -> float:
    """The budget of a chapter (``"08"`` or ``"08_instruction_tuning"``), in reference multiples."""
    return BUDGETS.get(chapter[:2], DEFAULT_BUDGET)


def reference_seconds(steps: int = REFERENCE_STEPS) -> float:
    """Seconds this machine takes for the reference workload, now: after 20 warm-up steps, the
    median of three thirds of ``steps``, scaled to all of them."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
    model = nn.Sequential(nn.Embedding(100, 64), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))
    head = nn.Linear(64, 10)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-3)
    ids = torch.randint(0, 100, (64, 32), generator=gen)  # (B, N)
    labels = torch.randint(0, 10, (64,), generator=gen)  # (B,)

    def step():
        loss = nn.functional.cross_entropy(head(model(ids).mean(1)), labels)  # (B, D) -> (B, C)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(20):  # first steps pay for allocation and lazy initialisation
        step()
    thirds = []
    for _ in range(3):  # the median third: a passing hiccup of the machine does not count
        start = time.perf_counter()
        for _ in range(steps // 3):
            step()
        thirds.append(time.perf_counter() - start)
    return sorted(thirds)[1] * steps / (steps // 3)


def multiple(seconds: float, reference: float) -> float:
    """A duration as a multiple of the reference workload's seconds."""
    if reference <= 0:
        raise ValueError(f"the reference workload's time must be positive, got {reference}")
    return seconds / reference
