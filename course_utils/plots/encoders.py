"""Encoder figures: patch grids, position-embedding similarity, pixel histograms, accuracy
against data size, sentence-similarity matrices (chapters 03, 04)."""

from __future__ import annotations

from course_utils.plots.attention import to_numpy

# ---- vision encoders (chapter 03) ----------------------------------------------------


def patch_grid(image, patch_size: int, title=None, max_tiles: int = 64):
    """An image with its patch grid drawn on (left) and the patches in sequence order (right).

    ``image``: a PIL image or an ``(H, W, 3)`` array whose sides are multiples of
    ``patch_size``. The right panel lays the patches out as the sequence a ViT reads
    (row-major), numbered; at most ``max_tiles`` are shown.

    Used in chapter 03, "2. Patches: how a ViT reads an image".
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

    Used in chapter 03, "7. CNN or ViT? The FAQ's question, measured".
    """
    import matplotlib.pyplot as plt
    import numpy as np

    pos = to_numpy(position_embeddings).reshape(-1, to_numpy(position_embeddings).shape[-1])
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

    Used in chapter 03, "5. The image processor: what happens to the pixels".
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 3), squeeze=False)
    for ax, arr, label in zip(axes[0], arrays, labels):
        a = np.asarray(to_numpy(arr), dtype=np.float64)
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

    Used in chapter 03, "7. CNN or ViT? The FAQ's question, measured".
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

    Used in chapter 04, "5. A real pretrained encoder, offline".
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
        m = to_numpy(m)
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


