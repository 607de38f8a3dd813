"""Tests that guard the method (issue 24): each compares the library with an independent
computation of what the paper says, so that a change of the method makes one of them fail.
tests/MUTATIONS.md lists the changes each one was checked against.

- the Gumbel temperature decays linearly over a stage, and training uses the decayed value;
- the reconstruction target: the images at layer 1, the lower layer's normalised z_e above
  (Section 5.2.2), and the recon term is the MSE to that target;
- Eq. 4's terms: log K - H[q] and E_q ||z_e - e||^2 = sum_k q_k ||z_e - e_k||^2, weighted 1e-3;
- lower layers are frozen (parameters and buffers) while a higher layer trains;
- Algorithm 1's decode: upper decoder -> un-normalise -> a categorical sample of the lower
  layer's posterior -> the lower code vector -> the lower decoder.
"""

from __future__ import annotations

import math

import pytest
import torch

from hqa import HQA, HQAConfig
from hqa.layer import QuantizedAutoencoder
from hqa.quantize import Quantizer
from hqa.system import schedule_for


# ---- independent computations (plain torch, float64, no library code) ----
def _flat(z: torch.Tensor) -> torch.Tensor:
    """[B, D, h, w] -> [B*h*w, D] in (b, y, x) order, float64."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()


def _sq_dist(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||z_n - e_k||^2 by explicit differences: [N, D] x [K, D] -> [N, K]."""
    return ((z[:, None, :] - codebook.double()[None, :, :]) ** 2).sum(-1)


