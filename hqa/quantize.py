"""Codebooks and quantizers: the stochastic posterior of HQA and the nearest code of VQ-VAE.

Paper references (Williams et al., NeurIPS 2020):
- Eq. 3, the posterior q(z=k|x) ∝ exp(-||z_e - e_k||^2): :func:`posterior_log_probs`.
- Gumbel-softmax sample of it at train time (Section 5.1): :func:`relaxed_sample`.
- Eq. 4's entropy and probabilistic commitment terms: :func:`probabilistic_terms`.
- Eq. 2, the standard VQ-VAE codebook + commitment loss: :func:`vq_loss`; the moving-average
  (EMA) k-means codebook updates that VQ-VAE uses in practice (Section 3.1): :meth:`Quantizer.ema_update`.
- Code resetting (Section 5.3): :meth:`Quantizer.reset_dead_codes`.

Everything runs on the flattened latents ``[N, D]`` (N = B*h*w positions) against the codebook
``[K, D]``; the hot path computes the ``[N, K]`` distances once and derives everything else
from them (no torch.distributions objects, no repeated softmax); ``Quantizer.use_compile``
lets ``torch.compile`` fuse that element-wise work into a few kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .compiled import Compiled
from .config import CODEBOOK_INITS, CODEBOOK_LOSSES, LIBRARY_QUANTIZERS, RESET_RULES, VQ_CODES, HQAConfig

# The modes this module implements; "fsq"/"rvq" are vector-quantize-pytorch's (baselines.modern_quantizers).
MODES: tuple[str, ...] = ("gumbel", "nearest")


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """||z_n - e_k||^2 for every position and code: [N, D] x [K, D] -> [N, K] (matmul form)."""
    z_sq = (z * z).sum(dim=1, keepdim=True)  # [N, 1]
    e_sq = (codebook * codebook).sum(dim=1)  # [K]
    return torch.addmm(z_sq + e_sq, z, codebook.t(), alpha=-2.0).clamp_min_(0.0)


def posterior_scores(z: Tensor, codebook: Tensor) -> Tensor:
    """Unnormalised log q(z=k|x) up to a per-row constant: 2 z.e_k - |e_k|^2, [N, D] x [K, D]
    -> [N, K], in one addmm. The |z|^2 of -||z - e_k||^2 is the same for every code, so
    the argmax and softmax of these scores are those of Eq. 3 (test-time quantization)."""
    return torch.addmm((codebook * codebook).sum(dim=1), z, codebook.t(), beta=-1.0, alpha=2.0)


def posterior_log_probs(distances: Tensor) -> Tensor:
    """log q(z=k|x) for q ∝ exp(-||z_e - e_k||^2) (Eq. 3): [N, K] distances -> [N, K]."""
    return torch.log_softmax(-distances, dim=1)


def gumbel_uniforms(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """The uniforms behind Gumbel noise of ``shape``, on ``like``'s device and dtype, drawn
    exactly as torch.distributions' RelaxedOneHotCategorical draws them (same random state,
    same sample). Turned into noise by :func:`gumbel_from_uniforms`, inside the fused pass."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def gumbel_from_uniforms(u: Tensor) -> Tensor:
    """Standard Gumbel noise -log(-log u), with u clamped as torch.distributions clamps it."""
    eps = torch.finfo(u.dtype).eps
    return -torch.log(-torch.log(u.clamp(min=eps, max=1 - eps)))


