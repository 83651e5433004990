"""Stage 1: aligning images and text before instruction tuning (chapter 07's tested reference).

Two ways to put an image and its caption in one space::

    model = ContrastiveModel(**model_sizes())         # CLIP-style: both encoders learn
    out = model(pixel_values, input_ids, attention_mask)
    loss = clip_loss(out["image_embeds"], out["text_embeds"], model.temperature)
    retrieval_accuracy(out["image_embeds"], out["text_embeds"], k=(1, 5))

    projector = Projector(model.cfg.hidden_size)      # LLaVA stage 1: only this learns
    loss = stage1_loss(model, projector, pixel_values, input_ids, attention_mask)

(``model_sizes`` is :func:`course_utils.world.encoding.model_sizes`: the vocabulary and
answer count of the world's data.)

The encoders are **the same classes, with the same config,** as the fusion models of
:mod:`course_utils.fusion` (:class:`~course_utils.fusion.ImageEncoder`,
:class:`~course_utils.fusion.InstructionEncoder`), and :class:`Projector` has the
state-dict layout of ``LlavaProjectionFusion.projector``. So chapter 08 can start a fusion
model from these weights: :func:`save_pretrained_encoders` writes them (safetensors) to
``runtime.cache_dir("pretrained")`` and :func:`load_pretrained_encoders` loads them into a
fusion model, or rebuilds the contrastive model. Bad inputs raise ``ValueError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.fusion import MLP, ImageEncoder, InstructionEncoder, make_config
from course_utils.text import mean_pool
from course_utils.training import adamw, contrastive_temperature

__all__ = [
    "clip_loss",
    "check_embeddings",
    "ContrastiveModel",
    "retrieval_accuracy",
    "Projector",
    "stage1_embeddings",
    "stage1_loss",
    "freeze",
    "count_trainable",
    "default_path",
    "save_pretrained_encoders",
    "load_pretrained_encoders",
]

#: CLIP's initial temperature (Radford et al. 2021): logit scale ``log(1 / 0.07)``.
INIT_TEMPERATURE = 0.07
#: The stage-1 objective's fixed temperature (nothing to learn there but the projector).
STAGE1_TEMPERATURE = 0.07


# ---- the loss ---------------------------------------------------------------------------


def check_embeddings(image_emb, text_emb, normalized: bool = True, atol: float = 1e-3) -> None:
    """Raise ``ValueError`` unless both are float ``(N, E)`` tensors of one shape (unit rows).

    Used in chapter 07, "2. The contrastive loss, from scratch"."""
    for name, x in (("image_emb", image_emb), ("text_emb", text_emb)):
        if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a float tensor (N, E), got {got}")
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image_emb {tuple(image_emb.shape)} and text_emb {tuple(text_emb.shape)} "
                         "must have the same shape: row i of each is one image-caption pair")
    if image_emb.shape[0] < 1:
        raise ValueError("need at least one image-caption pair")
    if normalized:
        for name, x in (("image_emb", image_emb), ("text_emb", text_emb)):
            norms = x.detach().norm(dim=-1)
            if not torch.allclose(norms, torch.ones_like(norms), atol=atol):
                raise ValueError(
                    f"{name} rows must have unit length (got norms from {norms.min().item():.3g} "
                    f"to {norms.max().item():.3g}); apply F.normalize(x, dim=-1) first")


def clip_loss(image_emb: Tensor, text_emb: Tensor, temperature) -> Tensor:
    """CLIP's symmetric InfoNCE loss on a batch of ``N`` matching pairs.

    ``image_emb``, ``text_emb``: ``(N, E)`` with unit-length rows; row ``i`` of each is a
    pair. ``logits = image_emb @ text_emb.T / temperature`` is ``(N, N)``; the correct
    "class" of image ``i`` is caption ``i`` (the diagonal), and of caption ``i`` image ``i``.
    The loss is the mean of the two cross-entropies (rows: image->text, columns:
    text->image). ``temperature``: a positive float or scalar tensor (may require grad).

    Built in chapter 07, "2. The contrastive loss, from scratch".
    """
    check_embeddings(image_emb, text_emb)
    t = torch.as_tensor(temperature, dtype=image_emb.dtype, device=image_emb.device)
    if t.numel() != 1 or not bool(t.detach() > 0):
        raise ValueError(f"temperature must be one positive number, got {temperature!r}")
    logits = image_emb @ text_emb.T / t  # (N, N): cosine similarity / temperature
    image_to_text = -logits.log_softmax(dim=1).diagonal().mean()  # each row: which caption?
    text_to_image = -logits.log_softmax(dim=0).diagonal().mean()  # each column: which image?
    return (image_to_text + text_to_image) / 2


# ---- the model --------------------------------------------------------------------------


class ContrastiveModel(nn.Module):
    """A CLIP-style dual encoder built from the fusion models' own encoders.

    image: ``ImageEncoder`` -> mean over its 9 tokens -> ``image_proj`` -> unit vector;
    text: ``InstructionEncoder`` -> masked mean over real tokens -> ``text_proj`` -> unit
    vector. ``logit_scale`` is learnable, starts at ``log(1 / 0.07)`` as in CLIP and is
    clamped at ``log(100)``; :attr:`temperature` is ``1 / exp(logit_scale)``.

    Keyword arguments are :class:`~course_utils.fusion.FusionConfig` fields (``vocab_size``
    and ``num_answers`` required: ``**world.encoding.model_sizes()``), so ``fusion.build_model(kind,
    **model.fusion_config)`` builds a fusion model whose encoders take these weights.

    Introduced in chapter 07, "1. One space for images and captions".
    """

    def __init__(self, embed_dim: int = 64, init_temperature: float = INIT_TEMPERATURE, **config):
        super().__init__()
        if not isinstance(embed_dim, int) or embed_dim <= 0:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not 0 < init_temperature:
            raise ValueError(f"init_temperature must be positive, got {init_temperature!r}")
        self.cfg = make_config(**config)
        self.embed_dim = embed_dim
        d = self.cfg.hidden_size
        self.image_encoder = ImageEncoder(self.cfg)
        self.text_encoder = InstructionEncoder(self.cfg)
        self.image_proj = nn.Linear(d, embed_dim, bias=False)
        self.text_proj = nn.Linear(d, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))

    @property
    def fusion_config(self) -> dict:
        return asdict(self.cfg)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the model: ``ContrastiveModel(**model.config)``."""
        return {"embed_dim": self.embed_dim, **self.fusion_config}

    @property
    def temperature(self) -> Tensor:
        """``1 / exp(logit_scale)``, with the scale clamped at 100 (a scalar tensor)."""
        return contrastive_temperature(self.logit_scale)

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        tokens = self.image_encoder(pixel_values)  # (B, N_img, D)
        return F.normalize(self.image_proj(tokens.mean(1)), dim=-1)  # (B, E), unit rows

    def text_hidden(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Pooled caption features before the projection head: ``(B, D)``."""
        if attention_mask is None:
            attention_mask = (input_ids != self.cfg.pad_token_id).long()
        return mean_pool(self.text_encoder(input_ids, attention_mask), attention_mask)  # (B, D)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return F.normalize(self.text_proj(self.text_hidden(input_ids, attention_mask)), dim=-1)

    def forward(self, pixel_values: Tensor, input_ids: Tensor,
                attention_mask: Tensor | None = None) -> dict:
        """``{"image_embeds": (B, E), "text_embeds": (B, E), "temperature": ()}``."""
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(f"{pixel_values.shape[0]} images but {input_ids.shape[0]} captions; "
                             "contrastive training needs one caption per image")
        return {"image_embeds": self.encode_image(pixel_values),
                "text_embeds": self.encode_text(input_ids, attention_mask),
                "temperature": self.temperature}

    def loss(self, pixel_values: Tensor, input_ids: Tensor,
             attention_mask: Tensor | None = None) -> Tensor:
        out = self(pixel_values, input_ids, attention_mask)
        return clip_loss(out["image_embeds"], out["text_embeds"], out["temperature"])


# ---- retrieval --------------------------------------------------------------------------


def retrieval_accuracy(image_emb: Tensor, text_emb: Tensor, k=(1, 5)) -> dict:
    """Recall@K both ways on ``N`` pairs (row ``i`` of each is a pair), by cosine similarity.

    ``image_to_text@K``: the fraction of images whose own caption is among the K most
    similar of the N captions; ``text_to_image@K`` the other way. The rank of the right
    answer is the number of candidates scoring *strictly* higher, so ties do not count
    against it. Chance is ``K / N``. Returns ``{"image_to_text@1": ..., ...}``.

    Used in chapter 07, "4. Training on captions".
    """
    check_embeddings(image_emb, text_emb, normalized=False)
    ks = tuple(k) if isinstance(k, list | tuple) else (k,)
    n = image_emb.shape[0]
    for kk in ks:
        if isinstance(kk, bool) or not isinstance(kk, int) or not 1 <= kk <= n:
            raise ValueError(f"every K must be an int in [1, N={n}], got {kk!r}")
    sim = F.normalize(image_emb.detach().float(), dim=-1) @ F.normalize(text_emb.detach().float(), dim=-1).T
    right = sim.diagonal()  # (N,) score of each true pair
    rank_i2t = (sim > right[:, None]).sum(1)  # (N,) captions beating image i's own
    rank_t2i = (sim > right[None, :]).sum(0)  # (N,) images beating caption j's own
    out = {}
    for kk in ks:
        out[f"image_to_text@{kk}"] = (rank_i2t < kk).float().mean().item()
        out[f"text_to_image@{kk}"] = (rank_t2i < kk).float().mean().item()
    return out


# ---- LLaVA stage 1: a projector between frozen encoders ------------------------------


class Projector(MLP):
    """LLaVA-1.5's projector, ``Linear -> GELU -> Linear``: image tokens -> the text width.

    Its parameters have the names and shapes of ``LlavaProjectionFusion.projector``
    (``0.weight``, ``2.weight``, ...), so it loads there directly.

    Introduced in chapter 07, "6. LLaVA stage 1: train only a projector between frozen encoders".
    """

    def __init__(self, dim: int = 64, ratio: int = 2, out_dim: int | None = None):
        super().__init__(dim, ratio, out_dim)


def freeze(module: nn.Module) -> nn.Module:
    """``requires_grad = False`` on every parameter, and eval mode; returns the module.

    Used in chapter 07, "6. LLaVA stage 1: train only a projector between frozen encoders"."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def count_trainable(module: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts.

    Used in chapter 07, "6. LLaVA stage 1: train only a projector between frozen encoders"."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total


def stage1_embeddings(model: ContrastiveModel, projector: nn.Module, pixel_values: Tensor,
                      input_ids: Tensor, attention_mask: Tensor | None = None):
    """The two sides of the stage-1 objective, as unit vectors ``(B, D)`` each.

    image side: ``projector(image_encoder(x))`` -> the mean of the 9 projected tokens;
    text side: the frozen text encoder's mean-pooled caption tokens (no projection head):
    the space the LLaVA-style fusion model's blocks read its text from.

    Used in chapter 07, "6. LLaVA stage 1: train only a projector between frozen encoders".
    """
    image_tokens = model.image_encoder(pixel_values)  # (B, N_img, D)
    projected = projector(image_tokens)  # (B, N_img, D): "visual words"
    text = model.text_hidden(input_ids, attention_mask)  # (B, D)
    return F.normalize(projected.mean(1), dim=-1), F.normalize(text, dim=-1)


def stage1_loss(model: ContrastiveModel, projector: nn.Module, pixel_values: Tensor,
                input_ids: Tensor, attention_mask: Tensor | None = None,
                temperature: float = STAGE1_TEMPERATURE) -> Tensor:
    """Stage-1 feature alignment: projected image tokens should summarise to their caption.

    The symmetric InfoNCE of :func:`clip_loss` between the two sides of
    :func:`stage1_embeddings`, at a fixed temperature.

    Used in chapter 07, "6. LLaVA stage 1: train only a projector between frozen encoders".
    """
    img, txt = stage1_embeddings(model, projector, pixel_values, input_ids, attention_mask)
    return clip_loss(img, txt, temperature)


# ---- saving for the next chapters -----------------------------------------------------

DEFAULT_NAME = "clip_stage1.safetensors"


def default_path() -> Path:
    """``runtime.cache_dir("pretrained") / "clip_stage1.safetensors"``.

    Used in chapter 07, "7. Saving the encoders for chapter 08"."""
    from course_utils.runtime import cache_dir

    return cache_dir("pretrained") / DEFAULT_NAME


def save_pretrained_encoders(model: ContrastiveModel, projector: nn.Module | None = None,
                             path=None, **metadata) -> Path:
    """Save the contrastive model (and the stage-1 projector) as one safetensors file.

    Keys: the model's state dict as is (``image_encoder.*``, ``text_encoder.*``,
    ``image_proj.*``, ``text_proj.*``, ``logit_scale``) and ``projector.*``. The config
    and ``metadata`` (JSON-serialisable) are stored in the file's header.

    Used in chapter 07, "7. Saving the encoders for chapter 08".
    """
    from safetensors.torch import save_file

    if not isinstance(model, ContrastiveModel):
        raise ValueError(f"model must be a ContrastiveModel, got {type(model).__name__}")
    path = Path(path) if path is not None else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items()}
    if projector is not None:
        state.update({f"projector.{k}": v for k, v in projector.state_dict().items()})
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    header = {"config": json.dumps(model.config), "has_projector": json.dumps(projector is not None),
              "course": json.dumps(metadata)}
    save_file(state, str(path), metadata=header)
    return path


