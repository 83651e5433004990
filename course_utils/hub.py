"""The Hugging Face Hub's conventions, shown offline on the course's VQA model.

A model shared on the Hub is a folder: ``config.json`` (what to build), ``model.safetensors``
(the weights, loadable without unpickling), ``README.md`` (the model card: YAML metadata
the Hub indexes, then prose for people) and, for a model that reads text, its tokenizer's
files. ``save_pretrained`` writes that folder, ``from_pretrained`` reads it back (from a
local folder or a Hub repository), and ``push_to_hub`` uploads it.

* :class:`HubVQAModel` is a course fusion model with ``huggingface_hub``'s
  ``PyTorchModelHubMixin``: it gains ``save_pretrained`` / ``from_pretrained`` /
  ``push_to_hub``; its ``__init__`` keyword arguments (``fusion.build_model``'s) become
  ``config.json``.
* :func:`save_pretrained` writes a shipped :class:`~course_utils.shipped.VQAModel` as a
  self-contained folder (weights, config, tokenizer, a model card built from the shipped
  card by :func:`build_model_card`); :func:`from_pretrained` loads it back as a
  ``VQAModel``.
* :func:`publish_plan` lists what uploading the folder would send, without a network.

Nothing here reaches the network: ``from_pretrained`` reads a local folder only.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData, PyTorchModelHubMixin, constants
from torch import Tensor, nn

from course_utils import fusion
from course_utils.shipped import EVAL_SPLITS, HANDWRITTEN, VQAModel
from course_utils.world import scenes

#: The files ``save_pretrained`` writes for the model (the Hub's names).
WEIGHTS_FILE = constants.SAFETENSORS_SINGLE_FILE  # "model.safetensors"
CONFIG_FILE = constants.CONFIG_NAME  # "config.json"
CARD_FILE = constants.REPOCARD_NAME  # "README.md"
#: The model card's YAML metadata (``ModelCardData``) shared by every course model.
LICENSE, LIBRARY, PIPELINE_TAG = "apache-2.0", "pytorch", "visual-question-answering"
TAGS = ("course_utils", "visual-question-answering", "toy-model", "synthetic-data",
        "model_hub_mixin", "pytorch_model_hub_mixin")
#: The model-index ``dataset.type`` of the course's generated world (not a Hub dataset).
DATASET_TYPE = "course-world"
#: What each evaluation split of a VQA card measures (``world.data``; chapter 09).
SPLIT_MEANINGS = {
    "test": "held-out questions from the training distribution",
    "test_compositional": "colour-shape pairs never seen in training",
    "test_paraphrase": "question phrasings never used in training",
    "test_frames": "held-out frames around the training questions' cores",
    "test_synonyms": "held-out words",
    "test_shift": "a rendering shift: tinted background, pixel noise, smaller objects",
    HANDWRITTEN: "questions written by hand, not by the world's grammar",
}


class HubVQAModel(nn.Module, PyTorchModelHubMixin, library_name=LIBRARY, license=LICENSE,
                  pipeline_tag=PIPELINE_TAG, tags=list(TAGS[:4])):
    """A course fusion model the Hub's way: ``HubVQAModel(**fusion_model.config)``.

    ``PyTorchModelHubMixin`` records the ``__init__`` keyword arguments (``kind`` and
    ``fusion.build_model``'s sizes) and writes them as ``config.json``; the weights go to
    ``model.safetensors`` (keys ``model.<name>``). ``HubVQAModel.from_pretrained(folder)``
    rebuilds it from ``config.json`` and loads the weights (pass ``strict=True``: the
    mixin's default, ``strict=False``, would silently skip weights whose names differ).

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """

    def __init__(self, kind: str = "slot_read", **sizes):  # not **config: the mixin reserves it
        super().__init__()
        self.model = fusion.build_model(kind, **sizes)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the model (what ``config.json`` holds)."""
        return self.model.config

    def save_pretrained(self, save_directory, **kwargs):
        """The mixin's ``save_pretrained`` with the complete config (defaults included) as
        ``config.json``, not only the arguments given to ``__init__``."""
        if kwargs.get("config") is None:
            kwargs["config"] = self.config
        return super().save_pretrained(save_directory, **kwargs)

    def forward(self, pixel_values: Tensor, input_ids: Tensor,
                attention_mask: Tensor | None = None) -> Tensor:
        return self.model(pixel_values, input_ids, attention_mask)  # (B, A)


def _check_vqa(vqa) -> None:
    if not isinstance(vqa, VQAModel) or not isinstance(getattr(vqa.model, "config", None), dict):
        raise ValueError("vqa must be a shipped.VQAModel (e.g. course_utils.load_pretrained("
                         f"'vqa-slot-read')), got {type(vqa).__name__}")


def to_hub_model(vqa: VQAModel) -> HubVQAModel:
    """The fusion model of a :class:`~course_utils.shipped.VQAModel` as a
    :class:`HubVQAModel` (same config, a copy of the weights), in eval mode.

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    _check_vqa(vqa)
    hub_model = HubVQAModel(**vqa.model.config)
    hub_model.model.load_state_dict(vqa.model.state_dict())
    return hub_model.to(vqa.device).eval()


# ---- the model card --------------------------------------------------------------------------


def _eval_results(name: str, metrics: dict) -> list[EvalResult]:
    """One model-index entry per metric: ``"test/count"`` is split ``test``, config ``count``."""
    results = []
    for key, value in metrics.items():
        split, _, family = key.partition("/")
        results.append(EvalResult(
            task_type=PIPELINE_TAG, task_name="Visual question answering",
            dataset_type=DATASET_TYPE, dataset_name=f"The course's world of shapes ({key})",
            dataset_split=split, dataset_config=family or None,
            metric_type="accuracy", metric_value=value, metric_name="Accuracy"))
    return results


def _about(name: str, card: dict, config: dict) -> str:
    side = config.get("image_size", 48)
    shapes = ", ".join(scenes.SHAPES[:-1]) + f" or {scenes.SHAPES[-1]}"
    if config.get("kind") in fusion.PRETRAINED_TEXT_KINDS:
        words = ("its words are the frozen, pretrained all-MiniLM-L6-v2's features (loaded from "
                 "its package, not part of these weights; the tokenizer is MiniLM's); the rest "
                 "was trained from scratch")
    else:
        words = "trained from scratch, with the world's WordPiece tokenizer"
    return f"""# {name}

**A course model, not a general visual question answering model.** It answers questions
about the toy world of the open course *Visual Instruction Tuning, from attention to
applications*: {side}×{side}-pixel images of a few shapes ({shapes}) in
{len(scenes.COLORS)} colours on a 3×3 grid, and templated English instructions about
them. It picks one of {config.get("num_answers")} answers (a classifier, not a text
generator): on real photographs or free-form questions its answers mean nothing.

{card.get("description", "")}

## Model

`fusion.build_model(**config)` of the course's package `course_utils`, kind
`{config.get("kind")}`, {card.get("parameters", "n/a")} parameters, {words}.
`config.json` holds its sizes and `model.safetensors` its weights.
"""


def _training(card: dict) -> str:
    recipe = card.get("recipe", {})
    versions = ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items())
    return f"""## Training

{recipe.get("steps", "n/a")} steps of AdamW (batch {recipe.get("batch_size", "n/a")}, learning
rate {recipe.get("lr", "n/a")}, warm-up then cosine decay) on {recipe.get("n_train", "n/a")}
generated questions (data seed {recipe.get("data_seed", "n/a")}, seed {recipe.get("seed", "n/a")}):
{card.get("train_seconds", "n/a")} s of training on a CPU with {card.get("torch_threads", "n/a")}
torch thread(s), {card.get("samples_per_second", "n/a")} examples per second ({versions}).
"""


def _evaluation(metrics: dict) -> str:
    rows = []
    for key, value in metrics.items():
        split, _, family = key.partition("/")
        meaning = SPLIT_MEANINGS.get(split, "") + (f" ({family} questions)" if family else "")
        rows.append(f"| `{key}` | {value:.1%} | {meaning} |")
    return ("## Evaluation\n\nAccuracy on the course's evaluation splits (never trained on):\n\n"
            "| split | accuracy | what it tests |\n|---|---|---|\n" + "\n".join(rows) + "\n")


USAGE = """## How to load

```python
from course_utils import hub
vqa = hub.from_pretrained("path/to/this/folder")  # a course_utils.shipped.VQAModel
vqa.answer(images, ["What color is the circle?"])  # images of the course's world
```

## Limitations

A teaching model of a synthetic world: a closed answer vocabulary, templated English
only, images drawn by the world's renderer. Its errors on the shifted, compositional and
hand-written splits are part of the lesson (chapter 09). License: Apache-2.0, as the
course.
"""


def build_model_card(card: dict, name: str | None = None) -> ModelCard:
    """A Hub model card (``huggingface_hub.ModelCard``) from a shipped card
    (``shipped.model_card(name)`` or ``vqa.card``): YAML metadata (license, library, tags,
    the pipeline tag, and every metric as a ``model-index`` entry) and prose saying what the
    model is (a course model for a toy world of 48×48 shapes), its recipe, training time,
    metrics per split, how to load it and its limitations.

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    if not isinstance(card, dict) or not isinstance(card.get("model_config"), dict):
        raise ValueError("card must be a shipped model card (a dict with 'model_config', e.g. "
                         f"vqa.card), got {type(card).__name__}")
    name = name or card.get("name") or "course-vqa-model"
    metrics = {k: v for k, v in card.get("metrics", {}).items()
               if k.split("/")[0] in (*EVAL_SPLITS, HANDWRITTEN)}
    data = ModelCardData(
        language=["en"], license=LICENSE, library_name=LIBRARY, pipeline_tag=PIPELINE_TAG,
        tags=list(TAGS), metrics=["accuracy"], model_name=name,
        eval_results=_eval_results(name, metrics) or None)
    text = "\n".join((_about(name, card, card["model_config"]), _training(card),
                      _evaluation(metrics), USAGE))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}")


def card_metrics(model_card: ModelCard) -> dict:
    """``{split: accuracy}`` read back from a model card's ``model-index`` (the keys of the
    shipped card: ``"test"``, ``"test/count"``, ...).

    Used in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    results = model_card.data.eval_results or []
    return {r.dataset_split + (f"/{r.dataset_config}" if r.dataset_config else ""): r.metric_value
            for r in results if r.metric_type == "accuracy"}


# ---- the folder ------------------------------------------------------------------------------


def save_pretrained(vqa: VQAModel, folder, overwrite: bool = False) -> Path:
    """Write ``vqa`` as a Hub model folder: ``model.safetensors`` and ``config.json``
    (:class:`HubVQAModel`'s ``save_pretrained``), ``README.md`` (:func:`build_model_card`
    of ``vqa.card``) and the tokenizer's files (``tokenizer.save_pretrained``). Everything in
    the folder would be published, so it must be new or empty unless ``overwrite``.

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    _check_vqa(vqa)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder must be a folder (new or empty), got the file {folder}")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"folder {folder} is not empty: pass overwrite=True or a new folder "
                         "(everything in it would be published)")
    card = {**vqa.card, "model_config": vqa.model.config}  # the weights' config, always
    folder.mkdir(parents=True, exist_ok=True)
    build_model_card(card).save(folder / CARD_FILE)  # first: the mixin keeps a README.md
    to_hub_model(vqa).save_pretrained(folder)  # model.safetensors, config.json
    vqa.tokenizer.save_pretrained(str(folder))
    return folder


