"""The metrics of Section 6.2, computed for one trained system on the test set.

Metric names are constants shared by the runner and the reports. Every value is computed
here from reconstructions of the evaluation images; nothing in a system knows about them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import Tensor

from hqa.system import CompressionSystem

from .fidelity import FeatureSpace
from .information import InformationMeter, code_entropy

MSE = "mse"  # per-pixel squared error in [0, 1], mean over images and pixels
CLASS_ERROR = "class_error"  # % of reconstructions the classifier gets wrong
RFID = "rfid"  # Fréchet distance test vs reconstructions, in a labelled feature space
CODE_ENTROPY = "code_entropy"  # bits: entropy of the emitted codes, per position, summed (information.py)
INFO_BITS = "information_bits"  # bits: I(X; Z) from the posterior, per position, summed (information.py)
NOMINAL_BITS = "nominal_bits"  # h * w * log2 K
CODES_USED = "codes_used"  # distinct codes emitted on the evaluation set
METRICS: tuple[str, ...] = (MSE, CLASS_ERROR, RFID, CODE_ENTROPY, INFO_BITS, NOMINAL_BITS, CODES_USED)


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


def classification_error(logits: Tensor, labels: Tensor) -> float:
    """Percentage of rows of ``logits`` [N, classes] whose argmax differs from ``labels`` [N]."""
    return 100.0 * float((logits.argmax(dim=1) != labels).double().mean())


@torch.inference_mode()
def reconstruct_all(
    system: CompressionSystem, images: Tensor, layer: int, seed: int, batch_size: int = 100
) -> tuple[Tensor, Tensor]:
    """(reconstructions [N, C, H, W], codes [N, h, w]) of ``images`` at ``layer``.

    Stochastic systems sample at encode and decode time (the paper's test-time behaviour)
    from a generator seeded by (seed, layer), so the evaluation is repeatable. Batches of
    ~100 keep a CPU's caches warm (1.5x faster than 500).
    """
    gen = torch.Generator(device=system.device).manual_seed(10_000 * seed + layer)
    recons, codes = [], []
    for i in range(0, len(images), batch_size):
        c = system.encode(images[i : i + batch_size], layer, gen)
        codes.append(c.cpu())
        recons.append(system.decode(c, layer, gen).float().cpu())
    return torch.cat(recons), torch.cat(codes)


@torch.inference_mode()
def layer_information(system: CompressionSystem, images: Tensor, layer: int, batch_size: int = 100) -> float:
    """Information bits (:mod:`benchmarks.information`) of ``layer``'s code about ``images``."""
    meter = InformationMeter()
    for i in range(0, len(images), batch_size):
        meter.add(system.posterior(images[i : i + batch_size], layer))
    return meter.bits()


def image_metrics(
    images: Tensor, labels: Tensor, spaces: list[FeatureSpace], row: Callable[..., Measurement]
) -> list[Measurement]:
    """rFID of ``images`` in every space, and the classification error from the first space
    that gives class logits (the classifier's: one forward pass serves both)."""
    out: list[Measurement] = []
    error_done = False
    for space in spaces:
        features, *rest = space.outputs(images)
        out.append(row(RFID, space.fid_of_features(features), space.name))
        if space.provides_logits and not error_done:
            out.append(row(CLASS_ERROR, classification_error(rest[0], labels)))
            error_done = True
    return out


def evaluate_system(
    system: CompressionSystem, images: Tensor, labels: Tensor, spaces: list[FeatureSpace], seed: int,
    report: Callable[[int, int], None] | None = None, codes_out: dict[int, Tensor] | None = None,
) -> list[Measurement]:
    """Every metric at every layer of ``system`` on ``images`` (the evaluation split);
    ``report(layer, layers)`` is told as each layer's evaluation starts (progress);
    ``codes_out``, where given, receives each layer's evaluated codes [N, h, w]."""
    out: list[Measurement] = []
    for layer, bits in enumerate(system.rates, start=1):
        if report is not None:
            report(layer, len(system.rates))
        x_hat, codes = reconstruct_all(system, images, layer, seed)
        if codes_out is not None:
            codes_out[layer] = codes
        row = partial(Measurement, layer, bits)
        out += [
            row(MSE, mse(images, x_hat)),
            row(CODE_ENTROPY, code_entropy(codes, system.config.codes(layer))),
            row(INFO_BITS, layer_information(system, images, layer)),
            row(NOMINAL_BITS, float(bits)),
            row(CODES_USED, float(codes.unique().numel())),
        ]
        out += image_metrics(x_hat, labels, spaces, row)
    return out


def no_compression(images: Tensor, labels: Tensor, spaces: list[FeatureSpace]) -> list[Measurement]:
    """The "No Compression" row: the test images against themselves."""
    row = partial(Measurement, 0, 0)
    return [row(MSE, 0.0)] + image_metrics(images, labels, spaces, row)


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
