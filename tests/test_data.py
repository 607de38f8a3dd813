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


def test_offline_mnist_is_resized_by_default_as_the_reference_code() -> None:
    """The default stretches the digit over 32x32 (bilinear, torchvision's Resize), so far
    fewer pixels are trivially zero than with padding, and values stay in [0, 1]."""
    from torchvision.datasets import MNIST
    from torchvision.transforms.v2.functional import resize

    _, test = load_mnist(SHARED_MNIST)
    raw = MNIST(str(SHARED_MNIST), train=False).data[:5]
    expected = resize(raw.float().unsqueeze(1) / 255, [32, 32], antialias=True).clamp(0, 1)
    torch.testing.assert_close(test.images[:5], expected)
    assert 0.0 <= float(test.images.min()) and float(test.images.max()) <= 1.0
    padded_zeros = (load_mnist(SHARED_MNIST, preprocess="pad")[1].images == 0).float().mean()
    assert (test.images == 0).float().mean() < padded_zeros - 0.05
    assert "resized" in test.source
    with pytest.raises(ValueError, match="preprocessing"):
        load_mnist(SHARED_MNIST, preprocess="crop")


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
