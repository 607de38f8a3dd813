"""Checkpoints: weights plus the config that built them, written atomically, loaded safely.

A checkpoint is a plain dict ``{"format", "kind", "config", "state_dict", "extra"}`` that
``torch.load(weights_only=True)`` reads (no pickled code). Every failure is one clear
``FileNotFoundError``/``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "hqa-suite/1"


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to a temporary file beside ``path``, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(
    path: str | os.PathLike[str],
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint of a model of class ``kind``."""
    state = {k: v.detach().cpu() for k, v in state_dict.items()}
    atomic_torch_save(
        {"format": FORMAT, "kind": kind, "config": config, "state_dict": state, "extra": extra or {}}, path
    )


def read_tagged(path: str | os.PathLike[str], fmt: str, what: str, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """The dict a suite file (a checkpoint, a prior) holds, read with ``weights_only``.
    FileNotFoundError when missing; ``error`` naming the file when it is damaged or its
    ``"format"`` is not ``fmt`` (``what`` names the kind of file in the messages)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise error(f"corrupt or unreadable {what} {path}: {type(exc).__name__}") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise error(f"{path} is not an {fmt} {what}")
    return obj


def load_checkpoint(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` for class ``kind``.

    Returns (config, state_dict, extra). Raises FileNotFoundError when the file is missing,
    ValueError when it is corrupt, of another format, or of another kind of model.
    """
    obj = read_tagged(path, FORMAT, "checkpoint")
    if obj.get("kind") != kind:
        raise ValueError(f"{path} holds a {obj.get('kind')!r} model, not a {kind!r}")
    return obj["config"], obj["state_dict"], obj.get("extra", {})
