"""Architecture diagrams of the fusion families (chapter 01, chapter 05)."""

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

    Used in chapter 01, "4. The building blocks, and where you build each one".
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


