import pytest

from hqa import HQA, HQAConfig, count_parameters


def test_mnist_preset_rates_and_size() -> None:
    cfg = HQAConfig.mnist()
    assert (cfg.image_size, cfg.channels, cfg.num_layers, cfg.codebook_size, cfg.code_dim) == (32, 1, 5, 256, 64)
    assert [cfg.bits(k) for k in range(1, 6)] == [2048, 512, 128, 32, 8]
    n = count_parameters(HQA(cfg))
    print(f"HQA MNIST parameters: {n}")
    assert 0.9e6 <= n <= 1.1e6  # Section 6.2: ~1M


def test_celeba_preset_rates() -> None:
    cfg = HQAConfig.celeba()
    assert (cfg.image_size, cfg.channels, cfg.num_layers, cfg.codebook_size) == (64, 3, 7, 512)
    # layer 1 keeps 64x64 (six halvings reach 1x1), then each layer halves h and w
    assert [cfg.bits(k) for k in range(1, 8)] == [64 * 64 // 4 ** (k - 1) * 9 for k in range(1, 8)]
    assert HQA(cfg).rates[-1] == 9


@pytest.mark.parametrize(
    "bad",
    [
        dict(quantizer="argmax"),
        dict(target="l1"),
        dict(codebook_loss="ema"),
        dict(enc_widths=(8,)),
        dict(image_size=30),
        dict(codebook_size=100),
        dict(num_layers=0, enc_widths=(), dec_widths=()),
    ],
)
def test_bad_config_is_one_value_error(bad: dict) -> None:
    with pytest.raises(ValueError, match="HQAConfig"):
        HQAConfig.mnist(**bad)


def test_unknown_preset_and_fields() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        HQAConfig.preset("cifar")
    with pytest.raises(ValueError, match="unknown HQAConfig fields"):
        HQAConfig.from_dict({**HQAConfig.mnist().to_dict(), "tempreature": 1.0})


def test_config_round_trips_through_dict() -> None:
    cfg = HQAConfig.celeba(lr=1e-3)
    assert HQAConfig.from_dict(cfg.to_dict()) == cfg


def test_per_layer_codebook_sizes_set_bits_and_quantizers() -> None:
    cfg = HQAConfig(image_size=1, num_layers=2, codebook_size=4, codebook_sizes=(4, 2), code_dim=2,
                    enc_widths=(4, 4), dec_widths=(4, 4), strides=(1, 1))
    assert [cfg.codes(1), cfg.codes(2)] == [4, 2]
    assert [cfg.bits(1), cfg.bits(2)] == [2, 1]  # Figure 1: 2 bits, then a 1-bit encoding
    assert [lay.quantizer.size for lay in HQA(cfg).layers] == [4, 2]
    with pytest.raises(ValueError, match="codebook_sizes has 1 entries for 2 layers"):
        cfg.replace(codebook_sizes=(4,))
    with pytest.raises(ValueError, match="powers of 2"):
        cfg.replace(codebook_sizes=(4, 3))


def test_profiles_turn_per_layer_steps_and_batches_into_whole_epochs() -> None:
    from benchmarks.profiles import get_profile, whole_epochs

    quick = get_profile("quick")
    assert quick.layer_batches(5) == (128,) * 5
    assert quick.layer_batches(5, independent=True) == (64,) * 5  # VQ-VAE: its own batch
    assert get_profile("smoke").layer_batches(3, independent=True) == (32,) * 3  # default: the bottom layer's
    # 5000 images: 39 steps per epoch at batch 128, 78 at 64
    assert whole_epochs(quick.layer_steps(5), 5000, quick.layer_batches(5)) == ([6, 7, 21, 39, 154], [234, 273, 819, 1521, 6006])
    assert quick.epochs(5000, 7) == [6, 7, 21, 39, 154, 154, 154]  # CelebA's 7 layers repeat the last entry
    assert whole_epochs(quick.layer_steps(5, True), 5000, quick.layer_batches(5, True)) == ([5] * 5, [390] * 5)


def test_paper_profile_is_fifty_epochs_of_60k_at_batch_512() -> None:
    from benchmarks.profiles import get_profile, whole_epochs

    paper = get_profile("paper")
    epochs, taken = whole_epochs(paper.layer_steps(5), 60_000, paper.layer_batches(5))
    assert epochs == [50] * 5 and taken == [5850] * 5  # 117 full batches per epoch
    assert "reference code" in paper.description and "5,850" in paper.description


def test_readme_library_example_uses_the_quick_profiles_epochs() -> None:
    import re
    from pathlib import Path

    from benchmarks.profiles import get_profile

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    call = re.search(r"model\.fit\(train\.images, epochs=\[([\d, ]+)\], batch_size=\[([\d, ]+)\]", readme)
    assert call is not None, "the README's library example no longer calls model.fit(train.images, epochs=[...], ...)"
    quick = get_profile("quick")
    assert [int(v) for v in call.group(1).split(",")] == quick.epochs(5000, 5)  # the offline 5k training images
    assert tuple(int(v) for v in call.group(2).split(",")) == quick.layer_batches(5)


def test_gumbel_temperature_starts_per_system() -> None:
    """HQA and the Eq. 2 Gumbel rows on MNIST start their Gumbel temperature at 3.0 (chosen on
    validation images: results/experiments/decisions.md); the CelebA preset (every system on
    it) and the toy keep the reference code's 0.667."""
    from benchmarks.registry import build_system
    from benchmarks.toy import ToySettings, toy_config

    assert HQAConfig.mnist().temp_start == 3.0 and build_system("hqa").config.temp_start == 3.0
    assert build_system("hams-gs").config.temp_start == build_system("hams-gs-mse").config.temp_start == 3.0
    assert build_system("hams-gs", "celeba").config.temp_start == 0.667
    assert HQAConfig.celeba().temp_start == 0.667 and build_system("hqa", "celeba").config.temp_start == 0.667
    assert toy_config((4, 2), True, ToySettings()).temp_start == 0.667
