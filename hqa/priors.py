"""Priors over code grids for the entropy coder of :mod:`hqa.codec` (DESIGN.md "Real files").

Each prior turns what the decoder already knows into **integer frequencies** over the K codes
of the next symbol(s): ``TOTAL`` (2**16) split into K parts of at least 1 by the fixed rule of
:func:`quantize_probabilities`. The coder sees ``freq / TOTAL`` (exact dyadic float64), so
encoder and decoder agree bit for bit whenever they compute the same frequencies.

Kinds:
- ``uniform``: TOTAL / K everywhere, the paper's nominal rate; needs no training.
- ``factorized``: one categorical per grid position, counted on training codes.
- ``context``: a small masked-conv (PixelCNN-style) autoregressive net over the grid in raster
  order (:class:`ContextNet`).
- ``progressive``: for hierarchies (:class:`hqa.HQA`), layer k given layer k+1 through the
  model's own conditional p(z_k | z_{k+1}); the top layer with a factorized (or uniform) prior.

What is reproducible where: ``uniform`` and ``factorized`` frequencies are integers stored in
the prior (factorized) or exact (uniform): identical on every machine. ``context`` and
``progressive`` run a float32 net on the CPU: the same CPU, torch build and inputs give
bit-identical logits, hence identical frequencies (both sides run the very same computation:
same tensors, same shapes, one thread: see :meth:`ContextPrior.frequencies` and
:func:`coding_threads`). Across CPUs (another SIMD
path) or torch builds the float logits may differ in the last bits; the quantisation to
integers hides most such differences but not one that straddles a rounding boundary of
``floor``, so a file is only guaranteed to decode on the machine type and torch build that
wrote it. The caller's thread count does not matter: the codec computes frequencies on one
thread (:func:`coding_threads`); tests decode on 1 thread a file written on 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import atomic_torch_save, read_tagged
from .quantize import posterior_scores

PRECISION = 16
TOTAL = 1 << PRECISION  # frequencies of one symbol's distribution sum to this
PRIOR_FORMAT = "hqa-prior/1"
# Images per batch of the progressive conditional: fixed, so that encoder and decoder run the
# model's decoders on tensors of the same shapes (same kernels, same rounding).
CHUNK = 128
# Positions used to fit a progressive temperature (a fixed prefix of the training images).
TEMPERATURE_POSITIONS = 65_536


class PriorError(ValueError):
    """A prior file or prior that cannot be used: corrupt, of another kind or model, misused."""


# ---------------------------------------------------------------- helpers
def quantize_probabilities(probs: Tensor) -> Tensor:
    """Probabilities [..., K] (any float, rows summing to ~1) -> int64 frequencies [..., K].

    Rule (float64, IEEE-exact steps): ``f = 1 + floor(p * (TOTAL - K))``; the rows' shortfall
    ``TOTAL - sum(f)`` (>= 0, a few units) goes to the first largest entry. Every code keeps
    a frequency >= 1, so any code can be coded (at most PRECISION bits).
    """
    p = probs.double()
    k = p.shape[-1]
    if not 2 <= k <= TOTAL // 4:
        raise PriorError(f"cannot quantise a distribution over {k} codes at precision {PRECISION}")
    freq = p.clamp(0.0, 1.0).mul_(TOTAL - k).long().add_(1)  # .long() truncates: floor, for p >= 0
    short = TOTAL - freq.sum(-1, keepdim=True)
    return freq.scatter_add_(-1, freq.argmax(-1, keepdim=True), short)


def frequencies_from_logits(logits: Tensor) -> Tensor:
    """Logits [..., K] -> integer frequencies [..., K] (softmax in float64, then quantised)."""
    return quantize_probabilities(torch.softmax(logits, dim=-1, dtype=torch.float64))


@contextmanager
def coding_threads() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the caller's count.

    The codec computes every frequency inside this, on both sides, so the float nets' results
    do not depend on ``torch.set_num_threads`` (GEMM reductions may be split differently on
    other thread counts); one thread is also the fastest for these small per-position ops on
    a busy machine. ``torch.set_num_threads`` is process-wide: another Python thread running
    torch meanwhile runs single-threaded too.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def digest(kind: str, meta: dict[str, Any], tensors: dict[str, Tensor]) -> str:
    """sha256 (hex) of a kind, plain metadata and named tensors (dtype, shape and raw bytes)."""
    h = hashlib.sha256()
    h.update(kind.encode())
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_hash(model: nn.Module) -> str:
    """sha256 (hex) of a compression system: its kind, config and every state-dict tensor."""
    config = model.config.to_dict() if hasattr(model, "config") else {}
    return digest(getattr(model, "kind", type(model).__name__), config, model.state_dict())


def training_codes(model: nn.Module, images: Tensor, layer: int, seed: int) -> Tensor:
    """The codes a system emits for ``images`` at ``layer``: sampled under a generator seeded
    with ``seed`` where the system samples (what the codec codes), else the nearest code."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return model.encode(images, layer, gen).cpu()


