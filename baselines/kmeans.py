"""Classical baseline: patch k-means vector quantization at every rate.

At layer k an image is cut into non-overlapping p x p patches (p = the downsampling of
layer k, so the grid is that of the learned systems' latents), and one codebook of K patches
is learned with scikit-learn's k-means (Lloyd's algorithm; MiniBatchKMeans for large
patch sets) on the training patches. A K-point quantizer of patch space, it is the MSE floor
that any deterministic K-code system approaches at the 1x1 layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hqa.config import HQAConfig
from hqa.quantize import Quantizer
from hqa.system import CompressionSystem, FitRun

# Above this many patches, MiniBatchKMeans; below, full Lloyd iterations (KMeans).
FULL_KMEANS_MAX = 50_000


class KMeansVQ(CompressionSystem):
    """Patch k-means at each rate: codes [B, h, w] index K centroids of dimension C * p * p."""

    kind = "KMeansVQ"

    def __init__(self, config: HQAConfig, seed: int = 0) -> None:
        super().__init__(config)
        self.codebooks = nn.ModuleList(
            Quantizer(config.codes(k), self._latent_dim(k), "nearest", "vq") for k in range(1, config.num_layers + 1)
        )
        self.requires_grad_(False)
        self.eval()

    def patch(self, layer: int) -> int:
        """Side p of layer ``layer``'s square patches."""
        return math.prod(self.config.layer_strides[:layer])

    def _latent_dim(self, layer: int) -> int:
        return self.config.channels * self.patch(layer) ** 2

    def _quantizer(self, layer: int) -> Quantizer:
        return self.codebooks[layer - 1]

    def _z_e(self, x: Tensor, layer: int) -> Tensor:
        """Patch vectors [B, C*p*p, h, w] of images [B, C, H, W]."""
        p, h = self.patch(layer), self.config.latent_size(layer)
        return F.unfold(x, kernel_size=p, stride=p).view(x.shape[0], -1, h, h)

    def _decode_from(self, z_q: Tensor, layer: int, generator: torch.Generator | None) -> Tensor:
        """Paste patch vectors back: [B, C*p*p, h, w] -> [B, C, H, W] (the generator is ignored)."""
        p, size = self.patch(layer), self.config.image_size
        return F.fold(z_q.flatten(2), (size, size), kernel_size=p, stride=p).clamp(0, 1)

    def _fit_layer(self, k: int, images: Tensor, epochs: int, run: FitRun) -> dict[str, Any]:
        """k-means on every training patch of layer k; ``epochs`` and the batch size are unused
        (Lloyd's algorithm runs to convergence), and there is no learning curve."""
        seed = run.seed
        from sklearn.cluster import KMeans, MiniBatchKMeans

        with torch.no_grad():
            z = self._z_e(images.cpu(), k)
        patches = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double().numpy()
        n_codes = self.config.codes(k)
        if len(patches) < n_codes:  # fewer patches than codes: repeat them (duplicates are harmless)
            patches = np.resize(patches, (n_codes, patches.shape[1]))
        if len(patches) <= FULL_KMEANS_MAX:
            km = KMeans(n_clusters=n_codes, n_init=1, random_state=seed).fit(patches)
        else:
            km = MiniBatchKMeans(n_clusters=n_codes, batch_size=4096, n_init=1, random_state=seed).fit(patches)
        centroids = torch.from_numpy(np.asarray(km.cluster_centers_, dtype=np.float32))
        self.codebooks[k - 1].codebook.data.copy_(centroids.to(self.codebooks[k - 1].codebook.device))
        return {"steps": int(km.n_iter_), "batch_size": 0, "inertia_per_patch": float(km.inertia_) / len(patches)}