def _check_folder(folder) -> Path:
    folder = Path(folder)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
    if not folder.is_dir() or missing:
        raise ValueError(f"folder must be a model folder written by hub.save_pretrained, with "
                         f"{CONFIG_FILE} and {WEIGHTS_FILE}; {folder} "
                         + (f"lacks {', '.join(missing)}" if folder.is_dir() else "is no folder"))
    return folder


def from_pretrained(folder, device=None) -> VQAModel:
    """Load a folder written by :func:`save_pretrained` as a
    :class:`~course_utils.shipped.VQAModel`, offline: the model through
    ``HubVQAModel.from_pretrained`` (``strict=True``), the tokenizer through
    ``AutoTokenizer.from_pretrained``; its ``card`` holds the config, the metrics read back
    from the model card and the card's metadata.

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    from transformers import AutoTokenizer

    folder = _check_folder(folder)
    with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints "Loading weights from..."
        hub_model = HubVQAModel.from_pretrained(folder, strict=True, local_files_only=True,
                                                map_location=str(device or "cpu"))
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    card: dict = {"model_config": hub_model.config}
    if (folder / CARD_FILE).is_file():
        model_card = ModelCard.load(folder / CARD_FILE)
        card.update(name=model_card.data.model_name, metrics=card_metrics(model_card),
                    metadata=model_card.data.to_dict())
    return VQAModel(hub_model.model, tokenizer, card)


def publish_plan(folder) -> list[tuple[str, int]]:
    """``(path in the repository, bytes)`` of every file uploading ``folder`` would send.

    Publishing is ``HfApi(token=...).create_repo(repo_id, exist_ok=True)`` then
    ``HfApi.upload_folder(folder_path=folder, repo_id=repo_id)``: one commit of every file
    in the folder but the ones ``upload_folder`` always skips (``.git``,
    ``.cache/huggingface``), filtered here with the same patterns. It needs a write token
    (``hf auth login`` or ``HF_TOKEN``); this function only reads the folder. (The mixin's
    ``HubVQAModel.push_to_hub`` re-saves the model to a temporary folder and uploads that:
    weights, config and its generic card, without the tokenizer or this card.)

    Built in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    folder = _check_folder(folder)
    files = {path.relative_to(folder).as_posix(): path
             for path in sorted(folder.glob("**/*")) if path.is_file()}
    kept = filter_repo_objects(list(files), ignore_patterns=list(DEFAULT_IGNORE_PATTERNS))
    return [(path, files[path].stat().st_size) for path in kept]


def folder_config(folder) -> dict:
    """The ``config.json`` of a model folder: what ``from_pretrained`` builds.

    Used in chapter 13, "7. Tools: the Hub's conventions, Colab, and where papers are found".
    """
    return json.loads((_check_folder(folder) / CONFIG_FILE).read_text())
