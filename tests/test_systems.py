"""Every registered system: one interface, right shapes and bits, persistence, the switches."""

from pathlib import Path

import pytest
import torch

from baselines import SWITCHES, VQVAE, KMeansVQ
from benchmarks.registry import SYSTEMS, build_system, parse_systems
from hqa import HQA, HQAConfig, count_parameters

MNIST_BITS = [2048, 512, 128, 32, 8]


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    from conftest import blobs

    torch.set_num_threads(2)
    images = blobs(16, size=32)
    return {name: build_system(name, "mnist").fit(images, epochs=1, batch_size=8, seed=0, progress=False) for name in SYSTEMS}


def test_registry_names_and_classes() -> None:
    assert list(SYSTEMS) == ["hqa", "vqvae", "hams", "hams-gs", "hams-mse", "hams-gs-mse", "kmeans", "fsq", "rvq"]
    assert type(build_system("vqvae")) is VQVAE
    assert build_system("fsq").config.quantizer == "fsq" and build_system("rvq").config.quantizer == "rvq"
    assert type(build_system("kmeans")) is KMeansVQ
    for name in SWITCHES:
        model = build_system(name)
        assert type(model) is HQA
        assert {k: getattr(model.config, k) for k in SWITCHES[name]} == SWITCHES[name]


def test_bad_names_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="known systems: hqa, vqvae"):
        build_system("hqa2")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        build_system("hqa", "cifar")
    with pytest.raises(ValueError, match="unknown system"):
        parse_systems("hqa,foo")


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_every_system_answers_the_interface(fitted: dict, name: str, tmp_path: Path) -> None:
    from conftest import blobs

    model = fitted[name]
    x = blobs(3, size=32, seed=5)
    assert model.rates == MNIST_BITS
    for layer, size in zip(range(1, 6), (16, 8, 4, 2, 1)):
        g = torch.Generator().manual_seed(0)
        codes = model.encode(x, layer, g)
        assert codes.shape == (3, size, size) and codes.dtype == torch.int64
        assert model.decode(codes, layer, g).shape == x.shape
        assert model.reconstruct(x, layer, g).shape == x.shape
        z = model.encode_continuous(x, layer)
        assert z.shape == (3, model._latent_dim(layer), size, size)
        assert model.decode_continuous(z, layer, g).shape == x.shape
    path = tmp_path / f"{name}.pt"
    model.save(path)
    loaded = type(model).load(path)
    s1, s2 = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert torch.equal(loaded.encode(x, 5), model.encode(x, 5))


@pytest.mark.parametrize("name", ["hams", "hams-mse", "vqvae", "kmeans", "fsq", "rvq"])
def test_deterministic_systems_ignore_the_generator(fitted: dict, name: str) -> None:
    from conftest import blobs

    model = fitted[name]
    codes = model.encode(blobs(8, size=32), 5)
    outs = [model.decode(codes, 5, torch.Generator().manual_seed(s)) for s in range(3)]
    assert all(torch.equal(outs[0], o) for o in outs)
    assert not model.stochastic


@pytest.mark.parametrize("name", ["hqa", "hams-gs", "hams-gs-mse"])
def test_gumbel_systems_sample(fitted: dict, name: str) -> None:
    model = fitted[name]
    codes = torch.arange(8).view(8, 1, 1)
    outs = [model.decode(codes, 5, torch.Generator().manual_seed(s)) for s in range(3)]
    assert not torch.equal(outs[0], outs[1]) or not torch.equal(outs[0], outs[2])
    assert model.stochastic


def test_ce_target_decodes_to_k_logits() -> None:
    model = build_system("hams")
    lay = model.layer(3)
    out = lay.decoder(torch.zeros(2, 64, 4, 4))
    assert out.shape == (2, 256, 8, 8)  # logits over layer 2's 256 codes at each position
    assert build_system("hams-mse").layer(3).decoder(torch.zeros(2, 64, 4, 4)).shape == (2, 64, 8, 8)


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_vqvae_parameters_match_hqa_stack_at_every_rate(dataset: str) -> None:
    vq, hqa = build_system("vqvae", dataset), build_system("hqa", dataset)
    for k in range(1, hqa.num_layers + 1):
        stack = sum(count_parameters(layer) for layer in hqa.layers[:k])
        ratio = count_parameters(vq.models[k - 1]) / stack
        assert 0.9 <= ratio <= 1.1, (k, ratio)


