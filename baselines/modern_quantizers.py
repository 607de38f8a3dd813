"""FSQ and residual VQ from vector-quantize-pytorch, behind the suite's quantizer interface.

Two quantizers that came after HQA, taken from the field's maintained implementation
(lucidrains/vector-quantize-pytorch) rather than written again:

- :class:`FSQQuantizer`: finite scalar quantization (Mentzer et al., 2023). The 64-d z_e is
  projected to ``len(levels)`` scalars, each bounded and rounded to one of its levels (straight
  through); the product of the levels is the number of codes. No codebook, no auxiliary loss.
- :class:`ResidualQuantizer`: residual VQ (Zeghidour et al., 2021, Algorithm 1): stage s
  quantizes what stages 1..s-1 left over with its own small codebook; the code sent is the
  tuple of stage codes, read here as one integer (stage 1 the least significant digit).
  Codebook learning is the library's recommended setting: moving-average (EMA) k-means
  updates (the library's decay, 0.8), k-means initialisation from the initialisation batch,
  and expiry of codes whose moving-average cluster size falls under 2 (replaced by random
  vectors of the batch). Gradients reach the encoder through the library's default rotation
  trick (Fifty et al., 2024), not VQ-VAE's straight-through copy.

Both answer what the single-rate systems ask of a quantizer (:class:`hqa.quantize.Quantizer`):
``quantize``, ``lookup``, ``posterior`` (one-hot: both are deterministic), ``forward`` for
training (a :class:`hqa.quantize.QuantizeOutput`), ``init_from_data``, ``usage`` and
``use_compile``. The library draws its random numbers (k-means sampling, code expiry) from
torch's global generator; the adapter seeds it from the training generator's seed inside a
forked RNG state, so a layer trained under a seed is the same every time and the global
state is left alone.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ, ResidualVQ

from hqa.config import HQAConfig
from hqa.quantize import QuantizeOutput

# vector-quantize-pytorch's recommended codebook learning for residual VQ (its README:
# "Initialization" and "Expiring stale codes"); decay and rotation trick stay its defaults.
RVQ_SETTINGS = dict(kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the library inside a forked global RNG state (every initialised CUDA device too, since
    ``torch.manual_seed`` seeds them all), seeded with ``seed`` (None: as it was)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        yield


class LibraryQuantizer(nn.Module):
    """What both adapters share: an integer code per latent position, usage counts, the
    one-hot posterior, and the [B, D, h, w] <-> [B, h*w, D] layout the library works in."""

    stochastic = False  # both quantizers are deterministic: the generator is ignored at test time

    def __init__(self, size: int) -> None:
        super().__init__()
        self._passes = 0  # training passes since init_from_data: with the generator's seed, the library's seed
        # Code-usage counts since the last check (train_stage clears them every reset_every steps).
        self.register_buffer("usage", torch.zeros(size), persistent=False)

    @property
    def size(self) -> int:
        """K, the number of codes per position."""
        return self.usage.numel()

    def use_compile(self, enabled: bool) -> None:
        """The library's modules run eagerly (no fused kernels of the suite apply)."""

    # ---- what subclasses supply ----
    def _codes(self, seq: Tensor) -> Tensor:
        """Integer codes [B, N] for latents [B, N, D] (eval: no codebook update)."""
        raise NotImplementedError

    def _vectors(self, codes: Tensor) -> Tensor:
        """Quantized latents [B, N, D] for integer codes [B, N]."""
        raise NotImplementedError

    def _train_pass(self, seq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z_q [B, N, D], codes [B, N], auxiliary loss scalar) for training."""
        raise NotImplementedError

    # ---- the interface ----
    def quantize(self, z_e: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Code indices for z_e: [B, D, h, w] -> LongTensor [B, h, w] (``generator`` ignored)."""
        b, _, h, w = z_e.shape
        return self._codes(_sequence(z_e.float())).long().view(b, h, w)

    def posterior(self, z_e: Tensor) -> Tensor:
        """q(z | x) per position: one-hot on the emitted code, [B, D, h, w] -> [B, h, w, K]."""
        return nn.functional.one_hot(self.quantize(z_e), self.size).float()

    def lookup(self, indices: Tensor) -> Tensor:
        """Quantized latents for codes: [B, h, w] -> [B, D, h, w]."""
        b, h, w = indices.shape
        return _image(self._vectors(indices.reshape(b, h * w).long()), h, w)

    def forward(self, z_e: Tensor, temperature: float, generator: torch.Generator | None) -> QuantizeOutput:
        """Quantize for training (``temperature`` unused): straight-through z_q, codes, and the
        library's auxiliary loss as ``vq`` (zero for FSQ); ``kl``/``commit`` are zeros [B]."""
        b, _, h, w = z_e.shape
        with torch.autocast(z_e.device.type, enabled=False), _seeded(self._pass_seed(generator)):
            z_q, codes, aux = self._train_pass(_sequence(z_e.float()))
        codes = codes.long()
        self.usage += torch.bincount(codes.reshape(-1), minlength=self.size).to(self.usage.dtype)
        zeros = z_e.new_zeros(b, dtype=torch.float32)
        return QuantizeOutput(z_q=_image(z_q, h, w), indices=codes.view(b, h, w), kl=zeros, commit=zeros, vq=aux)

    def _pass_seed(self, generator: torch.Generator | None) -> int | None:
        """The library's seed for this training pass: from the generator's seed and the passes
        since initialisation (no host sync, unlike drawing from a CUDA generator); None in eval."""
        if not self.training or generator is None:
            return None
        self._passes += 1
        return (generator.initial_seed() * 1_000_003 + self._passes) % 2**62

    def init_from_data(self, flat: Tensor, generator: torch.Generator | None) -> None:
        """Data-dependent initialisation from latents [N, D] of the initialisation batch."""
        raise NotImplementedError

    def reset_dead_codes(self, threshold: float, generator: torch.Generator | None, min_draws_per_code: float = 0.0) -> Tensor:
        raise RuntimeError("FSQ and residual VQ renew codes as vector-quantize-pytorch does; the suite's "
                           "code resetting does not apply (HQAConfig.code_reset must be False)")


