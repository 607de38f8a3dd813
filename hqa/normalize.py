"""Running normalisation of the lower layer's z_e (Section 5.2.2, Algorithm 1).

A higher layer reads the lower layer's z_e normalised per channel by running statistics
gathered during its training (frozen in eval), and its decoder output is mapped back with
the inverse before the lower layer's posterior quantizes it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningNorm(nn.Module):
    """Per-channel (x - mean) / std over [B, C, h, w] with running statistics.

    In training mode each call folds the batch's statistics into the running ones
    (exponential moving average with ``momentum``; the first batch sets them); in eval
    mode the statistics are frozen. Both modes normalise with the running statistics, so
    the target a higher layer learns is the same function in training and evaluation.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the statistics of ``x`` [B, C, h, w] into the running ones."""
        var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), unbiased=False)
        m = torch.where(self.count > 0, torch.full_like(self.mean, self.momentum), torch.ones_like(self.mean))
        self.mean.lerp_(mean, m)
        self.var.lerp_(var, m)
        self.count += 1

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.update(x)
        return (x - self.mean[None, :, None, None]) / torch.sqrt(self.var[None, :, None, None] + self.eps)

    def inverse(self, y: Tensor) -> Tensor:
        """Undo :meth:`forward` with the current statistics: [B, C, h, w] -> [B, C, h, w]."""
        return y * torch.sqrt(self.var[None, :, None, None] + self.eps) + self.mean[None, :, None, None]
