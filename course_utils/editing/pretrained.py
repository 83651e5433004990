"""The shipped editors: ``edit(images, instructions)``, their evaluation and their training.

``course_utils.load_pretrained("edit-film-unet")`` returns an :class:`Editor`, which holds
both of chapter 12's editors and the perception model that judges them:
:meth:`Editor.edit` is the end-to-end U-Net, :meth:`Editor.program_edit` the parse /
perceive / render pipeline, :meth:`Editor.perceive` the reader.
``python -m course_utils reproduce edit-film-unet`` calls :func:`reproduce_editor`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from course_utils.editing import data as edata
from course_utils.editing import metrics, program_editor, train
from course_utils.editing.parser import InstructionConfig, InstructionParser, ParserConfig
from course_utils.editing.perception import PerceptionConfig, SceneReader
from course_utils.editing.unet import EditorConfig, EditUNet
from course_utils.world import data, encoding, scenes
from course_utils.world.vocabulary import load_tokenizer

#: The splits an editor's card reports.
EDIT_SPLITS = ("test", "test_compositional", "test_paraphrase", "test_shift")
#: The parts of the shipped file, each under its own prefix.
PARTS = ("unet", "parser", "reader")


class Editor:
    """Chapter 12's trained editors and their judge, with the world's tokenizer.

    ``edit(images, instructions) -> list[PIL.Image]`` runs the U-Net;
    ``program_edit`` the program editor; ``perceive(images) -> list[scene]`` the reader.
    Images are PIL images (or ``(H, W, 3)`` uint8 arrays) of the world, instructions plain
    text, one per image; bad input raises ``ValueError`` naming it.

    Used in chapter 12, "5. The shipped editor"."""

    def __init__(self, unet: EditUNet, parser: InstructionParser, reader: SceneReader,
                 card: dict | None = None, tokenizer=None):
        self.unet, self.parser, self.reader = unet.eval(), parser.eval(), reader.eval()
        self.card = card or {}
        self.tokenizer = tokenizer or load_tokenizer()

    @property
    def device(self):
        return next(self.unet.parameters()).device

    def to(self, device) -> Editor:
        for part in (self.unet, self.parser, self.reader):
            part.to(device)
        return self

    def _inputs(self, images, instructions):
        if isinstance(instructions, str):  # one image, one instruction
            images, instructions = [images], [instructions]
        instructions = list(instructions)
        for i, text in enumerate(instructions):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"instruction {i} is {text!r}; expected a non-empty string")
        arrays = torch.from_numpy(encoding.image_arrays(images, self.unet.config.image_size, instructions))
        if not len(arrays):
            return arrays, None
        return arrays, edata.encode_instructions(instructions, self.tokenizer)

    @staticmethod
    def _pil(images: torch.Tensor) -> list:
        from PIL import Image

        return [Image.fromarray(a) for a in images.numpy()]

    def edit(self, images, instructions, batch_size: int = 256) -> list:
        """The U-Net's edited images, one ``PIL.Image`` per (image, instruction)."""
        arrays, enc = self._inputs(images, instructions)
        if enc is None:
            return []
        out = train.run_editor(self.unet, arrays, enc["input_ids"], enc["attention_mask"], batch_size)
        return self._pil(out)

    def program_edit(self, images, instructions) -> list:
        """The program editor's edited images (an instruction it cannot run leaves the image as it was)."""
        arrays, enc = self._inputs(images, instructions)
        if enc is None:
            return []
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        return self._pil(program_editor.program_edit(self.parser, self.reader, arrays, ids, mask)["images"])

    def parse(self, instructions) -> list[dict]:
        """The edit program of each instruction, as the parser reads it."""
        if isinstance(instructions, str):
            instructions = [instructions]
        enc = edata.encode_instructions(list(instructions), self.tokenizer)
        return program_editor.parse(self.parser, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))

    def perceive(self, images) -> list[dict]:
        """The scene the reader sees in each image."""
        arrays = torch.from_numpy(encoding.image_arrays(images, self.reader.config.image_size))
        return program_editor.perceive(self.reader, arrays)


