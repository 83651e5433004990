"""Attention figures: heatmaps, attention over image patches, learning curves, failure grids
(chapters 02, 05, 08, 09)."""

from __future__ import annotations

# ---- attention (chapter 02, chapter 05) ---------------------------------------------


def to_numpy(x):
    """A tensor (any device, any dtype) or array-like as a NumPy array, for matplotlib.

    Used in chapter 02, "4. Masks: padding and causality"."""
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

    Used in chapter 02, "4. Masks: padding and causality".
    """
    import matplotlib.pyplot as plt

    w = to_numpy(weights)
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

    Used in chapter 02, "6. Self-attention and cross-attention: the source document's `CrossAttention`, corrected".
    """
    import matplotlib.pyplot as plt
    import numpy as np

    img = np.asarray(image)
    w = to_numpy(weights)
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

    Used in chapter 04, "4. A small BERT-style encoder and masked mean pooling".
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


# ---- error analysis (chapter 09) ------------------------------------------------------


def failure_grid(images, weights, captions, grid: int, ncols: int = 4, size: float = 2.4,
                 darkness: float = 0.75, title=None, wrap: int = 34):
    """Examples with the model's attention over the grid cells drawn as a spotlight.

    ``images``: PIL images or ``(H, W, 3)`` arrays; ``weights``: ``(N, grid*grid)`` (row-major
    cells, e.g. a model's read weights); ``captions``: one string per example (instruction,
    answer, prediction). The most-attended cell is fully lit, the others darkened in proportion.

    Used in chapter 09, "5. Error analysis: look at the failures, then measure what they share".
    """
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    images, w = list(images), to_numpy(weights)
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