def load_pretrained_encoders(into: nn.Module | None = None, path=None, strict: bool = True) -> dict:
    """Load what :func:`save_pretrained_encoders` wrote.

    ``into=None``: rebuild them; returns ``{"model": ContrastiveModel, "projector":
    Projector | None, "metadata": dict}``. ``into=`` a fusion model (anything with
    ``image_encoder`` and ``text_encoder``, e.g. ``fusion.build_model(kind,
    **pretrained["model"].fusion_config)``): load those two, and ``projector`` when both
    have one; returns ``{"loaded": [names], "metadata": dict}``. A size mismatch raises
    ``ValueError`` naming the config that differs.

    Used in chapter 07, "7. Saving the encoders for chapter 08".
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained weights at {path}; run chapter 07 first")
    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
    if "config" not in header:
        raise ValueError(f"{path} was not written by save_pretrained_encoders (no config in its header)")
    config = json.loads(header["config"])
    metadata = json.loads(header.get("course", "{}"))
    state = load_file(str(path))
    parts = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        parts.setdefault(head, {})[rest] = value
    if into is None:
        model = ContrastiveModel(**config)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("projector.")},
                              strict=strict)
        projector = None
        if "projector" in parts:
            projector = Projector(config["hidden_size"], config["mlp_ratio"])
            projector.load_state_dict(parts["projector"], strict=strict)
        return {"model": model, "projector": projector, "metadata": metadata}
    loaded = []
    for name in ("image_encoder", "text_encoder", "projector"):
        target = getattr(into, name, None)
        if target is None or name not in parts:
            if name != "projector":
                raise ValueError(f"the model has no `{name}` to load the pretrained weights into")
            continue
        device = next(target.parameters()).device
        try:
            target.load_state_dict({k: v.to(device) for k, v in parts[name].items()}, strict=strict)
        except RuntimeError as exc:
            ours = {k: config[k] for k in ("hidden_size", "vocab_size", "max_length", "vision_layers",
                                           "text_layers", "mlp_ratio", "image_size", "patch_size")}
            raise ValueError(f"the pretrained {name} does not fit this model (built with a different "
                             f"config?); the pretrained config: {ours}") from exc
        loaded.append(name)
    return {"loaded": loaded, "metadata": metadata}


# ---- one call: stage 1 for chapters that need pretrained encoders ----------------------


def pretrain_encoders(steps: int = 300, n_train: int = 6000, seed: int = 0, path=None,
                      stage1_steps: int = 0, batch_size: int = 128, lr: float = 3e-3,
                      overwrite: bool = False, progress: bool = True, data_seed: int | None = None,
                      **config) -> Path:
    """Chapter 07 in one call: a short CLIP-style run on captions, saved for later chapters.

    Trains a :class:`ContrastiveModel` (keyword arguments: :class:`FusionConfig` fields) on
    ``n_train`` image-caption pairs of the caption dataset for ``steps`` AdamW steps
    (warm-up then cosine, clipping at 1), then optionally ``stage1_steps`` of LLaVA's stage
    1 (frozen encoders, only a :class:`Projector` learns), and saves both with
    :func:`save_pretrained_encoders` (default: :func:`default_path`). If the file exists
    and ``overwrite`` is false, nothing is trained and its path is returned. ``data_seed``
    (default: ``seed``) picks the captions. Returns the path.
    About 15 s on a 2-core CPU with the defaults.

    Serves chapter 07, "7. Saving the encoders for chapter 08" (``reproduce clip-stage1``).
    """
    from course_utils.world import data, encoding

    _check_pretrain_args(steps, n_train, batch_size, stage1_steps)
    path = Path(path) if path is not None else default_path()
    if path.is_file() and not overwrite:
        return path
    data_seed = seed if data_seed is None else data_seed
    ds = data.load_caption_dataset(seed=data_seed, n_train=n_train, n_eval=8, splits=["train"])
    pairs = encoding.caption_tensors(ds["train"])
    pixels, ids, mask = pairs["pixel_values"], pairs["input_ids"], pairs["attention_mask"]  # (N, 3, 48, 48), (N, L)
    torch.manual_seed(seed)
    model = ContrastiveModel(**{**encoding.model_sizes(), **config})
    projector = Projector(model.cfg.hidden_size, model.cfg.mlp_ratio)
    gen = torch.Generator().manual_seed(seed)
    loop = {"data": (pixels, ids, mask), "gen": gen, "batch_size": batch_size, "lr": lr,
            "progress": progress}
    model.train()
    clip_losses = _train_steps(model.loss, model.parameters(), steps, "CLIP-style pretraining", **loop)
    metadata = {"clip_steps": steps, "n_train": n_train, "seed": seed, "data_seed": data_seed,
                "clip_loss_first": clip_losses[0], "clip_loss_last": clip_losses[-1]}
    if stage1_steps:
        freeze(model)
        projector.train()
        s1 = _train_steps(lambda x, i, m: stage1_loss(model, projector, x, i, m),
                          projector.parameters(), stage1_steps, "stage 1: projector only", **loop)
        metadata.update(stage1_steps=stage1_steps, stage1_loss_last=s1[-1])
    return save_pretrained_encoders(model.eval(), projector if stage1_steps else None,
                                    path=path, **metadata)


def _check_pretrain_args(steps, n_train, batch_size, stage1_steps) -> None:
    """``ValueError`` naming the argument unless the counts of :func:`pretrain_encoders` are valid."""
    for name, value in (("steps", steps), ("n_train", n_train), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(stage1_steps, bool) or not isinstance(stage1_steps, int) or stage1_steps < 0:
        raise ValueError(f"stage1_steps must be a non-negative int, got {stage1_steps!r}")


def _train_steps(loss_of, params, n_steps: int, desc: str, *, data, gen, batch_size: int,
                 lr: float, progress: bool) -> list[float]:
    """``n_steps`` AdamW steps (warm-up then cosine, clipping at 1) on random caption batches
    drawn with ``gen``, each cut to its longest caption; returns the losses."""
    from tqdm.auto import tqdm

    from course_utils.training import warmup_cosine

    pixels, ids, mask = data
    params = [p for p in params if p.requires_grad]
    opt = adamw(params, lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, n_steps, max(1, n_steps // 20)))
    losses = []
    for _ in tqdm(range(n_steps), desc=desc, disable=not progress, leave=False, mininterval=0.5):
        idx = torch.randperm(len(ids), generator=gen)[:batch_size]
        longest = int(mask[idx].sum(1).max())
        loss = loss_of(pixels[idx], ids[idx, :longest], mask[idx, :longest])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


__all__.append("pretrain_encoders")
