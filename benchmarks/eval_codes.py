"""The codes a cell's evaluation emitted, kept for the files step (:mod:`benchmarks.files`).

The evaluation samples every layer's codes of the test images under the cell's seeds
(:func:`benchmarks.metrics.reconstruct_all`); the files step codes exactly those. Keeping them
(``models/codes/<system>-seed<k>.pt``, beside the models, not in git) saves the files step a
second pass of every model over the test images. A file is used only for the model it was
made with (its hash) and the same number of images; otherwise the codes are computed again.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from hqa.checkpoint import atomic_torch_save


def save_codes(path: Path, codes: dict[int, Tensor], model_hash: str) -> None:
    """Save ``codes`` (layer -> [N, h, w]) of the model with hash ``model_hash``, atomically."""
    small = {k: c.to(torch.int16 if int(c.max()) < 2**15 else torch.int32) for k, c in codes.items()}
    atomic_torch_save({"model_hash": model_hash, "codes": small}, path)


def load_codes(path: Path, model_hash: str, images: int) -> dict[int, Tensor] | None:
    """The kept codes (layer -> LongTensor [N, h, w]) if ``path`` holds the codes of this model
    for ``images`` images; None otherwise (missing, another model, another image count, unreadable)."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=True)
    except Exception:  # a truncated or foreign file: compute the codes again
        return None
    if not isinstance(saved, dict) or saved.get("model_hash") != model_hash:
        return None
    codes = {int(k): c.long() for k, c in saved.get("codes", {}).items()}
    if not codes or any(len(c) != images for c in codes.values()):
        return None
    return codes
