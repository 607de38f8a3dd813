import os
from pathlib import Path

import pytest
import torch

from hqa import DataNotFoundError, load_mnist
from hqa.data import resolve_root

from conftest import SHARED_MNIST

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="offline MNIST not beside the checkout")


def test_missing_data_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=f"MNIST not found under {tmp_path}.*HQA_DATA_ROOT"):
        load_mnist(tmp_path)


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HQA_DATA_ROOT", str(tmp_path))
    assert resolve_root(None) == tmp_path
    assert resolve_root("/elsewhere") == Path("/elsewhere")


@needs_mnist
def test_offline_mnist_is_padded_exactly() -> None:
    from torchvision.datasets import MNIST

    train, test = load_mnist(SHARED_MNIST, preprocess="pad")
    assert train.images.shape == (5000, 1, 32, 32) and test.images.shape == (10000, 1, 32, 32)
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == set(range(10))
    raw = MNIST(str(SHARED_MNIST), train=False).data
    assert torch.equal(test.images[:, 0, 2:30, 2:30], raw.float() / 255)  # every pixel exact
    assert test.images[:, :, :2].abs().sum() == 0 and test.images[:, :, :, 30:].abs().sum() == 0
    assert "zero-padded" in test.source
    with pytest.raises(ValueError, match="padded"):
        load_mnist(SHARED_MNIST, size=31, preprocess="pad")


def _mnist_root() -> Path | None:
    """$HQA_DATA_ROOT when it holds torchvision's MNIST files, else the offline copy beside
    the checkout, else None."""
    env = os.environ.get("HQA_DATA_ROOT")
    for root in ([Path(env)] if env else []) + [SHARED_MNIST]:
        if (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
            return root
    return None


MNIST_ROOT = _mnist_root()
needs_mnist_root = pytest.mark.skipif(
    MNIST_ROOT is None, reason="no MNIST under $HQA_DATA_ROOT or beside the checkout (../shared/data/mnist-5k)")


@needs_mnist_root
def test_offline_mnist_is_resized_by_default_as_the_reference_code() -> None:
    """The default equals the reference code's preprocessing, torchvision's PIL
    ``transforms.Resize(32)`` (bilinear) of the 28x28 digits, on 300 real test digits. PIL
    rounds its output to uint8, the suite keeps floats, so they differ by at most one grey
    level (1/255) per pixel, and on average by much less (stated: max |diff| <= 1/255 + 1e-6,
    mean |diff| < 0.15/255, under 10% of pixels more than half a level apart)."""
    import numpy as np
    from torchvision import transforms
    from torchvision.datasets import MNIST

    _, test = load_mnist(MNIST_ROOT)
    digits = MNIST(str(MNIST_ROOT), train=False)
    resize = transforms.Resize(32)  # PIL bilinear, as the reference code
    n = 300
    reference = torch.stack([torch.from_numpy(np.array(resize(digits[i][0]))) for i in range(n)]).float() / 255
    diff = (test.images[:n, 0] - reference).abs()
    assert float(diff.max()) <= 1 / 255 + 1e-6
    assert float(diff.mean()) < 0.15 / 255
    assert float((diff > 0.5 / 255).float().mean()) < 0.10
    assert test.images.shape == (10000, 1, 32, 32)
    assert 0.0 <= float(test.images.min()) and float(test.images.max()) <= 1.0
    padded_zeros = (load_mnist(MNIST_ROOT, preprocess="pad")[1].images == 0).float().mean()
    assert (test.images == 0).float().mean() < padded_zeros - 0.05
    assert "resized" in test.source
    with pytest.raises(ValueError, match="preprocessing"):
        load_mnist(MNIST_ROOT, preprocess="crop")


def test_celeba_official_layout_split_crop_and_range(tmp_path: Path) -> None:
    from conftest import write_celeba

    from hqa.data import load_celeba

    train, test = load_celeba(write_celeba(tmp_path, n=12), size=64)
    assert train.images.shape == (9, 3, 64, 64) and test.images.shape == (3, 3, 64, 64)  # partition 0 / 2
    assert "official CelebA split" in train.source and (train.labels == -1).all()
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    # centre crop: the ellipse (face) fills the middle, the corners are background
    centre, corner = train.images[:, :, 28:36, 28:36].mean(), train.images[:, :, :4, :4].mean()
    assert not torch.isclose(centre, corner)


def test_celeba_plain_folder_and_clear_errors(tmp_path: Path) -> None:
    from conftest import write_celeba

    from hqa.data import load_celeba

    root = write_celeba(tmp_path / "faces", n=10, official=False, size=(64, 64))
    train, test = load_celeba(root, size=32)
    assert len(train) == 9 and len(test) == 1 and train.images.shape[1:] == (3, 32, 32)
    with pytest.raises(DataNotFoundError, match="CelebA not found under .*nowhere"):
        load_celeba(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="CelebA not found"):
        load_celeba(tmp_path / "empty")


def test_celeba_corrupt_image_is_named(tmp_path: Path) -> None:
    from conftest import write_celeba

    from hqa.data import load_celeba

    root = write_celeba(tmp_path, n=6, official=False, size=(64, 64))
    (root / "face000.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*face000.png"):
        load_celeba(root)
