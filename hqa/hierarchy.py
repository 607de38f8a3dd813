"""The HQA stack: greedy layer-wise training and Algorithm 1's stochastic decode path.

The same class builds every member of the HAMs family; the config's three switches pick
the row of Table 3 (see :mod:`hqa.config`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import HQAConfig
from .layer import QuantizedAutoencoder, hqa_layer
from .quantize import Quantizer, categorical_sample
from .system import CURVE_SEED, CompressionSystem, FitRun

LayerFactory = Callable[[HQAConfig, int], QuantizedAutoencoder]


class HQA(CompressionSystem):
    """A greedy hierarchy of quantized autoencoders (HQA and, by config, the HAMs family).

    Images are float tensors [B, C, H, W] in [0, 1]; ``layer`` counts from 1 at the bottom;
    layer k transmits ``rates[k-1]`` bits per image. The frozen stack's z_e of the training
    set is computed once per layer and kept on the training device when it fits in
    ``cache_bytes``; otherwise it is recomputed per batch. ``layer_factory(config, k)``
    builds layer k (default: the conv blocks of :func:`hqa.layer.hqa_layer`); any
    :class:`QuantizedAutoencoder` works, e.g. the small MLPs of the toy experiment.
    """

    kind = "HQA"

    def __init__(
        self,
        config: HQAConfig,
        seed: int = 0,
        cache_bytes: int = 2**31,
        layer_factory: LayerFactory = hqa_layer,
    ) -> None:
        super().__init__(config)
        self.cache_bytes = cache_bytes
        self.layer_factory = layer_factory
        with torch.random.fork_rng(devices=[]):  # initialisation leaves the global RNG alone
            torch.manual_seed(seed)
            self.layers = nn.ModuleList(layer_factory(config, k) for k in range(1, config.num_layers + 1))
        self.eval()

    def layer(self, k: int) -> QuantizedAutoencoder:
        """Layer ``k`` (1 = bottom)."""
        return self.layers[k - 1]

    # ---- the three pieces CompressionSystem needs ----
    def _quantizer(self, layer: int) -> Quantizer:
        return self.layers[layer - 1].quantizer

    def _z_e(self, x: Tensor, layer: int) -> Tensor:
        """Raw z_e of ``layer``: each layer encodes the normalised z_e of the one below, or
        (HAMs, target "ce") its most probable codes."""
        h = x
        for k in range(1, layer + 1):
            h = self._encode_step(h, k)
        return h

    def _encode_step(self, lower_z_e: Tensor, k: int) -> Tensor:
        """Layer k's z_e from the raw z_e of layer k-1 (pixels for k = 1). A layer that reads
        codes gets the lower layer's most probable code."""
        lay = self.layers[k - 1]
        if lay.reads_codes:
            return lay.encoder(self.layers[k - 2].quantizer.quantize(lower_z_e))
        return lay.encoder(lay.normalize(lower_z_e))

    def _decode_from(self, z_q: Tensor, layer: int, generator: torch.Generator | None) -> Tensor:
        """Algorithm 1, lines 6-8, repeated down the stack: decode, un-normalise, quantize
        with the lower layer's posterior (a sample when ``generator`` is given), decode
        again, down to pixels."""
        for k in range(layer, 1, -1):
            lay, lower = self.layers[k - 1], self.layers[k - 2]
            out = lay.decoder(z_q)
            if lay.target == "ce":  # logits over the lower codes (HAMs)
                scores = out.permute(0, 2, 3, 1)
                if lower.quantizer.stochastic and generator is not None:
                    flat = scores.reshape(-1, scores.shape[-1])
                    codes = categorical_sample(flat, generator).view(scores.shape[:-1])
                else:
                    codes = scores.argmax(dim=-1)
            else:  # an estimate of the lower z_e (Section 5.2.2)
                codes = lower.quantizer.quantize(lay.norm.inverse(out), generator)
            z_q = lower.quantizer.lookup(codes)
        return self.layers[0].decoder(z_q)

    def _fit_layer(self, k: int, images: Tensor, epochs: int, run: FitRun) -> dict[str, Any]:
        """Train layer k on the frozen stack below it (Section 5.2.2)."""
        cfg = self.config
        lay = self.layers[k - 1]
        data, cached = self._stage_data(images, k, run.device)

        def step_loss(batch: Tensor, temperature: float, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
            if k == 1:
                return lay.objective(batch, batch, cfg, temperature, gen)
            if not cached:
                with torch.no_grad():
                    batch = self._z_e(batch, k - 1)
            inputs, target = self._layer_io(batch, k, gen)
            return lay.objective(inputs, target, cfg, temperature, gen)

        return self._train_unit(lay, lambda: self.layer_factory(cfg, k), step_loss, data, k, epochs, run)

    def _layer_io(self, lower_z_e: Tensor, k: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(encoder input, reconstruction target) of layer k >= 2 for the raw lower z_e:
        the normalised z_e twice (Section 5.2.2), or (HAMs) the lower layer's codes twice:
        a posterior sample (GS, with ``generator``) or the nearest code (deterministic)."""
        lay, lower = self.layers[k - 1], self.layers[k - 2]
        if lay.target == "ce":
            codes = lower.quantizer.quantize(lower_z_e, generator if lower.quantizer.stochastic else None)
            return codes, codes
        inputs = lay.normalize(lower_z_e)
        return inputs, inputs

    @torch.no_grad()
    def _heldout_metrics(self, k: int, images: Tensor) -> dict[str, float]:
        """Pixel MSE (see the base class) and, above the bottom, layer k's error in its own
        target space: MSE to the normalised lower z_e, or cross-entropy (nats) over the lower
        layer's most probable codes (HAMs; what a level reads at test time), decoded from a
        sampled (stochastic) or nearest code of layer k, with a fixed seed."""
        out = super()._heldout_metrics(k, images)
        if k == 1:
            return out
        lay = self.layers[k - 1]
        gen = torch.Generator(device=self.device).manual_seed(CURVE_SEED + 100 + k)
        inputs, target = self._layer_io(self._z_e(images.to(self.device), k - 1), k, None)
        out_k = lay.decoder(lay.quantizer.lookup(lay.quantizer.quantize(lay.encoder(inputs), gen)))
        if lay.target == "ce":
            out["heldout_target_ce"] = float(F.cross_entropy(out_k, target))
        else:
            out["heldout_target_mse"] = float(F.mse_loss(out_k, target))
        return out

    @torch.no_grad()
    def _stage_data(self, images: Tensor, k: int, device: torch.device) -> tuple[Tensor, bool]:
        """Training inputs of layer k: pixels, or the frozen stack's raw z_e of layer k-1."""
        if k == 1:
            return images.to(device), False
        size = self.config.latent_size(k - 1)
        if len(images) * self.config.code_dim * size * size * 4 > self.cache_bytes:
            return images.to(device), False
        chunks = [self._z_e(images[i : i + 1024].to(device), k - 1) for i in range(0, len(images), 1024)]
        return torch.cat(chunks), True

    def adopt_bottom(self, other: "HQA") -> None:
        """Take ``other``'s trained layer 1 as this model's layer 1.

        Allowed only when layer 1 is built and trained identically in both, i.e. the configs
        differ at most in ``target`` (used by layers >= 2 only): then it is exactly the layer
        this model would train itself for the same seed and epochs.
        """
        if other.trained_layers < 1:
            raise ValueError("the other model has no trained layer 1")
        if self.config.replace(target=other.config.target) != other.config:
            raise ValueError("layer 1 of these configs is not trained identically; cannot share it")
        self.to(other.device)
        self.layers[0].load_state_dict(other.layers[0].state_dict())
        self.trained.fill_(max(1, self.trained_layers))
        self.fit_log = [dict(other.fit_log[0], shared_from=other.config.target)] if other.fit_log else []