def build_parts(vocab_size: int, pad_token_id: int, model_config: dict | None = None) -> dict:
    """Fresh U-Net, parser and reader (``model_config`` may set ``unet``, ``parser``, ``text``).

    Used in chapter 12, "5. The shipped editor"."""
    cfg = model_config or {}
    text = InstructionConfig(vocab_size=vocab_size, pad_token_id=pad_token_id, **cfg.get("text", {}))
    slots = {s: len(v) for s, v in edata.SLOTS.items()}
    return {"unet": EditUNet(EditorConfig(text=text, **cfg.get("unet", {}))),
            "parser": InstructionParser(ParserConfig(text=text, slots=slots)),
            "reader": SceneReader(PerceptionConfig(**cfg.get("reader", {})))}  # fmt: skip


def save_editor(path, parts: dict, **metadata) -> None:
    """The three parts' weights in one safetensors file, their configs in its header.

    Used in chapter 12, "5. The shipped editor"."""
    from safetensors.torch import save_file

    state = {f"{name}.{k}": v.detach().cpu().contiguous() for name in PARTS for k, v in parts[name].state_dict().items()}
    configs = {name: asdict(parts[name].config) for name in PARTS}
    save_file(state, str(path), metadata={"configs": json.dumps(configs), "course": json.dumps(metadata)})


