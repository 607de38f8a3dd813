"""The pretrained networks of the offline metrics: trained once per dataset, cached on disk.

- ``"small-cnn"`` (seed 0): the classifier of Section 6.2. Its error on reconstructions
  measures how much semantic content a system keeps.
- ``"gap-cnn"`` (seed 1): an independent feature network for rFID (:mod:`benchmarks.fidelity`):
  another architecture (three batch-normalised conv blocks, global average pooling, 256-d
  features) trained from another seed, so that rFID and classification error are not one
  network's view twice. It is trained as a classifier too (the labels are the only
  supervision offline), but only its penultimate features are used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from hqa.checkpoint import load_checkpoint, save_checkpoint
from hqa.data import ImageSet

# Per architecture: bump when its layers or training change (the version is in the cache key).
ARCH_VERSIONS = {"small-cnn": "1", "gap-cnn": "1"}
CACHE_ENV = "HQA_CACHE_DIR"
CLASSIFIER_ARCH, CLASSIFIER_SEED = "small-cnn", 0  # classification error (and its own rFID space)
FEATURE_NET_ARCH, FEATURE_NET_SEED = "gap-cnn", 1  # the independent rFID space


def _small_cnn(channels: int, size: int) -> tuple[nn.Sequential, int]:
    """Two conv + max-pool blocks and a dense layer: 128-d features."""
    body = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (size // 4) ** 2, 128),
        nn.ReLU(),
    )
    return body, 128


def _gap_cnn(channels: int, size: int) -> tuple[nn.Sequential, int]:
    """Three strided conv blocks with batch norm and GELU, global average pooling: 256-d
    features (no dense layer, no max-pooling: a different inductive bias from small-cnn)."""
    layers: list[nn.Module] = []
    widths = (channels, 48, 96, 256)
    for c_in, c_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 256


ARCHITECTURES = {"small-cnn": _small_cnn, "gap-cnn": _gap_cnn}


class Classifier(nn.Module):
    """A CNN ``arch`` (:data:`ARCHITECTURES`): [B, C, S, S] in [0, 1] -> logits [B,
    num_classes]; ``features`` gives the penultimate activations [B, feature_dim]."""

    def __init__(self, channels: int = 1, size: int = 32, num_classes: int = 10, arch: str = CLASSIFIER_ARCH) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
        self.shape = (channels, size, num_classes)
        self.arch = arch
        self.body, self.feature_dim = ARCHITECTURES[arch](channels, size)
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.to(memory_format=torch.channels_last)  # ~2x faster convs on CPU (oneDNN), measured

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def save(self, path: str | os.PathLike[str]) -> None:
        c, s, k = self.shape
        save_checkpoint(path, "Classifier", {"channels": c, "size": s, "num_classes": k, "arch": self.arch}, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Classifier":
        cfg, state, _ = load_checkpoint(path, "Classifier")
        model = cls(**cfg)
        try:
            model.load_state_dict(state)
        except RuntimeError:
            raise ValueError(f"classifier checkpoint {path} does not match its config") from None
        return model.eval()


def train_classifier(
    data: ImageSet,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = True,
    arch: str = CLASSIFIER_ARCH,
    report: Callable[[str, int, int], None] | None = None,
) -> Classifier:
    """Train a :class:`Classifier` of architecture ``arch`` on ``data`` with Adam; seeded, on the CPU.
    ``report(what, epoch, epochs)`` after every epoch (a sweep's progress board)."""
    _, c, s, _ = data.images.shape
    num_classes = int(data.labels.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(c, s, num_classes, arch)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data)
    model.train()
    for epoch in tqdm(range(epochs), desc=arch, disable=not progress, leave=False):
        if report is not None:
            report(f"training {arch}", epoch, epochs)
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(data.images[idx]), data.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if report is not None:
        report(f"training {arch}", epochs, epochs)
    return model.eval()


def data_fingerprint(data: ImageSet) -> str:
    """A short hash of the images and labels (so a cache never mixes datasets)."""
    h = hashlib.sha256()
    h.update(data.images.numpy().tobytes())
    h.update(data.labels.numpy().tobytes())
    return h.hexdigest()[:16]


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else $HQA_CACHE_DIR, else ~/.cache/hqa-suite."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "hqa-suite"


def load_or_train_classifier(
    data: ImageSet,
    epochs: int,
    seed: int = CLASSIFIER_SEED,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
    arch: str = CLASSIFIER_ARCH,
    report: Callable[[str, int, int], None] | None = None,
) -> tuple[Classifier, Path]:
    """The network ``arch`` for ``data``, from the cache (keyed by architecture, data,
    epochs, seed and version) or trained now and cached. A corrupt cache file is retrained
    and replaced."""
    if arch not in ARCH_VERSIONS:
        raise ValueError(f"unknown classifier architecture {arch!r}; known: {', '.join(ARCH_VERSIONS)}")
    # the first architecture keeps its original file name, so existing caches stay valid
    name = "classifier" if arch == CLASSIFIER_ARCH else f"featurenet-{arch}"
    key = f"{name}-v{ARCH_VERSIONS[arch]}-{data_fingerprint(data)}-e{epochs}-s{seed}.pt"
    path = cache_dir(cache) / key
    if path.exists():
        try:
            return Classifier.load(path), path
        except ValueError as exc:
            print(f"warning: {exc}; retraining the classifier")
    model = train_classifier(data, epochs, seed, progress=progress, arch=arch, report=report)
    model.save(path)
    return model, path
