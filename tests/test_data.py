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

    train, test = load_mnist(SHARED_MNIST)
    assert train.images.shape == (5000, 1, 32, 32) and test.images.shape == (10000, 1, 32, 32)
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == set(range(10))
    raw = MNIST(str(SHARED_MNIST), train=False).data
    assert torch.equal(test.images[:, 0, 2:30, 2:30], raw.float() / 255)  # every pixel exact
    assert test.images[:, :, :2].abs().sum() == 0 and test.images[:, :, :, 30:].abs().sum() == 0
    with pytest.raises(ValueError, match="padded"):
        load_mnist(SHARED_MNIST, size=31)