def load_parts(path) -> dict:
    """The parts :func:`save_editor` wrote (never unpickles).

    Used in chapter 12, "5. The shipped editor"."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
    if "configs" not in header:
        raise ValueError(f"{path} was not written by save_editor (no configs in its header)")
    configs = json.loads(header["configs"])
    parts = {"unet": EditUNet(EditorConfig(**configs["unet"])),
             "parser": InstructionParser(ParserConfig(**configs["parser"])),
             "reader": SceneReader(PerceptionConfig(**configs["reader"]))}  # fmt: skip
    state = load_file(str(path))
    for name, part in parts.items():
        part.load_state_dict({k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")})
    return parts


def load_editor(weights: Path, card: dict, device=None) -> Editor:
    """An :class:`Editor` from the shipped weights.

    Used in chapter 12, "5. The shipped editor"."""
    parts = load_parts(weights)
    editor = Editor(parts["unet"], parts["parser"], parts["reader"], card)
    return editor.to(device) if device is not None else editor


def score(reader, outputs: torch.Tensor, tensors: dict) -> dict[str, torch.Tensor]:
    """Per example: ``success`` (judged by ``reader`` from the output's pixels), ``l1``,
    ``l2``, ``psnr``, ``inside``, ``outside`` and ``preserved`` (see :mod:`~course_utils.editing.metrics`).

    Used in chapter 12, "4. Measuring an edit"."""
    perceived = train.read_images(reader, outputs)
    target = {k: tensors[f"after_{k}"] for k in ("shape", "color", "size", "style")}
    style_edit = torch.tensor([op == "style" for op in tensors["op"]])
    out = {"success": metrics.edit_success(perceived, target, tensors["changed"], style_edit)}
    out.update(metrics.pixel_errors(outputs, tensors["after"]))
    out.update(metrics.region_errors(outputs, tensors["before"], tensors["after"], tensors["changed"]))
    out["object_edit"] = ~style_edit
    return out


def summarize(scores: dict) -> dict[str, float]:
    """A split's means: success, PSNR, L1, L2, error inside the changed cells, change
    outside them, and the share of object edits that left every other pixel as it was.

    Used in chapter 12, "4. Measuring an edit"."""
    obj = scores["object_edit"]
    out = {k: scores[k].float().mean().item() for k in ("success", "psnr", "l1", "l2", "inside")}
    out["outside"] = scores["outside"][obj].mean().item()
    out["preserved"] = scores["preserved"][obj].float().mean().item()
    return {k: round(v, 4 if k != "psnr" else 2) for k, v in out.items()}


def evaluate_editors(parts: dict, tensors: dict, programs: list[dict], scene_list: list[dict]) -> dict:
    """One split's summary for the U-Net, the program editor (with its errors attributed)
    and the identity baseline.

    Used in chapter 12, "5. The shipped editor"."""
    reader = parts["reader"]
    ids, mask = tensors["input_ids"], tensors["attention_mask"]
    unet_out = train.run_editor(parts["unet"], tensors["before"], ids, mask)
    prog = program_editor.program_edit(parts["parser"], reader, tensors["before"], ids, mask)
    out = {"unet": summarize(score(reader, unet_out, tensors)),
           "identity": summarize(score(reader, tensors["before"], tensors))}
    prog_scores = score(reader, prog["images"], tensors)
    out["program"] = summarize(prog_scores)
    out["program"]["errors"] = program_editor.attribute_errors(prog, programs, scene_list, prog_scores["success"])
    return out


def split_inputs(split) -> tuple[dict, list[dict], list[dict]]:
    """A split's tensors, true programs and input scenes.

    Used in chapter 12, "1. Edits with one right answer"."""
    return (edata.edit_tensors(split), [json.loads(p) for p in split["program"]],
            [json.loads(s) for s in split["scene"]])  # fmt: skip


def evaluate_editor(editor: Editor, splits: dict) -> dict:
    """The card's metrics of an :class:`Editor` on ``{split: dataset}``.

    Used in chapter 12, "5. The shipped editor"."""
    parts = {"unet": editor.unet, "parser": editor.parser, "reader": editor.reader}
    return {name: evaluate_editors(parts, *split_inputs(split)) for name, split in splits.items()}


def reproduce_editor(recipe, weights: Path, progress: bool = True) -> dict:
    """Train the reader, the parser and the U-Net on ``recipe``'s data; write the weights
    and return the card's fields. ``recipe.stage1_steps`` steps of 128 examples for the
    reader and the parser each, ``recipe.steps`` steps of ``recipe.batch_size`` for the U-Net.

    Used in chapter 12, "5. The shipped editor"."""
    start = time.perf_counter()
    ds = data.load_editing_dataset(seed=recipe.data_seed, n_train=recipe.n_train, n_eval=recipe.n_eval,
                                   splits=("train", *EDIT_SPLITS), progress=progress)  # fmt: skip
    tok = load_tokenizer()
    tensors = edata.edit_tensors(ds["train"], tok)
    seen = edata.perception_tensors(ds["train"], seed=recipe.seed)
    torch.manual_seed(recipe.seed)
    parts = build_parts(len(tok), tok.pad_token_id, recipe.model_config)
    prep_s = time.perf_counter() - start
    log = {"reader": train.fit(parts["reader"], train.perception_loss, seen, recipe.stage1_steps,
                               batch_size=128, lr=3e-3, seed=recipe.seed,
                               progress=progress, desc="reader"),
           "parser": train.fit(parts["parser"], train.parser_loss, tensors, recipe.stage1_steps,
                               batch_size=128, lr=3e-3, seed=recipe.seed,
                               progress=progress, desc="parser"),
           "unet": train.fit(parts["unet"], train.edit_loss, tensors, recipe.steps,
                             batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed,
                             progress=progress, desc="U-Net")}  # fmt: skip
    evaluated = {s: evaluate_editors(parts, *split_inputs(ds[s])) for s in EDIT_SPLITS}  # = evaluate_editor
    save_editor(weights, parts, name=weights.stem)
    counts = {name: sum(p.numel() for p in parts[name].parameters()) for name in PARTS}
    return {"model_config": {name: asdict(parts[name].config) for name in PARTS},
            "parameters": sum(counts.values()), "parameters_by_part": counts,
            "metrics": evaluated,
            "loss_last": {k: round(sum(v["losses"][-50:]) / 50, 5) for k, v in log.items()},
            "train_seconds": round(sum(v["seconds"] for v in log.values()), 1),
            "train_seconds_by_part": {k: v["seconds"] for k, v in log.items()},
            "data_seconds": round(prep_s, 1), "image_size": scenes.IMAGE_SIZE}  # fmt: skip
