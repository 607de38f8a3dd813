"""Input validation shared by every system: one clear ValueError before any computation."""

from __future__ import annotations

import torch
from torch import Tensor


def check_images(x: Tensor, channels: int, size: int) -> None:
    """Raise ValueError unless ``x`` is a float tensor [B, channels, size, size] in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(
            f"images must have shape [B, {channels}, {size}, {size}], got {list(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not x.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype}")
    lo, hi = torch.aminmax(x.detach())
    if lo < 0 or hi > 1 or torch.isnan(lo) or torch.isnan(hi):
        raise ValueError(f"image values must lie in [0, 1], got range [{lo.item():.4g}, {hi.item():.4g}]")


def check_layer(layer: int, num_layers: int) -> None:
    """Raise ValueError unless 1 <= layer <= num_layers."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= num_layers:
        raise ValueError(f"layer must be an integer in 1..{num_layers}, got {layer!r}")


def check_codes(codes: Tensor, size: int, codebook_size: int) -> None:
    """Raise ValueError unless ``codes`` is an integer tensor [B, size, size] in [0, K)."""
    if not isinstance(codes, Tensor) or codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"codes must be an integer tensor, got {getattr(codes, 'dtype', type(codes).__name__)}")
    if codes.dim() != 3 or tuple(codes.shape[1:]) != (size, size):
        raise ValueError(f"codes must have shape [B, {size}, {size}], got {list(codes.shape)}")
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= codebook_size:
        raise ValueError(f"codes must lie in [0, {codebook_size}), got range [{lo}, {hi}]")


def check_continuous(z: Tensor, code_dim: int, size: int) -> None:
    """Raise ValueError unless ``z`` is a float tensor [B, code_dim, size, size]."""
    if not isinstance(z, Tensor) or not z.is_floating_point():
        raise ValueError("z must be a floating-point torch.Tensor")
    if z.dim() != 4 or tuple(z.shape[1:]) != (code_dim, size, size):
        raise ValueError(f"z must have shape [B, {code_dim}, {size}, {size}], got {list(z.shape)}")
