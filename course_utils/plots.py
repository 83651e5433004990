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
            "tenc": (3.2, 1.5, "instruction\nencoder (BERT)\n(B, T, D)", True),
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
        x = x.detach().cpu()
        x = x.float().numpy() if x.is_floating_point() else x.numpy()  # bool masks stay bool
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
                    size: float = 2.2, darkness: float = 0.8):
    """Attention over image patches, drawn as a spotlight on the image.

    ``image``: a PIL image or an ``(H, W, 3)`` array. ``weights``: ``(rows, cols, grid*grid)``
    (e.g. heads x query tokens x patches, patches in row-major order), or ``(cols, grid*grid)``
    for one row. In each panel the patch with the most weight is fully lit and the others
    are darkened in proportion (uniform weights leave the whole image lit); the panel's
    largest weight is written under it.
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
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
    h, wd = img.shape[:2]
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            panel = w[r, c].reshape(grid, grid)
            shade = darkness * (1.0 - panel / max(float(panel.max()), 1e-12))
            overlay = np.zeros((grid, grid, 4))
            overlay[..., 3] = shade  # black with per-patch opacity
            ax.imshow(img, interpolation="nearest")  # pixel centres at 0..W-1: edges at -0.5
            ax.imshow(overlay, extent=(-0.5, wd - 0.5, h - 0.5, -0.5), interpolation="nearest")
            for k in range(1, grid):
                ax.axhline(k * h / grid - 0.5, color="white", lw=0.5, alpha=0.6)
                ax.axvline(k * wd / grid - 0.5, color="white", lw=0.5, alpha=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"max weight {panel.max():.2f}", fontsize=8)
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=9)
    fig.tight_layout()
    return fig


# ---- learning curves (training chapters) --------------------------------------------


def learning_curves(histories, labels=None, metric: str = "accuracy", title=None):
    """Training loss and validation ``metric`` against steps for one or more histories.

    ``histories``: a :class:`course_utils.training.History` or a list of them.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not isinstance(histories, list | tuple):
        histories = [histories]
    labels = labels or [f"run {i + 1}" for i in range(len(histories))]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.5))
    for hist, label in zip(histories, labels):
        window = max(1, len(hist.train_loss) // 50)
        loss = np.convolve(hist.train_loss, np.ones(window) / window, mode="valid")
        ax_loss.plot(hist.step[window - 1 :], loss, label=label)
        if hist.evals:
            ax_metric.plot([e["step"] for e in hist.evals], [e[metric] for e in hist.evals],
                           marker="o", ms=3, label=label)
    ax_loss.set(xlabel="step", ylabel="training loss (smoothed)", yscale="log")
    ax_metric.set(xlabel="step", ylabel=f"validation {metric}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- vision encoders (chapter 03) ----------------------------------------------------


def patch_grid(image, patch_size: int, title=None, max_tiles: int = 64):
    """An image with its patch grid drawn on (left) and the patches in sequence order (right).

    ``image``: a PIL image or an ``(H, W, 3)`` array whose sides are multiples of
    ``patch_size``. The right panel lays the patches out as the sequence a ViT reads
    (row-major), numbered; at most ``max_tiles`` are shown.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    img = np.asarray(image)
    h, w = img.shape[:2]
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size {patch_size}")
    rows, cols = h // patch_size, w // patch_size
    n = min(rows * cols, max_tiles)
    per_row = min(cols * 2, 16) if rows * cols > cols else cols
    tile_rows = -(-n // per_row)
    fig = plt.figure(figsize=(10, 3.8))
    ax = fig.add_axes([0.02, 0.05, 0.36, 0.85])
    ax.imshow(img, interpolation="nearest")
    for k in range(1, rows):
        ax.axhline(k * patch_size - 0.5, color="white", lw=1)
    for k in range(1, cols):
        ax.axvline(k * patch_size - 0.5, color="white", lw=1)
    ax.set_title(f"{h}x{w} image, {rows}x{cols} patches of {patch_size}x{patch_size}", fontsize=9)
    ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        tile = img[r * patch_size:(r + 1) * patch_size, c * patch_size:(c + 1) * patch_size]
        tr, tc = divmod(i, per_row)
        sub = fig.add_axes([0.42 + tc * 0.56 / per_row, 0.9 - (tr + 1) * 0.85 / max(tile_rows, 3),
                            0.54 / per_row, 0.8 / max(tile_rows, 3)])
        sub.imshow(tile, interpolation="nearest")
        sub.set_xticks([])
        sub.set_yticks([])
        sub.set_title(str(i), fontsize=6, pad=1)
    more = f" (first {n} of {rows * cols})" if n < rows * cols else ""
    fig.text(0.7, 0.95, f"the sequence the ViT reads{more}", ha="center", fontsize=9)
    if title:
        fig.suptitle(title, y=1.02)
    return fig


def position_similarity(position_embeddings, grid: int, title=None, size: float = 0.9):
    """Cosine similarity of each patch's position embedding with every other one.

    ``position_embeddings``: ``(N, D)`` or ``(1, N, D)`` for the ``N = grid*grid`` patches
    (drop the ``[CLS]`` position first). Panel ``(r, c)`` shows, as a ``grid x grid`` map,
    how similar patch ``(r, c)``'s embedding is to every patch's (as in Dosovitskiy et al.).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    pos = _numpy(position_embeddings).reshape(-1, _numpy(position_embeddings).shape[-1])
    if pos.shape[0] != grid * grid:
        raise ValueError(f"expected {grid * grid} position embeddings (no [CLS]), got {pos.shape[0]}")
    unit = pos / np.linalg.norm(pos, axis=1, keepdims=True).clip(1e-12)
    sim = unit @ unit.T  # (N, N)
    fig, axes = plt.subplots(grid, grid, figsize=(size * grid + 0.8, size * grid), squeeze=False)
    for i, ax in enumerate(axes.flat):
        im = ax.imshow(sim[i].reshape(grid, grid), vmin=-1, vmax=1, cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(grid):
        axes[r, 0].set_ylabel(str(r + 1), rotation=0, labelpad=8, fontsize=8)
        axes[-1, r].set_xlabel(str(r + 1), fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="cosine similarity")
    fig.suptitle(title or "position-embedding similarity (panel = query patch)", fontsize=10)
    return fig


def pixel_histograms(arrays, labels, title=None, bins: int = 60):
    """Per-channel histograms of pixel values, one panel per array (e.g. before/after a processor).

    ``arrays``: a list of ``(H, W, 3)`` or ``(3, H, W)`` arrays/tensors.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 3), squeeze=False)
    for ax, arr, label in zip(axes[0], arrays, labels):
        a = np.asarray(_numpy(arr), dtype=np.float64)
        if a.ndim == 4:
            a = a[0]
        if a.shape[0] == 3 and a.shape[-1] != 3:
            a = np.moveaxis(a, 0, -1)
        for ch, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
            ax.hist(a[..., ch].ravel(), bins=bins, color=colour, alpha=0.45, label="RGB"[ch])
        ax.set_title(f"{label}\nrange [{a.min():.2f}, {a.max():.2f}], mean {a.mean():.2f}, "
                     f"std {a.std():.2f}", fontsize=9)
        ax.set_xlabel("pixel value")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("count")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_vs_data(sizes, results: dict, chance: float | None = None, title=None):
    """Test accuracy against training-set size (log x axis), one line per model.

    ``results``: ``{model name: [accuracy for each size]}``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (name, accs), marker in zip(results.items(), "osD^v"):
        ax.plot(sizes, accs, marker=marker, label=name)
        for x, y in zip(sizes, accs):
            ax.annotate(f"{y:.0%}", (x, y), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set(xscale="log", xlabel="training images", ylabel="test accuracy", ylim=(0, 1.08))
    ax.set_xticks(list(sizes))
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xticks([], minor=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "accuracy vs training-set size")
    fig.tight_layout()
    return fig


# ---- instruction encoders (chapter 04) -----------------------------------------------


def similarity_matrices(matrices, titles, group_sizes, group_names=None, vmin=-0.2, vmax=1.0):
    """Cosine-similarity matrices side by side, with lines between groups of paraphrases.

    ``matrices``: list of ``(N, N)`` tensors/arrays in the same row order; ``group_sizes``:
    the number of consecutive rows in each group (paraphrases of one instruction).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if len(matrices) != len(titles):
        raise ValueError(f"{len(matrices)} matrices but {len(titles)} titles")
    n = int(sum(group_sizes))
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices) + 0.8, 4.4))
    axes = np.atleast_1d(axes)
    edges = np.cumsum(group_sizes)[:-1] - 0.5
    centers = np.cumsum(group_sizes) - np.asarray(group_sizes) / 2 - 0.5
    for i, (ax, m, title) in enumerate(zip(axes, matrices, titles)):
        m = _numpy(m)
        if m.shape != (n, n):
            raise ValueError(f"a matrix has shape {m.shape}, expected {(n, n)} from group_sizes")
        im = ax.imshow(m, cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
        for e in edges:
            ax.axhline(e, color="white", lw=0.8)
            ax.axvline(e, color="white", lw=0.8)
        if group_names is not None:  # names on the first panel only, numbers elsewhere
            numbers = [str(j + 1) for j in range(len(group_sizes))]
            ax.set_yticks(centers, [f"{name} {n}" for name, n in zip(group_names, numbers)]
                          if i == 0 else numbers, fontsize=8)
            ax.set_xticks(centers, numbers, fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=list(axes), fraction=0.025, pad=0.02, label="cosine similarity")
    return fig


# ---- data (chapter 06) -----------------------------------------------------------------


def show_examples(images, captions=None, ncols: int = 4, size: float = 2.4, title=None, wrap: int = 30):
    """A grid of images, each with its (wrapped) caption below, e.g. instruction -> answer.

    ``images``: PIL images or ``(H, W, 3)`` arrays; small images are shown with sharp pixels.
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
    """Bars grouped by row: ``{group: {series: value}}`` (e.g. family -> majority/blind)."""
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
    """A matrix of numbers as a coloured table (e.g. augmentation x family label breakage)."""
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.asarray(_numpy(values), dtype=float)
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


# ---- error analysis (chapter 09) ------------------------------------------------------


def failure_grid(images, weights, captions, grid: int, ncols: int = 4, size: float = 2.4,
                 darkness: float = 0.75, title=None, wrap: int = 34):
    """Examples with the model's attention over the grid cells drawn as a spotlight.

    ``images``: PIL images or ``(H, W, 3)`` arrays; ``weights``: ``(N, grid*grid)`` (row-major
    cells, e.g. a model's read weights); ``captions``: one string per example (instruction,
    answer, prediction). The most-attended cell is fully lit, the others darkened in proportion.
    """
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    images, w = list(images), _numpy(weights)
    if w.ndim != 2 or w.shape != (len(images), grid * grid):
        raise ValueError(f"weights must be (N={len(images)}, grid*grid={grid * grid}), got {w.shape}")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 1.0) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        img = np.asarray(images[i])
        h, wd = img.shape[:2]
        panel = w[i].reshape(grid, grid)
        overlay = np.zeros((grid, grid, 4))
        overlay[..., 3] = darkness * (1.0 - panel / max(float(panel.max()), 1e-12))
        ax.imshow(img, interpolation="nearest")
        ax.imshow(overlay, extent=(-0.5, wd - 0.5, h - 0.5, -0.5), interpolation="nearest")
        for k in range(1, grid):
            ax.axhline(k * h / grid - 0.5, color="white", lw=0.5, alpha=0.6)
            ax.axvline(k * wd / grid - 0.5, color="white", lw=0.5, alpha=0.6)
        ax.set_title("\n".join(textwrap.wrap(str(captions[i]), wrap)), fontsize=7.5, y=-0.02, va="top")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
