"""The metrics of Section 6.2, computed for one trained system on the test set.

Metric names are constants shared by the runner and the reports. Every value is computed
here from reconstructions of the evaluation images; nothing in a system knows about them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hqa.system import CompressionSystem

from .classifier import Classifier
from .fidelity import FeatureSpace

MSE = "mse"  # per-pixel squared error in [0, 1], mean over images and pixels
CLASS_ERROR = "class_error"  # % of reconstructions the classifier gets wrong
RFID = "rfid"  # Fréchet distance test vs reconstructions, in a labelled feature space
EFFECTIVE_BITS = "effective_bits"  # entropy of the emitted codes x positions
NOMINAL_BITS = "nominal_bits"  # h * w * log2 K
CODES_USED = "codes_used"  # distinct codes emitted on the evaluation set
METRICS: tuple[str, ...] = (MSE, CLASS_ERROR, RFID, EFFECTIVE_BITS, NOMINAL_BITS, CODES_USED)


@dataclass(frozen=True)
class Measurement:
    """One value: ``metric`` at ``layer``; ``feature_space`` is set for rFID only."""

    layer: int
    bits: int
    metric: str
    value: float
    feature_space: str = ""


def mse(x: Tensor, x_hat: Tensor) -> float:
    """Per-pixel mean squared error."""
    return float(((x.double() - x_hat.double()) ** 2).mean())


def classification_error(classifier: Classifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Percentage of ``images`` whose predicted class differs from ``labels``."""
    wrong = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            pred = classifier(images[i : i + batch_size]).argmax(dim=1)
            wrong += int((pred != labels[i : i + batch_size]).sum())
    return 100.0 * wrong / len(images)


def effective_bits(codes: Tensor, codebook_size: int) -> float:
    """Entropy (bits) of the empirical distribution of all codes in ``codes`` [N, h, w],
    times the number of positions h * w: the rate the codes actually carry."""
    counts = torch.bincount(codes.flatten().cpu(), minlength=codebook_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum()) * codes[0].numel()


@torch.inference_mode()
def reconstruct_all(
    system: CompressionSystem, images: Tensor, layer: int, seed: int, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """(reconstructions [N, C, H, W], codes [N, h, w]) of ``images`` at ``layer``.

    Stochastic systems sample at encode and decode time (the paper's test-time behaviour)
    from a generator seeded by (seed, layer), so the evaluation is repeatable.
    """
    gen = torch.Generator(device=system.device).manual_seed(10_000 * seed + layer)
    recons, codes = [], []
    for i in range(0, len(images), batch_size):
        c = system.encode(images[i : i + batch_size], layer, gen)
        codes.append(c.cpu())
        recons.append(system.decode(c, layer, gen).float().cpu())
    return torch.cat(recons), torch.cat(codes)


def evaluate_system(
    system: CompressionSystem,
    images: Tensor,
    labels: Tensor,
    classifier: Classifier,
    spaces: list[FeatureSpace],
    seed: int,
) -> list[Measurement]:
    """Every metric at every layer of ``system`` on ``images`` (the evaluation split)."""
    out: list[Measurement] = []
    k_size = system.config.codebook_size
    for layer, bits in enumerate(system.rates, start=1):
        x_hat, codes = reconstruct_all(system, images, layer, seed)
        row = lambda metric, value, space="": Measurement(layer, bits, metric, value, space)  # noqa: E731
        out += [
            row(MSE, mse(images, x_hat)),
            row(CLASS_ERROR, classification_error(classifier, x_hat, labels)),
            row(EFFECTIVE_BITS, effective_bits(codes, k_size)),
            row(NOMINAL_BITS, float(bits)),
            row(CODES_USED, float(codes.unique().numel())),
        ]
        out += [row(RFID, space.fid(x_hat), space.name) for space in spaces]
    return out


def no_compression(images: Tensor, labels: Tensor, classifier: Classifier, spaces: list[FeatureSpace]) -> list[Measurement]:
    """The "No Compression" row: the test images against themselves."""
    out = [Measurement(0, 0, MSE, 0.0), Measurement(0, 0, CLASS_ERROR, classification_error(classifier, images, labels))]
    out += [Measurement(0, 0, RFID, space.fid(images), space.name) for space in spaces]
    return out


def t_interval(values: list[float] | Tensor, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of a Student-t confidence interval for the mean (n >= 2;
    for n == 1 the interval is the point)."""
    from scipy import stats

    vals = [float(v) for v in values]
    n = len(vals)
    mean = sum(vals) / n
    if n < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(stats.sem(vals))
    if math.isnan(half):
        half = 0.0
    return mean, mean - half, mean + half
