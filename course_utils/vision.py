"""Vision encoders: pixels in, a sequence of feature vectors out (chapter 03).

Everything a later chapter plugs into a fusion model lives here, in one readable file:

* :func:`patchify`: cut images into flattened patches, in the order a ViT sees them;
* :class:`VisionTransformer`: a ViT written from scratch with the parameter layout of
  ``transformers.ViTModel`` (pre-norm blocks, separate q/k/v projections, exact GELU,
  LayerNorm eps 1e-12), so that :meth:`VisionTransformer.from_hf` reproduces it exactly;
* :class:`ConvEncoder`: a small CNN whose feature map is returned as a sequence
  ``(B, N, D)``, so it can replace the ViT anywhere;
* :func:`load_vision_encoder`: the seed's ``ViTFeatureExtractor`` + ``ViTModel`` loading,
  updated to ``ViTImageProcessor`` (works offline on a folder saved with
  ``save_pretrained``, and says clearly what is missing when it cannot load).

Shapes: ``B`` batch, ``C`` channels, ``H, W`` image size, ``p`` patch size,
``N = (H/p)(W/p)`` patches, ``D`` hidden size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---- input checks ------------------------------------------------------------------


def check_pixel_values(pixel_values, num_channels: int | None = 3, patch_size: int | None = None,
                       image_size: int | None = None) -> None:
    """``ValueError`` saying what was expected unless ``pixel_values`` is a valid batch.

    Used in chapter 03, "5. The image processor: what happens to the pixels"."""
    if not isinstance(pixel_values, Tensor):
        raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have 4 dimensions (B, C, H, W), got shape {tuple(pixel_values.shape)}"
            + (" (add a batch dimension with .unsqueeze(0))" if pixel_values.ndim == 3 else "")
        )
    _, c, h, w = pixel_values.shape
    if num_channels is not None and c != num_channels:
        raise ValueError(
            f"pixel_values must have {num_channels} channels in dimension 1 (B, C, H, W), got "
            f"shape {tuple(pixel_values.shape)}" + (" (channels last? use .permute(0, 3, 1, 2))"
                                                   if pixel_values.shape[-1] == num_channels else "")
        )
    if patch_size is not None and (h % patch_size or w % patch_size):
        raise ValueError(
            f"image size {h}x{w} is not divisible by the patch size {patch_size}; "
            "resize or crop the image first"
        )
    if image_size is not None and (h, w) != (image_size, image_size):
        raise ValueError(
            f"this model expects {image_size}x{image_size} images (its position embeddings are "
            f"learned for that size), got {h}x{w}"
        )


# ---- patches -----------------------------------------------------------------------


def patchify(pixel_values: Tensor, patch_size: int) -> Tensor:
    """Cut ``(B, C, H, W)`` images into ``(B, N, C*p*p)`` flattened patches.

    Patches are numbered row by row (left to right, then top to bottom), and each patch
    is flattened channel first, then rows, then columns: exactly the order in which a
    ``Conv2d(C, D, kernel_size=p, stride=p)`` reads its input, so
    ``patchify(x, p) @ conv.weight.reshape(D, -1).T + conv.bias`` equals the patch
    embedding ``conv(x).flatten(2).transpose(1, 2)``.

    Built in chapter 03, "2. Patches: how a ViT reads an image".
    """
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    check_pixel_values(pixel_values, num_channels=None, patch_size=patch_size)
    b, c, h, w = pixel_values.shape
    p = patch_size
    x = pixel_values.reshape(b, c, h // p, p, w // p, p)  # (B, C, H/p, p, W/p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/p, W/p, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, C*p*p)


def unpatchify(patches: Tensor, patch_size: int, image_size: int | tuple[int, int],
               num_channels: int = 3) -> Tensor:
    """The inverse of :func:`patchify`: ``(B, N, C*p*p)`` back to ``(B, C, H, W)``.

    Used in chapter 03, "2. Patches: how a ViT reads an image"."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    b, p, c = patches.shape[0], patch_size, num_channels
    x = patches.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


# ---- the Vision Transformer ----------------------------------------------------------


