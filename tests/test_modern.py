"""FSQ and residual VQ (vector-quantize-pytorch) behind the suite's interface: bits, codes,
determinism, persistence, parameter counts, learning on tiny data and clear errors."""

from pathlib import Path

import pytest
import torch

from baselines.modern_quantizers import FSQQuantizer, ResidualQuantizer
from baselines.vqvae import VQVAE, fsq_config, rvq_config, vqvae_config
from benchmarks.registry import SYSTEM_SETS, build_system, parse_systems
from hqa import HQA, HQAConfig, Quantizer, count_parameters

MODERN = ["fsq", "rvq"]


def small(quantizer: str, **overrides) -> HQAConfig:
    """8x8 images, 3 layers (4x4, 2x2, 1x1), 16 codes of dimension 4: FSQ 4x4 levels, RVQ 4x4 stages."""
    base = HQAConfig(image_size=8, channels=1, num_layers=3, codebook_size=16, code_dim=4, enc_widths=(8, 8, 8),
                     dec_widths=(16, 16, 16), lr=3e-3, fsq_levels=(4, 4), rvq_codes=(4, 4), **overrides)
    return fsq_config(base) if quantizer == "fsq" else rvq_config(base)


def test_named_sets_and_labels() -> None:
    assert parse_systems("modern") == ["fsq", "rvq"]
    assert parse_systems("paper") == ["hqa", "vqvae", "hams", "hams-gs", "hams-mse", "hams-gs-mse", "kmeans"]
    assert set(parse_systems("all")) == set(SYSTEM_SETS["paper"]) | set(SYSTEM_SETS["modern"])
    with pytest.raises(ValueError, match="'paper', 'modern'"):
        parse_systems("modrn")


@pytest.mark.parametrize("name", MODERN)
def test_bits_equal_every_other_system_at_every_rate(name: str) -> None:
    model = build_system(name)
    assert model.rates == build_system("hqa").rates == [2048, 512, 128, 32, 8]
    for k in range(1, 6):
        assert model.models[k - 1].quantizer.size == 256  # 8 bits per position, as every system


@pytest.mark.parametrize("name", MODERN)
def test_same_backbone_as_vqvae_and_parameter_counts(name: str) -> None:
    """The encoder/decoder chain is the VQ-VAE baseline's, to the parameter; what differs is the
    quantizer: VQ-VAE's 256 x 64 codebook, FSQ's two projections, RVQ's 2 x 16 x 64 codebooks.
    So the totals are within 10% of VQ-VAE from model 2 up; model 1 (48k parameters, a third of
    them VQ-VAE's codebook) is the exception, stated in the README."""
    vq, model = build_system("vqvae"), build_system(name)
    for k in range(1, 6):
        a, b = vq.models[k - 1], model.models[k - 1]
        assert count_parameters(a.encoder) == count_parameters(b.encoder)
        assert count_parameters(a.decoder) == count_parameters(b.decoder)
        q = b.quantizer
        quantizer_size = count_parameters(q) + sum(t.numel() for n, t in q.named_buffers() if n.endswith("_codebook.embed"))
        ratio = (count_parameters(b.encoder) + count_parameters(b.decoder) + quantizer_size) / count_parameters(a)
        assert (0.9 <= ratio <= 1.0) if k >= 2 else (0.6 < ratio < 0.75), (k, ratio)


