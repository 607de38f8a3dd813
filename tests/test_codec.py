"""hqa.codec and hqa.priors: exact round trips, reproducible bytes, file sizes, bad input, CLI."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blobs

from hqa import HQA, HQAConfig
from hqa.codec import CodecError, HEADER_BYTES, compress, compress_with_stats, decompress, decompress_layers, main
from hqa.priors import (
    TOTAL,
    ContextConfig,
    ContextPrior,
    FactorizedPrior,
    PriorError,
    ProgressivePrior,
    UniformPrior,
    load_prior,
    model_hash,
    quantize_probabilities,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_CONTEXT = ContextConfig(kernel=3, embed=8, hidden=16, blocks=1, steps=40, batch_size=16)
# Table 3's switches (baselines.hams.SWITCHES, restated: hqa tests do not import baselines)
SWITCHES = {
    "hams": dict(quantizer="nearest", target="ce", codebook_loss="vq", code_reset=False),
    "hams-gs": dict(quantizer="gumbel", target="ce", codebook_loss="vq", code_reset=True),
    "hams-mse": dict(quantizer="nearest", target="mse", codebook_loss="vq", code_reset=False),
    "hqa": dict(quantizer="gumbel", target="mse", codebook_loss="probabilistic", code_reset=True),
}


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def config() -> HQAConfig:
    return HQAConfig(image_size=8, channels=1, num_layers=3, codebook_size=8, code_dim=4,
                     enc_widths=(4, 4, 4), dec_widths=(4, 4, 4), lr=3e-3)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return blobs(48, seed=3)


@pytest.fixture(scope="module")
def model(config: HQAConfig, images: torch.Tensor) -> HQA:
    torch.set_num_threads(2)
    return HQA(config).fit(images, epochs=1, batch_size=16, seed=0, progress=False)


@pytest.fixture(scope="module")
def priors(model: HQA, images: torch.Tensor) -> dict[str, object]:
    """Every kind of prior for layer 1 (progressive: all layers), fitted on ``images``."""
    return {
        "uniform": None,
        "factorized": FactorizedPrior.fit(model, images, 1),
        "context": ContextPrior.fit(model, images, 1, TINY_CONTEXT),
        "progressive": ProgressivePrior.fit(model, images),
    }


def expected_codes(model: HQA, x: torch.Tensor, layer: int, top: int, seed: int) -> dict[int, torch.Tensor]:
    """What compress codes: layer first, then the layers above it, under one generator."""
    g = gen(seed)
    return {k: model.encode(x, k, g) for k in range(layer, top + 1)}


def test_round_trip_is_exact_for_every_prior_and_layer(
    model: HQA, images: torch.Tensor, priors: dict[str, object]
) -> None:
    x = images[:20]
    for layer in (1, 2, 3):
        kinds = dict(priors)
        if layer > 1:
            kinds["factorized"] = FactorizedPrior.fit(model, images, layer)
            kinds["context"] = ContextPrior.fit(model, images, layer, dataclasses.replace(TINY_CONTEXT, steps=10))
        for name, prior in kinds.items():
            data = compress(model, prior, x, layer, gen(5))
            want = model.encode(x, layer, gen(5))  # sampled codes, as the suite evaluates them
            assert len(torch.unique(want)) > 1  # a test on constant codes would prove little
            assert torch.equal(decompress(model, prior, data), want), (name, layer)


@pytest.mark.parametrize("variant", sorted(SWITCHES))
def test_progressive_round_trip_holds_every_layer(config: HQAConfig, images: torch.Tensor, variant: str) -> None:
    m = HQA(config.replace(**SWITCHES[variant]), seed=2)
    prior = ProgressivePrior.fit(m, images)
    assert (prior.temperatures[1] != 1.0) == (variant == "hams-mse")  # fitted only where q is one-hot
    x = images[:16]
    data, stats = compress_with_stats(m, prior, x, 1, gen(4))
    layers = decompress_layers(m, prior, data)
    want = expected_codes(m, x, 1, 3, 4)
    assert sorted(layers) == [1, 2, 3]
    assert all(torch.equal(layers[k], want[k]) for k in (1, 2, 3))
    assert torch.equal(decompress(m, prior, data), want[1])
    assert stats.payload_bits_through[3] <= stats.payload_bits_through[2] <= stats.payload_bits_through[1]
    assert stats.payload_bits_through[1] == 8 * stats.payload_bytes


def test_two_runs_write_identical_bytes_and_saved_priors_reload(
    model: HQA, images: torch.Tensor, priors: dict[str, object], tmp_path: Path
) -> None:
    x = images[:24]
    for name, prior in priors.items():
        a = compress(model, prior, x, 1, gen(7))
        b = compress(model, prior, x, 1, gen(7))
        assert a == b, name
        if prior is None:
            continue
        prior.save(tmp_path / f"{name}.pt")
        loaded = load_prior(tmp_path / f"{name}.pt")
        assert type(loaded) is type(prior) and loaded.hash == prior.hash
        assert compress(model, loaded, x, 1, gen(7)) == a
        assert torch.equal(decompress(model, loaded, a), model.encode(x, 1, gen(7)))
    with pytest.raises(PriorError, match="not a 'context'"):
        ContextPrior.load(tmp_path / "factorized.pt")


def test_a_file_decodes_in_another_process(
    model: HQA, images: torch.Tensor, priors: dict[str, object], tmp_path: Path
) -> None:
    """Written here (2 threads), decoded by a fresh interpreter on 1 thread."""
    x = images[:24]
    model.save(tmp_path / "m.pt")
    for name in ("context", "progressive"):
        priors[name].save(tmp_path / f"{name}.pt")
        (tmp_path / f"{name}.hqac").write_bytes(compress(model, priors[name], x, 1, gen(8)))
    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from hqa import HQA; from hqa.codec import decompress_layers; from hqa.priors import load_prior\n"
        "d = sys.argv[1]; m = HQA.load(d + '/m.pt')\n"
        "for name in ('context', 'progressive'):\n"
        "    out = decompress_layers(m, load_prior(f'{d}/{name}.pt'), open(f'{d}/{name}.hqac', 'rb').read())\n"
        "    torch.save({k: v for k, v in out.items()}, f'{d}/{name}.out')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=ROOT, timeout=120)
    want = expected_codes(model, x, 1, 3, 8)
    assert torch.equal(torch.load(tmp_path / "context.out")[1], want[1])
    got = torch.load(tmp_path / "progressive.out")
    assert all(torch.equal(got[k], want[k]) for k in (1, 2, 3))


def test_uniform_file_is_nominal_bits_plus_header_plus_word_padding(model: HQA, images: torch.Tensor) -> None:
    header = 4 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 4 + 8 + 8 + 4  # the module docstring's layout
    assert HEADER_BYTES == header
    for layer, n in ((1, 48), (2, 5), (3, 1), (3, 10), (3, 11)):
        nominal = n * model.config.bits(layer)  # h * w * log2 K bits per image
        data = compress(model, None, images[:n], layer, gen(0))
        # constriction's range coder ends a stream of b bits with b // 32 + 1 whole words
        assert len(data) == header + 4 * (nominal // 32 + 1), (layer, n)


def test_factorized_prior_codes_skewed_codes_below_nominal(model: HQA, images: torch.Tensor) -> None:
    """Most probable codes of blobs (mostly background) are skewed; the file is near their
    empirical ideal code length and well under the nominal rate."""
    codes = model.encode(images, 1)  # no generator: the most probable codes
    prior = FactorizedPrior.fit_codes(codes, 8, 1, model_hash(model))
    data, stats = compress_with_stats(model, prior, images, 1)
    nominal = len(images) * model.config.bits(1)
    flat = codes.reshape(len(images), -1)
    ideal = -sum(math.log2(prior.freq[p, flat[i, p]].item() / TOTAL) for i in range(len(images)) for p in range(16))
    assert ideal < 0.8 * nominal  # the data are skewed
    assert 8 * stats.payload_bytes <= ideal + 64  # the coder is within two words of the ideal
    assert 8 * len(data) < nominal
    assert torch.equal(decompress(model, prior, data), codes)


def test_context_prior_learns_neighbours_and_reads_only_the_past() -> None:
    """Codes that copy their left neighbour: the context prior codes them far below the
    factorized one; its window form equals the full-grid net; later codes never matter."""
    g = torch.Generator().manual_seed(0)
    first = torch.randint(0, 8, (200, 4, 1), generator=g)
    codes = first.expand(200, 4, 4).clone()  # every row one code, copied rightwards
    cfg = ContextConfig(kernel=3, embed=8, hidden=16, blocks=1, steps=25, batch_size=16, lr=3e-2)
    ctx = ContextPrior.fit_codes(codes, 8, 1, None, cfg)
    fac = FactorizedPrior.fit_codes(codes, 8, 1)
    fac_bits = -sum(math.log2(fac.freq[p, codes.reshape(200, -1)[i, p]].item() / TOTAL)
                    for i in range(200) for p in range(16)) / 200
    assert ctx.nll_bits(codes) < 0.5 * fac_bits  # 4 x 3 bits of news per grid, not 16 x 3
    full = ctx.net(codes)  # [B, K, h, w]
    other = codes.clone()
    for p in range(16):
        r, c = divmod(p, 4)
        other.view(200, -1)[:, p:] = torch.randint(0, 8, (200, 16 - p), generator=g)
        f = ctx.frequencies(codes, p)
        assert torch.equal(f, ctx.frequencies(torch.cat([codes.view(200, -1)[:, :p], other.view(200, -1)[:, p:]], 1).view(200, 4, 4), p))
        window_p = torch.softmax(full[:, :, r, c].double(), 1)
        assert torch.allclose(f.double() / TOTAL, window_p, atol=2e-4)  # the same function, within rounding
        other = codes.clone()


def test_quantized_frequencies_follow_the_rule() -> None:
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    f = quantize_probabilities(p)
    assert torch.equal(f.sum(1), torch.full((3,), TOTAL)) and int(f.min()) >= 1
    base = 1 + torch.floor(p * (TOTAL - 4)).long()
    assert torch.equal(f[0], base[0] + torch.tensor([TOTAL - int(base[0].sum()), 0, 0, 0]))
    assert f[1].tolist() == [TOTAL - 3, 1, 1, 1]
    assert torch.equal(UniformPrior(1, 2, 2, 8).frequencies(torch.zeros(1, 2, 2), 0), torch.full((8,), TOTAL // 8))


def test_corrupt_truncated_or_foreign_files_are_refused(
    model: HQA, config: HQAConfig, images: torch.Tensor, priors: dict[str, object]
) -> None:
    x = images[:16]
    data = compress(model, priors["factorized"], x, 1, gen(3))
    broken = bytearray(data)
    broken[HEADER_BYTES + 2] ^= 0x10
    with pytest.raises(CodecError, match="checksum"):
        decompress(model, priors["factorized"], bytes(broken))
    with pytest.raises(CodecError, match="checksum"):
        decompress(model, priors["factorized"], data[:-4])
    with pytest.raises(CodecError, match="truncated"):
        decompress(model, priors["factorized"], data[:20])
    with pytest.raises(CodecError, match="magic"):
        decompress(model, priors["factorized"], b"PK" + data[2:])
    other = HQA(config, seed=5)
    with pytest.raises(CodecError, match="model hash"):
        decompress(other, None, compress(model, None, x, 1))
    other_prior = FactorizedPrior.fit(model, images, 1, alpha=2.0)
    with pytest.raises(CodecError, match="prior hash"):
        decompress(model, other_prior, data)
    with pytest.raises(CodecError, match="factorized prior, not uniform"):
        decompress(model, None, data)
    with pytest.raises(CodecError, match="another model"):
        compress(other, priors["factorized"], x, 1)
    with pytest.raises(CodecError, match="layer 4 is not a layer"):
        compress(model, None, x, 4)
    with pytest.raises(CodecError, match="codes layer 1, not layer 2"):
        compress(model, priors["factorized"], x, 2)
    with pytest.raises(CodecError, match=r"shape \[B, 1, 8, 8\]"):
        compress(model, None, torch.zeros(2, 1, 9, 9), 1)
    with pytest.raises(CodecError, match=r"shape \[B, 1, 8, 8\]"):
        compress(model, None, torch.zeros(2, 3, 8, 8), 1)


def test_corrupt_prior_file_is_refused(priors: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "ctx.pt"
    priors["context"].save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PriorError, match="corrupt or unreadable prior file"):
        load_prior(path)
    with pytest.raises(FileNotFoundError):
        load_prior(tmp_path / "missing.pt")


def _write_pngs(folder: Path, x: torch.Tensor) -> list[str]:
    from PIL import Image

    folder.mkdir()
    paths = []
    for i, img in enumerate((x[:, 0] * 255).round().to(torch.uint8)):
        paths.append(str(folder / f"in{i}.png"))
        Image.fromarray(img.numpy()).save(paths[-1])
    return paths


def test_command_line_round_trip_and_bad_input(
    model: HQA, images: torch.Tensor, priors: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    model.save(tmp_path / "m.pt")
    priors["context"].save(tmp_path / "ctx.pt")
    pngs = _write_pngs(tmp_path / "in", images[:6])
    file = tmp_path / "x.hqac"
    args = ["--model", str(tmp_path / "m.pt"), "--prior", str(tmp_path / "ctx.pt"), "--seed", "3"]
    assert main(["compress", *args, "--layer", "1", *pngs, "-o", str(file)]) == 0
    assert main(["decompress", *args, str(file), "-o", str(tmp_path / "out")]) == 0
    x = torch.stack([torch.from_numpy(np.array(Image.open(p))).float()[None] / 255 for p in pngs])
    want = model.decode(model.encode(x, 1, gen(3)), 1, gen(3))
    out = sorted((tmp_path / "out").glob("*.png"))
    got = torch.stack([torch.from_numpy(np.array(Image.open(p))).float()[None] / 255 for p in out])
    assert len(out) == 6 and torch.allclose(got, want, atol=0.5 / 255 + 1e-6)
    capsys.readouterr()

    broken = bytearray(file.read_bytes())
    broken[-1] ^= 1
    file.write_bytes(bytes(broken))
    assert main(["decompress", *args, str(file), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum" in err
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "big.png")
    assert main(["compress", "--model", str(tmp_path / "m.pt"), "--layer", "7", *pngs, "-o", str(file)]) == 2
    assert "layer 7" in capsys.readouterr().err
    # the real entry point: exit code 2 and one line for an image of the wrong size
    run = subprocess.run(
        [sys.executable, "-m", "hqa.codec", "compress", "--model", str(tmp_path / "m.pt"), "--layer", "1",
         str(tmp_path / "big.png"), "-o", str(file)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "9x9 pixels" in run.stderr, run.stderr