@dataclass
class VisionConfig:
    """The fields of ``transformers.ViTConfig`` this ViT uses (a ``ViTConfig`` works too).

    Introduced in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""

    image_size: int = 48
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True
    hidden_act: str = "gelu"

    @classmethod
    def from_any(cls, config) -> VisionConfig:
        """A ``VisionConfig`` from a ``ViTConfig``, a dict or a ``VisionConfig``."""
        if isinstance(config, dict):
            return cls(**config)
        fields = cls.__dataclass_fields__
        return cls(**{k: getattr(config, k) for k in fields if hasattr(config, k)})

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class PatchEmbedding(nn.Module):
    """A linear map of each flattened patch, written as a strided convolution.

    Built in chapter 03, "3. Patch embedding, the `[CLS]` token and position embeddings"."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        p = cfg.patch_size
        self.projection = nn.Conv2d(cfg.num_channels, cfg.hidden_size, kernel_size=p, stride=p)

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.projection(pixel_values)  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (HF ViT's layout).

    Built in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(
                f"hidden_size ({cfg.hidden_size}) must be divisible by "
                f"num_attention_heads ({cfg.num_attention_heads})"
            )
        d = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.q_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, return_weights: bool = False):
        b, n, d = x.shape
        h = self.num_heads
        q = self.q_proj(x).view(b, n, h, d // h).transpose(1, 2)  # (B, h, N, D/h)
        k = self.k_proj(x).view(b, n, h, d // h).transpose(1, 2)  # (B, h, N, D/h)
        v = self.v_proj(x).view(b, n, h, d // h).transpose(1, 2)  # (B, h, N, D/h)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)  # (B, h, N, N)
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        out = self.o_proj(out)
        return (out, weights) if return_weights else out


class MLP(nn.Module):
    """The ViT block's MLP: ``fc1 -> GELU -> fc2`` (HF ViT's layout).

    Built in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        if cfg.hidden_act not in ("gelu", "gelu_tanh"):
            raise ValueError(f"hidden_act must be 'gelu' (exact) or 'gelu_tanh', got {cfg.hidden_act!r}")
        self.approximate = "tanh" if cfg.hidden_act == "gelu_tanh" else "none"
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))  # (B, N, D)


class Block(nn.Module):
    """A pre-norm encoder block: x + attn(LN(x)), then x + mlp(LN(x)).

    Built in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attention = Attention(cfg)
        self.layernorm_after = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.layernorm_before(x))  # (B, N+1, D)
        x = x + self.mlp(self.layernorm_after(x))  # (B, N+1, D)
        return x


class VisionTransformer(nn.Module):
    """A ViT encoder: ``(B, C, H, W)`` pixels to ``(B, 1 + N, D)`` token features.

    Token 0 is the ``[CLS]`` token; tokens ``1..N`` are the patches in row-major order.
    ``add_pooling_layer=True`` adds HF's pooler (``tanh(Linear(h_cls))``) used by
    :meth:`pool`. The parameter names follow ``transformers.ViTModel``.

    Built in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`".
    """

    def __init__(self, config=None, add_pooling_layer: bool = False):
        super().__init__()
        cfg = self.config = VisionConfig.from_any(config if config is not None else VisionConfig())
        if cfg.image_size % cfg.patch_size:
            raise ValueError(
                f"image_size ({cfg.image_size}) must be divisible by patch_size ({cfg.patch_size})"
            )
        d = cfg.hidden_size
        self.patch_embeddings = PatchEmbedding(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, d))
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.layernorm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.pooler = nn.Linear(d, d) if add_pooling_layer else None
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.position_embeddings, std=0.02)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def embed(self, pixel_values: Tensor) -> Tensor:
        """Patch embeddings, ``[CLS]`` in front, plus position embeddings: ``(B, 1+N, D)``."""
        cfg = self.config
        check_pixel_values(pixel_values, cfg.num_channels, cfg.patch_size, cfg.image_size)
        x = self.patch_embeddings(pixel_values)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, 1+N, D)
        return x + self.position_embeddings  # (B, 1+N, D)

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.embed(pixel_values)  # (B, 1+N, D)
        for block in self.layers:
            x = block(x)  # (B, 1+N, D)
        return self.layernorm(x)  # (B, 1+N, D), like ViTModel's last_hidden_state

    def pool(self, hidden: Tensor) -> Tensor:
        """HF's ``pooler_output``: ``tanh(Linear(hidden[:, 0]))``, ``(B, D)``."""
        if self.pooler is None:
            raise ValueError("this model has no pooler; build it with add_pooling_layer=True")
        return torch.tanh(self.pooler(hidden[:, 0]))

    @torch.no_grad()
    def load_hf_weights(self, hf_model) -> VisionTransformer:
        """Copy every weight of a ``transformers.ViTModel`` into this model (in place)."""
        emb = hf_model.embeddings
        copies = [
            (self.cls_token, emb.cls_token),
            (self.position_embeddings, emb.position_embeddings),
            (self.patch_embeddings.projection.weight, emb.patch_embeddings.projection.weight),
            (self.patch_embeddings.projection.bias, emb.patch_embeddings.projection.bias),
            (self.layernorm.weight, hf_model.layernorm.weight),
            (self.layernorm.bias, hf_model.layernorm.bias),
        ]
        hf_layers = _hf_layers(hf_model)
        if len(hf_layers) != len(self.layers):
            raise ValueError(f"the HF model has {len(hf_layers)} layers, this one {len(self.layers)}")
        for ours, theirs in zip(self.layers, hf_layers):
            parts = hf_layer_parts(theirs)
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                copies += _linear_pairs(getattr(ours.attention, name), parts[name])
            copies += _linear_pairs(ours.mlp.fc1, parts["fc1"]) + _linear_pairs(ours.mlp.fc2, parts["fc2"])
            copies += _linear_pairs(ours.layernorm_before, theirs.layernorm_before)
            copies += _linear_pairs(ours.layernorm_after, theirs.layernorm_after)
        pooler = getattr(hf_model, "pooler", None)
        if self.pooler is not None and pooler is not None:
            copies += _linear_pairs(self.pooler, pooler.dense)
        for ours, theirs in copies:
            if ours.shape != theirs.shape:
                raise ValueError(f"shape mismatch: ours {tuple(ours.shape)}, HF {tuple(theirs.shape)}")
            ours.copy_(theirs)
        return self

    @classmethod
    def from_hf(cls, hf_model) -> VisionTransformer:
        """A ``VisionTransformer`` with the config and weights of a ``transformers.ViTModel``."""
        cfg = hf_model.config
        if getattr(cfg, "hidden_act", "gelu") not in ("gelu", "gelu_tanh"):
            raise ValueError(f"unsupported hidden_act {cfg.hidden_act!r}")
        pooling = getattr(hf_model, "pooler", None) is not None
        model = cls(cfg, add_pooling_layer=pooling)
        model.load_hf_weights(hf_model)
        return model.to(next(hf_model.parameters()).device).eval()


