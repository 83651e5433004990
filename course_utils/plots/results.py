"""Data and results figures: example grids, bar panels, grouped bars, table heatmaps,
retrieval curves, the FLAN curve (chapters 06, 07, 09)."""

from __future__ import annotations

from course_utils.plots.attention import to_numpy

# ---- data (chapter 06) -----------------------------------------------------------------


def show_examples(images, captions=None, ncols: int = 4, size: float = 2.4, title=None, wrap: int = 30):
    """A grid of images, each with its (wrapped) caption below, e.g. instruction -> answer.

    ``images``: PIL images or ``(H, W, 3)`` arrays; small images are shown with sharp pixels.

    Used in chapter 01, "3. What visual instruction tuning is".
    """
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    images = list(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.75) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.asarray(images[i]), interpolation="nearest")
        if captions is not None:
            ax.set_title("\n".join(textwrap.wrap(str(captions[i]), wrap)), fontsize=8, y=-0.02,
                         va="top")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_panels(panels: dict, ncols: int = 3, title=None, ylabel: str = "fraction", hline=None,
               sort: bool = False, size=(3.6, 2.6)):
    """One bar chart per panel: ``{panel name: {bar label: value}}`` (e.g. answers per family).

    ``hline``: ``{panel name: value}`` draws a dashed reference line (e.g. chance).

    Used in chapter 06, "3. Honest answers: statistics and a blind baseline".
    """
    import matplotlib.pyplot as plt

    names = list(panels)
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        items = list(panels[name].items())
        if sort:
            items.sort(key=lambda kv: -kv[1])
        ax.bar(range(len(items)), [v for _, v in items], color="#4a7ab5")
        ax.set_xticks(range(len(items)), [str(k) for k, _ in items], rotation=60, fontsize=7, ha="right")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        if hline and name in hline:
            ax.axhline(hline[name], color="grey", ls="--", lw=1)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def grouped_bars(table: dict, title=None, ylabel: str = "accuracy", ylim=(0, 1.05), fmt="{:.0%}"):
    """Bars grouped by row: ``{group: {series: value}}`` (e.g. family -> majority/blind).

    Used in chapter 06, "3. Honest answers: statistics and a blind baseline"."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(table)
    series = list(dict.fromkeys(s for g in groups for s in table[g]))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2.5, 3.4))
    for j, s in enumerate(series):
        xs = np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width
        vals = [table[g].get(s, np.nan) for g in groups]
        bars = ax.bar(xs, vals, width, label=s)
        for b, v in zip(bars, vals):
            if not np.isnan(v):
                ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set(ylabel=ylabel, ylim=ylim)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def table_heatmap(values, row_labels, col_labels, title=None, fmt="{:.0%}", cmap="Reds", vmax=None):
    """A matrix of numbers as a coloured table (e.g. augmentation x family label breakage).

    Used in chapter 06, "9. Which augmentations preserve labels? (seed 9.2)"."""
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.asarray(to_numpy(values), dtype=float)
    fig, ax = plt.subplots(figsize=(0.9 * len(col_labels) + 2.2, 0.42 * len(row_labels) + 1.2))
    ax.imshow(v, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(float(v.max()), 1e-9),
              aspect="auto")
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            ax.text(j, i, fmt.format(v[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(col_labels)), col_labels, fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---- contrastive pretraining (chapter 07) ----------------------------------------------


def retrieval_curves(history: dict, chance: float | None = None, title=None):
    """Training loss, held-out Recall@K and the temperature against steps.

    ``history``: ``{"step": [...], "loss_step": [...], "loss": [...], "temperature": [...],
    and one list per "image_to_text@K" / "text_to_image@K" key}`` (eval points share ``step``).

    Used in chapter 07, "4. Training on captions".
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_r, ax_t) = plt.subplots(1, 3, figsize=(13, 3.5))
    loss = np.asarray(history["loss"], dtype=float)
    window = max(1, len(loss) // 40)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    ax_loss.plot(np.asarray(history["loss_step"])[window - 1:], smooth)
    ax_loss.set(xlabel="step", ylabel="training loss (smoothed)", yscale="log")
    keys = [k for k in history if "@" in k]
    for key in keys:
        style = "-" if key.startswith("image") else "--"
        ax_r.plot(history["step"], history[key], style, marker="o", ms=3, label=key)
    if chance is not None:
        ax_r.axhline(chance, color="gray", lw=1, ls=":", label=f"chance@1 = {chance:.1%}")
    ax_r.set(xlabel="step", ylabel="held-out recall", ylim=(-0.02, 1.02))
    ax_r.legend(fontsize=7)
    ax_t.plot(history["step"], history["temperature"], marker="o", ms=3)
    ax_t.set(xlabel="step", ylabel="temperature  1 / exp(logit_scale)")
    for ax in (ax_loss, ax_r, ax_t):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig




def flan_curve(curve: dict, splits=("test_paraphrase", "test_synonyms", "test_frames"), title=None):
    """Accuracy on held-out layers against training templates, one line per encoder and split.

    ``curve`` is :func:`course_utils.flan.load_curve`'s ``{"points": [{"kind", "num_templates",
    <split>: accuracy}, ...]}``; the x axis is logarithmic (1, 2, 4, 8 templates).

    Used in chapter 06, "10. How much diversity buys: the FLAN curve".
    """
    import matplotlib.pyplot as plt

    styles = {"test_paraphrase": "-", "test_synonyms": "--", "test_frames": ":", "test": "-."}
    names = {"slot_read": "from scratch", "slot_read_minilm": "frozen MiniLM"}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    kinds = sorted({p["kind"] for p in curve["points"]})
    for color, kind in zip(("tab:orange", "tab:blue", "tab:green"), kinds):
        points = sorted((p for p in curve["points"] if p["kind"] == kind), key=lambda p: p["num_templates"])
        ks = [p["num_templates"] for p in points]
        for split in splits:
            ax.plot(ks, [p[split] for p in points], styles.get(split, "-"), color=color, marker="o",
                    label=f"{names.get(kind, kind)}: {split.removeprefix('test_')}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({p["num_templates"] for p in curve["points"]}))
    ax.set_xticklabels([str(k) for k in sorted({p["num_templates"] for p in curve["points"]})])
    ax.set_xlabel("training templates per question group")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or "what template diversity buys, and what a pretrained encoder replaces")
    fig.tight_layout()
    return fig
