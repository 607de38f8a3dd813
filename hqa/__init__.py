"""Hierarchical Quantized Autoencoders (Williams, Ringer et al., NeurIPS 2020) as a library.

    from hqa import HQA, HQAConfig, load_mnist
    train, test = load_mnist(root=None, size=32)
    model = HQA(HQAConfig.mnist()).fit(train.images, epochs=2, batch_size=64, seed=0)
    x_hat = model.reconstruct(test.images[:8], layer=5, generator=torch.Generator().manual_seed(0))
"""

from .backbone import DecoderBlock, EncoderBlock, count_parameters
from .config import HQAConfig
from .data import DataNotFoundError, ImageSet, load_mnist
from .hierarchy import HQA
from .system import CompressionSystem, resolve_device
from .quantize import Quantizer

__all__ = [
    "HQA",
    "HQAConfig",
    "load_mnist",
    "ImageSet",
    "DataNotFoundError",
    "Quantizer",
    "EncoderBlock",
    "DecoderBlock",
    "count_parameters",
    "resolve_device",
    "CompressionSystem",
]
__version__ = "0.1.0"
