"""The VQ-VAE family: one single-layer VQ-VAE per rate, on the shared backbones.

The same single-rate models, with vector-quantize-pytorch's FSQ or residual VQ in place of the
nearest-code quantizer, are the modern baselines (:func:`fsq_config`, :func:`rvq_config`;
the quantizers: :mod:`baselines.modern_quantizers`).

"Layer k" of this family is a separate VQ-VAE whose encoder chains the encoder blocks of
HQA layers 1..k (each reading the one below through a normalisation, as HQA's layers do)
and whose decoder chains decoder blocks k..1, again normalised between blocks where HQA
re-quantizes (see :func:`_chain_norm`), with one deterministic
nearest-code quantizer at the top (Eq. 2 loss, straight-through gradients). Built from the
very blocks of the HQA stack, its parameter count equals that of HQA layers 1..k minus the
k-1 lower codebooks (Section 6.1: "same compression ratio and approximate parameter count").

Codebook learning: moving-average (EMA) k-means updates with Eq. 2's commitment term, as
VQ-VAE codes are learnt in practice (Section 3.1; ``codebook_loss="ema"``; the textbook Eq. 2
gradient form stays available as ``codebook_loss="vq"``); every unused code is moved onto a
recent z_e (``code_reset``, ``reset_rule="all-unused"``) because a deep VQ-VAE otherwise
collapses to a few codes at these depths, and a collapsed baseline would be a straw man.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hqa.backbone import DecoderBlock, EncoderBlock
from hqa.config import LIBRARY_QUANTIZERS, HQAConfig
from hqa.layer import QuantizedAutoencoder
from hqa.quantize import Quantizer
from hqa.system import CompressionSystem, FitRun

from .modern_quantizers import library_quantizer


def vqvae_config(config: HQAConfig) -> HQAConfig:
    """The VQ-VAE version of a dataset preset: nearest-code quantizer, commitment loss and
    moving-average (EMA) k-means codebook updates, as VQ-VAE codes are learnt in practice
    (Section 3.1). Unused codes are all moved onto recent z_e (``reset_rule="all-unused"``):
    with the reference rule's one code per check, the 8-bit model ended its 390 quick-profile
    steps on 6 codes (held-out MSE 0.047); with this rule on 205 codes (0.038; one seed,
    results/experiments/issue14-vqvae-reset.md)."""
    return config.replace(quantizer="nearest", codebook_loss="ema", code_reset=True, reset_rule="all-unused")


def fsq_config(config: HQAConfig) -> HQAConfig:
    """The FSQ version of a dataset preset (Mentzer et al., 2023): single-rate models whose
    quantizer rounds ``fsq_levels`` projected scalars (no codebook, no codebook loss)."""
    return config.replace(quantizer="fsq", codebook_loss="vq", code_reset=False)


def rvq_config(config: HQAConfig) -> HQAConfig:
    """The residual-VQ version of a dataset preset: single-rate models whose quantizer is a
    stack of ``rvq_codes`` codebooks learnt as vector-quantize-pytorch recommends (EMA k-means,
    k-means init, dead-code expiry), with VQ-VAE's commitment weight ``vq_beta``."""
    return config.replace(quantizer="rvq", codebook_loss="vq", code_reset=False)


def _chain_norm(config: HQAConfig) -> nn.Module:
    """Normalisation between chained blocks. HQA's RunningNorm normalises a *frozen* lower
    layer's z_e; inside a chain trained end to end the statistics move every step, and
    normalising with lagging running statistics leaves a 15-conv chain untrainable (it
    learns only the mean image, even without quantization). So: batch statistics with
    gradients in training, running statistics in eval, i.e. BatchNorm without affine."""
    return nn.BatchNorm2d(config.code_dim, affine=False, momentum=config.norm_momentum)


def single_vqvae(config: HQAConfig, k: int) -> QuantizedAutoencoder:
    """The single-layer VQ-VAE with the downsampling of HQA layers 1..k: [B, C, H, W] -> codes [B, H/2^k, W/2^k]."""
    c = config.code_dim
    strides = config.layer_strides
    blocks: list[nn.Module] = []
    for i in range(k):
        if i > 0:  # as in the hierarchy, a block reads the z_e below normalised
            blocks.append(_chain_norm(config))
        blocks.append(EncoderBlock(config.channels if i == 0 else c, config.enc_widths[i], c, strides[i]))
    encoder = nn.Sequential(*blocks)
    decoder_blocks: list[nn.Module] = []
    for i in reversed(range(k)):
        decoder_blocks.append(DecoderBlock(c, config.dec_widths[i], config.channels if i == 0 else c, sigmoid=i == 0, stride=strides[i]))
        if i > 0:  # where HQA re-quantizes to unit-scale codes, re-normalise the signal
            decoder_blocks.append(_chain_norm(config))
    decoder = nn.Sequential(*decoder_blocks)
    quantizer = library_quantizer(config, k) if config.quantizer in LIBRARY_QUANTIZERS else Quantizer.for_layer(config, k)
    return QuantizedAutoencoder(encoder, quantizer, decoder, norm=None, target="pixels")


class VQVAE(CompressionSystem):
    """``num_layers`` independent VQ-VAEs, model k transmitting ``rates[k-1]`` bits."""

    kind = "VQVAE"
    independent_rates = True

    def __init__(self, config: HQAConfig, seed: int = 0) -> None:
        super().__init__(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.models = nn.ModuleList(single_vqvae(config, k) for k in range(1, config.num_layers + 1))
        self.eval()

    def _quantizer(self, layer: int) -> Quantizer:  # or a LibraryQuantizer (FSQ, residual VQ)
        return self.models[layer - 1].quantizer

    def _z_e(self, x: Tensor, layer: int) -> Tensor:
        return self.models[layer - 1].encoder(x)

    def _decode_from(self, z_q: Tensor, layer: int, generator: torch.Generator | None) -> Tensor:
        return self.models[layer - 1].decoder(z_q)

    def _fit_layer(self, k: int, images: Tensor, epochs: int, run: FitRun) -> dict[str, Any]:
        model, cfg = self.models[k - 1], self.config

        def step_loss(batch: Tensor, temperature: float, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
            return model.objective(batch, batch, cfg, temperature, gen)

        return self._train_unit(model, lambda: single_vqvae(cfg, k), step_loss, images.to(run.device), k, epochs, run)
