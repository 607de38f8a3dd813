"""Classical codecs on the suite's images: JPEG and WebP through Pillow, measured as real files.

Each image ([1, H, W] floats in [0, 1]) is quantised to uint8 exactly as the feature spaces
see images (:func:`benchmarks.fidelity.to_uint8`: clamp, x 255, round) and written as an 8-bit
greyscale ("L") Pillow image, one file per image. The decoded files, back as floats
(uint8 / 255), are measured with the suite's own functions (:mod:`benchmarks.metrics`)
against the original float images, so the (tiny) quantisation error counts as distortion,
as it would for any system writing 8-bit files.

Two sizes per image, in bytes (CompressAI's convention counts whole files for classical
codecs; both are given):

- JPEG. *file*: the whole baseline JFIF file with optimised Huffman tables
  (``optimize=True``; on 32x32 digits always smaller than the standard tables' file, by
  150-260 bytes: the standard Huffman tables alone are 216 bytes). *payload*: the
  abbreviated stream (Pillow's undocumented ``streamtype=2``, libjpeg's
  ``jpeg_suppress_tables``), the part of a file that a decoder holding the quality's tables
  (:func:`jpeg_tables`, Pillow's ``streamtype=1``) needs; per image the shorter of the
  abbreviated stream with the standard Huffman tables and the one carrying its own
  optimised Huffman tables (the optimised file without its quantisation table). Both
  decode, spliced after the tables (:func:`decode_jpeg_payload`), to the same pixels as the
  file. The payload still holds SOI, the 18-byte JFIF APP0, SOF0, SOS and EOI (45 bytes of
  markers); Pillow always writes the APP0 for greyscale.
- WebP (lossy, ``method=6``: the slowest, smallest). *file*: the whole RIFF file. Pillow
  saves a greyscale image as RGB, and the decoded RGB (YUV 4:2:0 inside) is converted back
  to L (ITU-R 601 luma, Pillow's ``convert("L")``). *payload*: the VP8 chunk's data, without
  the 20-byte RIFF/WEBP/"VP8 " header.

Rows (:func:`classical_rows`) use systems ``jpeg`` and ``webp`` with seed 0 (every value is
deterministic). A codec has no layers, so ``layer`` indexes its quality grid, best first
(layer 1 = the highest quality, so that bits fall as the layer rises, as for the learned
systems), the metric ``quality`` records the setting itself, and ``bits`` is the mean
*file* bits per image at that quality, rounded to an integer.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, features
from torch import Tensor

from .fidelity import FeatureSpace, to_uint8
from .metrics import MSE, Measurement, image_metrics, mse

JPEG, WEBP = "jpeg", "webp"
CODECS: tuple[str, ...] = (JPEG, WEBP)
# Quality grids, best first (layer k = the k-th entry). JPEG's quality 2 writes the same
# file as 1 (libjpeg clamps the scaled tables to 255 at both), and 0 means 1, so 1 is
# the smallest file it can write; WebP's lossy range is 0..100.
QUALITIES: dict[str, tuple[int, ...]] = {
    JPEG: (100, 95, 90, 75, 50, 30, 20, 10, 5, 3, 1),
    WEBP: (100, 90, 75, 50, 30, 20, 10, 5, 0),
}
# The codecs' names in tables and figures (they are rows' systems, not registered CompressionSystems).
LABELS = {"jpeg": "JPEG (Pillow)", "webp": "WebP (Pillow)"}
FILE_BITS = "file_bits"  # bits per image of the whole file, mean over images
PAYLOAD_BITS = "payload_bits"  # bits per image without the container/tables (see the module docstring)
QUALITY = "quality"  # the codec's quality setting of this layer
WEBP_METHOD = 6  # libwebp's slowest and smallest lossy search
RIFF_VP8_HEADER = 20  # "RIFF" + size + "WEBP" + "VP8 " + chunk size, bytes
_SOI, _EOI, _DQT, _SOS = 0xD8, 0xD9, 0xDB, 0xDA


@dataclass(frozen=True)
class Coded:
    """One codec at one quality on B images."""

    file_bytes: Tensor  # [B] int64: length of each image's whole file
    payload_bytes: Tensor  # [B] int64: length of each image's payload
    decoded: Tensor  # [B, 1, H, W] float32 in [0, 1]: the decoded files


def _pil_images(images: Tensor) -> list[Image.Image]:
    """[B, 1, H, W] floats in [0, 1] -> B greyscale uint8 Pillow images (the suite's rounding)."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"classical codecs take greyscale images [B, 1, H, W]; got {tuple(images.shape)}")
    pixels = to_uint8(images)[:, 0].cpu().numpy()
    return [Image.fromarray(p) for p in pixels]  # 2-D uint8 -> mode "L"


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def without_segments(data: bytes, marker: int) -> bytes:
    """JPEG stream ``data`` without its ``0xFF marker`` segments before the first scan
    (after SOS the bytes are entropy-coded data, never parsed)."""
    if data[:2] != bytes((0xFF, _SOI)):
        raise ValueError("not a JPEG stream (no SOI)")
    out, i = [data[:2]], 2
    while True:
        if data[i] != 0xFF:
            raise ValueError(f"JPEG marker expected at byte {i}")
        m = data[i + 1]
        if m == _SOS:
            out.append(data[i:])
            return b"".join(out)
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if m != marker:
            out.append(data[i:end])
        i = end


def jpeg_tables(quality: int) -> bytes:
    """The tables-only JPEG stream of ``quality`` (Pillow's ``streamtype=1``: SOI, the
    quantisation tables and the standard Huffman tables, EOI): what a decoder of payloads
    holds. It depends on the quality only, not on any image."""
    return _save(Image.new("L", (8, 8)), "JPEG", quality=quality, streamtype=1)


def decode_jpeg_payload(payload: bytes, tables: bytes) -> Image.Image:
    """Decode an abbreviated JPEG stream ``payload`` given the tables-only stream ``tables``
    (spliced into one stream: the tables without their EOI, then the payload without its SOI)."""
    return _open(tables[:-2] + payload[2:])


def _jpeg(images: list[Image.Image], quality: int) -> tuple[list[int], list[int], list[np.ndarray]]:
    files, payloads, decoded = [], [], []
    for im in images:
        file = _save(im, "JPEG", quality=quality, optimize=True)
        # The optimised file without its DQT is the abbreviated stream libjpeg writes with
        # optimize=True and streamtype=2 (byte for byte; tests check it): no second encode.
        payload_optimised = without_segments(file, _DQT)
        payload_standard = _save(im, "JPEG", quality=quality, streamtype=2)
        files.append(len(file))
        payloads.append(min(len(payload_standard), len(payload_optimised)))
        decoded.append(np.asarray(_open(file)))  # Huffman coding is lossless: every stream gives these pixels
    return files, payloads, decoded


def _webp(images: list[Image.Image], quality: int) -> tuple[list[int], list[int], list[np.ndarray]]:
    files, payloads, decoded = [], [], []
    for im in images:
        file = _save(im, "WEBP", quality=quality, method=WEBP_METHOD)
        if file[:4] != b"RIFF" or file[8:16] != b"WEBPVP8 ":
            raise ValueError(f"expected a simple lossy WebP file (RIFF/WEBP/'VP8 '), got {file[:16]!r}")
        files.append(len(file))
        payloads.append(int.from_bytes(file[16:20], "little"))  # the VP8 chunk's size: no RIFF header, no pad byte
        decoded.append(np.asarray(_open(file).convert("L")))
    return files, payloads, decoded


def code_images(images: Tensor, codec: str, quality: int) -> Coded:
    """Write every image of ``images`` [B, 1, H, W] (floats in [0, 1]) as its own ``codec``
    file at ``quality``, and decode it: sizes in bytes and the decoded images."""
    if codec == WEBP and not features.check("webp"):
        raise RuntimeError("this Pillow was built without WebP support")
    coder = {JPEG: _jpeg, WEBP: _webp}.get(codec)
    if coder is None:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    files, payloads, decoded = coder(_pil_images(images), quality)
    pixels = torch.from_numpy(np.stack(decoded)).unsqueeze(1)
    return Coded(torch.tensor(files), torch.tensor(payloads), pixels.float() / 255.0)


def codec_measurements(
    images: Tensor, labels: Tensor, spaces: list[FeatureSpace], codec: str, qualities: Sequence[int] | None = None
) -> list[Measurement]:
    """Every metric of ``codec`` at each quality of ``qualities`` (default :data:`QUALITIES`,
    best first; layer k = the k-th): quality, file and payload bits (mean bits per image), MSE,
    rFID in every space and the classification error (:func:`benchmarks.metrics.image_metrics`)."""
    out: list[Measurement] = []
    for layer, quality in enumerate(QUALITIES[codec] if qualities is None else qualities, start=1):
        coded = code_images(images, codec, quality)
        file_bits = 8.0 * float(coded.file_bytes.double().mean())
        row = partial(Measurement, layer, round(file_bits))
        out += [
            row(QUALITY, float(quality)),
            row(FILE_BITS, file_bits),
            row(PAYLOAD_BITS, 8.0 * float(coded.payload_bytes.double().mean())),
            row(MSE, mse(images, coded.decoded)),
        ]
        out += image_metrics(coded.decoded, labels, spaces, row)
    return out


def classical_rows(
    images: Tensor,
    labels: Tensor,
    spaces: list[FeatureSpace],
    base: dict[str, Any],
    codecs: Sequence[str] = CODECS,
    qualities: dict[str, Sequence[int]] | None = None,
) -> list[dict[str, Any]]:
    """Tidy rows (:data:`benchmarks.store.ROW_COLUMNS`) of every codec on the evaluation
    images [N, 1, H, W] and labels [N]: ``base`` gives the run's columns (profile, dataset,
    train_size, code_version, host: ``run.row_context(manifest)``); system is the codec, seed 0
    and step 0 (deterministic), layer/bits as in the module docstring."""
    rows: list[dict[str, Any]] = []
    for codec in codecs:
        grid = None if qualities is None else qualities.get(codec)
        for m in codec_measurements(images, labels, spaces, codec, grid):
            rows.append({**base, "system": codec, "seed": 0, "step": 0, "layer": m.layer, "bits": m.bits,
                         "metric": m.metric, "feature_space": m.feature_space, "value": m.value})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Rows of JPEG and WebP on a sweep's evaluation images, into ``OUT/rows/classical.csv``."""
    # Imported here: the sweep's data and networks are needed by the command line only.
    import socket

    from hqa.data import DataNotFoundError

    from .classifier import FEATURE_NET_ARCH, FEATURE_NET_SEED, load_or_train_classifier
    from .datasets import sweep_data
    from .fidelity import classifier_space, feature_net_space
    from .profiles import get_profile
    from .store import ResultStore, code_version

    p = argparse.ArgumentParser(prog="python -m benchmarks.classical", description=main.__doc__)
    p.add_argument("--out", required=True, help="a sweep's output folder (its run.json gives the row columns)")
    p.add_argument("--data-root", default=None, help="torchvision MNIST root (default: $HQA_DATA_ROOT)")
    p.add_argument("--profile", default="quick", help="run profile whose evaluation images are coded")
    p.add_argument("--cache-dir", default=None, help="where the classifier and feature network are cached")
    args = p.parse_args(argv)
    try:
        profile = get_profile(args.profile)
        data = sweep_data("mnist", args.data_root, profile)
        # a (train, test) pair, or SweepData with .train/.test where the validation split is in
        train, test = (data.train, data.test) if hasattr(data, "test") else data
    except (ValueError, DataNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    manifest_path = out / "run.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest["profile"] != profile.name or manifest["dataset"] != "mnist":
            print(f"error: {out} holds a {manifest['dataset']} {manifest['profile']} sweep, not mnist {profile.name}",
                  file=sys.stderr)
            return 2
    else:
        manifest = {"profile": profile.name, "dataset": "mnist", "train_size": len(train), "code_version": code_version()}
    _, cls_path = load_or_train_classifier(train, profile.classifier_epochs, cache=args.cache_dir)
    _, net_path = load_or_train_classifier(train, profile.classifier_epochs, FEATURE_NET_SEED, args.cache_dir,
                                           arch=FEATURE_NET_ARCH)
    spaces = [classifier_space(cls_path, test.images), feature_net_space(net_path, test.images)]
    base = {"profile": manifest["profile"], "dataset": manifest["dataset"], "train_size": manifest["train_size"],
            "code_version": manifest["code_version"], "host": socket.gethostname()}
    start = time.perf_counter()
    rows = classical_rows(test.images, test.labels, spaces, base)
    seconds = time.perf_counter() - start
    ResultStore(out).write_rows(out / "rows" / "classical.csv", rows)
    print(f"{len(test)} images, {sum(len(q) for q in QUALITIES.values())} settings: {seconds:.1f} s "
          f"-> {out / 'rows' / 'classical.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
