"""Configuration of a quantized hierarchy: frozen dataclasses with named presets.

One class describes HQA and every member of the HAMs family: the three "switches" of
DESIGN.md (``quantizer``, ``target``, ``codebook_loss``) pick the row of the paper's Table 3.
Every number that changes results lives here, with the paper section it comes from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

Quantizer = Literal["gumbel", "nearest", "fsq", "rvq"]
Target = Literal["mse", "ce"]
CodebookLoss = Literal["probabilistic", "vq", "ema"]

QUANTIZERS: tuple[str, ...] = ("gumbel", "nearest", "fsq", "rvq")
# Quantizers of vector-quantize-pytorch (baselines.modern_quantizers): single-rate models only,
# with the library's own codebook learning (the suite's reset rules and losses do not apply).
LIBRARY_QUANTIZERS: tuple[str, ...] = ("fsq", "rvq")
TARGETS: tuple[str, ...] = ("mse", "ce")
CODEBOOK_LOSSES: tuple[str, ...] = ("probabilistic", "vq", "ema")
VQ_CODES: tuple[str, ...] = ("nearest", "sample")
RESET_RULES: tuple[str, ...] = ("least-used", "all-unused")
CODEBOOK_INITS: tuple[str, ...] = ("random", "kmeans++")


@dataclass(frozen=True)
class HQAConfig:
    """Architecture, the three method switches and the training settings of one hierarchy.

    Widths are per layer, bottom first. Layer ``k`` halves height and width ``k`` times, so
    ``image_size`` must be divisible by ``2 ** num_layers``.
    """

    image_size: int = 32
    channels: int = 1
    num_layers: int = 5
    codebook_size: int = 256  # K, Section 6.2
    # Per-layer K, bottom first (e.g. Figure 1's 4 codes then 2); empty: codebook_size everywhere.
    codebook_sizes: tuple[int, ...] = ()
    code_dim: int = 64  # D, Section 6.2
    # Widths chosen so the 5-layer MNIST stack has ~1.0M parameters (Section 6.2: "~1M").
    enc_widths: tuple[int, ...] = (16, 32, 32, 48, 48)
    dec_widths: tuple[int, ...] = (32, 48, 64, 96, 128)
    # Per-layer downsampling factor (2: halve h and w; 1: keep them). Empty: every layer halves.
    strides: tuple[int, ...] = ()

    # --- the three switches (DESIGN.md; Table 3 rows) ---
    # "gumbel": stochastic posterior q(z=k|x) ∝ exp(-||z_e - e_k||^2), Eq. 3, with code resetting.
    # "nearest": deterministic nearest code with straight-through gradients (VQ-VAE, Eq. 2).
    # "fsq" / "rvq": finite scalar quantization (Mentzer et al., 2023) / residual VQ, from
    # vector-quantize-pytorch, for the single-rate baselines only (baselines.modern_quantizers).
    quantizer: Quantizer = "gumbel"
    # Reconstruction target of layers >= 2: "mse" to the lower layer's normalised z_e
    # (Section 5.2.2) or "ce" over the lower layer's code indices (HAMs, Fauw et al.).
    target: Target = "mse"
    # "probabilistic": -entropy + E_q ||z_e - e||^2 (Eq. 4); "vq": standard VQ loss (Eq. 2);
    # "ema": Eq. 2's commitment term with moving-average k-means codebook updates (VQ-VAE in
    # practice, Section 3.1; nearest-code quantizer only).
    codebook_loss: CodebookLoss = "probabilistic"
    # Reset codes that fall out of use near busy ones (Section 5.3); "GS" in Table 3 includes it.
    code_reset: bool = True

    # --- training (reference settings of the original code, DESIGN.md) ---
    # RAdam, for every profile. The reference code's 4e-4 (at batch 512) learned more slowly
    # on the quick schedule's batches of 64-128 in one-seed comparisons; 1e-3 measured best
    # there (results/experiments/issue13-gpu.md). The paper profile uses it too.
    lr: float = 1e-3
    lr_final_ratio: float = 0.1  # cosine phase ends at lr * lr_final_ratio
    flat_fraction: float = 0.5  # share of steps at flat lr before the cosine decay
    grad_clip: float = 1.0  # max gradient norm
    # Gumbel-softmax temperature, decayed linearly over each layer's steps (Section 5.1), from
    # 3.0 on MNIST (the reference code starts at 0.667). The decoder's gradient reaches z_e only
    # through the relaxed sample, whose slope falls as exp(-gap / t); a top layer trained at 0.667
    # had a median gap of ~7 nats between its two best codes, and in the 4-code example of
    # tests/test_quantize.py such a gap passes ~20x less reconstruction gradient on average at
    # 0.667 than at 3.0, in rare spikes. Three paired quick-profile
    # seeds: 8-bit class error 33.8/33.8/36.2% -> 24.2/27.8/23.9%, 8-bit MSE 0.052 -> 0.045-0.047,
    # MSE and class error better at every rate from 512 bits down
    # (results/experiments/issue13-temperature.md). HAMs + GS rows (baselines.hams), the CelebA
    # preset and the toy keep 0.667.
    temp_start: float = 3.0
    temp_end: float = 1e-3
    entropy_weight: float = 1e-3  # weight of KL(q || uniform) = log K - H[q]  (Eq. 4)
    commit_weight: float = 1e-3  # weight of E_q ||z_e - e_z||^2  (Eq. 4)
    vq_beta: float = 0.25  # commitment weight of the standard VQ loss (Eq. 2)
    vq_weight: float = 1.0  # weight of the whole Eq. 2 loss against the reconstruction
    # The code Eq. 2 acts on when the quantizer samples (Gumbel): "nearest" (Eq. 2's own
    # definition) or "sample" (the Gumbel sample the decoder sees). See Quantizer._vq_indices.
    vq_code: Literal["nearest", "sample"] = "nearest"
    reset_every: int = 20  # steps between code-usage checks (Section 5.3)
    reset_threshold: float = 0.03  # the least-used code is reset if used < 3% as often as the busiest
    # Counts are accumulated until they hold this many draws per code before a check acts: at
    # fewer, live codes fall under the threshold by chance (a 1x1 layer at batch 64 sees 64
    # draws per step over 256 codes). Under uniform use, P(count <= 3% of max) at 20 draws per
    # code is ~1e-7 per code.
    reset_min_draws: float = 20.0
    # "least-used": the reference code's rule, one code per check (Section 5.3). "all-unused":
    # every code drawn not once in a window of >= reset_min_draws draws per code moves to a
    # recent z_e of the batch (no live code goes unused that long by chance: P = e^-20); for
    # deep nearest-code models, whose codes die faster than one per check can revive.
    reset_rule: Literal["least-used", "all-unused"] = "least-used"
    # Data-dependent codebook initialisation: K distinct latents drawn uniformly ("random") or
    # by k-means++ seeding ("kmeans++": spread over separated clusters; the toy uses it).
    codebook_init: Literal["random", "kmeans++"] = "random"
    ema_decay: float = 0.99  # moving-average codebook updates (codebook_loss="ema")
    # quantizer="fsq": levels per scalar dimension; their product is the codes per position
    # (256 = 8 bits), so FSQ sends exactly the bits of every other system at each rate.
    # (4, 4, 4, 4): on validation images (seed 100) it matched (8, 8, 4) at 32 bits and beat it
    # at 8 (MSE 0.03238 against 0.03425; results/experiments/decisions.md).
    fsq_levels: tuple[int, ...] = (4, 4, 4, 4)
    # quantizer="rvq": codebook size of each residual stage, coarse first; their product is
    # the codes per position (16 x 16 = 256: one 8-bit code = two 4-bit stage codes).
    rvq_codes: tuple[int, ...] = (16, 16)
    latent_init_std: float = 1.0  # data-dependent init: per-channel std of z_e at step 0
    norm_momentum: float = 0.1  # running statistics of the lower z_e (Section 5.2.2)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("quantizer", QUANTIZERS),
            ("target", TARGETS),
            ("codebook_loss", CODEBOOK_LOSSES),
            ("vq_code", VQ_CODES),
            ("reset_rule", RESET_RULES),
            ("codebook_init", CODEBOOK_INITS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"HQAConfig.{name}={getattr(self, name)!r}: expected one of {allowed}")
        if self.codebook_loss == "ema" and self.quantizer != "nearest":
            raise ValueError("HQAConfig.codebook_loss='ema' (k-means updates) needs quantizer='nearest'")
        if self.num_layers < 1:
            raise ValueError(f"HQAConfig.num_layers must be >= 1, got {self.num_layers}")
        for name in ("enc_widths", "dec_widths"):
            widths = getattr(self, name)
            if len(widths) != self.num_layers:
                raise ValueError(
                    f"HQAConfig.{name} has {len(widths)} entries for {self.num_layers} layers"
                )
        if self.strides and (len(self.strides) != self.num_layers or set(self.strides) - {1, 2}):
            raise ValueError(f"HQAConfig.strides must be {self.num_layers} values of 1 or 2, got {self.strides}")
        total = math.prod(self.layer_strides)
        if self.image_size % total:
            raise ValueError(f"HQAConfig.image_size={self.image_size} is not divisible by {total}")
        if self.codebook_sizes and len(self.codebook_sizes) != self.num_layers:
            raise ValueError(f"HQAConfig.codebook_sizes has {len(self.codebook_sizes)} entries for {self.num_layers} layers")
        for k in (self.codebook_size, *self.codebook_sizes):
            if k < 2 or k & (k - 1):  # a fixed-rate code needs an integer number of bits per position
                raise ValueError(f"HQAConfig codebook sizes must be powers of 2, got {k}")
        if self.quantizer in LIBRARY_QUANTIZERS:
            self._check_library_quantizer()

    def _check_library_quantizer(self) -> None:
        """FSQ levels / RVQ stage sizes must multiply to every layer's K (exact bits per position)."""
        name, values = ("fsq_levels", self.fsq_levels) if self.quantizer == "fsq" else ("rvq_codes", self.rvq_codes)
        smallest = 3 if self.quantizer == "fsq" else 2  # vector-quantize-pytorch's FSQ needs >= 3 levels
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < smallest for v in values):
            raise ValueError(f"HQAConfig.{name} must be integers >= {smallest}, got {values!r}")
        ks = sorted({self.codes(k) for k in range(1, self.num_layers + 1)})
        if ks != [math.prod(values)]:
            raise ValueError(f"HQAConfig.{name}={values!r} multiply to {math.prod(values)} codes per position; "
                             f"the codebook size is {ks if len(ks) > 1 else ks[0]}")
        if self.code_reset:
            raise ValueError(f"HQAConfig.quantizer={self.quantizer!r} learns its codes as vector-quantize-pytorch does; "
                             "set code_reset=False (the suite's reset rules apply to its own quantizers)")

    # ---- presets ----
    @classmethod
    def mnist(cls, **overrides: Any) -> "HQAConfig":
        """MNIST at 32x32x1: 5 layers, 256 codes of dimension 64, ~1.0M parameters (Section 6.2)."""
        return cls(**overrides)

    @classmethod
    def celeba(cls, **overrides: Any) -> "HQAConfig":
        """CelebA at 64x64x3: 7 layers, top latent 1x1 with 512 codes (Section 6.1).

        Six halvings take 64 to 1, so one of the seven layers cannot downsample; the paper's
        appendix is not in our copy, so we let layer 1 keep 64x64 (a guess, stated in README).
        """
        base: dict[str, Any] = dict(
            image_size=64,
            channels=3,
            num_layers=7,
            codebook_size=512,
            code_dim=64,
            enc_widths=(32, 64, 64, 96, 96, 128, 128),
            dec_widths=(64, 96, 128, 128, 192, 192, 256),
            strides=(1, 2, 2, 2, 2, 2, 2),
            temp_start=0.667,  # the reference code's: MNIST's 3.0 is not measured on CelebA
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, dataset: str, **overrides: Any) -> "HQAConfig":
        """The preset named ``dataset`` ("mnist" or "celeba")."""
        presets = {"mnist": cls.mnist, "celeba": cls.celeba}
        if dataset not in presets:
            raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(presets)}")
        return presets[dataset](**overrides)

    # ---- derived quantities ----
    @property
    def layer_strides(self) -> tuple[int, ...]:
        """Downsampling factor of each layer, bottom first."""
        return self.strides or (2,) * self.num_layers

    def latent_size(self, layer: int) -> int:
        """Height (= width) of layer ``layer``'s code grid; layer counts from 1 at the bottom."""
        return self.image_size // math.prod(self.layer_strides[:layer])

    def codes(self, layer: int) -> int:
        """Codebook size K of layer ``layer``."""
        return self.codebook_sizes[layer - 1] if self.codebook_sizes else self.codebook_size

    def bits(self, layer: int) -> int:
        """Bits per image transmitted at ``layer``: h * w * log2(K)."""
        return self.latent_size(layer) ** 2 * (self.codes(layer).bit_length() - 1)

    def replace(self, **changes: Any) -> "HQAConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form stored beside the weights (loadable with ``weights_only=True``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HQAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown HQAConfig fields {sorted(unknown)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fixed)