def _posterior(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """q(z = k | x) ∝ exp(-||z_e - e_k||^2) (Eq. 3), [N, K]."""
    d = _sq_dist(z, codebook)
    w = torch.exp(-(d - d.min(dim=1, keepdim=True).values))
    return w / w.sum(dim=1, keepdim=True)


def _sample_by_inverse_cdf(q: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The k whose cumulative probability first exceeds u, per row: [N, K], [N] -> [N]."""
    cdf = q.cumsum(dim=1)
    picks = (cdf <= (uniforms.double() * cdf[:, -1])[:, None]).sum(dim=1)
    return picks.clamp_max(q.shape[1] - 1)


# ---- 1. the Gumbel temperature anneals ----
def test_gumbel_temperature_decays_linearly_from_start_to_end(tiny_config: HQAConfig) -> None:
    """Section 5.1 / the reference code: linear from temp_start at the first step to
    temp_end at the last, strictly falling in between."""
    config = tiny_config.replace(temp_start=0.667, temp_end=0.001)
    schedule = schedule_for(config, 11)
    temps = [schedule.temperature(step) for step in range(11)]
    assert temps[0] == pytest.approx(0.667, abs=1e-9)
    assert temps[-1] == pytest.approx(0.001, abs=1e-9)
    assert temps[5] == pytest.approx((0.667 + 0.001) / 2, abs=1e-9)
    steps = [b - a for a, b in zip(temps, temps[1:])]
    assert all(s == pytest.approx(-(0.667 - 0.001) / 10, abs=1e-9) for s in steps)


def test_training_uses_the_annealed_temperature(tiny_config: HQAConfig, tiny_images, monkeypatch) -> None:
    """What reaches the quantizer in training: the temperature of each step, falling from
    the config's start to its end over the stage's 4 steps."""
    config = tiny_config.replace(temp_start=2.0, temp_end=0.5)
    seen: list[float] = []
    forward = Quantizer.forward

    def recording(self, z_e, temperature, generator):
        seen.append(float(temperature))
        return forward(self, z_e, temperature, generator)

    monkeypatch.setattr(Quantizer, "forward", recording)
    HQA(config).fit(tiny_images, epochs=1, batch_size=16, seed=0, layers=1, progress=False, compile=False)
    assert seen == pytest.approx([2.0, 1.5, 1.0, 0.5], abs=1e-6)  # 64 images / 16 = 4 steps


# ---- 2. the reconstruction target ----
def _probabilistic_layer(tiny_config: HQAConfig, seed: int = 0) -> QuantizedAutoencoder:
    torch.manual_seed(seed)
    model = HQA(tiny_config, seed=seed)
    return model.layer(1).train()


def test_objective_is_mse_to_the_target_plus_eq4_terms(tiny_config: HQAConfig) -> None:
    """The loss of one batch against an independent computation: mean squared error of the
    decoder's output to the given target, plus 1e-3 * (log K - H[q]) / dims and
    1e-3 * sum_k q_k ||z_e - e_k||^2 / dims, per image, averaged over the batch."""
    lay = _probabilistic_layer(tiny_config)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g)
    target = torch.rand(3, 1, 8, 8, generator=g)  # deliberately not x: the target must be what is given
    loss, diag = lay.objective(x, target, tiny_config, 0.5, torch.Generator().manual_seed(7))

    with torch.no_grad():
        z_e = lay.encoder(x)
        again = lay.quantizer(z_e, 0.5, torch.Generator().manual_seed(7))  # the same Gumbel sample
        out = lay.decoder(again.z_q).double()
    recon = ((out - target.double()) ** 2).mean()
    q = _posterior(_flat(z_e), lay.quantizer.codebook.detach())
    d = _sq_dist(_flat(z_e), lay.quantizer.codebook.detach())
    k = q.shape[1]
    kl = (q * (torch.log(q.clamp_min(1e-300)) + math.log(k))).sum(1).view(3, -1).sum(1)  # log K - H[q]
    commit = (q * d).sum(1).view(3, -1).sum(1)  # E_q ||z_e - e||^2
    dims = target[0].numel()
    expected = recon + (tiny_config.entropy_weight * kl + tiny_config.commit_weight * commit).mean() / dims
    assert float(diag["recon"]) == pytest.approx(float(recon), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(kl.mean()) > 0.01 and float(commit.mean()) > 0.01  # both terms matter in this check


def test_quantizer_eq4_terms_on_a_tiny_tensor() -> None:
    """Quantizer.forward's per-image Eq. 4 terms against sum over positions of
    sum_k q_k (log q_k + log K) and sum_k q_k ||z_e - e_k||^2, by hand on 2 images x 2x1
    positions x 3 codes of dimension 2 (an unweighted mean or the nearest code's distance
    alone would differ)."""
    q_mod = Quantizer(3, 2, "gumbel", "probabilistic")
    with torch.no_grad():
        q_mod.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    z = torch.tensor([[[[0.2], [0.9]], [[0.1], [0.5]]], [[[1.0], [-0.5]], [[0.0], [1.5]]]])  # [2, 2, 2, 1]
    out = q_mod(z, 0.5, torch.Generator().manual_seed(0))
    e = q_mod.codebook.detach().double()
    flat = _flat(z)
    d = torch.stack([((flat - e[k]) ** 2).sum(1) for k in range(3)], dim=1)
    q = torch.softmax(-d, dim=1)
    commit = (q * d).sum(1).view(2, 2).sum(1)
    kl = (q * (q.log() + math.log(3))).sum(1).view(2, 2).sum(1)
    torch.testing.assert_close(out.commit.double(), commit, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.kl.double(), kl, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(commit, d.mean(1).view(2, 2).sum(1), rtol=1e-2)  # unweighted mean differs
    assert not torch.allclose(commit, d.min(1).values.view(2, 2).sum(1), rtol=1e-2)  # nearest code alone differs


def test_layer_io_target_is_the_normalised_lower_z_e(tiny_config: HQAConfig) -> None:
    """Layer 2 reads and reconstructs (z_e - mean) / sqrt(var + eps) of layer 1's z_e, with
    layer 2's running statistics (set by hand here)."""
    model = HQA(tiny_config)
    norm = model.layer(2).norm
    with torch.no_grad():
        norm.mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        norm.var.copy_(torch.tensor([4.0, 0.25, 1.0, 9.0]))
    z1 = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 1
    inputs, target = model._layer_io(z1, 2, None)
    expected = (z1 - norm.mean[None, :, None, None]) / torch.sqrt(norm.var[None, :, None, None] + norm.eps)
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(inputs, expected)


def test_fit_reconstructs_images_at_layer_1_and_normalised_z_e_above(tiny_config: HQAConfig, tiny_images, monkeypatch) -> None:
    """What training hands the objective: at layer 1 the target is the image batch itself;
    at layer 2 it is what the encoder reads, the lower z_e normalised by layer 2's running
    statistics (exactly zero-mean, unit-variance on the initialisation batch, whose
    statistics become the first running ones)."""
    calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    objective = QuantizedAutoencoder.objective
    model = HQA(tiny_config)
    index = {id(lay): k for k, lay in enumerate(model.layers, start=1)}

    def recording(self, inputs, target, config, temperature, generator):
        calls.append((index[id(self)], inputs.detach().clone(), target.detach().clone()))
        return objective(self, inputs, target, config, temperature, generator)

    monkeypatch.setattr(QuantizedAutoencoder, "objective", recording)
    model.fit(tiny_images, epochs=1, batch_size=16, seed=0, layers=2, progress=False, compile=False)
    images = {tuple(x.flatten().tolist()) for x in tiny_images}
    layer1 = [c for c in calls if c[0] == 1]
    layer2 = [c for c in calls if c[0] == 2]
    assert len(layer1) == 5 and len(layer2) == 5  # the initialisation batch, then 4 steps
    for _, inputs, target in layer1:
        assert torch.equal(target, inputs)
        assert all(tuple(t.flatten().tolist()) in images for t in target)  # training images, as they are
        assert float(target.abs().sum()) > 0
    _, first, _ = layer2[0]
    var, mean = torch.var_mean(first, dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones(4), atol=1e-4, rtol=0)
    for _, inputs, target in layer2:
        assert torch.equal(target, inputs) and float(target.std()) > 0.3


# ---- 3. lower layers are frozen while a higher layer trains ----
def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (persistent or not), copied."""
    state = {f"p:{n}": p.detach().clone() for n, p in module.named_parameters()}
    state.update({f"b:{n}": b.detach().clone() for n, b in module.named_buffers()})
    return state


@pytest.mark.parametrize("cache_bytes", [2**31, 0], ids=["cached-lower-z_e", "lower-stack-run-per-batch"])
def test_lower_layers_are_frozen_while_a_higher_layer_trains(tiny_config: HQAConfig, tiny_images, cache_bytes: int) -> None:
    """Greedy training (Section 5.2.2): training layer 3 leaves layers 1 and 2 bit for bit
    as they were, parameters and buffers (layer 2's running statistics included), whether
    the lower z_e is computed once or per batch; layer 3 itself changes."""
    model = HQA(tiny_config, cache_bytes=cache_bytes)
    model.fit(tiny_images, epochs=1, batch_size=16, seed=0, layers=2, progress=False, compile=False)
    before = [_snapshot(model.layer(k)) for k in (1, 2, 3)]
    model.fit(tiny_images, epochs=2, batch_size=16, seed=0, layers=3, progress=False, compile=False,
              heldout=tiny_images[:8], curve_points=2)
    after = [_snapshot(model.layer(k)) for k in (1, 2, 3)]
    for k in (0, 1):
        for name, value in before[k].items():
            assert torch.equal(value, after[k][name]), f"layer {k + 1} {name} changed while layer 3 trained"
    changed = [n for n, v in before[2].items() if v.is_floating_point() and not torch.equal(v, after[2][n])]
    assert any(n.startswith("p:encoder") for n in changed) and any(n.startswith("p:decoder") for n in changed)
    assert "p:quantizer.codebook" in changed and "b:norm.mean" in changed


# ---- 4. Algorithm 1's decode ----
def _spread_model(tiny_config: HQAConfig) -> HQA:
    """An untrained 3-layer HQA whose layer-1 posterior is spread (codes close together, so
    a sample often differs from the mode) and whose layer-2 statistics are far from
    (0, 1), so un-normalising matters."""
    model = HQA(tiny_config, seed=3)
    with torch.no_grad():
        model.layer(1).quantizer.codebook.mul_(0.3)
        model.layer(2).norm.mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.0]))
        model.layer(2).norm.var.copy_(torch.tensor([0.5, 2.0, 0.2, 1.0]))
    return model.eval()


def test_decode_follows_algorithm_1_with_a_posterior_sample(tiny_config: HQAConfig) -> None:
    """decode(codes, 2, generator) against a step-by-step computation: layer 2's code vectors
    -> layer 2's decoder -> un-normalised with layer 2's statistics -> one categorical draw
    per position from layer 1's posterior (the generator's uniforms, inverse CDF) -> layer
    1's code vectors -> layer 1's decoder. Differs from taking the mode instead of the
    sample, and from skipping the lower quantizer."""
    model = _spread_model(tiny_config)
    codes = torch.randint(0, 8, (6, 2, 2), generator=torch.Generator().manual_seed(1))
    got = model.decode(codes, 2, torch.Generator().manual_seed(5))

    l1, l2 = model.layer(1), model.layer(2)
    with torch.no_grad():
        e2, e1 = l2.quantizer.codebook, l1.quantizer.codebook
        out = l2.decoder(e2[codes].permute(0, 3, 1, 2))  # [6, 4, 4, 4]
        z_hat = out * torch.sqrt(l2.norm.var + l2.norm.eps)[None, :, None, None] + l2.norm.mean[None, :, None, None]
        q = _posterior(_flat(z_hat), e1)  # [96, 8]
        uniforms = torch.rand(q.shape[0], 1, generator=torch.Generator().manual_seed(5))[:, 0]
        picks = _sample_by_inverse_cdf(q, uniforms).view(6, 4, 4)
        expected = l1.decoder(e1[picks].permute(0, 3, 1, 2))
        mode = q.argmax(dim=1).view(6, 4, 4)
        from_mode = l1.decoder(e1[mode].permute(0, 3, 1, 2))
        no_quantizer = l1.decoder(z_hat)
    assert (picks != mode).float().mean() > 0.2  # the check below can tell a sample from the mode
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got - from_mode).abs().max() > 1e-3
    assert (got - no_quantizer).abs().max() > 1e-3
    torch.testing.assert_close(model.decode(codes, 2), from_mode, rtol=1e-5, atol=1e-6)  # no generator: the mode


def test_decode_from_layer_3_samples_at_every_layer_below(tiny_config: HQAConfig) -> None:
    """Two steps of Algorithm 1: layer 3 -> layer 2's posterior sample -> layer 1's, the
    uniforms drawn top first from one generator."""
    model = _spread_model(tiny_config)
    with torch.no_grad():
        model.layer(2).quantizer.codebook.mul_(0.3)
        model.layer(3).norm.var.fill_(0.5)
    codes = torch.randint(0, 8, (6, 1, 1), generator=torch.Generator().manual_seed(2))
    got = model.decode(codes, 3, torch.Generator().manual_seed(9))
    ref = torch.Generator().manual_seed(9)
    with torch.no_grad():
        z_q = model.layer(3).quantizer.codebook[codes].permute(0, 3, 1, 2)
        for k in (3, 2):
            upper, lower = model.layer(k), model.layer(k - 1)
            out = upper.decoder(z_q)
            z_hat = out * torch.sqrt(upper.norm.var + upper.norm.eps)[None, :, None, None] + upper.norm.mean[None, :, None, None]
            b, _, h, w = z_hat.shape
            q = _posterior(_flat(z_hat), lower.quantizer.codebook)
            picks = _sample_by_inverse_cdf(q, torch.rand(q.shape[0], 1, generator=ref)[:, 0]).view(b, h, w)
            z_q = lower.quantizer.codebook[picks].permute(0, 3, 1, 2)
        expected = model.layer(1).decoder(z_q)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
