"""One quantized autoencoder: a layer of the hierarchy, or a single-layer VQ-VAE.

Layer 1 reads pixels and decodes to pixels (sigmoid). Layer k >= 2 either reads the lower
layer's z_e normalised by its own running statistics and decodes to that normalised z_e
(target "mse", Section 5.2.2: HQA, HAMs + MSE), or reads the lower layer's discrete codes
and decodes to logits over them (target "ce": HAMs, whose levels model the codes below).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import CodeEmbedding, DecoderBlock, EncoderBlock
from .config import HQAConfig
from .normalize import RunningNorm
from .quantize import Quantizer


class QuantizedAutoencoder(nn.Module):
    """encoder -> quantizer -> decoder, trained as one unit: a layer of a hierarchy or a
    whole single-layer VQ-VAE.

    ``norm`` (layers >= 2 of a hierarchy) normalises the lower z_e it reads. ``target`` says
    what the decoder reconstructs: "pixels", the normalised lower z_e ("mse") or logits
    over the lower layer's codes ("ce"); a "ce" layer's encoder reads those codes
    (LongTensor [B, h, w]) rather than a z_e.
    """

    def __init__(
        self,
        encoder: nn.Module,
        quantizer: Quantizer,
        decoder: nn.Module,
        norm: RunningNorm | None = None,
        target: str = "pixels",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.norm = norm
        self.target = target
        # Set when training starts; the next objective() call then only runs data_init on its
        # inputs (train_stage passes it the initialisation batch; see there).
        self.pending_init = False

    @property
    def reads_codes(self) -> bool:
        """Whether the encoder reads the lower layer's code indices (HAMs levels) rather than a z_e."""
        return self.target == "ce"

    @torch.no_grad()
    def data_init(self, inputs: Tensor, latent_std: float, generator: torch.Generator | None) -> None:
        """Data-dependent initialisation from the initialisation batch (encoder inputs).

        Eq. 3 has no temperature, so the scale of z_e decides how peaked q is: at default
        init z_e varies ~0.01 across images, q is uniform over any codebook near the data,
        and training sits on a plateau for hundreds of steps. So the encoder's last 1x1 conv
        is rescaled to give z_e a per-channel std of ``latent_std`` over the batch, and the
        codebook is set to K of the resulting z_e (Quantizer.init_from_data).
        """
        projection = _projection(self.encoder)
        z_e = self.encoder(inputs)
        std = z_e.std(dim=(0, 2, 3)).clamp_min(1e-8)  # [D]
        projection.weight.mul_((latent_std / std)[:, None, None, None])
        z_e = self.encoder(inputs)
        self.quantizer.init_from_data(z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]), generator)

    def normalize(self, lower_z_e: Tensor) -> Tensor:
        """The encoder's input: pixels at layer 1, the normalised lower z_e above."""
        return lower_z_e if self.norm is None else self.norm(lower_z_e)

    def objective(
        self,
        inputs: Tensor,
        target: Tensor,
        config: HQAConfig,
        temperature: float,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss of one batch: reconstruction + the codebook terms.

        ``inputs``: the encoder input [B, C, H, W], or the lower code indices [B, H, W] (target
        "ce"). ``target``: pixels (layer 1), the normalised lower z_e (target "mse") or the
        lower code indices [B, H, W] (target "ce").
        Reconstruction is a mean per element (the reference code's ``recon / dims``); the
        Eq. 4 terms are per-image sums divided by the same number of dims, weighted 1e-3.
        """
        if self.pending_init:  # the initialisation batch: no loss, no quantizer or EMA update
            self.data_init(inputs, config.latent_init_std, generator)
            self.pending_init = False
            return inputs.new_zeros((), dtype=torch.float32), {}
        z_e = self.encoder(inputs)
        q = self.quantizer(z_e, temperature, generator)
        out = self.decoder(q.z_q)
        recon = F.cross_entropy(out, target) if self.target == "ce" else F.mse_loss(out, target)
        dims = target[0].numel()
        # Eq. 4 (probabilistic) or Eq. 2 (vq); the unused terms are zeros.
        codebook = (config.entropy_weight * q.kl + config.commit_weight * q.commit).mean() / dims + q.vq
        loss = recon + codebook
        return loss, {"recon": recon.detach(), "kl": q.kl.detach().mean() / dims}


def _projection(encoder: nn.Module) -> nn.Module:
    """The last 1x1 projection of an encoder: the ``projection`` of its last block that has
    one (a block itself, or the top block of a chain such as the VQ-VAE's)."""
    blocks = [m for m in encoder.modules() if hasattr(m, "projection")]
    if not blocks:
        raise ValueError(f"{type(encoder).__name__} has no block with a `projection` layer to rescale")
    return blocks[-1].projection


def hqa_layer(config: HQAConfig, index: int) -> QuantizedAutoencoder:
    """Layer ``index`` (1 = bottom) of a hierarchy built from ``config``: one encoder block,
    one decoder block (sigmoid at the bottom), and, above the bottom, a running norm."""
    c = config.code_dim
    if index == 1:
        in_ch, out_ch, target = config.channels, config.channels, "pixels"
    else:
        in_ch, target = c, config.target
        out_ch = config.codes(index - 1) if target == "ce" else c
    encoder: nn.Module = EncoderBlock(in_ch, config.enc_widths[index - 1], c, stride=config.layer_strides[index - 1])
    if target == "ce":  # HAMs: the level encodes the lower level's codes, embedded
        encoder = nn.Sequential(CodeEmbedding(config.codes(index - 1), c), encoder)
    return QuantizedAutoencoder(
        encoder,
        Quantizer.for_layer(config, index),
        DecoderBlock(
            c,
            config.dec_widths[index - 1],
            out_ch,
            sigmoid=index == 1,
            out_kernel=1 if target == "ce" else 3,
            stride=config.layer_strides[index - 1],
        ),
        RunningNorm(c, config.norm_momentum) if index > 1 and target != "ce" else None,
        target,
    )
