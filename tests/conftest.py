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


def write_celeba(root: Path, n: int = 12, official: bool = True, size: tuple[int, int] = (218, 178)) -> Path:
    """Generated "faces" (a bright ellipse on a coloured background, JPEG, CelebA's 178x218)
    in torchvision's CelebA layout (``official``: with list_eval_partition.txt, the last
    quarter as test) or as a plain folder of PNGs. Returns the data root."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    folder = root / "celeba" / "img_align_celeba" if official else root
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    lines = []
    for i in range(n):
        background = torch.rand(3, 1, 1, generator=g)
        face = ((xx / 0.5) ** 2 + (yy / 0.7) ** 2 < 1).float() * torch.rand(3, 1, 1, generator=g)
        img = ((0.5 * background + 0.5 * face) * 255).to(torch.uint8)
        name = f"{i + 1:06d}.jpg" if official else f"face{i:03d}.png"
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / name)
        lines.append(f"{name} {2 if i >= n * 3 // 4 else 0}")
    if official:
        (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def inception_stand_in(path: Path) -> Path:
    """A weights file for torch-fidelity's Inception-v3 extractor with random weights (the
    real ones cannot be downloaded offline): exercises the real loading and feature path."""
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as inc

    with mock.patch.object(inc, "load_state_dict_from_url", lambda *a, **k: {}), mock.patch.object(
        inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None
    ):
        torch.manual_seed(0)
        random_net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(random_net.state_dict(), path)
    return path
