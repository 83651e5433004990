"""Runtime helpers every chapter uses: device, seeds, paths, offline mode, quiet logs.

A chapter's second code cell is ``device = runtime.init(seed=0)``; it seeds every
random generator, picks the device, keeps Hugging Face offline and quiet, and prints a
one-line version report so that a student's bug report says what they ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Environment variable naming the folder where chapters cache what they produce.
CACHE_ENV = "COURSE_CACHE_DIR"
#: Environment variable set by the course runner: a JSON file the chapter reports into.
RESULTS_ENV = "COURSE_RESULTS_FILE"
#: Set to 1 to let chapters reach the Hugging Face Hub (they are offline by default).
ONLINE_ENV = "COURSE_ONLINE"

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def get_device(prefer: str | None = None):
    """The best available device: ``cuda``, then ``mps``, then ``cpu``.

    ``prefer`` (or the environment variable ``COURSE_DEVICE``) forces one, e.g. ``"cpu"``.

    Introduced in chapter 01, "8. How this course works".
    """
    import torch

    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        known = ("cpu", "cuda", "mps")
        if choice.split(":")[0] not in known:
            raise ValueError(f"unknown device {choice!r}; expected one of {known}")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> int:
    """Seed Python's ``random``, NumPy and torch (all devices). Returns the seed.

    Used in chapter 03, "7. CNN or ViT? The FAQ's question, measured"."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        import torch

        torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    except ImportError:  # pragma: no cover
        pass
    return seed


def cache_dir(*parts: str) -> Path:
    """A folder (created) for what chapters produce: ``$COURSE_CACHE_DIR`` or the user cache.

    It is never inside the git checkout unless you point the variable there.

    Used in chapter 03, "6. Loading a pretrained ViT, online and offline".
    """
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "visual-instruction-tuning"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The course's ``data/`` folder (shipped assets), or ``$COURSE_DATA_DIR``.

    Used in chapter 09, "1. The shipped model and its evaluation splits"."""
    return Path(os.environ.get("COURSE_DATA_DIR", REPO_ROOT / "data"))


def set_offline(offline: bool = True) -> None:
    """Keep the Hugging Face libraries from reaching the Hub (they retry for ~25 s).

    Used in chapter 03, "6. Loading a pretrained ViT, online and offline"."""
    for var in _OFFLINE_VARS:
        if offline:
            os.environ[var] = "1"
        else:
            os.environ.pop(var, None)
    # The libraries read these variables at import time; patch them if already loaded.
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None and hasattr(hub, "HF_HUB_OFFLINE"):
        hub.HF_HUB_OFFLINE = offline
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None and hasattr(ds_config, "HF_HUB_OFFLINE"):
        ds_config.HF_HUB_OFFLINE = offline


def quiet_hf() -> None:
    """Silence Hugging Face warnings and progress bars that bury a lesson's output.

    Introduced in chapter 01, "8. How this course works"."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def version_report() -> dict[str, str]:
    """Versions of Python and the main libraries, and the device.

    Introduced in chapter 01, "8. How this course works"."""
    from importlib import metadata

    report = {"python": platform.python_version()}
    for name, dist in (("course_utils", "visual-instruction-tuning-course"), ("torch", "torch"),
                       ("transformers", "transformers"), ("datasets", "datasets")):
        try:
            report[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            report[name] = "missing"
    return report


def init(seed: int = 0, device: str | None = None, offline: bool | None = None, quiet=True):
    """Set up a chapter: offline mode, quiet logs, seeds; returns the torch device.

    Offline is the default; ``COURSE_ONLINE=1`` (or ``offline=False``) allows downloads.

    Called first in every chapter; chapter 01, "8. How this course works" explains it.
    """
    if offline is None:
        offline = os.environ.get(ONLINE_ENV) != "1"
    set_offline(offline)
    if quiet:
        quiet_hf()
    seed_everything(seed)
    dev = get_device(device)
    info = version_report()
    parts = [f"{k} {v}" for k, v in info.items()]
    mode = "offline" if offline else "online"
    print(" | ".join(parts) + f" | device {dev} | seed {seed} | {mode}")
    return dev


def report(**metrics) -> dict:
    """Print a chapter's key results and hand them to the course runner.

    Each keyword is a metric name and its value (a number or a short string). When
    ``python -m course_utils run`` executes the chapter, the values appear in its
    results table.

    Introduced in chapter 01, "8. How this course works".
    """
    clean = {}
    for name, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float):
            value = round(value, 4)
        if not isinstance(value, int | float | str | bool):
            raise TypeError(f"metric {name!r} must be a number or string, got {type(value).__name__}")
        clean[name] = value
        print(f"[result] {name} = {value}")
    append_results("metrics", clean)
    return clean


def append_results(key: str, values: dict) -> None:
    """Merge ``values`` into section ``key`` of the run's results file, when the course's
    runner set one (``COURSE_RESULTS_FILE``); a no-op elsewhere. The exercise checkers
    record their outcomes through it, :func:`report` the chapter's metrics.

    Introduced in chapter 01, "8. How this course works"."""
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(key, {}).update(values)
    path.write_text(json.dumps(data, indent=1))


def write_stored_results(path: Path, name: str, description: str, recipe, seconds: float,
                         threads: int, **results) -> Path:
    """Write the results of a ``reproduce`` command (the FLAN curve, the scaling sweeps) as one
    JSON file: ``name``, ``description``, the ``recipe`` (a dataclass), the ``results``
    (e.g. ``points=[...]``), the seconds it took, the torch threads and the versions used.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    from dataclasses import asdict

    import torch

    stored = {"name": name, "description": description, "recipe": asdict(recipe), **results,
              "seconds": round(seconds, 1), "torch_threads": threads,
              "versions": {"python": platform.python_version(), "torch": torch.__version__}}
    path = Path(path)
    path.write_text(json.dumps(stored, indent=1) + "\n")
    return path


@contextlib.contextmanager
def torch_threads(n: int):
    """``with torch_threads(2): ...`` runs the block with ``torch.set_num_threads(n)`` and
    restores the previous number afterwards, also when the block raises. Small models train
    fastest on few threads; the last bits of every sum depend on how many.

    Used in chapter 06, "10. How much diversity buys: the FLAN curve"."""
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (threads), got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``.

    Used in chapter 05, "5. Side by side: parameters, latency, shapes"."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
