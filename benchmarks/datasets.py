"""The images a sweep trains, validates and evaluates on: a dataset preset read from disk,
then the profile's three disjoint subsets. Used by the runner and by the reports (which
re-read the same evaluation images for the figures), so neither imports the other.

The protocol (DESIGN.md, "Protocol"): *train* fits models, classifiers and priors;
*validation* takes every choice (steps, temperatures, rates, reset rules) and draws the
learning curves; *test* makes the tables and is looked at once. A profile that evaluates on
part of the test split (quick, smoke) validates on the rest of it; one that evaluates on the
whole test split (paper) holds its validation images out of the training split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

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
    """Images worth reading per split: what the profile's subsets use (None when any subset
    uses a whole split)."""
    if profile.train_size is None or profile.eval_size is None:
        return None
    held = profile.validation_size if profile.validation_from == "test" else 0
    train = profile.train_size + (profile.validation_size if profile.validation_from == "train" else 0)
    return max(train, profile.eval_size + held)


def balanced_order(labels: Tensor, seed: int) -> Tensor:
    """Indices of all images in a fixed, class-balanced order: a permutation by ``seed``,
    then interleaved by class (the first image of every class in that permutation, then the
    second of every class, ...), so any prefix of length n holds n // C images of each of the
    C classes (the n mod C lowest classes one more) while classes last. Unlabelled images
    (label -1) count as one class."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    by_class: dict[int, list[int]] = {}
    for i in perm.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    rank = torch.empty(len(labels), dtype=torch.long)  # position of each image within its class
    classes = sorted(by_class)
    for members in by_class.values():
        rank[torch.tensor(members)] = torch.arange(len(members))
    # sort by (rank within class, class): round-robin over classes
    cls_index = {c: j for j, c in enumerate(classes)}
    key = rank * len(classes) + torch.tensor([cls_index[int(c)] for c in labels])
    return torch.argsort(key, stable=True)


def take(data: ImageSet, idx: Tensor, what: str) -> ImageSet:
    """The images ``idx`` of ``data``, described as ``what``."""
    return ImageSet(data.images[idx], data.labels[idx], f"{data.source}, {what} of {len(idx)}")


def subset(data: ImageSet, n: int | None, seed: int) -> ImageSet:
    """``n`` images drawn without replacement by a fixed permutation (the data may be sorted)."""
    if n is None or n >= len(data):
        return data
    return take(data, torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n], "subset")


def fingerprint(split: ImageSet, idx: Tensor) -> str:
    """A short hash naming which images of a split a subset holds: the split's size and
    the subset's indices in order (two runs with equal fingerprints see the same images in the
    same order, given the same files)."""
    h = hashlib.sha256(f"{len(split)}:".encode())
    h.update(idx.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class SweepData:
    """The three disjoint image sets of a sweep and the fingerprint of each (for ``run.json``)."""

    train: ImageSet
    validation: ImageSet
    test: ImageSet
    fingerprints: dict[str, str]


def split_sweep(train_split: ImageSet, test_split: ImageSet, profile: Profile) -> SweepData:
    """The profile's subsets of the loaded splits.

    test: ``eval_size`` images of the test split by the permutation of ``EVAL_SUBSET_SEED``
    (all of them when None). validation: the next ``validation_size`` images of that
    permutation (``validation_from="test"``), or the first ``validation_size`` of the training
    split's class-balanced order (``"train"``, also where a tiny test split leaves no images
    over), which training then leaves out. train: the next
    ``train_size`` images of that class-balanced order (all the rest when None): with the
    offline 5k subset (500 per class) and ``train_size=5000``, every image, in file order.
    """
    n_test = len(test_split)
    test_perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))
    n_eval = n_test if profile.eval_size is None else min(profile.eval_size, n_test)
    source = profile.validation_from
    n_val = min(profile.validation_size, n_test - n_eval) if source == "test" else profile.validation_size
    if n_val < 1:  # a tiny test split (generated test data) leaves none: hold a fifth of training out instead
        source, n_val = "train", max(1, min(profile.validation_size, len(train_split) // 5))
    test_idx = torch.arange(n_test) if profile.eval_size is None else test_perm[:n_eval]
    order = balanced_order(train_split.labels, TRAIN_SUBSET_SEED)
    held_out = n_val if source == "train" else 0
    val_from = train_split if source == "train" else test_split
    val_idx = order[:held_out] if source == "train" else test_perm[n_eval:n_eval + n_val]
    rest = order[held_out:]
    n_train = len(rest) if profile.train_size is None else min(profile.train_size, len(rest))
    if held_out == 0 and n_train == len(train_split):
        train_idx = torch.arange(len(train_split))  # the whole split in file order (as before subsets existed)
    else:
        train_idx = torch.sort(rest[:n_train]).values  # file order: the loader shuffles under each seed
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(f"profile {profile.name!r} leaves no training or no test images")
    return SweepData(
        train=train_split if len(train_idx) == len(train_split) else take(train_split, train_idx, "class-balanced subset"),
        validation=take(val_from, val_idx, "validation"),
        test=test_split if len(test_idx) == n_test and profile.eval_size is None else take(test_split, test_idx, "subset"),
        fingerprints={"train": fingerprint(train_split, train_idx), "validation": f"{source}:{fingerprint(val_from, val_idx)}",
                      "test": fingerprint(test_split, test_idx)},
    )


def sweep_data(
    dataset: str, root: str | None, profile: Profile, download: bool = False, preprocess: str = "resize"
) -> SweepData:
    """The training, validation and evaluation images of a sweep with ``profile``: the same
    subsets for the runner and for the reports' figures."""
    train, test = load_dataset(dataset, root, download, read_limit(profile), preprocess)
    return split_sweep(train, test, profile)