def _grid(model: nn.Module, layer: int) -> tuple[int, int, int]:
    size = model.config.latent_size(layer)
    return size, size, model.config.codes(layer)


# ---------------------------------------------------------------- base class
class Prior:
    """Common persistence and identity of every prior. ``layer`` is the layer it codes (the
    finest it can code, for progressive); ``model_hash`` the model it was fitted for (None:
    any model with this grid)."""

    kind: ClassVar[str] = "prior"

    def __init__(self, layer: int, model_hash: str | None) -> None:
        self.layer = layer
        self.model_hash = model_hash

    def _meta(self) -> dict[str, Any]:
        """Plain-Python state (JSON-able)."""
        return {"layer": self.layer, "model_hash": self.model_hash}

    def _tensors(self) -> dict[str, Tensor]:
        return {}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> "Prior":
        raise NotImplementedError

    @property
    def hash(self) -> str:
        """sha256 (hex) of everything that changes the coded bits."""
        return digest(self.kind, self._meta(), self._tensors())

    def check_model(self, model: nn.Module, mhash: str | None = None) -> None:
        """Raise PriorError if this prior was fitted for another model."""
        if self.model_hash is not None and self.model_hash != (mhash or model_hash(model)):
            raise PriorError(f"{self.kind} prior was fitted for another model (model hash {self.model_hash[:16]}...)")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (``torch.load(weights_only=True)``-readable); reload with :func:`load_prior`."""
        atomic_torch_save(
            {"format": PRIOR_FORMAT, "kind": self.kind, "meta": json.dumps(self._meta()), "tensors": self._tensors(), "hash": self.hash},
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Prior":
        """Read a prior saved by :meth:`save`; on a subclass, refuse priors of another kind."""
        prior = load_prior(path)
        if cls is not Prior and not isinstance(prior, cls):
            raise PriorError(f"{path} holds a {prior.kind!r} prior, not a {cls.kind!r}")
        return prior


class GridPrior(Prior):
    """A prior over one layer's grid [B, h, w] coded in raster order, one position at a time."""

    def __init__(self, layer: int, model_hash: str | None, height: int, width: int, codes: int) -> None:
        super().__init__(layer, model_hash)
        self.height, self.width, self.codes = height, width, codes

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "height": self.height, "width": self.width, "codes": self.codes}

    def frequencies(self, codes: Tensor, position: int) -> Tensor:
        """Integer frequencies of the codes at raster ``position`` (= row * w + col) of every
        image: LongTensor [K] (the same for all images) or [B, K]. ``codes`` [B, h, w] is read
        only before ``position``; what it holds elsewhere does not change the result."""
        raise NotImplementedError


class UniformPrior(GridPrior):
    """TOTAL / K for every code: log2 K bits per position, the paper's nominal rate."""

    kind = "uniform"

    def __init__(self, layer: int, height: int, width: int, codes: int) -> None:
        super().__init__(layer, None, height, width, codes)
        self._freq = quantize_probabilities(torch.full((codes,), 1.0 / codes, dtype=torch.float64))

    @classmethod
    def fit(cls, model: nn.Module, images: Tensor | None = None, layer: int = 1, **_: Any) -> "UniformPrior":
        """The uniform prior of ``model``'s ``layer`` (no training: ``images`` is ignored)."""
        return cls(layer, *_grid(model, layer))

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> "UniformPrior":
        return cls(meta["layer"], meta["height"], meta["width"], meta["codes"])

    def frequencies(self, codes: Tensor, position: int) -> Tensor:
        return self._freq


