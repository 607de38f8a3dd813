"""The datasets: MNIST through torchvision (resized to 32x32) and CelebA faces (64x64).

MNIST: the paper says "rescaled to 32x32" (Section 6.2) and its reference code resizes
28 -> 32 (torchvision ``Resize(32)``, bilinear), so that is the default; 32 = 2^5 is what
lets five halvings reach a 1x1 latent. Zero-padding by 2 pixels per side (``"pad"``) keeps
every pixel exact but leaves ~19% of pixels trivially 0, so its MSE is not comparable with
the paper's. CelebA: see :func:`load_celeba`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

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


MNIST_PREPROCESSING: tuple[str, ...] = ("resize", "pad")


def _to_size(images_u8: Tensor, size: int, preprocess: str) -> Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, size, size] in [0, 1]: resized (bilinear, as
    torchvision's ``Resize``) or zero-padded symmetrically."""
    x = images_u8.float().div_(255.0).unsqueeze(1)
    if preprocess == "resize":
        from torchvision.transforms.v2.functional import resize

        return resize(x, [size, size], antialias=True).clamp_(0.0, 1.0)
    extra = size - x.shape[-1]
    if extra < 0 or extra % 2:
        raise ValueError(f"MNIST is padded from 28 to an even larger size; got size={size}")
    p = extra // 2
    return F.pad(x, (p, p, p, p))


def load_mnist(
    root: str | os.PathLike[str] | None = None, size: int = 32, download: bool = False, preprocess: str = "resize"
) -> tuple[ImageSet, ImageSet]:
    """(train, test) MNIST at ``size`` x ``size`` (``preprocess``: "resize" or "pad"), from a
    torchvision root.

    ``root`` defaults to $HQA_DATA_ROOT. Downloads only when ``download`` is set. Raises
    :class:`DataNotFoundError` naming the folder it looked in when the files are missing.
    """
    from torchvision.datasets import MNIST  # torchvision only where data is read

    if preprocess not in MNIST_PREPROCESSING:
        raise ValueError(f"unknown MNIST preprocessing {preprocess!r}; known: {', '.join(MNIST_PREPROCESSING)}")
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
            raise DataNotFoundError(
                f"MNIST is not under {base} and could not be downloaded there ({exc}); offline, pass --data-root DIR "
                f"or set {DATA_ROOT_ENV}=DIR to a torchvision MNIST root"
            ) from None
        split = "train" if train else "test"
        source = f"mnist {split}, {len(ds)} images, {'resized' if preprocess == 'resize' else 'zero-padded'} to {size}x{size}"
        sets.append(ImageSet(_to_size(ds.data, size, preprocess), ds.targets.long(), source))
    return sets[0], sets[1]


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CELEBA_CROP = 148  # the usual centre crop of CelebA's aligned 178x218 faces before resizing


def _celeba_files(base: Path) -> tuple[list[Path], list[Path], str]:
    """(train files, test files, layout description) under ``base``.

    torchvision layout ``base/celeba/img_align_celeba/*.jpg`` with ``list_eval_partition.txt``:
    the official split (0 train, 1 validation, 2 test; validation is left out). A plain
    folder of images (``base`` itself): sorted by name, the last 10% are the test split.
    """
    tv = base / "celeba"
    folder = tv / "img_align_celeba"
    partition = tv / "list_eval_partition.txt"
    if folder.is_dir() and partition.is_file():
        split: dict[str, list[Path]] = {"0": [], "2": []}
        for line in partition.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1] in split:
                split[parts[1]].append(folder / parts[0])
        return split["0"], split["2"], "official CelebA split"
    plain = folder if folder.is_dir() else base
    files = sorted(p for p in plain.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if plain.is_dir() else []
    n_test = max(1, len(files) // 10) if len(files) > 1 else 0
    return files[: len(files) - n_test], files[len(files) - n_test :], "plain folder, last 10% by name as test"


def _read_faces(files: list[Path], size: int) -> Tensor:
    """float [N, 3, size, size] in [0, 1]: centre square of side min(148, short side),
    resized with antialiasing (the usual CelebA 64x64 preprocessing)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

    out = torch.empty(len(files), 3, size, size)
    for i, path in enumerate(tqdm(files, desc="reading faces", disable=len(files) < 1000, leave=False)):
        try:
            with Image.open(path) as pil:
                img = pil_to_tensor(pil.convert("RGB"))  # uint8 [3, H, W]
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from None
        side = min(CELEBA_CROP, *img.shape[-2:])
        img = resize(center_crop(img, [side, side]), [size, size], antialias=True)
        out[i] = img.float().div_(255.0)
    return out


def load_celeba(
    root: str | os.PathLike[str] | None = None, size: int = 64, limit: int | None = None
) -> tuple[ImageSet, ImageSet]:
    """(train, test) CelebA faces at ``size`` x ``size`` from torchvision's layout or a plain
    folder of images (see :func:`_celeba_files`); unlabelled (labels -1).

    ``limit`` caps the images read per split (the full set is ~10 GB as float). Raises
    :class:`DataNotFoundError` when the folder is missing or holds no images.
    """
    base = resolve_root(root)
    train_files, test_files, layout = _celeba_files(base)
    if not train_files or not test_files:
        raise DataNotFoundError(
            f"CelebA not found under {base} (looked for {base / 'celeba' / 'img_align_celeba'} with "
            f"list_eval_partition.txt, or image files in {base}); pass --data-root DIR or set {DATA_ROOT_ENV}=DIR"
        )
    sets = []
    for name, files in (("train", train_files), ("test", test_files)):
        files = files[:limit] if limit is not None else files
        images = _read_faces(files, size)
        sets.append(ImageSet(images, torch.full((len(files),), -1, dtype=torch.long), f"celeba {name}, {len(files)} images ({layout})"))
    return sets[0], sets[1]
