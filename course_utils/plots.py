"""Figures the chapters share (image grids, heatmaps, learning curves).

Only matplotlib; every function returns the matplotlib ``Figure`` it drew.
"""

from __future__ import annotations

# ---- architecture diagrams (chapter 01, chapter 05) --------------------------------

# Each diagram: boxes (name -> (x, y, label, frozen?)) and arrows (from, to), in a 10x6 frame.
_DIAGRAMS = {
    "cross_attention": {
        "title": "The seed's design: cross-attention from instruction to image",
        "boxes": {
            "img": (0.9, 4.3, "image\n(B, 3, H, W)", None),
            "txt": (0.9, 1.5, "instruction\n\"what colour is\nthe circle?\"", None),
            "venc": (3.2, 4.3, "vision encoder\n(CNN / ViT)\n(B, N_img, D)", True),
            "tenc": (3.2, 1.5, "instruction encoder\n(BERT-style)\n(B, T, D)", True),
            "xatt": (5.9, 2.9, "cross-attention\nQ: instruction\nK, V: image\n(B, T, D)", False),
            "head": (8.4, 2.9, "pool + classifier\n(B, n_answers)\n→ \"red\"", False),
        },
        "arrows": [("img", "venc"), ("txt", "tenc"), ("venc", "xatt"), ("tenc", "xatt"),
                   ("xatt", "head")],
    },
    "llava": {
        "title": "LLaVA: project image tokens into the language model's input",
        "boxes": {
            "img": (0.9, 4.3, "image", None),
            "txt": (0.9, 1.5, "instruction\ntokens", None),
            "venc": (3.0, 4.3, "vision encoder\n(CLIP ViT-L/14)", True),
            "proj": (5.2, 4.3, "projector\n(linear / MLP)", False),
            "emb": (5.2, 1.5, "word\nembeddings", True),
            "llm": (7.6, 2.9, "decoder LLM\n(Vicuna)\n[image tokens;\ninstruction]", True),
            "out": (9.4, 2.9, "answer\ntext", None),
        },
        "arrows": [("img", "venc"), ("venc", "proj"), ("proj", "llm"), ("txt", "emb"),
                   ("emb", "llm"), ("llm", "out")],
    },
    "flamingo": {
        "title": "Flamingo: gated cross-attention layers inside a frozen LM",
        "boxes": {
            "img": (0.9, 4.3, "images", None),
            "txt": (0.9, 1.5, "interleaved\ntext", None),
            "venc": (3.0, 4.3, "vision encoder\n(NFNet)", True),
            "perc": (5.2, 4.3, "Perceiver\nResampler\n(64 latents)", False),
            "gxa": (5.2, 1.5, "gated xattn\ntanh(α)=0 at init", False),
            "lm": (7.6, 1.5, "frozen LM\nblocks\n(Chinchilla)", True),
            "out": (9.4, 1.5, "next\ntoken", None),
        },
        "arrows": [("img", "venc"), ("venc", "perc"), ("perc", "gxa"), ("txt", "gxa"),
                   ("gxa", "lm"), ("lm", "out")],
    },
    "qformer": {
        "title": "BLIP-2: a Q-Former's learned queries read the frozen image encoder",
        "boxes": {
            "img": (0.9, 4.3, "image", None),
            "venc": (3.0, 4.3, "vision encoder\n(ViT-g)", True),
            "q": (3.0, 1.5, "32 learned\nqueries", False),
            "qf": (5.3, 2.9, "Q-Former\n(cross-attends\nto image)", False),
            "proj": (7.2, 2.9, "linear\nprojection", False),
            "llm": (9.0, 2.9, "frozen LLM\n(OPT / FlanT5)", True),
        },
        "arrows": [("img", "venc"), ("venc", "qf"), ("q", "qf"), ("qf", "proj"),
                   ("proj", "llm")],
    },
}


