"""Editor 1: parse the instruction into a program, perceive the scene, let the world's
renderer execute the program on what was perceived.

Each stage can be checked on its own against the annotation, so every failure on a test
set has a first stage to blame (:func:`attribute_errors`): the parse (the program is not
the instruction's), perception (the scene read from the pixels is not the scene), or
execution (the program cannot run on the perceived scene: it names no object, or two; a
move into an occupied cell). With a correct program on a correct scene the renderer's
output *is* the target, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.editing import data as edata
from course_utils.editing.train import read_images
from course_utils.world import scenes
from course_utils.world.edits import apply_edit
from course_utils.world.programs import AmbiguityError

#: The stages a failure is attributed to, in order.
STAGES: tuple[str, ...] = ("parse", "perception", "execution")


@torch.no_grad()
def parse(parser, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[dict]:
    """The programs a parser reads from tokenised instructions.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    labels = parser.predict(input_ids, attention_mask)
    return [edata.program_from_labels({s: v[i] for s, v in labels.items()}) for i in range(len(input_ids))]


def perceive(reader, images: torch.Tensor) -> list[dict]:
    """The scenes a reader perceives in uint8 images ``(N, H, W, 3)``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    labels = read_images(reader, images)
    size = images.shape[1]
    template = {"width": size, "grid": scenes.GRID}
    return [edata.scene_from_labels({k: v[i] for k, v in labels.items()}, template) for i in range(len(images))]


def execute(programs: list[dict], scene_list: list[dict], images: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
    """Run each program on its scene and render the result; where a program cannot run
    (it names no object or several, a move is blocked, a cell is taken) the input image
    is returned unchanged. Returns ``(images (N, H, W, 3) uint8, ran)``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    out, ran = images.clone(), []
    for i, (program, scene) in enumerate(zip(programs, scene_list)):
        try:
            edited = apply_edit(program, scene)
        except (AmbiguityError, ValueError, KeyError):
            ran.append(False)
            continue
        out[i] = torch.from_numpy(np.array(scenes.render(edited)))
        ran.append(True)
    return out, ran


def program_edit(parser, reader, images: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor) -> dict:
    """Editor 1 end to end on tensors: ``{"images", "programs", "scenes", "ran"}``.

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    programs = parse(parser, input_ids, attention_mask)
    perceived = perceive(reader, images)
    out, ran = execute(programs, perceived, images)
    return {"images": out, "programs": programs, "scenes": perceived, "ran": ran}


def attribute_errors(result: dict, true_programs: list[dict], true_scenes: list[dict],
                     success: torch.Tensor) -> dict:
    """Each failed edit's first wrong stage (see :data:`STAGES`), counted; ``"other"``
    if every stage was right and the edit still failed (it should never happen).

    Used in chapter 12, "2. Editor 1: the instruction as a program"."""
    counts = dict.fromkeys((*STAGES, "other"), 0)
    for i, ok in enumerate(success.tolist()):
        if ok:
            continue
        if result["programs"][i] != true_programs[i]:
            counts["parse"] += 1
        elif not edata.same_labels(edata.scene_labels(result["scenes"][i]), edata.scene_labels(true_scenes[i])):
            counts["perception"] += 1
        elif not result["ran"][i]:
            counts["execution"] += 1
        else:
            counts["other"] += 1
    return counts
