"""``python -m course_utils doctor``: is this machine ready for the course?

One ``[OK]``/``[FAIL]`` line per item; the exit status is non-zero when any item fails.
Each check is a small function returning ``(ok, detail)``; a check that raises counts as
a failure with the exception as its detail, so the doctor itself never crashes.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from importlib import metadata

from course_utils.runtime import REPO_ROOT

DIST_NAME = "visual-instruction-tuning-course"


def requirements() -> tuple[str, list[str]]:
    """``(requires_python, [requirement strings])`` from the installed metadata or pyproject."""
    try:
        meta = metadata.metadata(DIST_NAME)
        reqs = [r for r in (metadata.requires(DIST_NAME) or []) if "extra ==" not in r]
        return meta["Requires-Python"] or "", reqs
    except metadata.PackageNotFoundError:
        import tomllib

        project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
        return project.get("requires-python", ""), list(project["dependencies"])


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python(spec: str) -> tuple[bool, str]:
    from packaging.specifiers import SpecifierSet

    version = platform.python_version()
    ok = not spec or version in SpecifierSet(spec)
    return ok, f"{version} (supported: {spec or 'any'})"


def check_requirement(req_string: str) -> tuple[bool, str]:
    from packaging.requirements import Requirement

    req = Requirement(req_string)
    version = installed_version(req.name)
    wanted = str(req.specifier) or "any version"
    if version is None:
        return False, f"not installed (need {wanted}); fix: pip install '{req_string}'"
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return False, f"{version} installed, need {wanted}; fix: pip install '{req_string}'"
    return True, f"{version} ({wanted})"


def check_device() -> tuple[bool, str]:
    from course_utils.runtime import get_device

    device = get_device()
    if device.type == "cpu":
        return True, "cpu (no GPU found; every chapter is designed to run on a CPU)"
    return True, str(device)


def check_minilm() -> tuple[bool, str]:
    from course_utils.assets import minilm_dir

    path = minilm_dir(verify=True)
    return True, f"all-MiniLM-L6-v2 present, SHA-256 verified ({path.name}/ in {path.parent.name})"


def check_kernel() -> tuple[bool, str]:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "python3" not in specs:
        return False, "no 'python3' Jupyter kernel; fix: pip install ipykernel"
    return True, "python3 kernel found"


def check_cache() -> tuple[bool, str]:
    from course_utils.runtime import cache_dir

    path = cache_dir()
    probe = path / ".doctor-write-test"
    probe.write_text("ok")
    probe.unlink()
    return True, f"{path} is writable (set COURSE_CACHE_DIR to move it)"


def check_forward_backward() -> tuple[bool, str]:
    import torch

    from course_utils.runtime import get_device

    device = get_device()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    model.to(device)
    x = torch.randn(4, 8, device=device)
    y = torch.tensor([0, 1, 2, 1], device=device)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    if not all(g is not None and torch.isfinite(g).all() for g in grads):
        return False, "gradients missing or not finite"
    return True, f"tiny model on {device}: loss {loss.item():.3f}, finite gradients"


def check_faiss() -> tuple[bool, str]:
    import faiss
    import numpy as np

    vectors = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, ids = index.search(vectors, 1)
    wrong = int((ids[:, 0] != np.arange(len(vectors))).sum())
    if wrong:
        return False, (f"faiss {faiss.__version__}: IndexFlatIP missed {wrong} of {len(vectors)} vectors "
                       "as their own nearest neighbour; fix: pip install --force-reinstall 'faiss-cpu>=1.8'")
    return True, (f"faiss {faiss.__version__}: IndexFlatIP finds each of {len(vectors)} vectors "
                  "as its own nearest neighbour")


def all_checks() -> list[tuple[str, Callable[[], tuple[bool, str]]]]:
    py_spec, reqs = requirements()
    checks = [("python", lambda: check_python(py_spec))]
    for req in reqs:
        name = req.split(";")[0]
        label = name.split(">")[0].split("<")[0].split("=")[0].split("!")[0].split("~")[0].strip()
        checks.append((label, lambda r=req: check_requirement(r)))
    checks += [
        ("jupyter kernel", check_kernel),
        ("device", check_device),
        ("offline assets", check_minilm),
        ("cache folder", check_cache),
        ("forward/backward", check_forward_backward),
        ("faiss search", check_faiss),
    ]
    return checks


def run(checks=None, out=sys.stdout) -> int:
    """Run the checks, print one line each, return the exit status (0 = all OK)."""
    failed = 0
    for name, check in checks if checks is not None else all_checks():
        try:
            ok, detail = check()
        except Exception as exc:  # a broken environment must not crash the doctor
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        failed += not ok
        print(f"[{'OK' if ok else 'FAIL'}] {name}: {detail}", file=out)
    summary = "all checks passed" if not failed else f"{failed} check(s) failed"
    print(f"doctor: {summary}", file=out)
    return 1 if failed else 0