def pipeline_diagram(kind: str = "cross_attention", ax=None):
    """Draw a vision-language architecture as boxes and arrows.

    ``kind``: ``"cross_attention"`` (the seed's model), ``"llava"``, ``"flamingo"`` or
    ``"qformer"``. Blue boxes are usually frozen (pretrained), orange ones are trained.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if kind not in _DIAGRAMS:
        raise ValueError(f"unknown diagram kind {kind!r}; known: {sorted(_DIAGRAMS)}")
    spec = _DIAGRAMS[kind]
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 4.2))
    fig = ax.figure
    w, h, stretch = 1.75, 1.45, 1.15
    boxes = {k: (x * stretch, y, label, fr) for k, (x, y, label, fr) in spec["boxes"].items()}
    colours = {True: "#cfe2f3", False: "#fce5cd", None: "#eeeeee"}
    for x, y, label, frozen in boxes.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    fc=colours[frozen], ec="#444444", lw=1.2))
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5)
    for a, b in spec["arrows"]:
        xa, ya = boxes[a][:2]
        xb, yb = boxes[b][:2]
        ax.annotate("", xy=(xb - w / 2 if xb > xa else xb, yb + (h / 2 if yb < ya - 0.1 else 0)
                            if abs(xb - xa) < 0.1 else yb),
                    xytext=(xa + w / 2 if xb > xa else xa, ya - (h / 2 if yb < ya - 0.1 else 0)
                            if abs(xb - xa) < 0.1 else ya),
                    arrowprops={"arrowstyle": "->", "lw": 1.4, "color": "#333333"})
    ax.set_xlim(-0.1, 10.4 * stretch + 0.1)
    ax.set_ylim(-0.2, 5.3)
    ax.axis("off")
    ax.set_title(spec["title"], fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, fc=colours[k], ec="#444444") for k in (True, False)]
    ax.legend(handles, ["pretrained (often frozen)", "trained in this stage"], loc="lower center",
              ncol=2, fontsize=8, frameon=False)
    return fig


# ---- attention (chapter 02, chapter 05) ---------------------------------------------


def _numpy(x):
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def attention_heatmap(weights, x_labels=None, y_labels=None, title=None, ax=None,
                      cmap="viridis", vmin=0.0, vmax=None, colorbar=True):
    """A matrix of attention weights (or a boolean mask): rows are queries, columns keys.

    ``weights``: a 2-d tensor or array ``(N_q, N_k)``. Labels are optional lists of
    strings; a boolean mask is drawn white (allowed) on black (blocked).
    """
    import matplotlib.pyplot as plt

    w = _numpy(weights)
    if w.ndim != 2:
        raise ValueError(f"attention_heatmap expects a 2-d (N_q, N_k) matrix, got shape {w.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2.0, 0.45 * w.shape[0] + 1.2))
    fig = ax.figure
    is_mask = w.dtype == bool
    im = ax.imshow(w.astype(float), cmap="gray" if is_mask else cmap, vmin=vmin,
                   vmax=1.0 if is_mask else vmax, interpolation="nearest", aspect="auto")
    for labels, setter, n in ((x_labels, ax.set_xticks, w.shape[1]),
                              (y_labels, ax.set_yticks, w.shape[0])):
        if labels is not None:
            if len(labels) != n:
                raise ValueError(f"{len(labels)} labels for {n} rows/columns")
            setter(range(n), labels, fontsize=8)
    if x_labels is not None:
        ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar and not is_mask:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def patch_attention(image, weights, grid: int, row_titles=None, col_titles=None,
                    size: float = 2.2, alpha: float = 0.6):
    """Attention over image patches, drawn on the image.

    ``image``: a PIL image or an ``(H, W, 3)`` array. ``weights``: ``(rows, cols, grid*grid)``
    (e.g. heads x query tokens x patches, patches in row-major order), or ``(cols, grid*grid)``
    for one row. Each panel shows the image with its weights as a heatmap over the
    ``grid x grid`` patches; the colour scale is shared within a panel row.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    img = np.asarray(image)
    w = _numpy(weights)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[-1] != grid * grid:
        raise ValueError(
            f"weights must be (rows, cols, grid*grid={grid * grid}), got shape {w.shape}"
        )
    rows, cols = w.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3), squeeze=False)
    h, wd = img.shape[:2]
    for r in range(rows):
        vmax = float(w[r].max()) or 1.0
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.imshow(w[r, c].reshape(grid, grid), cmap="inferno", alpha=alpha, vmin=0, vmax=vmax,
                      extent=(0, wd, h, 0), interpolation="nearest")
            for k in range(1, grid):
                ax.axhline(k * h / grid, color="white", lw=0.5, alpha=0.5)
                ax.axvline(k * wd / grid, color="white", lw=0.5, alpha=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=9)
    fig.tight_layout()
    return fig
