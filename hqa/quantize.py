"""Codebooks and quantizers: the stochastic posterior of HQA and the nearest code of VQ-VAE.

Paper references (Williams et al., NeurIPS 2020):
- Eq. 3, the posterior q(z=k|x) ∝ exp(-||z_e - e_k||^2): :func:`posterior_log_probs`.
- Gumbel-softmax sample of it at train time (Section 5.1): :func:`relaxed_sample`.
- Eq. 4's entropy and probabilistic commitment terms: :func:`probabilistic_terms`.
- Eq. 2, the standard VQ-VAE codebook + commitment loss: :func:`vq_loss`.
- Code resetting (Section 5.3): :meth:`Quantizer.reset_dead_codes`.

Everything runs on the flattened latents ``[N, D]`` (N = B*h*w positions) against the codebook
``[K, D]``; the hot path computes the ``[N, K]`` distances once and derives everything else
from them (no torch.distributions objects, no repeated softmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """||z_n - e_k||^2 for every position and code: [N, D] x [K, D] -> [N, K] (matmul form)."""
    z_sq = (z * z).sum(dim=1, keepdim=True)  # [N, 1]
    e_sq = (codebook * codebook).sum(dim=1)  # [K]
    return torch.addmm(z_sq + e_sq, z, codebook.t(), alpha=-2.0).clamp_min_(0.0)


def posterior_log_probs(distances: Tensor) -> Tensor:
    """log q(z=k|x) for q ∝ exp(-||z_e - e_k||^2) (Eq. 3): [N, K] distances -> [N, K]."""
    return torch.log_softmax(-distances, dim=1)


def gumbel_noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device and dtype.

    The uniforms are drawn and clamped exactly as torch.distributions' RelaxedOneHotCategorical
    draws them, so both give the same sample for the same random state.
    """
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)
    eps = torch.finfo(like.dtype).eps
    u = u.clamp_(min=eps, max=1 - eps)
    return -torch.log(-torch.log(u))


def relaxed_sample(log_q: Tensor, noise: Tensor, temperature: float) -> Tensor:
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


class _FusedGumbelPosterior(torch.autograd.Function):
    """Eq. 3's posterior, its Gumbel-softmax sample and Eq. 4's two terms in one pass.

    Forward: distances -> log q -> soft sample y -> z_q = y @ E, kl, commit. Backward is
    written out by hand (softmax and log-softmax Jacobians applied in closed form), so the
    [N, K] work is a handful of fused passes instead of autograd's ~25 element-wise kernels.
    Gradients equal autograd's through :func:`reference_gumbel_terms` (tests check this).
    """

    @staticmethod
    def forward(ctx, z: Tensor, codebook: Tensor, noise: Tensor, temperature: float):  # type: ignore[override]
        dist = squared_distances(z, codebook)  # [N, K]
        log_q = posterior_log_probs(dist)  # Eq. 3
        scores = log_q + noise
        indices = scores.argmax(dim=1)
        y = torch.softmax(scores.div_(temperature), dim=1)  # Gumbel-softmax sample
        q = log_q.exp()
        log_k = math.log(dist.shape[1])
        kl = torch.addcmul(torch.zeros_like(q), q, log_q + log_k).sum(dim=1)  # log K - H[q]
        commit = (q * dist).sum(dim=1)  # E_q ||z_e - e||^2
        ctx.save_for_backward(z, codebook, y, q, log_q, dist)
        ctx.temperature = temperature
        ctx.mark_non_differentiable(indices)
        return y @ codebook, indices, kl, commit

    @staticmethod
    def backward(ctx, g_zq: Tensor, _g_idx: Tensor, g_kl: Tensor, g_commit: Tensor):  # type: ignore[override]
        z, codebook, y, q, log_q, dist = ctx.saved_tensors
        log_k = math.log(dist.shape[1])
        g_codebook = y.t() @ g_zq  # through z_q = y @ E
        g_y = g_zq @ codebook.t()  # [N, K]
        # softmax Jacobian: d/da of softmax(a / tau), a = log q + noise
        g_y.sub_((g_y * y).sum(dim=1, keepdim=True)).mul_(y).div_(ctx.temperature)
        # + d kl / d log q = q (log q + log K + 1);  d commit / d log q = q * dist
        g_logq = g_y.add_(q * (g_kl[:, None] * (log_q + (log_k + 1.0)) + g_commit[:, None] * dist))
        # log-softmax Jacobian (log q = s - lse(s), s = -dist), then the direct commit term
        g_dist = g_logq.sub_(q * g_logq.sum(dim=1, keepdim=True)).neg_().add_(q * g_commit[:, None])
        # dist = |z|^2 + |e|^2 - 2 z e^T
        g_z = 2 * (z * g_dist.sum(dim=1, keepdim=True) - g_dist @ codebook)
        g_codebook += 2 * (codebook * g_dist.sum(dim=0)[:, None] - g_dist.t() @ z)
        return g_z, g_codebook, None, None