def gumbel_noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device and dtype (see :func:`gumbel_uniforms`)."""
    return gumbel_from_uniforms(gumbel_uniforms(shape, like, generator))


def relaxed_sample(log_q: Tensor, noise: Tensor, temperature: float | Tensor) -> Tensor:
    """Gumbel-softmax sample (Jang et al.; Maddison et al.) of q: [N, K] -> soft one-hot [N, K]."""
    return torch.softmax((log_q + noise) / temperature, dim=1)


def probabilistic_terms(log_q: Tensor, distances: Tensor) -> tuple[Tensor, Tensor]:
    """The two q-dependent terms of Eq. 4, per position: ([N], [N]).

    - ``kl = sum_k q_k (log q_k + log K) = log K - H[q]``: the "- entropy" term of Eq. 4,
      shifted by the constant log K so it is >= 0 (KL to the uniform prior).
    - ``commit = E_q ||z_e - e_z||^2 = sum_k q_k d_k``: the probabilistic commitment loss.
    """
    q = log_q.exp()
    kl = (q * (log_q + math.log(log_q.shape[1]))).sum(dim=1)
    commit = (q * distances).sum(dim=1)
    return kl, commit


def vq_loss(z_e: Tensor, e_z: Tensor, beta: float) -> Tensor:
    """Standard VQ-VAE codebook + commitment loss (Eq. 2), mean over elements: scalar.

    ``||sg[z_e] - e_z||^2 + beta * ||z_e - sg[e_z]||^2``.
    """
    return F.mse_loss(e_z, z_e.detach()) + beta * F.mse_loss(z_e, e_z.detach())


def gumbel_terms(
    z: Tensor, codebook: Tensor, uniforms: Tensor, temperature: float | Tensor, with_terms: bool = True
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """One pass over the [N, K] distances: (z_q [N, D], hard indices [N], kl [N], commit [N]).

    ``uniforms`` [N, K] (:func:`gumbel_uniforms`) become the Gumbel noise here, so a compiled
    pass fuses the two logs with the rest. z_q is the Gumbel-softmax sample of Eq. 3 times
    the codebook; ``kl``/``commit`` are Eq. 4's terms (None when ``with_terms`` is False: the
    Eq. 2 variants never use them). ``temperature`` may be a 0-dim tensor, so that a compiled
    pass is not specialised (recompiled) for every value of the annealing schedule.
    Plain autograd ops, so that ``torch.compile`` can fuse the element-wise work; eager
    autograd is faster here than a hand-written backward was (measured).
    """
    noise = gumbel_from_uniforms(uniforms)
    dist = squared_distances(z, codebook)
    log_q = posterior_log_probs(dist)
    y = relaxed_sample(log_q, noise, temperature)
    indices = (log_q + noise).argmax(dim=1)  # the hard code of the same sample
    kl, commit = probabilistic_terms(log_q, dist) if with_terms else (None, None)
    return y @ codebook, indices, kl, commit


# The fused training pass, compiled once per process: static for the first shape, then one
# dynamic kernel for the other layers' shapes.
_COMPILED_TERMS = Compiled(gumbel_terms)


def categorical_sample(scores: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw per row from softmax(``scores``) [N, K] -> LongTensor [N] (test-time sampling).

    Inverse CDF with one uniform per row: 2.5x faster on CPU than Gumbel-max, which needs K
    uniforms and two logs per row. ``right=True`` never picks a code of probability 0.
    """
    cdf = torch.softmax(scores.float(), dim=1).cumsum_(dim=1)
    device = generator.device if generator is not None else scores.device
    u = torch.rand(scores.shape[0], 1, generator=generator, device=device).to(scores.device)
    picks = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return picks.clamp_max_(scores.shape[1] - 1).squeeze(1)


def kmeans_plus_plus(points: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """Indices of ``k`` rows of ``points`` [N, D] chosen by k-means++ seeding (Arthur and
    Vassilvitskii, 2007): the first uniformly, each next with probability proportional to
    its squared distance to the nearest row chosen so far. Needs N >= k."""
    device = generator.device if generator is not None else points.device
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device=device))
    chosen = [first]
    nearest = ((points - points[first]) ** 2).sum(1)
    for _ in range(k - 1):
        weights = nearest.clamp_min(0).double()
        if float(weights.sum()) <= 0:  # every point is already a centre: take unchosen ones
            weights = torch.ones_like(weights)
            weights[chosen] = 0
        nxt = int(torch.multinomial(weights.to(device), 1, generator=generator))
        chosen.append(nxt)
        nearest = torch.minimum(nearest, ((points - points[nxt]) ** 2).sum(1))
    return torch.tensor(chosen, device=points.device)