def _linear_pairs(ours, theirs) -> list:
    return [(ours.weight, theirs.weight), (ours.bias, theirs.bias)]


def _hf_layers(hf_model):
    """The encoder layers of a ViTModel: ``layers`` (transformers 5) or ``encoder.layer`` (4)."""
    if hasattr(hf_model, "layers"):
        return hf_model.layers
    return hf_model.encoder.layer


def hf_layer_parts(layer) -> dict:
    """The linear layers of one HF ViT layer, in transformers 5 or 4 naming.

    Used in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""
    att = layer.attention
    if hasattr(att, "q_proj"):  # transformers >= 5
        return {"q_proj": att.q_proj, "k_proj": att.k_proj, "v_proj": att.v_proj,
                "o_proj": att.o_proj, "fc1": layer.mlp.fc1, "fc2": layer.mlp.fc2}
    return {  # transformers 4.x
        "q_proj": att.attention.query, "k_proj": att.attention.key,
        "v_proj": att.attention.value, "o_proj": att.output.dense,
        "fc1": layer.intermediate.dense, "fc2": layer.output.dense,
    }


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of a model.

    Used in chapter 03, "1. A CNN feature extractor"."""
    return sum(p.numel() for p in model.parameters())


def vit_num_parameters(image_size: int, patch_size: int, hidden_size: int, num_layers: int,
                       intermediate_size: int, num_channels: int = 3, pooler: bool = False) -> int:
    """Parameters of a ViT encoder, counted by hand (what ``count_parameters`` returns).

    Built in chapter 03, "4. Encoder blocks, and a ViT that matches `transformers.ViTModel`"."""
    d, n = hidden_size, (image_size // patch_size) ** 2
    embed = num_channels * patch_size**2 * d + d  # patch embedding (conv weight + bias)
    embed += d + (n + 1) * d  # [CLS] token + position embeddings (one per token)
    attn = 4 * (d * d + d)  # q, k, v, o projections
    mlp = (d * intermediate_size + intermediate_size) + (intermediate_size * d + d)
    norms = 2 * 2 * d  # two LayerNorms per block
    total = embed + num_layers * (attn + mlp + norms) + 2 * d  # + the final LayerNorm
    return total + (d * d + d if pooler else 0)


# ---- a small CNN that also returns a sequence -----------------------------------------


class ConvEncoder(nn.Module):
    """A small CNN feature extractor: ``(B, C, H, W)`` to ``(B, N, D)`` feature vectors.

    ``num_stages`` conv stages (3x3 conv, BatchNorm, ReLU, then 2x2 max-pool) halve the
    resolution each time; the final ``(B, D, H', W')`` map is read as ``N = H' W'``
    vectors in row-major order, like a ViT's patch tokens (there is no ``[CLS]``).

    Built in chapter 03, "1. A CNN feature extractor".
    """

    def __init__(self, num_channels: int = 3, hidden_size: int = 64, widths=(32, 64),
                 num_stages: int | None = None):
        super().__init__()
        widths = tuple(widths)
        if num_stages is not None:
            widths = widths[:num_stages]
        self.num_channels = num_channels
        self.downsample = 2 ** len(widths)
        layers, c_in = [], num_channels
        for c_out in widths:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, hidden_size, kernel_size=1)  # per-position linear map to D

    def forward(self, pixel_values: Tensor) -> Tensor:
        check_pixel_values(pixel_values, self.num_channels, patch_size=self.downsample)
        x = self.proj(self.features(pixel_values))  # (B, D, H', W')
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ImageClassifier(nn.Module):
    """An encoder (ViT or CNN) + mean pooling over its tokens + a linear head: ``(B, K)``.

    Used in chapter 03, "7. CNN or ViT? The FAQ's question, measured"."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, pixel_values: Tensor) -> Tensor:
        tokens = self.encoder(pixel_values)  # (B, N, D)
        return self.head(tokens.mean(dim=1))  # (B, K)


# ---- loading pretrained encoders (the seed's section 5.1) ------------------------------

SEED_VIT = "google/vit-base-patch16-224"


def load_vision_encoder(name_or_path: str = SEED_VIT):
    """``(image_processor, model)`` from the Hub or a local ``save_pretrained`` folder.

    The seed used ``ViTFeatureExtractor``, which transformers removed: the image
    processor (``ViTImageProcessor``) resizes, rescales to [0, 1] and normalizes. Offline
    (the course's default) a Hub name only works if it is already in the local cache;
    otherwise this raises an ``OSError`` that names the model and says what to do.

    Built in chapter 03, "6. Loading a pretrained ViT, online and offline".
    """
    from transformers import ViTImageProcessor, ViTModel

    name = str(name_or_path)
    local = os.path.isdir(name)
    try:
        processor = ViTImageProcessor.from_pretrained(name)
        model = ViTModel.from_pretrained(name)
    except (OSError, ValueError) as exc:
        if local:
            raise OSError(
                f"could not load a ViT from the local folder {name!r}: it needs the files "
                "written by `model.save_pretrained(folder)` and `processor.save_pretrained(folder)` "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        raise OSError(
            f"could not load the vision encoder {name!r}: loading a model by name needs network "
            "access to the Hugging Face Hub (the course runs offline by default; set "
            "COURSE_ONLINE=1 before runtime.init, or pass offline=False) or a local path to a "
            "folder saved with `save_pretrained`"
        ) from exc
    return processor, model.eval()
