"""The captioner: image tokens as the prefix of a small causal decoder (LLaVA's layout).

::

    pixel_values (B, 3, 48, 48) -> ImageEncoder -> (B, 9, Dv) -> projector -> (B, 9, D)
    instruction ids (B, L)      -> the decoder's token embeddings       -> (B, L, D)
                                   (or frozen MiniLM -> LayerNorm, Linear: instructions="minilm")
    [image tokens ; instruction ; answer] -> GPT-2 blocks (causal) -> next-token logits

The decoder is a ``transformers.GPT2LMHeadModel`` fed ``inputs_embeds``, so the course's
own decoding (:mod:`course_utils.captioning.decoding`) can be checked token for token
against ``generate()``. Instructions are padded to a fixed ``max_instruction`` tokens and
the padding is masked; positions count only real tokens (``position_ids`` = running count
of the mask minus one), the way ``generate()`` numbers them, so training and decoding
agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from course_utils.fusion import MLP, ImageEncoder, make_config
from course_utils.text import GPT2_ACTIVATION, MINILM_DIM, minilm_features

#: How a captioner reads its instruction (``CaptionerConfig.instructions``).
INSTRUCTION_ENCODERS = ("world", "minilm")


@dataclass
class CaptionerConfig:
    """The captioner's sizes; ``Captioner(CaptionerConfig(...))``.

    Introduced in chapter 10, "2. A captioner: image tokens as a prefix"."""

    vocab_size: int  # the world tokenizer's vocabulary: the answers' (and the instructions' if "world")
    eos_token_id: int  # ends every answer ([SEP] of the world's tokenizer)
    pad_token_id: int = 0  # padding of instructions and answers (masked, never predicted)
    width: int = 128  # decoder width D
    layers: int = 3  # decoder blocks
    heads: int = 4  # attention heads per block
    max_instruction: int = 24  # instruction tokens, padded (longer ones are an error)
    max_answer: int = 80  # answer tokens including the end token
    vision: dict = field(default_factory=dict)  # FusionConfig fields of the image encoder
    instructions: str = "world"  # "world": the world tokenizer's ids, embedded by the decoder;
    # "minilm": all-MiniLM-L6-v2's ids, read by the frozen MiniLM and projected to the width

    def __post_init__(self):
        for name in ("vocab_size", "width", "layers", "heads", "max_instruction", "max_answer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if self.instructions not in INSTRUCTION_ENCODERS:
            raise ValueError(f"instructions must be one of {INSTRUCTION_ENCODERS}, got {self.instructions!r}")

    @property
    def num_image_tokens(self) -> int:
        cfg = self.vision_config
        return (cfg.image_size // cfg.patch_size) ** 2

    @property
    def vision_config(self):
        return make_config(vocab_size=self.vocab_size, num_answers=1, **self.vision)


def positions(mask: Tensor) -> Tensor:
    """Position ids that skip padding: the running count of real tokens, minus one.

    Used in chapter 10, "2. A captioner: image tokens as a prefix"."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Captioner(nn.Module):
    """Image encoder + projector + GPT-2 decoder; ``loss`` trains it, ``prefix`` starts decoding.

    Introduced in chapter 10, "2. A captioner: image tokens as a prefix"."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.config = config
        vcfg = config.vision_config
        self.image_encoder = ImageEncoder(vcfg)
        self.projector = MLP(vcfg.hidden_size, vcfg.mlp_ratio, config.width)  # LLaVA-1.5's projector
        gpt = GPT2Config(vocab_size=config.vocab_size, n_embd=config.width, n_layer=config.layers,
                         n_head=config.heads, activation_function=GPT2_ACTIVATION,  # one fused kernel
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         n_positions=config.num_image_tokens + config.max_instruction + config.max_answer,
                         bos_token_id=config.eos_token_id, eos_token_id=config.eos_token_id,
                         pad_token_id=config.pad_token_id)  # fmt: skip
        self.decoder = GPT2LMHeadModel(gpt)
        self.decoder.generation_config.pad_token_id = config.pad_token_id
        self.decoder.generation_config.eos_token_id = config.eos_token_id
        if config.instructions == "minilm":  # chapter 09's move: a pretrained reader of the words
            self.instruction_in = nn.Sequential(nn.LayerNorm(MINILM_DIM), nn.Linear(MINILM_DIM, config.width))
            object.__setattr__(self, "features", minilm_features())  # not a submodule: not saved

    def embed_instruction(self, instruction_ids: Tensor, instruction_mask: Tensor) -> Tensor:
        """The instruction's tokens as decoder inputs ``(B, L, D)``: the decoder's own token
        embeddings, or MiniLM's frozen features projected to the width."""
        if self.config.instructions == "world":
            return self.embed_tokens(instruction_ids)  # (B, L, D)
        feats = self.features(instruction_ids, instruction_mask)  # (B, L, 384), frozen, cached
        return self.instruction_in(feats.to(instruction_mask.device))  # (B, L, D)

    def embed_tokens(self, input_ids: Tensor) -> Tensor:
        return self.decoder.get_input_embeddings()(input_ids)  # (B, T, D)

    def image_tokens(self, pixel_values: Tensor) -> Tensor:
        return self.projector(self.image_encoder(pixel_values))  # (B, N_img, D)

    def prefix(self, pixel_values: Tensor, instruction_ids: Tensor,
               instruction_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's input before the answer: ``(B, N_img + L, D)`` and its mask."""
        self.check_inputs(pixel_values, instruction_ids, instruction_mask)
        img = self.image_tokens(pixel_values)  # (B, N_img, D)
        words = self.embed_instruction(instruction_ids, instruction_mask)  # (B, L, D)
        embeds = torch.cat([img, words], dim=1)  # (B, N_img+L, D)
        ones = instruction_mask.new_ones(img.shape[:2])
        return embeds, torch.cat([ones, instruction_mask], dim=1)  # mask (B, N_img+L)

    def loss(self, pixel_values: Tensor, instruction_ids: Tensor, instruction_mask: Tensor,
             answer_ids: Tensor) -> Tensor:
        """Teacher forcing: cross-entropy of every answer token given all before it.

        ``answer_ids`` ``(B, T)`` end with the end token and are padded with
        ``pad_token_id`` (never predicted)."""
        embeds, mask = self.prefix(pixel_values, instruction_ids, instruction_mask)
        answer_mask = (answer_ids != self.config.pad_token_id).long()
        embeds = torch.cat([embeds, self.embed_tokens(answer_ids)], dim=1)  # (B, S, D)
        mask = torch.cat([mask, answer_mask], dim=1)  # (B, S)
        ignore = torch.full(instruction_mask.shape[:1] + (embeds.shape[1] - answer_ids.shape[1],), -100,
                            dtype=torch.long, device=answer_ids.device)  # fmt: skip
        labels = torch.cat([ignore, answer_ids.masked_fill(answer_mask == 0, -100)], dim=1)
        out = self.decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions(mask),
                           labels=labels)  # fmt: skip
        return out.loss

    def check_inputs(self, pixel_values, instruction_ids, instruction_mask) -> None:
        cfg = self.config.vision_config
        want = (cfg.num_channels, cfg.image_size, cfg.image_size)
        if not isinstance(pixel_values, Tensor) or pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != want:
            got = tuple(pixel_values.shape) if isinstance(pixel_values, Tensor) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be (B, {', '.join(map(str, want))}), got {got}")
        if instruction_ids.shape != instruction_mask.shape or instruction_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(f"{pixel_values.shape[0]} images, instruction ids {tuple(instruction_ids.shape)} "
                             f"and mask {tuple(instruction_mask.shape)} must agree on the batch")
        if instruction_ids.shape[1] > self.config.max_instruction:
            raise ValueError(f"instructions of {instruction_ids.shape[1]} tokens; at most "
                             f"max_instruction={self.config.max_instruction}")

    def load_image_encoder(self, path) -> None:
        """Copy the ``image_encoder.*`` weights of a safetensors file (``clip-stage1``'s)."""
        from safetensors.torch import load_file

        state = {k.removeprefix("image_encoder."): v for k, v in load_file(str(path)).items()
                 if k.startswith("image_encoder.")}  # fmt: skip
        if not state:
            raise ValueError(f"{path} holds no image_encoder.* weights")
        self.image_encoder.load_state_dict(state)

    def save(self, path, **metadata) -> None:
        """Weights as safetensors, the config in the header (``load`` rebuilds the model)."""
        import json

        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        state.pop("decoder.lm_head.weight", None)  # tied to the token embeddings
        save_file(state, str(path), metadata={"config": json.dumps(asdict(self.config)),
                                              "course": json.dumps(metadata)})

    @classmethod
    def load(cls, path) -> tuple[Captioner, dict]:
        """``(model, metadata)`` from a file :meth:`save` wrote."""
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        if "config" not in header:
            raise ValueError(f"{path} was not written by Captioner.save (no config in its header)")
        model = cls(CaptionerConfig(**json.loads(header["config"])))
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
        if unexpected or [k for k in missing if k != "decoder.lm_head.weight"]:
            raise ValueError(f"{path}: weights do not fit the config (missing {missing}, unexpected {unexpected})")
        model.decoder.tie_weights()
        return model, json.loads(header.get("course", "{}"))