class FactorizedPrior(GridPrior):
    """One categorical per grid position: counts of the training codes plus ``alpha`` per code
    (0.5: the Krichevsky-Trofimov estimator), quantised once at fit time (``freq`` [h*w, K])."""

    kind = "factorized"

    def __init__(self, layer: int, model_hash: str | None, freq: Tensor, height: int, width: int) -> None:
        super().__init__(layer, model_hash, height, width, freq.shape[-1])
        if freq.shape != (height * width, self.codes) or freq.dtype != torch.int64 or bool((freq.sum(-1) != TOTAL).any()):
            raise PriorError("factorized prior: frequencies must be int64 [h*w, K] rows summing to TOTAL")
        self.freq = freq

    @classmethod
    def fit(
        cls, model: nn.Module, images: Tensor, layer: int, seed: int = 0, alpha: float = 0.5
    ) -> "FactorizedPrior":
        """Count ``model``'s codes of ``images`` (training split) at ``layer``."""
        codes = training_codes(model, images, layer, seed)
        return cls.fit_codes(codes, model.config.codes(layer), layer, model_hash(model), alpha)

    @classmethod
    def fit_codes(
        cls, codes: Tensor, codebook_size: int, layer: int, model_hash: str | None = None, alpha: float = 0.5
    ) -> "FactorizedPrior":
        """From codes [N, h, w] directly."""
        n, h, w = codes.shape
        flat = codes.reshape(n, h * w).long()
        counts = torch.zeros(h * w, codebook_size, dtype=torch.float64)
        counts.scatter_add_(1, flat.t(), torch.ones(h * w, n, dtype=torch.float64))
        probs = (counts + alpha) / (n + alpha * codebook_size)
        return cls(layer, model_hash, quantize_probabilities(probs), h, w)

    def _tensors(self) -> dict[str, Tensor]:
        return {"freq": self.freq}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> "FactorizedPrior":
        return cls(meta["layer"], meta["model_hash"], tensors["freq"], meta["height"], meta["width"])

    def frequencies(self, codes: Tensor, position: int) -> Tensor:
        return self.freq[position]


