"""Information bits and code entropy against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks.information import InformationMeter, code_entropy, entropy_bits, information_bits
from benchmarks.metrics import layer_information
from hqa import HQA, HQAConfig
from hqa.quantize import Quantizer


def test_a_posterior_that_ignores_the_image_carries_nothing() -> None:
    q = torch.softmax(torch.randn(1, 3, 16, generator=torch.Generator().manual_seed(0)), -1).expand(50, 3, 16)
    assert information_bits(q) == pytest.approx(0.0, abs=1e-9)
    # ... while samples from it have high entropy: the old "effective bits" measured that noise
    codes = torch.multinomial(q.reshape(-1, 16), 1, generator=torch.Generator().manual_seed(1)).view(50, 3)
    assert code_entropy(codes, 16) > 2.0


def test_uniformly_used_one_hot_codes_give_log2_k_per_position() -> None:
    k, positions = 8, 3
    codes = torch.arange(4 * k).remainder(k).view(-1, 1).expand(-1, positions)  # each code equally often
    q = F.one_hot(codes, k).double()
    assert information_bits(q) == pytest.approx(positions * math.log2(k))
    assert code_entropy(codes, k) == pytest.approx(positions * math.log2(k))


def test_entropy_is_per_position_and_summed() -> None:
    # position 0 always code 0, position 1 half 1 and half 2: 0 + 1 bit (pooled entropy would be 1.5 x 2)
    codes = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 2]])
    assert code_entropy(codes, 4) == pytest.approx(1.0)


def test_hand_computed_soft_posterior() -> None:
    # two images, one position, K = 2: q = (0.9, 0.1) and (0.1, 0.9); mean (0.5, 0.5)
    q = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]])
    h = -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))
    assert information_bits(q) == pytest.approx(1.0 - h)


def test_meter_streams_to_the_same_value_and_rejects_bad_input() -> None:
    q = torch.softmax(torch.randn(30, 2, 2, 5, generator=torch.Generator().manual_seed(0)) * 3, -1)
    meter = InformationMeter()
    for chunk in q.split(7):
        meter.add(chunk)
    assert meter.bits() == pytest.approx(information_bits(q.reshape(30, 4, 5)))
    with pytest.raises(ValueError, match="sum to 1"):
        meter.add(torch.ones(2, 1, 1, 5))
    with pytest.raises(ValueError, match="no posteriors"):
        InformationMeter().bits()


def test_deterministic_quantizer_gives_its_code_entropy() -> None:
    q = Quantizer(6, 2, mode="nearest", loss="vq")
    z = torch.randn(40, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    post = q.posterior(z)
    assert post.shape == (40, 3, 3, 6)
    codes = q.quantize(z)
    assert information_bits(post.reshape(40, 9, 6)) == pytest.approx(code_entropy(codes, 6))


def test_stochastic_system_posterior_and_its_information() -> None:
    model = HQA(HQAConfig.preset("mnist")).eval()
    x = torch.rand(32, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    post = model.posterior(x, 2)
    assert post.shape == (32, 8, 8, 256) and torch.allclose(post.sum(-1), torch.ones(32, 8, 8))
    assert not torch.equal(post, post.amax(-1, keepdim=True).eq(post).float())  # soft, not one-hot
    info = layer_information(model, x, 2, batch_size=8)
    assert info == pytest.approx(information_bits(post.reshape(32, 64, 256)), rel=1e-6)
    # I(X; Z) <= H(mean q), the entropy the samples are drawn with
    assert 0.0 < info < float(entropy_bits(post.double().mean(0)).sum())


def test_gumbel_posterior_is_eq3_and_what_test_time_sampling_draws_from() -> None:
    from hqa.quantize import posterior_log_probs, squared_distances

    q = Quantizer(5, 3, mode="gumbel", loss="probabilistic")
    z = torch.randn(1, 3, 1, 1, generator=torch.Generator().manual_seed(0)) * 0.5
    post = q.posterior(z).reshape(5)
    flat = z.permute(0, 2, 3, 1).reshape(1, 3)
    assert torch.allclose(post, posterior_log_probs(squared_distances(flat, q.codebook.detach())).exp().reshape(5), atol=1e-6)
    draws = q.quantize(z.expand(20_000, 3, 1, 1).contiguous(), torch.Generator().manual_seed(1)).flatten()
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    assert torch.allclose(freq, post, atol=0.015)  # the emitted codes are samples of this posterior


def _blind_hqa() -> HQA:
    """An HQA whose top layer's z_e ignores the image: every image gets the same posterior."""
    model = HQA(HQAConfig.preset("mnist")).eval()
    top = model.layers[-1].encoder
    for p in top.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        model.layers[-1].quantizer.codebook.mul_(0.01)  # codes close together: a spread-out posterior
    return model


def test_a_blind_stochastic_system_measures_zero_information_but_busy_codes() -> None:
    from benchmarks.metrics import CODE_ENTROPY, CODES_USED, INFO_BITS, evaluate_system

    x = torch.rand(200, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = {m.metric: m.value for m in evaluate_system(_blind_hqa(), x, torch.zeros(200, dtype=torch.long), [], 0)
            if m.layer == 5}
    assert rows[INFO_BITS] == pytest.approx(0.0, abs=1e-6)
    assert rows[CODE_ENTROPY] > 6.0 and rows[CODES_USED] > 100  # what "effective bits" used to report


@pytest.mark.parametrize("name", ["vqvae", "kmeans", "fsq", "rvq"])
def test_deterministic_systems_information_equals_code_entropy(name: str) -> None:
    from benchmarks.metrics import CODE_ENTROPY, INFO_BITS, evaluate_system
    from benchmarks.registry import build_system

    model = build_system(name).eval()
    x = torch.rand(60, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for k in range(1, 6):  # codebooks where the (untrained) encoders put the data, so codes differ
        z = model.encode_continuous(x, k)
        quantizer = model._quantizer(k)
        quantizer.init_from_data(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), torch.Generator().manual_seed(k))
        if hasattr(quantizer, "fsq"):  # an untrained projection puts every latent in one cell of 4-level grids
            with torch.no_grad():
                quantizer.fsq.project_in.weight.mul_(50.0)
    rows = evaluate_system(model, x, torch.zeros(60, dtype=torch.long), [], 0)
    info = []
    for layer in range(1, 6):
        got = {m.metric: m.value for m in rows if m.layer == layer}
        assert got[INFO_BITS] == pytest.approx(got[CODE_ENTROPY], abs=1e-9)
        info.append(got[INFO_BITS])
    assert max(info) > 1.0  # not equal only because both are 0
