"""Run profiles: how much data, how many optimizer steps, seeds and evaluation images.

Profiles are defined in optimizer steps per layer (DESIGN.md: steps, not epochs, decide
whether a layer learns); they are turned into epochs of the training set actually loaded,
and every result row records the profile name, the training-set size and the steps used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Profile:
    """What one sweep trains and evaluates.

    steps: optimizer steps per layer, bottom first (hierarchies: layer k; VQ-VAE: model k).
    batch_size: images per step, one for every layer or one per layer (the last entry repeats).
    independent_steps: steps of every model of a system whose rates are independent models
        trained from pixels (VQ-VAE: model k runs all k blocks each step, so k times the work
        of a hierarchy's layer-k step); None: ``steps`` as for hierarchies.
    independent_batch: the batch of every such model; None: the bottom layer's batch.
    train_size: training images used, a class-balanced subset (None: the whole training split
        found, less any validation images held out of it).
    eval_size: test images evaluated (None: all 10k).
    validation_from: where the validation images come from: "test" (the test images the
        profile does not evaluate) or "train" (held out of the training split).
    validation_size: validation images; the learning curves use the first ``curve_images``.
    """

    name: str
    seeds: int
    steps: tuple[int, ...]
    batch_size: int | tuple[int, ...]
    train_size: int | None
    eval_size: int | None
    classifier_epochs: int
    description: str
    independent_steps: int | None = None
    independent_batch: int | None = None
    validation_from: str = "test"
    validation_size: int = 5000
    # Learning curves: held-out metrics at this many steps of every layer, on the first
    # ``curve_images`` images of the validation split.
    curve_points: int = 16
    curve_images: int = 256
    # Run the fused torch.compile kernels (quantizer pass, Mish): worth their ~30 s of
    # compiling per worker process on any real run, not on a seconds-long wiring check.
    compile: bool = True
    # Training steps of the context prior of every (system, seed 0, layer) in the files step
    # (benchmarks.files): ~90 s each at the 2048-bit layer on one busy core.
    context_steps: int = 300

    def layer_steps(self, num_layers: int, independent: bool = False) -> tuple[int, ...]:
        """Steps asked for each of ``num_layers`` layers (the last entry of ``steps`` repeats for
        deeper stacks, e.g. CelebA's 7), for a hierarchy or (``independent``) a family of models."""
        if independent and self.independent_steps is not None:
            return (self.independent_steps,) * num_layers
        return per_layer_steps(self.steps, num_layers)

    def layer_batches(self, num_layers: int, independent: bool = False) -> tuple[int, ...]:
        """Batch size of each layer; a family of independent models trains every model at
        ``independent_batch``, by default the bottom layer's batch (each of its steps runs from pixels)."""
        batches = (self.batch_size,) if isinstance(self.batch_size, int) else self.batch_size
        if independent:
            return (self.independent_batch or batches[0],) * num_layers
        return per_layer_steps(batches, num_layers)

    def epochs(self, n_train: int, num_layers: int, independent: bool = False) -> list[int]:
        """Epochs per layer giving at least the asked steps in full batches of ``n_train`` images."""
        return whole_epochs(self.layer_steps(num_layers, independent), n_train, self.layer_batches(num_layers, independent))[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_layer_steps(steps: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """``steps`` (or any per-layer values) for a stack of ``num_layers``: the last entry
    repeats for deeper stacks."""
    return tuple(steps[min(k, len(steps) - 1)] for k in range(num_layers))


def whole_epochs(
    steps: Sequence[int], n_train: int, batch_size: int | Sequence[int]
) -> tuple[list[int], list[int]]:
    """(epochs, steps actually taken) per layer when at least ``steps`` full batches of
    ``n_train`` images are run as whole epochs; ``batch_size``: one, or one per layer."""
    batches = [batch_size] * len(steps) if isinstance(batch_size, int) else list(batch_size)
    per_epoch = [max(1, n_train // b) for b in batches]
    epochs = [max(1, math.ceil(s / p)) for s, p in zip(steps, per_epoch)]
    return epochs, [e * p for e, p in zip(epochs, per_epoch)]


# The `paper` profile takes the reference code's training length (github.com/speechmatics/hqa and
# its public ports; the paper's text gives no epochs): 50 epochs per layer of the 60k MNIST
# training images at batch 512, i.e. 117 full batches per epoch. It differs from the reference
# code in other settings (learning rate, temperature, widths, ...): docs/profiles.md lists them.
PAPER_EPOCHS, PAPER_BATCH, MNIST_TRAIN_IMAGES = 50, 512, 60_000
PAPER_STEPS = PAPER_EPOCHS * (MNIST_TRAIN_IMAGES // PAPER_BATCH)  # 5,850

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            seeds=2,
            steps=(30, 10, 10, 10, 10),
            batch_size=32,
            train_size=512,
            eval_size=256,
            classifier_epochs=1,
            description="seconds: wiring check for CI, numbers meaningless",
            curve_points=3,
            curve_images=64,
            compile=False,
            validation_size=256,
            context_steps=5,
        ),
        Profile(
            name="quick",
            seeds=3,
            steps=(200, 250, 800, 1500, 6000),
            batch_size=128,
            train_size=5000,
            eval_size=5000,
            classifier_epochs=8,
            description="the whole MNIST pipeline on a 2-core CPU in about an hour and a half: 3 seeds, a fixed half "
            "of the test set (the other half is the validation split). The per-layer budget follows measured "
            "per-image costs (layer 1 costs 2.7 ms per image per step on one core; layers 4-5 are bound by "
            "per-step overhead, so they get the most steps); how it is spent was chosen on validation images, "
            "seeds 100-101 (results/experiments/decisions.md): batch 128 on every layer (layers 1-2 at the same "
            "images seen as batch 64), the top layer's 6,000 steps. Every layer is still improving at its last "
            "step on validation images: the profile is a budget, not convergence",
            independent_steps=350,
            independent_batch=64,
            curve_points=12,
        ),
        Profile(
            name="paper",
            seeds=10,
            steps=(PAPER_STEPS,) * 5,
            batch_size=PAPER_BATCH,
            train_size=None,
            eval_size=None,
            classifier_epochs=10,
            validation_from="train",
            validation_size=500,
            description=f"10 seeds, every training image found (less 500 held out for validation), all 10k test images; "
            f"the reference code's training length (speechmatics/hqa and its ports; the paper's text gives no epochs): "
            f"{PAPER_EPOCHS} epochs of 60k per layer at batch {PAPER_BATCH} ({MNIST_TRAIN_IMAGES // PAPER_BATCH} steps "
            f"per epoch: {PAPER_STEPS:,} steps); other settings differ from the reference code (docs/profiles.md); a GPU job",
        ),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
