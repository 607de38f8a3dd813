"""The HAMs family (Table 3's ablation rows) as presets of the one HQA hierarchy class.

The switches live in :class:`hqa.HQAConfig` so that ``hqa`` never depends on this package:

| system       | quantizer            | target of layers >= 2 | codebook loss       |
| ------------ | -------------------- | --------------------- | ------------------- |
| hams         | nearest              | ce (lower code index) | vq (Eq. 2)          |
| hams-gs      | gumbel + code reset  | ce                    | vq                  |
| hams-mse     | nearest              | mse (lower z_e)       | vq                  |
| hams-gs-mse  | gumbel + code reset  | mse                   | vq                  |
| hqa          | gumbel + code reset  | mse                   | probabilistic (Eq. 4) |
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
