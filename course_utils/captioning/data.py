"""Chapter 10's data as tensors: images, padded instructions, answers ending in the end token.

Used with :func:`course_utils.world.data.load_description_dataset` and the shipped
``clip-stage1`` image encoder, whose sizes :func:`vision_config` reads from its card.
"""

from __future__ import annotations

import json

import torch

from course_utils.captioning.model import INSTRUCTION_ENCODERS
from course_utils.runtime import data_dir
from course_utils.text import minilm_tokenizer
from course_utils.world import encoding
from course_utils.world.vocabulary import load_tokenizer

#: The image encoder's FusionConfig fields that the captioner copies from clip-stage1.
VISION_FIELDS = ("image_size", "patch_size", "num_channels", "hidden_size", "num_heads",
                 "mlp_ratio", "vision_layers")  # fmt: skip


def vision_config(name: str = "clip-stage1") -> dict:
    """The image encoder's sizes on a shipped model's card (``CaptionerConfig.vision``).

    Used in chapter 10, "2. A captioner: image tokens as a prefix"."""
    card = json.loads((data_dir() / f"{name}.json").read_text())
    return {k: card["model_config"][k] for k in VISION_FIELDS}


def instruction_tokenizer(instructions: str = "world"):
    """The tokenizer of a captioner's instructions (``CaptionerConfig.instructions``): the
    world's, or all-MiniLM-L6-v2's for a captioner that reads them with MiniLM.

    Used in chapter 10, "8. The shipped captioner and generalisation"."""
    if instructions not in INSTRUCTION_ENCODERS:
        raise ValueError(f"instructions must be one of {INSTRUCTION_ENCODERS}, got {instructions!r}")
    return minilm_tokenizer() if instructions == "minilm" else load_tokenizer()


def encode_instructions(instructions: list[str], max_instruction: int, tokenizer=None) -> dict:
    """``instruction_ids`` / ``instruction_mask`` ``(N, max_instruction)``; a longer one is an error.

    Used in chapter 10, "2. A captioner: image tokens as a prefix"."""
    tokenizer = tokenizer or load_tokenizer()
    for i, text in enumerate(instructions):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"instruction {i} is empty or not a string: {text!r}")
    enc = tokenizer(list(instructions), padding="max_length", max_length=max_instruction,
                    truncation=False, return_tensors="pt")  # fmt: skip
    too_long = (enc["attention_mask"].sum(1) > max_instruction).nonzero().flatten().tolist()
    if too_long or enc["input_ids"].shape[1] > max_instruction:
        i = too_long[0] if too_long else 0
        raise ValueError(f"instruction {i} ({instructions[i]!r}) is longer than "
                         f"{max_instruction} tokens")
    return {"instruction_ids": enc["input_ids"], "instruction_mask": enc["attention_mask"]}


def encode_answers(answers: list[str], eos_token_id: int, tokenizer=None) -> torch.Tensor:
    """``(N, T)`` token ids of each answer followed by the end token, padded with 0.

    Used in chapter 10, "3. Teacher forcing: training on the reference text"."""
    tokenizer = tokenizer or load_tokenizer()
    ids = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    out = torch.full((len(ids), max(len(a) for a in ids) + 1), tokenizer.pad_token_id, dtype=torch.long)
    for i, a in enumerate(ids):
        out[i, : len(a) + 1] = torch.tensor([*a, eos_token_id])
    return out


def description_tensors(split, max_instruction: int = 24, tokenizer=None, instructions: str = "world") -> dict:
    """A description split as tensors, prepared once: ``pixel_values``, the instruction's
    ids and mask (in the tokenizer ``instructions`` names: :func:`instruction_tokenizer`),
    ``answer_ids`` (the world's tokenizer) and ``form`` (index in ``DESCRIBE_FORMS``).

    Used in chapter 10, "3. Teacher forcing: training on the reference text"."""
    from course_utils.world.descriptions import DESCRIBE_FORMS

    tokenizer = tokenizer or load_tokenizer()
    out = {"pixel_values": encoding.normalize_images(encoding.images_to_array(split))}
    words = tokenizer if instructions == "world" else instruction_tokenizer(instructions)
    out |= encode_instructions(list(split["instruction"]), max_instruction, words)
    out["answer_ids"] = encode_answers(list(split["answer"]), tokenizer.sep_token_id, tokenizer)
    out["form"] = torch.tensor([DESCRIBE_FORMS.index(t) for t in split["task"]])
    return out


def detokenize(text: str) -> str:
    """The tokenizer's lower-case decoding back in the world's spelling: sentences
    capitalised, no space before a colon ("a picture of two objects : ..." -> "A picture of
    two objects: ...").

    Used in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    import re

    text = " ".join(text.replace(" :", ":").split())
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def decode(ids, tokenizer=None) -> list[str]:
    """Token ids ``(B, T)`` from a decoder -> texts, cut at the end token.

    Used in chapter 10, "4. Decoding: greedy, the KV cache, beam search and sampling"."""
    tokenizer = tokenizer or load_tokenizer()
    out = []
    for row in ids.tolist():
        if tokenizer.sep_token_id in row:
            row = row[: row.index(tokenizer.sep_token_id)]
        out.append(detokenize(tokenizer.decode(row, skip_special_tokens=True)))
    return out
