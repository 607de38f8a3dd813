"""JPEG and WebP on tiny synthetic images: sizes are real file lengths, payloads decode,
lower quality writes smaller files, and the rows carry the suite's metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, features

from benchmarks import classical
from benchmarks.classical import (FILE_BITS, JPEG, PAYLOAD_BITS, QUALITY, WEBP, code_images, decode_jpeg_payload,
                                  jpeg_tables, without_segments)
from benchmarks.fidelity import to_uint8
from benchmarks.metrics import CLASS_ERROR, MSE, RFID
from benchmarks.store import ROW_COLUMNS

needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")


def blobs(n: int = 6, size: int = 32) -> torch.Tensor:
    """[n, 1, size, size] smooth Gaussian blobs in [0, 1] at different places and widths."""
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    out = []
    for i in range(n):
        cy, cx, w = 10 + 2 * i, 20 - i, 20.0 + 10 * i
        out.append(torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / w))
    return torch.stack(out).unsqueeze(1)


def pil(image: torch.Tensor) -> Image.Image:
    """One [1, H, W] image as the greyscale uint8 Pillow image, built here independently."""
    return Image.fromarray(to_uint8(image)[0].numpy())


def save(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def test_jpeg_sizes_are_the_files_lengths() -> None:
    images = blobs()
    coded = code_images(images, JPEG, 50)
    for i in range(len(images)):
        file = save(pil(images[i]), "JPEG", quality=50, optimize=True)
        standard = save(pil(images[i]), "JPEG", quality=50, streamtype=2)
        optimised = save(pil(images[i]), "JPEG", quality=50, streamtype=2, optimize=True)
        assert int(coded.file_bytes[i]) == len(file)
        assert int(coded.payload_bytes[i]) == min(len(standard), len(optimised))
        # the shortcut the module takes: the optimised file minus its DQT is libjpeg's abbreviated stream
        assert without_segments(file, 0xDB) == optimised


@needs_webp
def test_webp_sizes_are_the_files_lengths() -> None:
    images = blobs()
    coded = code_images(images, WEBP, 30)
    for i in range(len(images)):
        file = save(pil(images[i]), "WEBP", quality=30, method=6)
        assert int(coded.file_bytes[i]) == len(file)
        assert int(coded.payload_bytes[i]) <= len(file) - classical.RIFF_VP8_HEADER  # a RIFF pad byte may follow
        assert int(coded.payload_bytes[i]) >= len(file) - classical.RIFF_VP8_HEADER - 1


@pytest.mark.parametrize("codec, low, high", [(JPEG, 1, 95), pytest.param(WEBP, 0, 100, marks=needs_webp)])
def test_lower_quality_writes_smaller_files_and_worse_images(codec: str, low: int, high: int) -> None:
    images = blobs()
    small, large = code_images(images, codec, low), code_images(images, codec, high)
    assert float(small.file_bytes.double().mean()) < float(large.file_bytes.double().mean())
    assert float(small.payload_bytes.double().mean()) < float(large.payload_bytes.double().mean())
    err = [float(((c.decoded - images) ** 2).mean()) for c in (small, large)]
    assert err[0] > err[1]
    assert err[1] < 1e-3  # the best quality is close to the original


@pytest.mark.parametrize("codec", [JPEG, pytest.param(WEBP, marks=needs_webp)])
def test_decoded_images_are_greyscale_in_range(codec: str) -> None:
    images = blobs(3)
    coded = code_images(images, codec, 75)
    assert coded.decoded.shape == images.shape and coded.decoded.dtype == torch.float32
    assert 0.0 <= float(coded.decoded.min()) and float(coded.decoded.max()) <= 1.0
    # values are exact uint8 levels (decoded 8-bit files)
    assert torch.equal(coded.decoded * 255, (coded.decoded * 255).round())


def test_jpeg_payload_is_the_file_without_its_tables_and_decodes_with_them() -> None:
    image = pil(blobs(1)[0])
    for quality in (1, 50, 95):
        full = save(image, "JPEG", quality=quality)  # standard tables
        abbreviated = save(image, "JPEG", quality=quality, streamtype=2)
        # greyscale: one DQT (69 bytes), a DC (33) and an AC (183) Huffman table
        assert len(full) - len(abbreviated) == 69 + 33 + 183
        with pytest.raises(OSError):  # alone it does not decode: the tables are not in it
            Image.open(io.BytesIO(abbreviated)).load()
        decoded = np.asarray(decode_jpeg_payload(abbreviated, jpeg_tables(quality)))
        np.testing.assert_array_equal(decoded, np.asarray(Image.open(io.BytesIO(full))))
        # the optimised-Huffman payload decodes with the same tables, to the same pixels
        optimised = save(image, "JPEG", quality=quality, streamtype=2, optimize=True)
        np.testing.assert_array_equal(np.asarray(decode_jpeg_payload(optimised, jpeg_tables(quality))), decoded)


@needs_webp
def test_webp_decodes_back_to_greyscale() -> None:
    images = blobs(2)
    file = save(pil(images[0]), "WEBP", quality=80, method=6)
    assert file[:4] == b"RIFF" and file[8:16] == b"WEBPVP8 "
    assert Image.open(io.BytesIO(file)).mode == "RGB"  # Pillow writes greyscale as RGB
    expected = np.asarray(Image.open(io.BytesIO(file)).convert("L"))
    coded = code_images(images, WEBP, 80)
    np.testing.assert_array_equal((coded.decoded[0, 0] * 255).round().byte().numpy(), expected)


def test_unknown_codec_and_colour_images_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        code_images(blobs(1), "png", 50)
    with pytest.raises(ValueError, match="greyscale"):
        code_images(blobs(1).expand(-1, 3, -1, -1), JPEG, 50)


class FakeSpace:
    """A feature space stand-in: mean-pooled pixels as features, a logit per class from
    brightness (the real spaces need trained networks; the metrics only call these)."""

    def __init__(self, name: str, logits: bool) -> None:
        self.name, self.provides_logits = name, logits

    def outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = torch.nn.functional.avg_pool2d(images, 8).flatten(1).double()
        return [feats, torch.stack([feats.mean(1), -feats.mean(1)], 1)] if self.provides_logits else [feats]

    def fid_of_features(self, features: torch.Tensor) -> float:
        return float(features.mean())


def test_rows_have_the_suite_columns_and_metrics() -> None:
    images, labels = blobs(4), torch.tensor([0, 1, 0, 1])
    spaces = [FakeSpace("classifier", True), FakeSpace("independent", False)]
    base = {"profile": "quick", "dataset": "mnist", "train_size": 5000, "code_version": "x", "host": "h"}
    grids = {JPEG: (90, 1), WEBP: (90, 0)}
    codecs = (JPEG, WEBP) if features.check("webp") else (JPEG,)
    rows = classical.classical_rows(images, labels, spaces, base, codecs, grids)
    assert all(set(r) == set(ROW_COLUMNS) for r in rows)
    for codec in codecs:
        mine = [r for r in rows if r["system"] == codec]
        assert {r["seed"] for r in mine} == {0} and {r["layer"] for r in mine} == {1, 2}
        for layer, quality in enumerate(grids[codec], start=1):
            got = {(r["metric"], r["feature_space"]): r for r in mine if r["layer"] == layer}
            assert set(got) == {(QUALITY, ""), (FILE_BITS, ""), (PAYLOAD_BITS, ""), (MSE, ""), (CLASS_ERROR, ""),
                                (RFID, "classifier"), (RFID, "independent")}
            assert got[(QUALITY, "")]["value"] == quality
            coded = code_images(images, codec, quality)
            assert got[(FILE_BITS, "")]["value"] == pytest.approx(8 * float(coded.file_bytes.double().mean()))
            assert {r["bits"] for r in got.values()} == {round(got[(FILE_BITS, "")]["value"])}
        bits = {r["layer"]: r["bits"] for r in mine}
        assert bits[1] > bits[2]  # layer 1 is the best quality
    # deterministic: the same rows again
    assert classical.classical_rows(images, labels, spaces, base, codecs, grids) == rows
