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


def test_top_codebook_starts_from_k_distinct_latents_at_a_small_batch(tiny_config, tiny_images, monkeypatch) -> None:
    """Layer 3 is 1x1: a batch of 4 gives 4 latents for 8 codes. The initialisation batch
    (train_stage) gives each code its own latent; initialised from one training batch, codes
    start as near-copies of 4 latents (pairs 1% apart)."""
    import hqa.train

    def min_gap_at_start() -> float:
        still = tiny_config.replace(lr=1e-9)  # 16 steps that leave the initial codebook as it was
        model = HQA(still).fit(tiny_images, epochs=1, batch_size=[16, 16, 4], seed=0, progress=False)
        codebook = model.layer(3).quantizer.codebook.detach()
        return float((torch.cdist(codebook, codebook) + torch.eye(len(codebook)) * 1e9).min())

    good = min_gap_at_start()
    monkeypatch.setattr(hqa.train, "INIT_LATENTS_PER_CODE", 0)  # the old rule: the first training batch only
    assert good > 0.1 > min_gap_at_start()


def test_learning_curve_is_logged_and_falls(tiny_config, tiny_images) -> None:
    model = HQA(tiny_config).fit(
        tiny_images, epochs=[30, 2, 2], batch_size=16, seed=0, progress=False, heldout=tiny_images[:16], curve_points=5
    )
    curve = model.fit_log[0]["curve"]
    assert [p["step"] for p in curve] == sorted({p["step"] for p in curve}) and curve[-1]["step"] == model.fit_log[0]["steps"]
    assert len(curve) == 5 and curve[-1]["heldout_pixel_mse"] < curve[0]["heldout_pixel_mse"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    upper = model.fit_log[1]["curve"][-1]
    assert {"train_loss", "heldout_pixel_mse", "heldout_target_mse"} <= set(upper)


def test_hams_levels_encode_the_lower_codes(tiny_config, tiny_images) -> None:
    """A cross-entropy (HAMs) level reads the lower level's discrete codes through a learned
    embedding, not the continuous z_e: two z_e with the same codes give the same z_e above."""
    from hqa.backbone import CodeEmbedding

    ce = tiny_config.replace(target="ce", quantizer="nearest", codebook_loss="vq", code_reset=False)
    model = HQA(ce).fit(tiny_images, epochs=1, batch_size=16, seed=0, progress=False, heldout=tiny_images[:8], curve_points=2)
    assert isinstance(model.layer(2).encoder[0], CodeEmbedding) and model.layer(2).norm is None
    with torch.no_grad():
        z1 = model._z_e(tiny_images[:4], 1)
        nudged = z1 + 1e-4  # same nearest codes, another z_e
        assert torch.equal(model.layer(1).quantizer.quantize(nudged), model.layer(1).quantizer.quantize(z1))
        torch.testing.assert_close(model._encode_step(nudged, 2), model._encode_step(z1, 2), rtol=0, atol=0)
    assert "heldout_target_ce" in model.fit_log[1]["curve"][-1]


def test_fit_compiles_by_default_only_where_it_pays() -> None:
    from hqa.system import COMPILE_MIN_WORK, compile_pays

    assert compile_pays(torch.device("cuda"), 1)
    assert not compile_pays(torch.device("cpu"), COMPILE_MIN_WORK - 1)
    assert compile_pays(torch.device("cpu"), COMPILE_MIN_WORK)


def test_the_learning_curve_does_not_change_training(tiny_config, tiny_images) -> None:
    """Monitoring runs in eval mode on held-out images: weights, running statistics and
    codebooks end exactly as without it."""
    plain = HQA(tiny_config).fit(tiny_images, epochs=2, batch_size=16, seed=0, progress=False)
    watched = HQA(tiny_config).fit(tiny_images, epochs=2, batch_size=16, seed=0, progress=False,
                                   heldout=tiny_images[-8:], curve_points=4)
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(watched.fit_log[2]["curve"]) == 4 and plain.fit_log[2]["curve"] == []
