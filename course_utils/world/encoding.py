"""From examples to model inputs: PNG bytes, pixel arrays, ``pixel_values``, token ids, labels.

:func:`to_tensors` is the fast path from a split to training tensors (chapter 06,
"7. Images: from pixels to `pixel_values`"); :func:`model_sizes` gives what a model of
this world must be sized for, so that models take their sizes from their config and never
import the world.
"""

from __future__ import annotations

import io
import struct
import zlib

from course_utils.world import scenes
from course_utils.world.programs import FAMILIES, answer_vocab
from course_utils.world.vocabulary import load_tokenizer

#: ``pixel_values = (pixels / 255 - IMAGE_MEAN) / IMAGE_STD``, as ViT image processors do.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

# ---- PNG without Pillow's overhead -------------------------------------------------


def png_bytes(array) -> bytes:
    """A standard PNG of an ``(H, W, 3)`` uint8 array (fast: one zlib call).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    import numpy as np

    h, w, _ = array.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), array.reshape(h, w * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def decode_png(data: bytes):
    """``(H, W, 3)`` uint8 array of a PNG; fast for :func:`png_bytes`' own, else Pillow.

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    import numpy as np

    if data[12:16] == b"IHDR" and data[24:26] == b"\x08\x02" and data[37:41] == b"IDAT":
        w, h = struct.unpack(">II", data[16:24])
        n = struct.unpack(">I", data[33:37])[0]
        rows = np.frombuffer(zlib.decompress(data[41 : 41 + n]), np.uint8)
        if rows.size == h * (3 * w + 1):
            rows = rows.reshape(h, 3 * w + 1)
            if not rows[:, 0].any():  # every row unfiltered: the bytes are the pixels
                return rows[:, 1:].reshape(h, w, 3)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def image_cell(scene: dict) -> dict:
    """A scene rendered as a ``datasets.Image`` cell (PNG bytes).

    Used in chapter 06, "5. Building, transforming and saving with 🤗 `datasets`"."""
    import numpy as np

    return {"bytes": png_bytes(np.asarray(scenes.render(scene))), "path": None}


# ---- tensors -------------------------------------------------------------------------


def images_to_array(split, column: str = "image"):
    """All images of a split as one ``(N, H, W, 3)`` uint8 NumPy array (fast path), in the
    split's order: a ``select``-ed, ``filter``-ed or shuffled split gives its own rows.

    Used in chapter 07, "1. One space for images and captions"."""
    import numpy as np

    cells = split.with_format("arrow")[column].to_pylist()  # the raw table ignores a selection
    if not cells:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack([decode_png(c["bytes"]) for c in cells])


def normalize_images(array):
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` with :data:`IMAGE_MEAN`/``STD``.

    Used in chapter 06, "7. Images: from pixels to `pixel_values`"."""
    import torch

    x = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def caption_tensors(split, tokenizer=None) -> dict:
    """Image-caption pairs as tensors for contrastive training (chapter 07): the captions
    are the split's ``answer`` column. Returns ``pixel_values`` ``(N, 3, H, W)`` and
    ``input_ids`` / ``attention_mask`` ``(N, L)`` padded to the longest caption;
    ``tokenizer`` defaults to :func:`load_tokenizer`.

    Built in chapter 07, "1. One space for images and captions"."""
    enc = (tokenizer or load_tokenizer())(list(split["answer"]), padding="longest", return_tensors="pt")
    return {"pixel_values": normalize_images(images_to_array(split)),
            "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def to_tensors(split, tokenizer=None, max_length: int | None = None) -> dict:
    """A split as training tensors, prepared once (seconds for 20,000 examples).

    Returns ``pixel_values`` ``(N, 3, H, W)`` float (normalised), ``input_ids`` and
    ``attention_mask`` ``(N, L)`` (padded to the longest instruction, or ``max_length``),
    ``labels`` ``(N,)`` (indices in :func:`answer_vocab`; -100 for answers outside it,
    e.g. captions) and ``task_ids`` ``(N,)`` (indices in ``instructions.FAMILIES``, -1
    for other tasks). ``tokenizer`` defaults to :func:`load_tokenizer`.

    Used in chapter 06, "7. Images: from pixels to `pixel_values`".
    """
    import torch

    tokenizer = tokenizer or load_tokenizer()
    enc = tokenizer(
        list(split["instruction"]),
        padding="max_length" if max_length else "longest",
        truncation=max_length is not None,
        max_length=max_length,
        return_tensors="pt",
    )
    fams = {f: i for i, f in enumerate(FAMILIES)}
    return {
        "pixel_values": normalize_images(images_to_array(split)),
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": answer_labels(split["answer"]),
        "task_ids": torch.tensor([fams.get(t, -1) for t in split["task"]], dtype=torch.long),
    }


def answer_labels(answers):
    """Answers as label ids ``(N,)``: indices in :func:`answer_vocab`, ``-100`` (ignored by the
    loss) for an answer outside it, such as a caption.

    Used in chapter 06, "7. Images: from pixels to `pixel_values`"."""
    import torch

    index = {a: i for i, a in enumerate(answer_vocab())}
    return torch.tensor([index.get(a, -100) for a in answers], dtype=torch.long)


def model_sizes(tokenizer=None) -> dict:
    """``vocab_size``, ``pad_token_id`` and ``num_answers`` for a model of this world.

    ``tokenizer`` defaults to :func:`~course_utils.world.vocabulary.load_tokenizer`; pass
    MiniLM's for a pretrained instruction encoder. ``fusion.build_model(kind,
    **model_sizes())`` builds a model that reads the world's data.

    Used in chapter 05, "1. The source's model, as written".
    """
    tokenizer = tokenizer or load_tokenizer()
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "num_answers": len(answer_vocab())}


def image_arrays(images, size: int, instructions=None):
    """PIL images (or ``(H, W, 3)`` uint8 arrays) of the world -> one ``(N, H, W, 3)`` uint8
    array; an image of another size or type, or (given ``instructions``) not one
    instruction per image, is a ``ValueError`` that names it.

    Used in chapter 12, "5. The shipped editor"; :func:`pixel_values_of` normalises it."""
    import numpy as np

    images = list(images)
    if instructions is not None and len(images) != len(instructions):
        raise ValueError(f"got {len(images)} images but {len(instructions)} instructions; "
                         "expected one instruction per image")
    arrays = []
    for i, img in enumerate(images):
        arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
        if arr.shape != (size, size, 3) or arr.dtype != np.uint8:
            raise ValueError(f"image {i} is {arr.shape} {arr.dtype}; expected a {size}x{size} "
                             "RGB image of the course's world (uint8 (H, W, 3) or PIL)")
        arrays.append(arr)
    return np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)


def pixel_values_of(images, size: int, instructions=None):
    """PIL images (or ``(H, W, 3)`` uint8 arrays) of the world -> normalised ``(N, 3, H, W)``;
    a bad image or count is a ``ValueError`` naming it (see :func:`image_arrays`).

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    return normalize_images(image_arrays(images, size, instructions))
