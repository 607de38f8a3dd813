"""Conv backbones shared by every system in the suite (HQA, HAMs, VQ-VAE).

One encoder block halves height and width; one decoder block doubles them. A single HQA
layer is one encoder block and one decoder block; the VQ-VAE of rate k chains k of each,
so every system is built from the same parts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .activation import Mish


class EncoderBlock(nn.Module):
    """[B, in_ch, H, W] -> [B, out_ch, H/s, W/s], s = ``stride`` (2, or 1 to keep the size).

    Strided 4x4 conv (halves h and w; a 3x3 conv when s = 1), Mish, 3x3 conv, Mish, 1x1
    projection to ``out_ch`` (the code dimension D when the block feeds a quantizer).
    """

    def __init__(self, in_ch: int, width: int, out_ch: int, stride: int = 2) -> None:
        super().__init__()
        first = (
            nn.Conv2d(in_ch, width, kernel_size=4, stride=2, padding=1)
            if stride == 2
            else nn.Conv2d(in_ch, width, kernel_size=3, padding=1)
        )
        self.net = nn.Sequential(
            first,
            Mish(),
            nn.Conv2d(width, width, kernel_size=3, padding=1),
            Mish(),
            nn.Conv2d(width, out_ch, kernel_size=1),
        )
        self.to(memory_format=torch.channels_last)  # ~1.5x faster convs on CPU (oneDNN), measured

    @property
    def projection(self) -> nn.Conv2d:
        """The final 1x1 conv that sets the scale of z_e."""
        return self.net[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class DecoderBlock(nn.Module):
    """[B, in_ch, h, w] -> [B, out_ch, s*h, s*w], s = ``stride`` (2, or 1 to keep the size).

    3x3 conv, Mish, nearest-neighbour upsample x2 (when s = 2), 3x3 conv, Mish, 3x3 output conv. The
    output is linear (a lower layer's z_e, or logits) unless ``sigmoid`` is set, which the
    bottom layer uses to give pixels in [0, 1]. ``out_kernel=1`` makes the output a per-position
    linear map (used for logits over K codes, which would otherwise dominate the parameter count).
    """

    def __init__(
        self, in_ch: int, width: int, out_ch: int, sigmoid: bool = False, out_kernel: int = 3, stride: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, width, kernel_size=3, padding=1),
            Mish(),
            nn.Upsample(scale_factor=2, mode="nearest") if stride == 2 else nn.Identity(),
            nn.Conv2d(width, width, kernel_size=3, padding=1),
            Mish(),
            nn.Conv2d(width, out_ch, kernel_size=out_kernel, padding=out_kernel // 2),
        ]
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CodeEmbedding(nn.Module):
    """Code indices [B, h, w] -> [B, dim, h, w]: a learned embedding of each of ``codes``
    codes, i.e. a 1x1 conv over the one-hot codes. The input stage of a HAMs level, whose
    encoder reads the discrete codes of the level below (De Fauw et al., 2019)."""

    def __init__(self, codes: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(codes, dim)

    def forward(self, codes: Tensor) -> Tensor:
        return self.embed(codes).permute(0, 3, 1, 2)  # channels-last strides, as the convs prefer


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters())