# ---------------------------------------------------------------- context (autoregressive)
@dataclass(frozen=True)
class ContextConfig:
    """The context prior's net and its training (CPU, fixed seed).

    ``kernel``: the type-A masked conv's width (odd); it sees the ``kernel // 2`` rows above
    and the ``kernel // 2`` codes to the left (24 neighbours at 7). Then ``blocks`` residual
    1x1 convs (type-B masks of width 1 are all ones) and a 1x1 head to K logits, plus a
    learned per-position bias initialised to the log of the factorized prior's probabilities
    (with a zero head, the untrained net *is* the factorized prior).
    """

    kernel: int = 7
    embed: int = 16
    hidden: int = 96
    blocks: int = 1
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    alpha: float = 0.5  # smoothing of the factorized counts that initialise the position bias

    def __post_init__(self) -> None:
        if self.kernel < 3 or self.kernel % 2 == 0:
            raise ValueError(f"ContextConfig.kernel must be odd and >= 3, got {self.kernel}")
        for name in ("embed", "hidden", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ContextConfig.{name} must be >= 1")


class ContextNet(nn.Module):
    """PixelCNN-style autoregressive net over a code grid (van den Oord et al., 2016; raster order).

    Codes -> embedding (index K = "outside the grid / not yet known": a zero vector) -> one
    type-A masked conv (kernel cropped to the rows at and above the centre: the rows below are
    masked anyway) -> ReLU -> residual 1x1 convs -> 1x1 head -> K logits + position bias.
    Only the first conv is spatial, so the logits at (r, c) are a function of the window
    ``padded[r : r + R + 1, c : c + 2R + 1]`` of the grid padded with K (R = kernel // 2) alone.
    :meth:`forward` (training) runs the masked conv over whole grids. :meth:`window_logits`
    (coding) computes the same function for one position of many grids: the first layer, linear
    in the one-hot codes, as a sum (``embedding_bag``) of looked-up rows of per-tap tables
    (embedding x tap weights), then the 1x1 layers as matrix products.
    """

    def __init__(self, codes: int, height: int, width: int, config: ContextConfig) -> None:
        super().__init__()
        r = config.kernel // 2
        self.codes, self.radius = codes, r
        self.embed = nn.Embedding(codes + 1, config.embed, padding_idx=codes)
        self.conv = nn.Conv2d(config.embed, config.hidden, (r + 1, 2 * r + 1))
        mask = torch.ones(r + 1, 2 * r + 1)
        mask[r, r:] = 0  # type A: the centre and everything after it in raster order
        self.register_buffer("mask", mask)
        self.blocks = nn.ModuleList(nn.Conv2d(config.hidden, config.hidden, 1) for _ in range(config.blocks))
        self.head = nn.Conv2d(config.hidden, codes, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.position_bias = nn.Parameter(torch.zeros(codes, height, width))
        self._tables: Tensor | None = None

    @property
    def taps(self) -> list[int]:  # 24 at kernel 7
        """Flat indices (row * (2R + 1) + col) of the window cells the masked conv reads."""
        return [int(i) for i in torch.nonzero(self.mask.reshape(-1)).flatten()]

    def pad(self, codes: Tensor) -> Tensor:
        """[B, h, w] -> [B, h + R, w + 2R]: K above, left and right (zero features)."""
        r = self.radius
        return F.pad(codes.long(), (r, r, r, 0), value=self.codes)

    def _tap_tables(self) -> Tensor:
        """Per-tap first-layer tables [taps, K + 1, hidden]: embedding rows times the tap's
        weights (row K, the unknown/outside code, is zero). Differentiable."""
        w = (self.conv.weight * self.mask).flatten(2)[:, :, self.taps]  # [H, E, taps]
        return torch.einsum("ke,het->tkh", self.embed.weight, w)

    def _head(self, h: Tensor) -> Tensor:
        """First-layer pre-activations [..., hidden] -> logits [..., K] (the 1x1 layers)."""
        h = torch.relu(h)
        for block in self.blocks:
            h = h + F.linear(torch.relu(h), block.weight.flatten(1), block.bias)
        return F.linear(torch.relu(h), self.head.weight.flatten(1), self.head.bias)

    def forward(self, codes: Tensor) -> Tensor:
        """Training form: codes [B, h, w] -> logits [B, K, h, w] for every position (the
        masked conv over the embedded grid; faster to train than the tables of the coding form)."""
        x = self.embed(self.pad(codes)).permute(0, 3, 1, 2)
        h = F.conv2d(x, self.conv.weight * self.mask, self.conv.bias).permute(0, 2, 3, 1)
        return self._head(h).permute(0, 3, 1, 2) + self.position_bias

    @torch.no_grad()
    def tables(self) -> Tensor:
        """:meth:`_tap_tables`, computed once for coding (the net is frozen by then)."""
        if self._tables is None:
            self._tables = self._tap_tables()
        return self._tables

    def window_logits(self, window: Tensor, row: int, col: int) -> Tensor:
        """Coding form: windows [B, R + 1, 2R + 1] of padded codes whose last row's centre is
        (row, col) -> logits [B, K] at (row, col)."""
        tables = self.tables()  # [taps, K + 1, H]
        taps = torch.tensor(self.taps)
        rows = window.reshape(window.shape[0], -1)[:, taps] + torch.arange(len(taps)) * (self.codes + 1)
        h = F.embedding_bag(rows, tables.reshape(-1, tables.shape[-1]), mode="sum") + self.conv.bias
        return self._head(h) + self.position_bias[:, row, col]


class ContextPrior(GridPrior):
    """Autoregressive prior: frequencies at each position from the codes before it (raster
    order), by :class:`ContextNet` in float32 on the CPU.

    Exactness: encoder and decoder call :meth:`frequencies` with grids that agree before
    ``position``; it builds the same window tensor from both (positions at and after
    ``position`` are overwritten with the "unknown" index), so both run the identical float32
    computation on identical inputs and shapes. See the module docstring for what that
    guarantees across processes and machines.
    """

    kind = "context"

    def __init__(self, layer: int, model_hash: str | None, height: int, width: int, codes: int,
                 config: ContextConfig, state: dict[str, Tensor] | None = None) -> None:
        super().__init__(layer, model_hash, height, width, codes)
        self.config = config
        with torch.random.fork_rng(devices=[]):  # initialisation leaves the global RNG alone
            torch.manual_seed(config.seed)
            self.net = ContextNet(codes, height, width, config).float()
        if state is not None:
            try:
                self.net.load_state_dict(state)
            except RuntimeError:
                raise PriorError("context prior: weights do not match its config") from None
        self.net.eval().requires_grad_(False)

    @classmethod
    def fit(cls, model: nn.Module, images: Tensor, layer: int, config: ContextConfig = ContextConfig(),
            seed: int = 0) -> "ContextPrior":
        """Train on ``model``'s codes of ``images`` (training split) at ``layer``; ``seed``
        picks the sampled codes (see :func:`training_codes`), ``config.seed`` the net's init
        and batches."""
        codes = training_codes(model, images, layer, seed)
        return cls.fit_codes(codes, model.config.codes(layer), layer, model_hash(model), config)

    @classmethod
    def fit_codes(cls, codes: Tensor, codebook_size: int, layer: int, model_hash: str | None = None,
                  config: ContextConfig = ContextConfig()) -> "ContextPrior":
        """Train on codes [N, h, w]: Adam, ``config.steps`` steps of ``config.batch_size``
        random grids, cross-entropy in nats. Returns the trained prior."""
        n, h, w = codes.shape
        prior = cls(layer, model_hash, h, w, codebook_size, config)
        net = prior.net
        factorized = FactorizedPrior.fit_codes(codes, codebook_size, layer, alpha=config.alpha)
        with torch.no_grad():
            net.position_bias.copy_(factorized.freq.double().div(TOTAL).log().t().reshape(codebook_size, h, w))
        codes = codes.long().cpu()
        gen = torch.Generator().manual_seed(config.seed)
        net.train().requires_grad_(True)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        for _ in range(config.steps):
            batch = codes[torch.randint(n, (min(config.batch_size, n),), generator=gen)]
            loss = F.cross_entropy(net(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval().requires_grad_(False)
        net._tables = None
        return prior

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "config": asdict(self.config)}

    def _tensors(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.net.state_dict().items()}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> "ContextPrior":
        config = ContextConfig(**meta["config"])
        return cls(meta["layer"], meta["model_hash"], meta["height"], meta["width"], meta["codes"], config, tensors)

    @torch.inference_mode()
    def frequencies(self, codes: Tensor, position: int) -> Tensor:
        """[B, K] frequencies at ``position`` from ``codes`` [B, h, w] before it."""
        b = codes.shape[0]
        r, k = self.net.radius, self.codes
        row, col = divmod(position, self.width)
        window = torch.full((b, r + 1, 2 * r + 1), k, dtype=torch.long)
        r0, c0, c1 = max(0, row - r), max(0, col - r), min(self.width, col + r + 1)
        window[:, r0 - (row - r):, c0 - (col - r): c1 - (col - r)] = codes[:, r0 : row + 1, c0:c1].long()
        window[:, r, r:] = k  # the position itself and after it: unknown to the decoder
        return frequencies_from_logits(self.net.window_logits(window, row, col))

    @torch.inference_mode()
    def nll_bits(self, codes: Tensor) -> float:
        """Mean ideal code length (bits per image) of codes [B, h, w] under the float net (no
        quantisation): what the file should cost, up to a few bits."""
        total = 0.0
        for i in range(0, codes.shape[0], 256):
            part = codes[i : i + 256].long()
            logp = torch.log_softmax(self.net(part).double(), dim=1)
            total -= float(logp.gather(1, part[:, None]).sum())
        return total / codes.shape[0] / math.log(2)


# ---------------------------------------------------------------- progressive (hierarchies)
class ProgressivePrior(Prior):
    """Progressive transmission for a hierarchy (:class:`hqa.HQA` and the HAMs rows): the top
    layer's codes under ``top`` (a :class:`FactorizedPrior` of the top layer, or None:
    uniform), then each layer k given layer k+1 through the model's own p(z_k | z_{k+1})
    (DESIGN.md "Real files"):

    - target "mse" (HQA, HAMs + GS + MSE, HAMs + MSE): decode z_{k+1} one level down (layer
      k+1's decoder, un-normalised) to an estimate of z_e, and take softmax(-||z_e - e_j||^2
      / T) over the lower codebook: the lower quantizer's posterior (Eq. 3) at T = 1 for a
      stochastic quantizer; for a deterministic one (posterior one-hot) T is fitted on
      training codes (:meth:`fit`).
    - target "ce" (HAMs, HAMs + GS): softmax(logits / T) of layer k+1's decoder over the lower
      codes, T = 1.

    ``temperatures[k]`` is the T used for layer k. ``layer`` is the top layer.
    """

    kind = "progressive"

    def __init__(self, top_layer: int, model_hash: str | None, top: FactorizedPrior | None,
                 temperatures: dict[int, float]) -> None:
        super().__init__(top_layer, model_hash)
        self.top = top
        self.temperatures = {int(k): float(v) for k, v in temperatures.items()}

    @classmethod
    def fit(cls, model: nn.Module, images: Tensor | None = None, seed: int = 0,
            top_prior: str = "factorized") -> "ProgressivePrior":
        """Fit the top layer's factorized prior (``top_prior="uniform"``: none) and the
        temperatures of deterministic mse layers on ``model``'s codes of ``images``."""
        check_hierarchy(model)
        if top_prior not in ("factorized", "uniform"):
            raise PriorError(f"top_prior must be 'factorized' or 'uniform', got {top_prior!r}")
        if images is None and (top_prior == "factorized" or any(_needs_temperature(model, k) for k in range(1, model.num_layers))):
            raise PriorError("this progressive prior needs training images to fit")
        top_layer = model.num_layers
        mhash = model_hash(model)
        top = FactorizedPrior.fit(model, images, top_layer, seed) if top_prior == "factorized" else None
        temps: dict[int, float] = {}
        for k in range(1, top_layer):
            temps[k] = fit_temperature(model, images, k) if _needs_temperature(model, k) else 1.0
        return cls(top_layer, mhash, top, temps)

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "temperatures": {str(k): v for k, v in sorted(self.temperatures.items())},
                "top": None if self.top is None else self.top._meta()}

    def _tensors(self) -> dict[str, Tensor]:
        return {} if self.top is None else {"top." + k: v for k, v in self.top._tensors().items()}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> "ProgressivePrior":
        top = None
        if meta["top"] is not None:
            top = FactorizedPrior._from_state(meta["top"], {k[4:]: v for k, v in tensors.items() if k.startswith("top.")})
        return cls(meta["layer"], meta["model_hash"], top, {int(k): v for k, v in meta["temperatures"].items()})

    def top_prior(self, model: nn.Module) -> GridPrior:
        """The prior of the top layer's grid."""
        return self.top if self.top is not None else UniformPrior.fit(model, layer=self.layer)

    def conditional_frequencies(self, model: nn.Module, upper: Tensor, layer: int) -> Tensor:
        """Integer frequencies of layer ``layer``'s codes given the codes ``upper`` [B, h', w']
        of layer + 1: LongTensor [B, h * w, K] (raster order per image), computed in float32
        on the CPU in batches of :data:`CHUNK` images."""
        net = cpu_model(model)
        parts = [frequencies_from_logits(conditional_scores(net, upper[i : i + CHUNK].cpu(), layer).double()
                                         / self.temperatures.get(layer, 1.0))
                 for i in range(0, upper.shape[0], CHUNK)]
        return torch.cat(parts)


def check_hierarchy(model: nn.Module) -> None:
    """Raise PriorError unless ``model`` is a hierarchy whose layers decode to the one below."""
    if not (hasattr(model, "layers") and all(hasattr(l, "target") for l in getattr(model, "layers", []))):
        raise PriorError(f"a progressive prior needs a hierarchy (hqa.HQA); {type(model).__name__} has no layer stack")
    if model.num_layers < 2:
        raise PriorError("a progressive prior needs at least two layers")


def _needs_temperature(model: nn.Module, layer: int) -> bool:
    """Layer ``layer``'s conditional needs a fitted T: an mse target over a deterministic quantizer."""
    upper, lower = model.layers[layer], model.layers[layer - 1]
    return upper.target != "ce" and not lower.quantizer.stochastic


def cpu_model(model: nn.Module) -> nn.Module:
    """``model`` itself when on the CPU, else a CPU copy (the conditional is a CPU float32 net)."""
    if model.device.type == "cpu":
        return model
    import copy

    return copy.deepcopy(model).cpu()


@torch.inference_mode()
def conditional_scores(model: nn.Module, upper: Tensor, layer: int) -> Tensor:
    """Unnormalised log p(z_layer | z_{layer+1}) at T = 1: codes [B, h', w'] of layer + 1 ->
    float32 [B, h * w, K] (the lower posterior's scores, or the decoder's logits)."""
    lay, lower = model.layers[layer], model.layers[layer - 1]
    out = lay.decoder(lay.quantizer.lookup(upper.long())).float()
    b, _, h, w = out.shape
    if lay.target == "ce":  # logits over the lower codes (HAMs)
        return out.permute(0, 2, 3, 1).reshape(b, h * w, -1)
    z = lay.norm.inverse(out)
    flat = z.permute(0, 2, 3, 1).reshape(b * h * w, -1)
    return posterior_scores(flat, lower.quantizer.codebook.float()).view(b, h * w, -1)


@torch.inference_mode()
def fit_temperature(model: nn.Module, images: Tensor, layer: int, iterations: int = 60) -> float:
    """The T maximising the likelihood of layer ``layer``'s training codes under
    softmax(scores / T) given the codes of layer + 1 (deterministic quantizers, whose codes
    are the nearest ones). Golden-section search over log(1/T) in [-12, 12] (the negative
    log-likelihood is convex in 1/T), on the first :data:`TEMPERATURE_POSITIONS` positions."""
    net = cpu_model(model)
    size = model.config.latent_size(layer) ** 2
    n = min(len(images), max(1, TEMPERATURE_POSITIONS // size))
    x = images[:n].to(model.device)
    lower_codes = model.encode(x, layer).cpu().reshape(n, -1)
    upper_codes = model.encode(x, layer + 1).cpu()
    scores = torch.cat([conditional_scores(net, upper_codes[i : i + CHUNK], layer) for i in range(0, n, CHUNK)]).double()
    target = scores.gather(2, lower_codes[..., None]).squeeze(2)

    def nll(log_beta: float) -> float:
        beta = math.exp(log_beta)
        return float((torch.logsumexp(scores * beta, dim=2) - target * beta).mean())

    lo, hi = -12.0, 12.0
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return 1.0 / math.exp((lo + hi) / 2)


# ---------------------------------------------------------------- loading
KINDS: dict[str, type[Prior]] = {
    cls.kind: cls for cls in (UniformPrior, FactorizedPrior, ContextPrior, ProgressivePrior)
}


def load_prior(path: str | os.PathLike[str]) -> Prior:
    """Read any prior written by :meth:`Prior.save`. Raises FileNotFoundError when missing,
    PriorError (a ValueError) naming the file when it is corrupt or of another format."""
    obj = read_tagged(path, PRIOR_FORMAT, "prior file", PriorError)
    cls = KINDS.get(obj.get("kind"))
    if cls is None:
        raise PriorError(f"{path} holds a prior of unknown kind {obj.get('kind')!r}; known: {sorted(KINDS)}")
    try:
        prior = cls._from_state(json.loads(obj["meta"]), dict(obj["tensors"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PriorError(f"corrupt prior file {path}: {exc}") from None
    if prior.hash != obj.get("hash"):
        raise PriorError(f"corrupt prior file {path}: its contents do not match its hash")
    return prior
