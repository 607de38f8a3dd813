"""Shared fixtures: tiny configs and synthetic images (no network, no real data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hqa import HQAConfig

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-5k"


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_config() -> HQAConfig:
    """8x8 grey images, 3 layers (4x4, 2x2, 1x1 latents), 8 codes of dimension 4."""
    return HQAConfig(
        image_size=8,
        channels=1,
        num_layers=3,
        codebook_size=8,
        code_dim=4,
        enc_widths=(4, 4, 4),
        dec_widths=(4, 4, 4),
        lr=3e-3,
    )


def blobs(n: int, size: int = 8, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """[n, channels, size, size] images in [0, 1]: a bright square at a random place."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, channels, size, size)
    for i in range(n):
        r, c = torch.randint(0, size - size // 4 + 1, (2,), generator=g).tolist()
        x[i, :, r : r + size // 4, c : c + size // 4] = 1.0
    return x


@pytest.fixture
def tiny_images() -> torch.Tensor:
    return blobs(64)


@pytest.fixture
def mnist_images() -> torch.Tensor:
    """16 synthetic MNIST-shaped images [16, 1, 32, 32]."""
    return blobs(16, size=32)
