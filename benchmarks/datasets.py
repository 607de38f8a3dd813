"""The images a sweep trains and evaluates on: a dataset preset read from disk, then the
profile's fixed subsets. Used by the runner and by the reports (which re-read the same
evaluation images for the figures), so neither imports the other.
"""

from __future__ import annotations

import torch

from hqa.data import ImageSet, load_celeba, load_mnist

from .profiles import Profile
from .registry import DATASETS

# The subsets' fixed permutations (the split files may be sorted by class).
TRAIN_SUBSET_SEED, EVAL_SUBSET_SEED = 0, 1


def load_dataset(
    dataset: str, root: str | None, download: bool, limit: int | None = None, preprocess: str = "resize"
) -> tuple[ImageSet, ImageSet]:
    """(train, test) of ``dataset``; ``limit`` caps the images read per split where reading
    is the cost (CelebA: ~200k JPEGs; MNIST is read whole); ``preprocess``: MNIST's 28 -> 32
    ("resize" or "pad")."""
    if dataset == "mnist":
        return load_mnist(root, size=32, download=download, preprocess=preprocess)
    if dataset == "celeba":
        if download:
            raise ValueError("CelebA cannot be downloaded by the suite (Google Drive quota); pass --data-root DIR")
        return load_celeba(root, size=64, limit=limit)
    raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")


def read_limit(profile: Profile) -> int | None:
    """Images worth reading per split: the larger of the profile's train and eval sizes
    (None when either uses a whole split)."""
    if profile.train_size is None or profile.eval_size is None:
        return None
    return max(profile.train_size, profile.eval_size)


def subset(data: ImageSet, n: int | None, seed: int) -> ImageSet:
    """``n`` images drawn without replacement by a fixed permutation (the data may be sorted)."""
    if n is None or n >= len(data):
        return data
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return ImageSet(data.images[idx], data.labels[idx], f"{data.source}, subset of {n}")


def sweep_data(
    dataset: str, root: str | None, profile: Profile, download: bool = False, preprocess: str = "resize"
) -> tuple[ImageSet, ImageSet]:
    """(training images, evaluation images) of a sweep with ``profile``: the same subsets
    for the runner and for the reports' figures."""
    train, test = load_dataset(dataset, root, download, read_limit(profile), preprocess)
    return subset(train, profile.train_size, TRAIN_SUBSET_SEED), subset(test, profile.eval_size, EVAL_SUBSET_SEED)
