"""Figures of chapter 13: error against training examples with fitted power laws, and error
against model width.

Only matplotlib; every function returns the ``Figure`` it drew.
"""

from __future__ import annotations


def error_vs_examples(n, error, fits: dict | None = None, fit_from=None, chance: float | None = None,
                      title=None):
    """Test error against training examples on log-log axes, with fitted curves.

    ``fits``: ``{label: callable n -> error}`` drawn as lines from ``fit_from`` (default: the
    smallest ``n``) to the largest (a power law is straight on these axes; one with a floor
    bends flat); the sizes below ``fit_from`` are shaded as the small-data region.

    Used in chapter 13, "1. More data: error against examples (FAQ 9.2)".
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    ax.plot(n, error, "o", color="black", label="measured (one run each)", zorder=3)
    start = min(n) if fit_from is None else fit_from
    grid = np.geomspace(start, max(n), 200)
    if start > min(n):
        ax.axvspan(min(n) / 1.1, start / 1.05, color="grey", alpha=0.12, lw=0, label="small-data region")
    for (label, curve), style in zip((fits or {}).items(), ("-", "--", ":", "-.")):
        ax.plot(grid, [curve(x) for x in grid], style, label=label)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlabel="training examples", ylabel="test error")
    _percent_axis(ax)
    ax.set_xticks(list(n), [f"{x:,}" for x in n], fontsize=7, rotation=45)
    ax.set_xticks([], minor=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "error against training examples")
    fig.tight_layout()
    return fig


def error_vs_width(widths, error, parameters, title=None):
    """Test error against the model's width, with each point's parameter count.

    Used in chapter 13, "2. Wider models, and the learning rate that goes with them".
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.plot(widths, error, "o-", color="tab:blue")
    for w, e, p in zip(widths, error, parameters):
        ax.annotate(f"{e:.1%}\n{p / 1000:.0f} k params", (w, e), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="hidden size (width)", ylabel="test error",
           ylim=(min(error) / 1.5, max(error) * 2.5))
    _percent_axis(ax)
    ax.set_xticks(list(widths), [str(w) for w in widths])
    ax.set_xticks([], minor=True)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title or "error against width")
    fig.tight_layout()
    return fig


def _percent_axis(ax) -> None:
    """Log-scaled errors labelled as percentages at 1-2-5 steps (0.05 -> 5%)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, PercentFormatter

    low, high = ax.get_ylim()
    ticks = [m * 10.0**e for e in range(-4, 1) for m in (1, 2, 5) if low <= m * 10.0**e <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.yaxis.set_minor_formatter(NullFormatter())
