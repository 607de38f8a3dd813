"""The HQA library: shapes, bits, training, determinism, stochastic decoding, persistence, bad input."""

from pathlib import Path

import pytest
import torch

from hqa import HQA, HQAConfig
from hqa.normalize import RunningNorm


@pytest.fixture
def trained(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> HQA:
    return HQA(tiny_config).fit(tiny_images, epochs=3, batch_size=16, seed=0, progress=False)


def test_interface_shapes_and_bits(trained: HQA, tiny_images: torch.Tensor) -> None:
    x = tiny_images[:5]
    assert trained.rates == [4 * 4 * 3, 2 * 2 * 3, 1 * 3]
    for layer, size in zip((1, 2, 3), (4, 2, 1)):
        codes = trained.encode(x, layer)
        assert codes.dtype == torch.int64 and codes.shape == (5, size, size)
        out = trained.decode(codes, layer, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        z = trained.encode_continuous(x, layer)
        assert z.shape == (5, 4, size, size)
        assert trained.decode_continuous(z, layer).shape == x.shape
        assert trained.reconstruct(x, layer).shape == x.shape


def test_loss_falls_on_tiny_data(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> None:
    model = HQA(tiny_config)
    before = ((model.reconstruct(tiny_images, 1) - tiny_images) ** 2).mean()
    model.fit(tiny_images, epochs=[40, 1, 1], batch_size=16, seed=0, layers=1, progress=False)
    after = ((model.reconstruct(tiny_images, 1) - tiny_images) ** 2).mean()
    assert model.trained_layers == 1
    assert after < 0.5 * before


def test_mixed_precision_trains_with_a_float32_quantizer(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> None:
    """bfloat16 autocast (the GPU setting; CPU autocast here) trains every layer; the loss
    falls, and the quantizer's distances and sample stay float32."""
    model = HQA(tiny_config)
    before = ((model.reconstruct(tiny_images, 1) - tiny_images) ** 2).mean()
    model.fit(tiny_images, epochs=[80, 2, 2], batch_size=16, seed=0, progress=False, mixed_precision=True)
    after = ((model.reconstruct(tiny_images, 1) - tiny_images) ** 2).mean()
    assert model.trained_layers == 3 and after < 0.5 * before
    assert all(torch.isfinite(p).all() for p in model.parameters())
    quantizer = model.layer(1).quantizer
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_e = model.layer(1).encoder(tiny_images[:4])
        assert z_e.dtype == torch.bfloat16  # the convolutions run in bfloat16 ...
        out = quantizer(z_e, 0.5, torch.Generator().manual_seed(0))
    assert out.z_q.dtype == torch.float32 and out.kl.dtype == torch.float32  # ... the quantizer does not
    expected = quantizer(z_e.float(), 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out.indices, expected.indices)


def test_fit_is_deterministic_under_a_seed(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> None:
    a = HQA(tiny_config, seed=1).fit(tiny_images, epochs=1, batch_size=16, seed=3, progress=False)
    b = HQA(tiny_config, seed=2).fit(tiny_images, epochs=1, batch_size=16, seed=3, progress=False)
    c = HQA(tiny_config).fit(tiny_images, epochs=1, batch_size=16, seed=4, progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_decoding_is_stochastic_but_repeatable(trained: HQA, tiny_images: torch.Tensor) -> None:
    codes = trained.encode(tiny_images[:32], 3)
    gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a, b, c = (trained.decode(codes, 3, gen(s)) for s in (0, 0, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(trained.decode(codes, 3), trained.decode(codes, 3))  # no generator: the mode


def test_save_load_round_trip(trained: HQA, tiny_images: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "hqa.pt"
    trained.save(path)
    loaded = HQA.load(path)
    assert loaded.config == trained.config and loaded.trained_layers == 3
    s1, s2 = trained.state_dict(), loaded.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    for layer in (1, 2, 3):
        assert torch.equal(loaded.encode(tiny_images, layer), trained.encode(tiny_images, layer))
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_normalization_round_trips_and_freezes() -> None:
    norm = RunningNorm(3, momentum=0.5)
    x = torch.randn(8, 3, 4, 4) * 5 + 2
    norm.train()
    y = norm(x)
    torch.testing.assert_close(norm.inverse(y), x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    norm.eval()
    before = norm.mean.clone()
    norm(x * 10)
    assert torch.equal(norm.mean, before)  # frozen in eval


def test_adopted_bottom_equals_training_it(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> None:
    ce = tiny_config.replace(target="ce", quantizer="nearest", codebook_loss="vq", code_reset=False)
    mse = ce.replace(target="mse")
    shared = HQA(ce).fit(tiny_images, epochs=1, batch_size=16, seed=0, layers=1, progress=False)
    own = HQA(mse).fit(tiny_images, epochs=1, batch_size=16, seed=0, layers=1, progress=False)
    adopted = HQA(mse)
    adopted.adopt_bottom(shared)
    s1, s2 = own.layers[0].state_dict(), adopted.layers[0].state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    with pytest.raises(ValueError, match="not trained identically"):
        HQA(tiny_config).adopt_bottom(shared)


# ---- bad input: one clear error, before any computation ----
@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(2, 1, 16, 16), r"shape \[B, 1, 8, 8\]"),
        (torch.rand(2, 3, 8, 8), r"shape \[B, 1, 8, 8\]"),
        (torch.rand(2, 1, 8, 8) * 2, r"\[0, 1\]"),
        (torch.randint(0, 2, (2, 1, 8, 8)), "floating point"),
        (torch.rand(1, 8, 8), "shape"),
    ],
)
def test_bad_images(trained: HQA, x: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        trained.encode(x, 1)


@pytest.mark.parametrize("layer", [0, 4, -1, 1.0, True])
def test_bad_layer(trained: HQA, tiny_images: torch.Tensor, layer: object) -> None:
    with pytest.raises(ValueError, match="layer must be an integer in 1..3"):
        trained.encode(tiny_images, layer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "codes, match",
    [
        (torch.zeros(2, 2, 2, dtype=torch.long), r"shape \[B, 4, 4\]"),
        (torch.full((2, 4, 4), 8, dtype=torch.long), r"\[0, 8\)"),
        (torch.full((2, 4, 4), -1, dtype=torch.long), r"\[0, 8\)"),
        (torch.zeros(2, 4, 4), "integer"),
    ],
)
def test_bad_codes(trained: HQA, codes: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        trained.decode(codes, 1)


def test_bad_fit_arguments(tiny_config: HQAConfig, tiny_images: torch.Tensor) -> None:
    model = HQA(tiny_config)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(tiny_images, epochs=[1, 1], progress=False)
    with pytest.raises(ValueError, match="layer must be"):
        model.fit(tiny_images, epochs=1, layers=5, progress=False)


def test_checkpoint_errors(trained: HQA, tiny_config: HQAConfig, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        HQA.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        HQA.load(corrupt)
    good = tmp_path / "good.pt"
    trained.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt"):
        HQA.load(truncated)
    with pytest.raises(ValueError, match="another config"):
        HQA.load(good, expect_config=tiny_config.replace(lr=1.0))