def _at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 when it is in a lower precision (autocast's bfloat16/float16), else as is."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@dataclass
class QuantizeOutput:
    """What a training-time quantization returns.

    z_q: [B, D, h, w] quantized latents (the soft Gumbel sample, or straight-through code).
    indices: [B, h, w] hard code indices.
    kl, commit: [B] per-image sums over positions of the Eq. 4 terms (zeros when unused).
    vq: scalar Eq. 2 loss (zero when unused).
    """

    z_q: Tensor
    indices: Tensor
    kl: Tensor
    commit: Tensor
    vq: Tensor


class Quantizer(nn.Module):
    """A codebook of K vectors of dimension D and the two ways of quantizing with it.

    ``mode="gumbel"``: stochastic posterior of Eq. 3; Gumbel-softmax sample in training; at
    test time the most probable code, or a categorical sample when a generator is given.
    ``mode="nearest"``: deterministic nearest code with straight-through gradients; the
    generator is ignored. ``loss`` picks Eq. 4 ("probabilistic") or Eq. 2 ("vq").
    """

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        mode: str,
        loss: str,
        beta: float = 0.25,
        ema_decay: float = 0.99,
        vq_code: str = "nearest",
        vq_weight: float = 1.0,
        reset_rule: str = "least-used",
        init: str = "random",
    ) -> None:
        super().__init__()
        if mode in LIBRARY_QUANTIZERS:
            raise ValueError(f"quantizer {mode!r} comes from vector-quantize-pytorch and serves single-rate models only "
                             "(baselines.modern_quantizers.library_quantizer); hierarchies need 'gumbel' or 'nearest'")
        for name, value, allowed in (("quantizer mode", mode, MODES), ("codebook loss", loss, CODEBOOK_LOSSES),
                                     ("vq_code", vq_code, VQ_CODES), ("reset rule", reset_rule, RESET_RULES), ("codebook init", init, CODEBOOK_INITS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        if loss == "ema" and mode != "nearest":
            raise ValueError("EMA codebook updates are k-means updates of a nearest-code quantizer; use mode='nearest'")
        self.mode = mode
        self.loss = loss
        self.compiled = False  # set by use_compile(True)
        self.beta = beta
        self.ema_decay = ema_decay
        self.vq_code = vq_code
        self.vq_weight = vq_weight
        self.reset_rule = reset_rule
        self.init = init
        # "all-unused" resets: up to K z_e [<=K, D] drawn without replacement from the last
        # training batch, in random order (empty until a training pass)
        self.register_buffer("recent", torch.zeros(0, code_dim), persistent=False)
        # EMA codebooks are set by their moving averages, never by the optimizer.
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim), requires_grad=loss != "ema")
        # Code-usage counts since the last reset check; kept on the device (no host sync).
        self.register_buffer("usage", torch.zeros(codebook_size), persistent=False)
        if loss == "ema":  # moving averages of each code's count and of the sum of its z_e
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", self.codebook.detach().clone())

    @classmethod
    def for_layer(cls, config: HQAConfig, k: int) -> "Quantizer":
        """The quantizer of layer k under ``config`` (its codebook size, mode and losses)."""
        return cls(config.codes(k), config.code_dim, config.quantizer, config.codebook_loss, config.vq_beta,
                   config.ema_decay, config.vq_code, config.vq_weight, config.reset_rule, config.codebook_init)

    @property
    def size(self) -> int:
        return self.codebook.shape[0]

    @property
    def stochastic(self) -> bool:
        return self.mode == "gumbel"

    def use_compile(self, enabled: bool) -> None:
        """Run the training pass through ``torch.compile`` (fused kernels, compiled once per
        process and shared by every quantizer; eager fallback) or eagerly."""
        self.compiled = enabled

    # ---- test time ----
    def quantize(self, z_e: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Code indices for z_e: [B, D, h, w] -> LongTensor [B, h, w].

        Gumbel mode: the mode of q, or a categorical sample of q (:func:`categorical_sample`) when
        ``generator`` is given. Nearest mode: always the nearest code.
        """
        b, d, h, w = z_e.shape
        flat = _at_least_float32(z_e.permute(0, 2, 3, 1).reshape(-1, d))
        with torch.autocast(z_e.device.type, enabled=False):  # float32 scores: see forward
            scores = posterior_scores(flat, self.codebook)
        if self.stochastic and generator is not None:
            return categorical_sample(scores, generator).view(b, h, w)
        return scores.argmax(dim=1).view(b, h, w)

    def posterior(self, z_e: Tensor) -> Tensor:
        """q(z | x) per position: [B, D, h, w] -> [B, h, w, K] probabilities (float32).

        Gumbel mode: Eq. 3's softmax over -||z_e - e_k||^2, the distribution test-time
        samples come from. Nearest mode: one-hot on the nearest code (what is emitted)."""
        b, d, h, w = z_e.shape
        flat = _at_least_float32(z_e.permute(0, 2, 3, 1).reshape(-1, d))
        with torch.autocast(z_e.device.type, enabled=False):
            scores = posterior_scores(flat, self.codebook)
        if self.stochastic:
            q = torch.softmax(scores, dim=1)
        else:
            q = F.one_hot(scores.argmax(dim=1), self.size).to(scores.dtype)
        return q.view(b, h, w, self.size)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors for indices: [B, h, w] -> [B, D, h, w]."""
        return self.codebook[indices].permute(0, 3, 1, 2)  # channels-last strides, as the convs prefer

    # ---- training ----
    def forward(self, z_e: Tensor, temperature: float, generator: torch.Generator | None) -> QuantizeOutput:
        """Quantize for training: one pass over the [N, K] distances gives everything.

        Always float32, also under mixed precision: ||z||^2 + ||e||^2 - 2 z.e cancels, and in
        bfloat16 (8 bits of mantissa) the distances between nearby codes would be noise, and
        with them q, its entropy and the sample.
        """
        with torch.autocast(z_e.device.type, enabled=False):
            return self._forward(_at_least_float32(z_e), temperature, generator)

    def _forward(self, z_e: Tensor, temperature: float, generator: torch.Generator | None) -> QuantizeOutput:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # [N, D]
        kl = commit = vq = flat.new_zeros(())
        if self.stochastic:  # Section 5.1: Gumbel-softmax sample of Eq. 3
            uniforms = gumbel_uniforms((flat.shape[0], self.size), flat, generator)
            terms = _COMPILED_TERMS if self.compiled else gumbel_terms
            temp = torch.tensor(temperature, dtype=flat.dtype, device=flat.device)
            z_q_flat, indices, kl, commit = terms(flat, self.codebook, uniforms, temp, self.loss == "probabilistic")
        else:  # nearest code, straight-through gradients (VQ-VAE)
            dist = squared_distances(flat, self.codebook)
            indices = dist.argmin(dim=1)
            z_q_flat = flat + (self.codebook[indices] - flat).detach()
            if self.loss == "probabilistic":
                kl, commit = probabilistic_terms(posterior_log_probs(dist), dist)
        self.usage += torch.bincount(indices, minlength=self.size).to(self.usage.dtype)
        if self.reset_rule == "all-unused" and self.training:  # where the data is now: the next reset's targets
            gen_device = generator.device if generator is not None else flat.device
            order = torch.randperm(flat.shape[0], generator=generator, device=gen_device)[: self.size]
            self.recent = flat.detach()[order.to(flat.device)].clone()
        if self.loss == "probabilistic":  # Eq. 4 terms, summed over positions per image
            kl, commit = kl.view(b, -1).sum(1), commit.view(b, -1).sum(1)
        elif self.loss == "ema":  # commitment only; the codebook follows its moving averages
            vq = self.beta * F.mse_loss(flat, self.codebook[indices].detach())
            if self.training:
                self.ema_update(flat.detach(), indices)
            kl = commit = flat.new_zeros(b)
        else:  # Eq. 2, weighted by vq_weight
            vq = self.vq_weight * vq_loss(flat, self.codebook[self._vq_indices(flat, indices)], self.beta)
            kl = commit = flat.new_zeros(b)
        z_q = z_q_flat.view(b, h, w, d).permute(0, 3, 1, 2)
        return QuantizeOutput(z_q=z_q, indices=indices.view(b, h, w), kl=kl, commit=commit, vq=vq)

    def _vq_indices(self, flat: Tensor, indices: Tensor) -> Tensor:
        """The code Eq. 2 pulls z_e [N, D] and the codebook together at. Eq. 2 is defined on the
        nearest code; ``vq_code="sample"`` takes the Gumbel sample (``indices``, what the
        decoder sees) instead, so that the commitment term pulls z_e towards whichever code
        was drawn. One GPU seed each (results/experiments/issue13-gpu.md): HAMs + GS + MSE
        reached 22.5% 8-bit classification error with the nearest code, 28.9% with the sample."""
        if not self.stochastic or self.vq_code == "sample":
            return indices
        with torch.no_grad():
            return posterior_scores(flat, self.codebook).argmax(dim=1)

    @torch.no_grad()
    def init_from_data(self, flat: Tensor, generator: torch.Generator | None) -> None:
        """Set the codebook to K distinct rows of the given latents [N, D] (drawn with
        replacement only when N < K), so that at the start every code lies where the encoder
        puts data: with a random codebook far from the data, q is one-hot on one code and
        nothing is learned. Callers pass at least K positions (see ``train_stage``'s
        initialisation batch): K near-copies of a few latents would start as one cluster.
        The rows are drawn uniformly (``init="random"``) or by k-means++ seeding
        (``init="kmeans++"``, :func:`kmeans_plus_plus`), which spreads few codes over
        separated clusters (the toy's 4 codes over 4 modes)."""
        gen_device = generator.device if generator is not None else flat.device
        distinct = flat.unique(dim=0)  # equal latents (e.g. HAMs levels reading equal code maps) count once
        if distinct.shape[0] >= self.size:
            flat = distinct
        if flat.shape[0] >= self.size and self.init == "kmeans++":
            pick = kmeans_plus_plus(flat, self.size, generator)
        elif flat.shape[0] >= self.size:
            pick = torch.randperm(flat.shape[0], generator=generator, device=gen_device)[: self.size]
        else:
            pick = torch.randint(flat.shape[0], (self.size,), generator=generator, device=gen_device)
        noise = torch.randn(self.codebook.shape, generator=generator, device=gen_device).to(flat.device)
        self.codebook.copy_(flat[pick.to(flat.device)] + 0.01 * noise)
        if self.loss == "ema":
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(self.codebook)

    @torch.no_grad()
    def ema_update(self, flat: Tensor, indices: Tensor) -> None:
        """One moving-average k-means step (van den Oord et al., 2017, appendix; HQA Section 3.1):
        each code's count and the sum of the z_e [N, D] assigned to it decay towards this
        batch's, and the code becomes their ratio (counts Laplace-smoothed so that an unused
        code keeps its place instead of dividing by zero)."""
        counts = torch.bincount(indices, minlength=self.size).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
        self.ema_count.lerp_(counts, 1 - self.ema_decay)
        self.ema_sum.lerp_(sums, 1 - self.ema_decay)
        self.codebook.copy_(self.ema_sum / self._smoothed_counts()[:, None])

    def _smoothed_counts(self, eps: float = 1e-5) -> Tensor:
        n = self.ema_count.sum()
        return (self.ema_count + eps) / (n + self.size * eps) * n

    @torch.no_grad()
    def reset_dead_codes(
        self, threshold: float, generator: torch.Generator | None, min_draws_per_code: float = 0.0
    ) -> Tensor:
        """Section 5.3, the reference code's rule: move the **one** least-used code to the
        most-used code plus 1% Gaussian noise (the pair then splits the busy code's region),
        if its count is under ``threshold`` times the busiest's; then clear the counts.

        The counts are first accumulated until they hold ``min_draws_per_code * K`` draws: with
        few draws per code (a 1x1 layer at a small batch sees one draw per image) a live code
        falls under any fixed share of the busiest by chance, and would be moved. Until then
        this call does nothing. Returns the number of codes moved (a 0-dim tensor, so the
        caller decides whether to sync with the host).
        """
        usage = self.usage
        ready = usage.sum() >= min_draws_per_code * self.size
        if self.reset_rule == "all-unused":
            return self._reset_unused(ready, generator)
        min_count, dead = usage.min(dim=0)
        move = ready & (min_count < threshold * usage.max())
        donor = usage.argmax()
        gen_device = generator.device if generator is not None else self.codebook.device
        noise = torch.randn(self.codebook.shape[1], generator=generator, device=gen_device).to(self.codebook.device)
        moved = self.codebook[donor] + 0.01 * noise
        self.codebook[dead] = torch.where(move, moved, self.codebook[dead])
        if self.loss == "ema":  # the pair splits the busy code's averages, so both stay put
            half = self.ema_count[donor] / 2
            count = torch.where(move, half, self.ema_count[dead])
            self.ema_sum[donor] = torch.where(move, self.ema_sum[donor] / 2, self.ema_sum[donor])
            self.ema_count[donor] = torch.where(move, half, self.ema_count[donor])
            self.ema_sum[dead] = torch.where(move, moved * count, self.ema_sum[dead])
            self.ema_count[dead] = count
        self.usage.mul_((~ready).to(usage.dtype))
        return move.long()

    def _reset_unused(self, ready: Tensor, generator: torch.Generator | None) -> Tensor:
        """The "all-unused" rule: once the counts hold enough draws (``ready``), every code
        drawn not once moves onto a z_e of the last training batch (with 1% noise): code i
        onto the i-th of ``recent`` (distinct z_e in random order, reused only when the batch
        had fewer than K). An EMA code starts with the mean count, so that it is not averaged
        away at once. Without a training pass since construction nothing moves."""
        dead = ready & (self.usage == 0) & (len(self.recent) > 0)
        if len(self.recent) > 0:
            gen_device = generator.device if generator is not None else self.codebook.device
            noise = torch.randn(self.codebook.shape, generator=generator, device=gen_device).to(self.codebook.device)
            targets = self.recent[torch.arange(self.size, device=self.recent.device) % len(self.recent)]
            moved = targets + 0.01 * noise
        else:
            moved = self.codebook.detach()
        self.codebook.copy_(torch.where(dead[:, None], moved, self.codebook))
        if self.loss == "ema":
            mean = self.ema_count.mean()
            self.ema_sum.copy_(torch.where(dead[:, None], moved * mean, self.ema_sum))
            self.ema_count.copy_(torch.where(dead, mean, self.ema_count))
        self.usage.mul_((~ready).to(self.usage.dtype))
        return dead.sum()
