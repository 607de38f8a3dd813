"""The HAMs family (Table 3's ablation rows) as presets of the one HQA hierarchy class.

The switches live in :class:`hqa.HQAConfig` so that ``hqa`` never depends on this package:

| system       | quantizer            | target of layers >= 2 | codebook loss       |
| ------------ | -------------------- | --------------------- | ------------------- |
| hams         | nearest              | ce (lower code index) | vq (Eq. 2)          |
| hams-gs      | gumbel + code reset  | ce                    | vq                  |
| hams-mse     | nearest              | mse (lower z_e)       | vq                  |
| hams-gs-mse  | gumbel + code reset  | mse                   | vq                  |
| hqa          | gumbel + code reset  | mse                   | probabilistic (Eq. 4) |

The Gumbel rows with Eq. 2 (hams-gs, hams-gs-mse) start their temperature where HQA does, at
3.0 (see :class:`hqa.HQAConfig`), chosen on validation images, seeds 100-101, by the rule HQA's
start was chosen by: the lower mean 8-bit class error (results/experiments/decisions.md). HAMs +
GS: 3.0 82.8% against the reference code's 0.667 84.3% (0.667 collapsed to chance from 512 bits
up on seed 100, and was ahead at every rate on seed 101); HAMs + GS + MSE: 26.0% against 29.5%
(3.0 ahead at 32 and 8 bits on both seeds, 0.667 at 128 bits). An earlier one-seed comparison on
test images had gone the other way (results/experiments/issue13-temperature.md). Each system got
the same two starts on the same two seeds.
"""

from __future__ import annotations

from hqa.config import HQAConfig

SWITCHES: dict[str, dict[str, object]] = {
    "hams": dict(quantizer="nearest", target="ce", codebook_loss="vq", code_reset=False),
    "hams-gs": dict(quantizer="gumbel", target="ce", codebook_loss="vq", code_reset=True),
    "hams-mse": dict(quantizer="nearest", target="mse", codebook_loss="vq", code_reset=False),
    "hams-gs-mse": dict(quantizer="gumbel", target="mse", codebook_loss="vq", code_reset=True),
    "hqa": dict(quantizer="gumbel", target="mse", codebook_loss="probabilistic", code_reset=True),
}


def hams_config(variant: str, base: HQAConfig) -> HQAConfig:
    """``base`` (a dataset preset) with the switches of Table 3's row ``variant``."""
    if variant not in SWITCHES:
        raise ValueError(f"unknown HAMs variant {variant!r}; known: {sorted(SWITCHES)}")
    return base.replace(**SWITCHES[variant])
