"""rFID through torch-fidelity, in three labelled feature spaces.

- ``"independent"``: the penultimate layer of the dataset's cached independent feature
  network (``gap-cnn``, seed 1; :mod:`benchmarks.classifier`), registered with
  torch-fidelity as ``"hqa-feature-net"`` (always available): the offline rFID.
- ``"classifier"``: the penultimate layer of the dataset's cached classifier, registered
  with torch-fidelity as the feature extractor ``"hqa-classifier"`` (always available). The
  same network gives the classification error, so this rFID is not independent of it.
- ``"inception"``: torch-fidelity's Inception-v3 (``"inception-v3-compat"``, 2048-d pool
  features), with weights downloaded on first use or read from a local file.

The Fréchet distance itself is torch-fidelity's (``fid_features_to_statistics`` and
``fid_statistics_to_metric``); features of the real test images are computed once.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from .classifier import Classifier

CLASSIFIER_EXTRACTOR = "hqa-classifier"
FEATURE_NET_EXTRACTOR = "hqa-feature-net"
INCEPTION_EXTRACTOR = "inception-v3-compat"
FEATURE_SPACES: tuple[str, ...] = ("independent", "classifier", "inception")
# What each space is, for every table header and figure title.
SPACE_LABELS: dict[str, str] = {
    "independent": "rFID (independent CNN features)",
    "classifier": "rFID (classifier's own features)",
    "inception": "rFID (Inception-v3)",
}


def to_uint8(images: Tensor) -> Tensor:
    """[N, C, H, W] floats in [0, 1] -> uint8, torch-fidelity's input convention."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over a :class:`Classifier` checkpoint.

    Provides ``"penultimate"`` (the FID features) and ``"logits"``; expects uint8
    [B, C, H, W] like every torch-fidelity extractor. The checkpoint path comes in as
    ``feature_extractor_weights_path``, exactly as for Inception.
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{name} needs feature_extractor_weights_path (a classifier checkpoint)")
        self.model = Classifier.load(feature_extractor_weights_path)
        self.requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"fid": "penultimate", "kid": "penultimate", "prc": "penultimate", "isc": "logits"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 1, 32, 32, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        feats = self.model.features(x.float() / 255.0)
        out = {"penultimate": feats, "logits": self.model.head(feats)}
        return tuple(out[name] for name in self.features_list)


for _name in (CLASSIFIER_EXTRACTOR, FEATURE_NET_EXTRACTOR):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_name, ClassifierFeatureExtractor)


class FeatureSpace:
    """One feature extractor and the statistics of the real images in it.

    ``outputs(images)`` -> every output of the extractor (first: the [N, F] FID features,
    float64; the classifier space also gives [N, classes] logits); ``fid(images)`` -> the
    Fréchet distance between ``images`` and the reference. The reference statistics are
    computed from ``reference`` images, or passed in (``reference_stats``) when a run has
    computed them once already; with neither, the space gives outputs but no FID (the
    figures need only the classifier's outputs).
    """

    def __init__(
        self,
        name: str,
        extractor: FeatureExtractorBase,
        reference: Tensor | None = None,
        batch_size: int = 100,
        reference_stats: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.extractor = extractor.eval()
        self.batch_size = batch_size  # ~100 keeps a CPU's caches warm (2x faster than 1000)
        if reference_stats is None and reference is not None:
            reference_stats = fid_features_to_statistics(self.features(reference))
        self.reference_stats = reference_stats

    @property
    def provides_logits(self) -> bool:
        return "logits" in self.extractor.features_list

    @torch.inference_mode()
    def outputs(self, images: Tensor) -> list[Tensor]:
        chunks: list[tuple[Tensor, ...]] = []
        for i in range(0, len(images), self.batch_size):
            x = to_uint8(images[i : i + self.batch_size])
            if isinstance(self.extractor, FeatureExtractorInceptionV3) and x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)  # grey -> RGB for Inception
            chunks.append(tuple(o.double().cpu() for o in self.extractor(x)))
        return [torch.cat(parts) for parts in zip(*chunks)]

    def features(self, images: Tensor) -> Tensor:
        return self.outputs(images)[0]

    def fid_of_features(self, features: Tensor) -> float:
        """Fréchet distance of [N, F] features to the reference (torch-fidelity's statistics and metric)."""
        if self.reference_stats is None:
            raise ValueError(f"the {self.name} feature space was built without reference images; it gives no FID")
        stats = fid_features_to_statistics(features)
        fid = float(fid_statistics_to_metric(self.reference_stats, stats, verbose=False)[KEY_METRIC_FID])
        return max(fid, 0.0)  # a distance: tiny negatives are eigenvalue round-off (identical sets)

    def fid(self, images: Tensor) -> float:
        return self.fid_of_features(self.features(images))


def classifier_space(
    classifier_path: str | os.PathLike[str], reference: Tensor | None = None, reference_stats: dict[str, np.ndarray] | None = None
) -> FeatureSpace:
    """The classifier feature space (always available); its outputs are (features, logits),
    so one pass gives both the rFID features and the classification error."""
    ext = ClassifierFeatureExtractor(
        CLASSIFIER_EXTRACTOR, ["penultimate", "logits"], feature_extractor_weights_path=str(classifier_path)
    )
    return FeatureSpace("classifier", ext, reference, reference_stats=reference_stats)


def feature_net_space(
    path: str | os.PathLike[str], reference: Tensor | None = None, reference_stats: dict[str, np.ndarray] | None = None
) -> FeatureSpace:
    """The independent rFID space: penultimate features of the cached feature network (no
    logits, so the classification error always comes from the classifier)."""
    ext = ClassifierFeatureExtractor(FEATURE_NET_EXTRACTOR, ["penultimate"], feature_extractor_weights_path=str(path))
    return FeatureSpace("independent", ext, reference, reference_stats=reference_stats)


def inception_space(
    reference: Tensor | None,
    weights_path: str | os.PathLike[str] | None = None,
    reference_stats: dict[str, np.ndarray] | None = None,
) -> tuple[FeatureSpace | None, str]:
    """The Inception-v3 space, or (None, one line saying why it is not available).

    ``weights_path``: a local copy of torch-fidelity's Inception weights; without it the
    weights are downloaded (or read from torch's hub cache) on first use.
    """
    if weights_path is not None and not os.path.isfile(weights_path):
        return None, f"Inception rFID not available: weights file {weights_path} not found"
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's "Downloading ..." line
            ext = FeatureExtractorInceptionV3(
                INCEPTION_EXTRACTOR,
                ["2048"],
                feature_extractor_weights_path=None if weights_path is None else str(weights_path),
            )
    except Exception as exc:  # no network, or a bad file: the run carries on without it
        return None, f"Inception rFID not available: could not load Inception weights ({type(exc).__name__}: {str(exc)[:120]})"
    space = FeatureSpace("inception", ext, reference, reference_stats=reference_stats)
    return space, "Inception rFID available"


def frechet_distance_numpy(f1: np.ndarray, f2: np.ndarray) -> float:
    """torch-fidelity's FID between two feature matrices [N, F] (for tests and notebooks)."""
    s1 = fid_features_to_statistics(torch.from_numpy(f1))
    s2 = fid_features_to_statistics(torch.from_numpy(f2))
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])
