"""MNIST through torchvision, brought to 32x32 by zero-padding.

Padding 28x28 by 2 pixels on each side keeps every original pixel value exact (resizing
would interpolate and blur strokes); the paper only says "rescaled to 32x32" (Section 6.2),
and 32 = 2^5 is what lets five halvings reach a 1x1 latent. The border is background (0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

DATA_ROOT_ENV = "HQA_DATA_ROOT"


class DataNotFoundError(FileNotFoundError):
    """A dataset is not where the suite looked; the message says where and how to point it."""


@dataclass(frozen=True)
class ImageSet:
    """Images [N, C, H, W] float in [0, 1], integer labels [N] (-1 when unlabelled), and
    a short description of where they came from (``"mnist train, 5000 images"``)."""

    images: Tensor
    labels: Tensor
    source: str

    def __len__(self) -> int:
        return len(self.images)


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root: ``root`` if given, else $HQA_DATA_ROOT, else ``~/.cache/hqa-data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hqa-data"


def _pad_to(images_u8: Tensor, size: int) -> Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, size, size] in [0, 1], zero-padded symmetrically."""
    x = images_u8.float().div_(255.0).unsqueeze(1)
    extra = size - x.shape[-1]
    if extra < 0 or extra % 2:
        raise ValueError(f"MNIST is padded from 28 to an even larger size; got size={size}")
    p = extra // 2
    return F.pad(x, (p, p, p, p))


def load_mnist(
    root: str | os.PathLike[str] | None = None, size: int = 32, download: bool = False
) -> tuple[ImageSet, ImageSet]:
    """(train, test) MNIST at ``size`` x ``size`` (zero-padded), from a torchvision root.

    ``root`` defaults to $HQA_DATA_ROOT. Downloads only when ``download`` is set. Raises
    :class:`DataNotFoundError` naming the folder it looked in when the files are missing.
    """
    from torchvision.datasets import MNIST  # torchvision only where data is read

    base = resolve_root(root)
    sets = []
    for train in (True, False):
        try:
            ds = MNIST(str(base), train=train, download=download)
        except RuntimeError as exc:
            if "not found" not in str(exc).lower():
                raise
            raise DataNotFoundError(
                f"MNIST not found under {base} (looked for {base / 'MNIST' / 'raw'}); "
                f"pass --data-root DIR or set {DATA_ROOT_ENV}=DIR to a torchvision MNIST root, "
                "or allow downloading with --download"
            ) from None
        except OSError as exc:  # download attempted without a network
            raise DataNotFoundError(f"MNIST could not be downloaded to {base}: {exc}") from None
        split = "train" if train else "test"
        sets.append(ImageSet(_pad_to(ds.data, size), ds.targets.long(), f"mnist {split}, {len(ds)} images"))
    return sets[0], sets[1]