def _sequence(z_e: Tensor) -> Tensor:
    """[B, D, h, w] -> [B, h*w, D]."""
    b, d, h, w = z_e.shape
    return z_e.permute(0, 2, 3, 1).reshape(b, h * w, d)


def _image(seq: Tensor, h: int, w: int) -> Tensor:
    """[B, h*w, D] -> [B, D, h, w]."""
    b, _, d = seq.shape
    return seq.reshape(b, h, w, d).permute(0, 3, 1, 2)


class FSQQuantizer(LibraryQuantizer):
    """Finite scalar quantization of D-dimensional latents with ``levels`` (their product is K),
    through the library's ``FSQ`` with its linear projections D -> len(levels) -> D."""

    def __init__(self, code_dim: int, levels: Sequence[int]) -> None:
        super().__init__(math.prod(levels))
        self.levels = tuple(levels)
        self.fsq = FSQ(levels=list(levels), dim=code_dim)

    def _codes(self, seq: Tensor) -> Tensor:
        return self.fsq(seq)[1]

    def _vectors(self, codes: Tensor) -> Tensor:
        return self.fsq.indices_to_codes(codes)

    def _train_pass(self, seq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_q, codes = self.fsq(seq)
        return z_q, codes, seq.new_zeros(())

    def init_from_data(self, flat: Tensor, generator: torch.Generator | None) -> None:
        """Nothing to initialise: FSQ has no codebook (the scale of the z_e it rounds is set by
        :meth:`hqa.layer.QuantizedAutoencoder.data_init`, as for every system)."""
        self._passes = 0


class ResidualQuantizer(LibraryQuantizer):
    """Residual VQ of D-dimensional latents with one codebook per stage of sizes ``stage_codes``
    (their product is K), through the library's ``ResidualVQ``; ``commitment_weight`` weighs
    each stage's commitment loss ||z - sg[e]||^2 (mean per element), summed over stages."""

    def __init__(self, code_dim: int, stage_codes: Sequence[int], commitment_weight: float) -> None:
        super().__init__(math.prod(stage_codes))
        self.stage_codes = tuple(stage_codes)
        self.rvq = ResidualVQ(dim=code_dim, codebook_size=self.stage_codes, commitment_weight=commitment_weight,
                              **RVQ_SETTINGS)
        # code = sum_s c_s * prod(stage sizes before s): stage 1 is the least significant digit
        self.register_buffer("place", torch.tensor([math.prod(self.stage_codes[:s]) for s in range(len(self.stage_codes))]),
                             persistent=False)
        self.register_buffer("radix", torch.tensor(self.stage_codes), persistent=False)

    def _join(self, stage_codes: Tensor) -> Tensor:
        """Stage codes [B, N, S] -> one code [B, N]."""
        return (stage_codes.long() * self.place).sum(-1)

    def _split(self, codes: Tensor) -> Tensor:
        """One code [B, N] -> stage codes [B, N, S]."""
        return (codes[..., None] // self.place) % self.radix

    @property
    def initialised(self) -> bool:
        """Whether every stage's codebook has had its k-means initialisation."""
        return all(bool(layer._codebook.initted) for layer in self.rvq.layers)

    def _codes(self, seq: Tensor) -> Tensor:
        if not self.initialised:  # the library would run its k-means on whatever is quantized first
            raise ValueError("residual VQ codebooks are not initialised: train the model (fit) before encoding")
        return self._join(self.rvq(seq)[1])

    def _vectors(self, codes: Tensor) -> Tensor:
        return self.rvq.get_output_from_indices(self._split(codes))

    def _train_pass(self, seq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_q, stage_codes, losses = self.rvq(seq)
        return z_q, self._join(stage_codes), losses.sum()

    @torch.no_grad()
    def init_from_data(self, flat: Tensor, generator: torch.Generator | None) -> None:
        """k-means initialisation of every stage (the library's ``kmeans_init``): stage 1 on the
        latents [N, D], each next stage on what the previous ones left; no moving-average step."""
        was_training = self.training
        self.eval()  # the library initialises in any mode; eval skips the EMA update and expiry
        for layer in self.rvq.layers:  # initialise again, also a codebook initialised before
            layer._codebook.initted.fill_(False)
        self._passes = 0
        seed = None if generator is None else int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with _seeded(seed):
            self.rvq(flat[None].float())
        self.train(was_training)


def library_quantizer(config: HQAConfig, k: int) -> LibraryQuantizer:
    """The vector-quantize-pytorch quantizer of layer (model) k under ``config``
    (``config.quantizer`` "fsq" or "rvq")."""
    if config.quantizer == "fsq":
        return FSQQuantizer(config.code_dim, config.fsq_levels)
    if config.quantizer == "rvq":
        return ResidualQuantizer(config.code_dim, config.rvq_codes, config.vq_beta)
    raise ValueError(f"quantizer {config.quantizer!r} is not one of vector-quantize-pytorch's here ('fsq', 'rvq')")