def test_celeba_presets_rates_and_matched_sizes() -> None:
    """Seven layers, 512 codes (9 bits), top latent 1x1; every system within 5% of HQA."""
    hqa = build_system("hqa", "celeba")
    assert hqa.rates == [64 * 64 // 4**k * 9 for k in range(7)]  # 36864 ... 9 bits
    assert hqa.config.latent_size(7) == 1 and hqa.config.codebook_size == 512
    ref = count_parameters(hqa)
    for name in ["vqvae", *SWITCHES]:
        model = build_system(name, "celeba")
        assert model.rates == hqa.rates
        units = model.models[-1] if name == "vqvae" else model
        assert abs(count_parameters(units) / ref - 1) < 0.05, name


def test_hams_parameters_close_to_hqa() -> None:
    ref = count_parameters(build_system("hqa"))
    for name in SWITCHES:
        assert abs(count_parameters(build_system(name)) / ref - 1) < 0.15


def test_vqvae_checkpoint_is_not_an_hqa(fitted: dict, tmp_path: Path) -> None:
    fitted["vqvae"].save(tmp_path / "v.pt")
    with pytest.raises(ValueError, match="'VQVAE' model, not a 'HQA'"):
        HQA.load(tmp_path / "v.pt")
    with pytest.raises(ValueError, match="another config"):
        VQVAE.load(tmp_path / "v.pt", expect_config=HQAConfig.mnist())


def test_kmeans_reconstructs_k_distinct_images_exactly(tiny_config: HQAConfig, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    distinct = torch.rand(tiny_config.codebook_size, 1, 8, 8, generator=g)
    images = distinct.repeat(4, 1, 1, 1)
    model = KMeansVQ(tiny_config).fit(images, epochs=1, seed=0, progress=False)
    top = tiny_config.num_layers
    assert model.rates == [48, 12, 3]
    torch.testing.assert_close(model.reconstruct(distinct, top), distinct)  # 1x1: one code per image
    assert model.encode(distinct, top).unique().numel() == tiny_config.codebook_size
    again = KMeansVQ(tiny_config).fit(images, epochs=1, seed=0, progress=False)
    assert torch.equal(again.codebooks[0].codebook, model.codebooks[0].codebook)  # seeded
    model.save(tmp_path / "k.pt")
    loaded = KMeansVQ.load(tmp_path / "k.pt")
    assert torch.equal(loaded.encode(distinct, 2), model.encode(distinct, 2))
    z = model.encode_continuous(distinct[:2], top)
    mid = model.decode_continuous((z[:1] + z[1:]) / 2, top)  # an interpolation snaps to a centroid
    assert any(torch.allclose(mid[0], d, atol=1e-5) for d in distinct)


def test_vqvae_learns_its_codebook_by_moving_averages(tiny_config) -> None:
    """The VQ-VAE baseline (Section 3.1): EMA k-means codebook, never an optimizer parameter;
    after training each code is its moving-average sum over its moving-average count, and it
    has moved from where the initialisation put it."""
    from baselines.vqvae import vqvae_config

    from conftest import blobs

    model = VQVAE(vqvae_config(tiny_config))
    q = model.models[0].quantizer
    assert model.config.codebook_loss == "ema" and not q.codebook.requires_grad
    model.fit(blobs(64), epochs=3, batch_size=16, seed=0, layers=1, progress=False)
    torch.testing.assert_close(q.codebook.detach(), q.ema_sum / q._smoothed_counts()[:, None])
    assert not torch.allclose(q.ema_count, torch.ones_like(q.ema_count))  # counts followed the data