def fused_gumbel_terms(
    z: Tensor, codebook: Tensor, noise: Tensor, temperature: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(z_q [N, D], hard indices [N], kl [N], commit [N]) of a Gumbel-softmax sample of Eq. 3.

    The fast path of :func:`reference_gumbel_terms` (same values and gradients).
    """
    return _FusedGumbelPosterior.apply(z, codebook, noise, temperature)


def reference_gumbel_terms(
    z: Tensor, codebook: Tensor, noise: Tensor, temperature: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The same quantities written plainly with autograd (the reference the fast path matches)."""
    dist = squared_distances(z, codebook)
    log_q = posterior_log_probs(dist)
    y = relaxed_sample(log_q, noise, temperature)
    kl, commit = probabilistic_terms(log_q, dist)
    return y @ codebook, (log_q + noise).argmax(dim=1), kl, commit


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

    def __init__(self, codebook_size: int, code_dim: int, mode: str, loss: str, beta: float = 0.25) -> None:
        super().__init__()
        if mode not in ("gumbel", "nearest"):
            raise ValueError(f"unknown quantizer mode {mode!r}; expected 'gumbel' or 'nearest'")
        if loss not in ("probabilistic", "vq"):
            raise ValueError(f"unknown codebook loss {loss!r}; expected 'probabilistic' or 'vq'")
        self.mode = mode
        self.loss = loss
        self.fused = True  # hand-written backward (False: plain autograd, the reference)
        self.beta = beta
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        # Code-usage counts since the last reset check; kept on the device (no host sync).
        self.register_buffer("usage", torch.zeros(codebook_size), persistent=False)

    @property
    def size(self) -> int:
        return self.codebook.shape[0]

    @property
    def stochastic(self) -> bool:
        return self.mode == "gumbel"

    # ---- test time ----
    def quantize(self, z_e: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Code indices for z_e: [B, D, h, w] -> LongTensor [B, h, w].

        Gumbel mode: the mode of q, or a categorical sample of q (Gumbel-max) when
        ``generator`` is given. Nearest mode: always the nearest code.
        """
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        scores = -squared_distances(flat, self.codebook)
        if self.stochastic and generator is not None:
            scores = scores + gumbel_noise(tuple(scores.shape), scores, generator)
        return scores.argmax(dim=1).view(b, h, w)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors for indices: [B, h, w] -> [B, D, h, w]."""
        return self.codebook[indices].permute(0, 3, 1, 2).contiguous()

    # ---- training ----
    def forward(self, z_e: Tensor, temperature: float, generator: torch.Generator | None) -> QuantizeOutput:
        """Quantize for training: one pass over the [N, K] distances gives everything."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # [N, D]
        kl = commit = vq = flat.new_zeros(())
        if self.stochastic:  # Section 5.1: Gumbel-softmax sample of Eq. 3
            noise = gumbel_noise((flat.shape[0], self.size), flat, generator)
            terms = fused_gumbel_terms if self.fused else reference_gumbel_terms
            z_q_flat, indices, kl, commit = terms(flat, self.codebook, noise, temperature)
        else:  # nearest code, straight-through gradients (VQ-VAE)
            dist = squared_distances(flat, self.codebook)
            indices = dist.argmin(dim=1)
            z_q_flat = flat + (self.codebook[indices] - flat).detach()
            if self.loss == "probabilistic":
                kl, commit = probabilistic_terms(posterior_log_probs(dist), dist)
        self.usage += torch.bincount(indices, minlength=self.size).to(self.usage.dtype)
        if self.loss == "probabilistic":  # Eq. 4 terms, summed over positions per image
            kl, commit = kl.view(b, -1).sum(1), commit.view(b, -1).sum(1)
        else:  # Eq. 2
            vq = vq_loss(flat, self.codebook[indices], self.beta)
            kl = commit = flat.new_zeros(b)
        z_q = z_q_flat.view(b, h, w, d).permute(0, 3, 1, 2)
        return QuantizeOutput(z_q=z_q, indices=indices.view(b, h, w), kl=kl, commit=commit, vq=vq)

    @torch.no_grad()
    def init_from_data(self, flat: Tensor, generator: torch.Generator | None) -> None:
        """Set the codebook to K of the given latents [N, D] (drawn with replacement when
        N < K), so that at the start every code lies where the encoder puts data: with a
        random codebook far from the data, q is one-hot on one code and nothing is learned."""
        gen_device = generator.device if generator is not None else flat.device
        if flat.shape[0] >= self.size:
            pick = torch.randperm(flat.shape[0], generator=generator, device=gen_device)[: self.size]
        else:
            pick = torch.randint(flat.shape[0], (self.size,), generator=generator, device=gen_device)
        noise = torch.randn(self.codebook.shape, generator=generator, device=gen_device).to(flat.device)
        self.codebook.copy_(flat[pick.to(flat.device)] + 0.01 * noise)

    @torch.no_grad()
    def reset_dead_codes(self, threshold: float, generator: torch.Generator | None) -> Tensor:
        """Move codes used less than ``threshold`` times as often as the busiest code to near
        a heavily used code (Section 5.3); clear the usage counts. Returns the number moved
        (a 0-dim tensor, so the caller decides whether to sync with the host).

        Donors are drawn in proportion to usage, and the moved code lands at the donor plus
        1% Gaussian noise, so the pair splits the donor's region between them.
        """
        usage = self.usage
        dead = usage < threshold * usage.max()
        k = self.size
        device = self.codebook.device
        gen_device = generator.device if generator is not None else device
        probs = (usage + 1e-6).to(gen_device)  # + 1e-6: valid even before any usage
        donors = torch.multinomial(probs, k, replacement=True, generator=generator).to(device)
        noise = torch.randn(self.codebook.shape, generator=generator, device=gen_device).to(device)
        moved = self.codebook[donors] + 0.01 * noise
        self.codebook.copy_(torch.where(dead[:, None], moved, self.codebook))
        self.usage.zero_()
        return dead.sum()