def test_bad_levels_or_stages_are_one_clear_error() -> None:
    base = HQAConfig.mnist()
    with pytest.raises(ValueError, match=r"fsq_levels=\(8, 8, 8\) multiply to 512 codes per position; the codebook size is 256"):
        fsq_config(base.replace(fsq_levels=(8, 8, 8)))
    with pytest.raises(ValueError, match="fsq_levels must be integers >= 3"):
        fsq_config(base.replace(fsq_levels=(2, 2, 2, 2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"rvq_codes=\(16, 8\) multiply to 128"):
        rvq_config(base.replace(rvq_codes=(16, 8)))
    with pytest.raises(ValueError, match="rvq_codes must be integers >= 2"):
        rvq_config(base.replace(rvq_codes=()))
    with pytest.raises(ValueError, match="set code_reset=False"):
        base.replace(quantizer="fsq")
    with pytest.raises(ValueError, match="hierarchies need 'gumbel' or 'nearest'"):
        HQA(base.replace(quantizer="rvq", code_reset=False))
    with pytest.raises(ValueError, match="single-rate models only"):
        Quantizer(256, 64, "fsq", "vq")


@pytest.mark.parametrize("quantizer", ["fsq", "rvq"])
def test_codes_round_trip_and_posterior_is_one_hot(quantizer: str) -> None:
    model = VQVAE(small(quantizer))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g)
    model.fit(x, epochs=1, batch_size=6, seed=0, progress=False)
    for k, size in zip((1, 2, 3), (4, 2, 1)):
        codes = model.encode(x, k)
        assert codes.shape == (6, size, size) and codes.dtype == torch.int64
        assert 0 <= int(codes.min()) and int(codes.max()) < 16
        q = model.posterior(x, k)
        assert q.shape == (6, size, size, 16)
        assert torch.equal(q.argmax(-1), codes) and torch.equal(q.sum(-1), torch.ones(6, size, size))
        z_q = model._quantizer(k).lookup(codes)
        assert z_q.shape == (6, 4, size, size)
        by_hand = hand_vectors(model._quantizer(k), codes)  # FSQ grid points / sums of stage code vectors
        torch.testing.assert_close(z_q, by_hand, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.decode(codes, k), model.models[k - 1].decoder(by_hand), rtol=1e-5, atol=1e-6)
        assert torch.equal(model.decode(codes, k, torch.Generator().manual_seed(1)), model.decode(codes, k))  # deterministic


def hand_vectors(q, codes: torch.Tensor) -> torch.Tensor:
    """The code vectors [B, D, h, w] of codes [B, h, w], computed by hand from the quantizer's
    definition and its stored weights only. FSQ: code c has digits c_d (the first level the
    least significant), coordinate (c_d - L_d // 2) / (L_d // 2) on the grid of level L_d, then
    the output projection W p + b. Residual VQ: the sum over stages of stage s's code vector
    e_s[c_s], c_s the s-th digit of c (stage 1 the least significant)."""
    place, parts = 1, []
    if isinstance(q, FSQQuantizer):
        for levels in q.levels:
            digit = (codes // place) % levels
            parts.append((digit.double() - levels // 2) / (levels // 2))
            place *= levels
        out = q.fsq.project_out
        vectors = torch.stack(parts, -1) @ out.weight.double().T + out.bias.double()
    else:
        books = q.rvq.codebooks.double()  # [stages, codes per stage, D]
        vectors = torch.zeros(*codes.shape, books.shape[-1], dtype=torch.float64)
        for s, size in enumerate(q.stage_codes):
            vectors = vectors + books[s][(codes // place) % size]
            place *= size
    return vectors.permute(0, 3, 1, 2).float()


def test_fsq_codes_are_the_hand_computed_grid_points() -> None:
    """FSQ with levels (8, 8, 4): code c is the grid point ((c % 8 - 4) / 4, (c // 8 % 8 - 4) / 4,
    (c // 64 - 2) / 2), K = 256 distinct points; lookup is that point through the output
    projection; and encoding a latent whose projections sit far below, at, or far above 0
    gives the lowest, middle (L // 2) or highest level of each coordinate."""
    q = FSQQuantizer(code_dim=4, levels=(8, 8, 4)).eval()
    c = torch.arange(256)
    grid = torch.stack([(c % 8 - 4) / 4, (c // 8 % 8 - 4) / 4, (c // 64 - 2) / 2], dim=-1)  # [256, 3]
    assert torch.unique(grid, dim=0).shape[0] == 256
    assert torch.equal(q.fsq._indices_to_codes(c.view(1, 256))[0].float(), grid)  # the library's grid is this one
    out = q.fsq.project_out
    with torch.no_grad():
        expected = grid @ out.weight.T + out.bias  # [256, 4]
    torch.testing.assert_close(q.lookup(c.view(1, 16, 16)), expected.view(1, 16, 16, 4).permute(0, 3, 1, 2))
    with torch.no_grad():  # the input projection reads the first three channels as they are
        q.fsq.project_in.weight.copy_(torch.eye(3, 4))
        q.fsq.project_in.bias.zero_()
    z = torch.tensor([[-10.0, 0.0, 10.0, 5.0], [10.0, -10.0, 0.0, -5.0], [0.0, 10.0, -10.0, 0.0]])  # 3 positions
    codes = q.quantize(z.T.reshape(1, 4, 3, 1))[0, :, 0]
    digits = [(0, 4, 3), (7, 0, 2), (4, 7, 0)]  # lowest 0, middle L // 2, highest L - 1 per coordinate
    assert codes.tolist() == [a + 8 * b + 64 * d for a, b, d in digits]


def initialised_rvq() -> ResidualQuantizer:
    q = ResidualQuantizer(code_dim=4, stage_codes=(16, 16), commitment_weight=0.25)
    q.init_from_data(torch.randn(2000, 4, generator=torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    return q.eval()


def test_rvq_code_is_the_tuple_of_stage_codes() -> None:
    q = initialised_rvq()
    assert q.initialised
    seq = torch.randn(2, 50, 4, generator=torch.Generator().manual_seed(2))
    _, stages, _ = q.rvq(seq)  # the library's own stage codes [2, 50, 2]
    codes = q._codes(seq)
    assert torch.equal(codes, stages[..., 0] + 16 * stages[..., 1])  # stage 1 is the least significant digit
    assert torch.equal(q._split(codes), stages)
    books = q.rvq.codebooks  # [2, 16, 4], both stages initialised by k-means: distinct, nonzero
    assert not torch.equal(books[0], books[1]) and books.abs().sum() > 0
    torch.testing.assert_close(q._vectors(codes), books[0][stages[..., 0]] + books[1][stages[..., 1]])


@pytest.mark.parametrize("make", [initialised_rvq, lambda: FSQQuantizer(code_dim=4, levels=(8, 8, 4)).eval()])
def test_training_pass_emits_what_encode_and_lookup_give(make) -> None:
    """In eval, forward's codes are quantize's and its z_q is lookup's (what decode sees)."""
    q = make()
    z = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(3))
    out = q(z, 1.0, None)
    assert torch.equal(out.indices, q.quantize(z))
    torch.testing.assert_close(out.z_q, q.lookup(out.indices))
    assert out.z_q.shape == z.shape and out.kl.shape == (3,)


def test_rvq_refuses_to_encode_before_training_and_initialises_again() -> None:
    q = ResidualQuantizer(code_dim=4, stage_codes=(16, 16), commitment_weight=0.25).eval()
    with pytest.raises(ValueError, match="not initialised: train the model"):
        q.quantize(torch.randn(1, 4, 2, 2))
    q = initialised_rvq()
    before = q.rvq.codebooks.clone()
    q.init_from_data(10 + torch.randn(2000, 4, generator=torch.Generator().manual_seed(5)), torch.Generator().manual_seed(1))
    assert (q.rvq.codebooks[0] - before[0]).abs().mean() > 5  # re-run on the new data, not skipped


@pytest.mark.parametrize("quantizer", ["fsq", "rvq"])
def test_training_is_seeded_and_leaves_global_rng_alone(quantizer: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=g)

    def fitted(seed: int) -> VQVAE:
        return VQVAE(small(quantizer)).fit(x, epochs=2, batch_size=8, seed=seed, progress=False, layers=1)

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = fitted(0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # another global state: same model
    b, c = fitted(0), fitted(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


@pytest.mark.parametrize("quantizer", ["fsq", "rvq"])
def test_save_load_round_trip(quantizer: str, tmp_path: Path) -> None:
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    model = VQVAE(small(quantizer)).fit(x, epochs=1, batch_size=8, seed=0, progress=False)
    model.save(tmp_path / "m.pt")
    loaded = VQVAE.load(tmp_path / "m.pt", expect_config=small(quantizer))
    for k in (1, 2, 3):
        assert torch.equal(loaded.encode(x, k), model.encode(x, k))
        assert torch.equal(loaded.reconstruct(x, k), model.reconstruct(x, k))
    with pytest.raises(ValueError, match="another config"):
        VQVAE.load(tmp_path / "m.pt", expect_config=vqvae_config(HQAConfig.mnist()))


@pytest.mark.parametrize("quantizer", ["fsq", "rvq"])
def test_top_rate_reconstructs_k_distinct_images(quantizer: str) -> None:
    """At the top rate (4x4 positions of 16 codes) the code can carry K=16 distinct images made
    of 2x2-pixel cells that are on or off (one bit per position): a model trained on them gives
    each its own code map and reconstructs them nearly exactly."""
    g = torch.Generator().manual_seed(3)
    cells = (torch.rand(16, 1, 4, 4, generator=g) > 0.5).float()
    distinct = cells.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # [16, 1, 8, 8]
    assert torch.unique(distinct.reshape(16, -1), dim=0).shape[0] == 16
    model = VQVAE(small(quantizer))
    model.fit(distinct.repeat(8, 1, 1, 1), epochs=120, batch_size=32, seed=0, progress=False, layers=1)
    assert torch.unique(model.encode(distinct, 1).reshape(16, -1), dim=0).shape[0] == 16
    recon = model.reconstruct(distinct, 1)
    assert torch.equal(recon.round(), distinct)  # every pixel on the right side of 1/2
    assert float(((recon - distinct) ** 2).mean()) < 0.01  # and close: the mean image alone scores 0.25
