"""Real compressed files: a system's codes range-coded under a prior (DESIGN.md "Real files").

    data = compress(model, prior, images, layer, generator)   # bytes
    codes = decompress(model, prior, data)                     # LongTensor [B, h, w]
    images = model.decode(codes, layer, generator)

The codes coded are exactly ``model.encode(images, layer, generator)``: sampled where the
system samples, so the file decodes to the reconstructions the suite measures. ``prior=None``
is the uniform prior (the paper's nominal rate). A progressive prior (:class:`ProgressivePrior`)
writes the top layer first and then each refinement down to ``layer``; :func:`decompress_layers`
returns every layer such a file holds.

File layout (big-endian), :data:`HEADER_BYTES` = 38 bytes, then the payload:

    magic  b"HQAC"        4    format version   1    prior kind (KIND_IDS)   1
    layer (finest)        1    top layer        1    (= layer unless progressive)
    h, w, K of the finest layer       2 + 2 + 2       images B                 4
    model hash (sha256, first 8 bytes) 8    prior hash (first 8 bytes)         8
    CRC32 of everything before it and of the payload                           4
    payload: constriction's uint32 words, little-endian

Payload: one ``constriction.stream.queue.RangeEncoder`` stream (``Categorical(perfect=False)``
on both sides). Grid priors code layer by layer in raster order, position-major over the images
(position p of every image, then p + 1); a progressive refinement codes image-major within
batches of :data:`hqa.priors.CHUNK` images. Probabilities are integer frequencies / 2**16
(:func:`hqa.priors.quantize_probabilities`). constriction 0.5 emits ``n // 32 + 1`` words for a
stream of n > 0 ideal bits (measured: an exact-8-bit symbol costs 32 bits alone, 4 cost 64), so
a uniform-prior file is ``HEADER_BYTES + 4 * (nominal_bits // 32 + 1)`` bytes.

Command line (``python -m hqa.codec -h``): ``compress`` and ``decompress``; bad input gives one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import constriction
import numpy as np
import torch
from torch import Tensor, nn

from .checks import check_images, check_layer
from .priors import (
    CHUNK,
    TOTAL,
    FactorizedPrior,
    GridPrior,
    Prior,
    PriorError,
    ProgressivePrior,
    UniformPrior,
    check_hierarchy,
    coding_threads,
    load_prior,
    model_hash,
)
from .system import CompressionSystem

MAGIC = b"HQAC"
VERSION = 1
KIND_IDS: dict[str, int] = {"uniform": 0, "factorized": 1, "context": 2, "progressive": 3}
_HEADER = struct.Struct(">4sBBBBHHHI8s8s")
HEADER_BYTES = _HEADER.size + 4  # + CRC32


class CodecError(ValueError):
    """A file or input the codec cannot use; the message names the problem."""


@dataclass(frozen=True)
class Header:
    """What a file's header says (see the module docstring)."""

    version: int
    prior_kind: str
    layer: int
    top: int
    height: int
    width: int
    codes: int
    images: int
    model_hash: bytes
    prior_hash: bytes


@dataclass(frozen=True)
class FileStats:
    """Sizes of one file: ``payload_bits_through[k]`` is the payload (whole 32-bit words) a
    stream stopped after layer k would have: the top code plus refinements down to k."""

    images: int
    header_bytes: int
    payload_bytes: int
    payload_bits_through: dict[int, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + self.payload_bytes

    @property
    def bits_per_image(self) -> float:
        """Whole-file bits per image, header included (amortised over the file's images)."""
        return 8 * self.total_bytes / self.images

    @property
    def payload_bits_per_image(self) -> float:
        """Payload bits per image (no header; CompressAI's convention for learned codecs)."""
        return 8 * self.payload_bytes / self.images


# ---------------------------------------------------------------- coding primitives
_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _probs(freq: Tensor) -> np.ndarray:
    """Integer frequencies -> the exact float64 probabilities the coder sees."""
    return freq.double().numpy() / TOTAL


def _encode_symbols(encoder: constriction.stream.queue.RangeEncoder, symbols: Tensor, freq: Tensor) -> None:
    """Code ``symbols`` [n] under frequencies [K] (one model for all) or [n, K]."""
    sym = symbols.to(torch.int32).numpy()
    if freq.dim() == 1:
        encoder.encode(sym, constriction.stream.model.Categorical(_probs(freq), perfect=False))
    else:
        encoder.encode(sym, _FAMILY, _probs(freq))


def _decode_symbols(decoder: constriction.stream.queue.RangeDecoder, n: int, freq: Tensor) -> Tensor:
    """Inverse of :func:`_encode_symbols`: LongTensor [n]."""
    if freq.dim() == 1:
        out = decoder.decode(constriction.stream.model.Categorical(_probs(freq), perfect=False), n)
    else:
        out = decoder.decode(_FAMILY, _probs(freq))
    return torch.from_numpy(np.asarray(out, dtype=np.int64))


def _encode_grid(encoder: constriction.stream.queue.RangeEncoder, codes: Tensor, prior: GridPrior) -> None:
    """Codes [B, h, w] in raster order, position-major over the images."""
    b, h, w = codes.shape
    flat = codes.reshape(b, h * w)
    for p in range(h * w):
        _encode_symbols(encoder, flat[:, p], prior.frequencies(codes, p))


def _decode_grid(decoder: constriction.stream.queue.RangeDecoder, b: int, prior: GridPrior) -> Tensor:
    """Inverse of :func:`_encode_grid`: LongTensor [B, h, w]."""
    h, w = prior.height, prior.width
    codes = torch.zeros(b, h, w, dtype=torch.long)
    flat = codes.view(b, h * w)
    for p in range(h * w):
        flat[:, p] = _decode_symbols(decoder, b, prior.frequencies(codes, p))
    return codes


def _encode_refinement(encoder: constriction.stream.queue.RangeEncoder, codes: Tensor, upper: Tensor,
                       prior: ProgressivePrior, model: nn.Module, layer: int) -> None:
    """Codes [B, h, w] of ``layer`` given the codes of layer + 1, image-major per CHUNK."""
    for i in range(0, codes.shape[0], CHUNK):
        freq = prior.conditional_frequencies(model, upper[i : i + CHUNK], layer)
        _encode_symbols(encoder, codes[i : i + CHUNK].reshape(-1), freq.reshape(-1, freq.shape[-1]))


def _decode_refinement(decoder: constriction.stream.queue.RangeDecoder, upper: Tensor, prior: ProgressivePrior,
                       model: nn.Module, layer: int) -> Tensor:
    size = model.config.latent_size(layer)
    parts = []
    for i in range(0, upper.shape[0], CHUNK):
        freq = prior.conditional_frequencies(model, upper[i : i + CHUNK], layer)
        n = freq.shape[0] * freq.shape[1]
        parts.append(_decode_symbols(decoder, n, freq.reshape(n, -1)).view(-1, size, size))
    return torch.cat(parts)


# ---------------------------------------------------------------- checks
def _grid_prior(model: nn.Module, prior: Prior | None, layer: int) -> GridPrior:
    """The grid prior of ``layer`` (uniform for None), checked against the model."""
    if prior is None:
        return UniformPrior.fit(model, layer=layer)
    if not isinstance(prior, GridPrior):
        raise CodecError(f"a {prior.kind} prior cannot code one layer's grid")
    if prior.layer != layer:
        raise CodecError(f"the {prior.kind} prior codes layer {prior.layer}, not layer {layer}")
    size, k = model.config.latent_size(layer), model.config.codes(layer)
    if (prior.height, prior.width, prior.codes) != (size, size, k):
        raise CodecError(f"the {prior.kind} prior's grid {prior.height}x{prior.width}x{prior.codes} "
                         f"is not layer {layer}'s {size}x{size}x{k}")
    return prior


def _check_prior(model: nn.Module, prior: Prior | None, mhash: str) -> None:
    if prior is None:
        return
    if prior.kind not in KIND_IDS:
        raise CodecError(f"unknown prior kind {prior.kind!r}; known: {sorted(KIND_IDS)}")
    try:
        prior.check_model(model, mhash)
    except PriorError as exc:
        raise CodecError(str(exc)) from None


def _layers(model: nn.Module, prior: Prior | None, layer: int) -> list[int]:
    """The layers a file codes, in the order it codes them (top first)."""
    try:
        check_layer(layer, model.num_layers)
    except ValueError:
        raise CodecError(f"layer {layer!r} is not a layer of this model (it has layers 1..{model.num_layers})") from None
    if isinstance(prior, ProgressivePrior):
        try:
            check_hierarchy(model)
        except PriorError as exc:
            raise CodecError(str(exc)) from None
        if layer > prior.layer:
            raise CodecError(f"the progressive prior's top layer is {prior.layer}; cannot code layer {layer}")
        return list(range(prior.layer, layer - 1, -1))
    return [layer]


# ---------------------------------------------------------------- the API
def compress(model: CompressionSystem, prior: Prior | None, images: Tensor, layer: int,
             generator: torch.Generator | None = None) -> bytes:
    """Range-code ``model.encode(images, layer, generator)`` under ``prior`` (None: uniform).

    ``images``: [B, C, H, W] in [0, 1] as the model takes them. With a progressive prior the
    file also holds the codes of every layer above ``layer`` (encoded after ``layer``, with
    the same generator). Returns the file's bytes; raises CodecError on bad input.
    """
    return compress_with_stats(model, prior, images, layer, generator)[0]


def compress_with_stats(model: CompressionSystem, prior: Prior | None, images: Tensor, layer: int,
                        generator: torch.Generator | None = None) -> tuple[bytes, FileStats]:
    """:func:`compress`, and the file's sizes (:class:`FileStats`)."""
    layers = _layers(model, prior, layer)
    try:
        check_images(images, model.config.channels, model.config.image_size)
    except ValueError as exc:
        raise CodecError(str(exc)) from None
    codes = {layer: model.encode(images, layer, generator).cpu()}
    for k in sorted(layers)[1:]:
        codes[k] = model.encode(images, k, generator).cpu()
    return compress_codes(model, prior, codes, layer)


def compress_codes(model: CompressionSystem, prior: Prior | None, codes: dict[int, Tensor],
                   layer: int) -> tuple[bytes, FileStats]:
    """The file of codes already computed: ``codes[k]`` LongTensor [B, h, w] for ``layer``
    and (progressive prior) every layer above it; for measuring many priors on one set of
    codes without encoding the images again. Returns (bytes, :class:`FileStats`)."""
    layers = _layers(model, prior, layer)
    missing = [k for k in layers if k not in codes]
    if missing:
        raise CodecError(f"codes of layer(s) {missing} are needed for this file")
    n = codes[layer].shape[0]
    for k in layers:
        size, kk = model.config.latent_size(k), model.config.codes(k)
        c = codes[k]
        if c.dim() != 3 or tuple(c.shape) != (n, size, size) or int(c.min()) < 0 or int(c.max()) >= kk:
            raise CodecError(f"codes of layer {k} must be [{n}, {size}, {size}] in [0, {kk})")
    codes = {k: codes[k].cpu().long() for k in layers}
    mhash = model_hash(model)
    _check_prior(model, prior, mhash)
    encoder = constriction.stream.queue.RangeEncoder()
    through: dict[int, int] = {}
    with coding_threads():  # thread-count-independent float nets
        for k in layers:
            if isinstance(prior, ProgressivePrior) and k != layers[0]:
                _encode_refinement(encoder, codes[k], codes[k + 1], prior, model, k)
            else:
                top = prior.top_prior(model) if isinstance(prior, ProgressivePrior) else _grid_prior(model, prior, k)
                _encode_grid(encoder, codes[k], top)
            through[k] = int(encoder.num_bits())
    payload = encoder.get_compressed().astype("<u4").tobytes()
    size, k_codes = model.config.latent_size(layer), model.config.codes(layer)
    kind = "uniform" if prior is None else prior.kind
    phash = (UniformPrior.fit(model, layer=layer) if prior is None else prior).hash
    head = _HEADER.pack(MAGIC, VERSION, KIND_IDS[kind], layer, layers[0], size, size, k_codes, n,
                        bytes.fromhex(mhash)[:8], bytes.fromhex(phash)[:8])
    crc = zlib.crc32(payload, zlib.crc32(head))
    data = head + struct.pack(">I", crc) + payload
    return data, FileStats(n, HEADER_BYTES, len(payload), through)


def read_header(data: bytes) -> Header:
    """Parse and verify a file's header and checksum; raises CodecError naming the problem."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != MAGIC[: len(data)] or not data:
        raise CodecError("not an hqa.codec file (bad magic number)")
    if len(data) < HEADER_BYTES:
        raise CodecError(f"truncated file: {len(data)} bytes, shorter than the {HEADER_BYTES}-byte header")
    magic, version, kind_id, layer, top, h, w, k, n, mh, ph = _HEADER.unpack_from(data)
    if version != VERSION:
        raise CodecError(f"file format version {version}; this codec reads version {VERSION}")
    (crc,) = struct.unpack_from(">I", data, _HEADER.size)
    payload = data[HEADER_BYTES:]
    if zlib.crc32(payload, zlib.crc32(data[: _HEADER.size])) != crc:
        raise CodecError("checksum mismatch: the file is truncated or corrupt (CRC32 of header and payload)")
    if len(payload) % 4:
        raise CodecError("corrupt file: the payload is not whole 32-bit words")
    kinds = {v: key for key, v in KIND_IDS.items()}
    if kind_id not in kinds:
        raise CodecError(f"corrupt file: unknown prior kind id {kind_id}")
    return Header(version, kinds[kind_id], layer, top, h, w, k, n, mh, ph)


def decompress(model: CompressionSystem, prior: Prior | None, data: bytes) -> Tensor:
    """The codes of the finest layer in the file: LongTensor [B, h, w] (``model.decode`` them
    at ``read_header(data).layer``). Raises CodecError on a corrupt file or one made for
    another model or prior."""
    layers = decompress_layers(model, prior, data)
    return layers[min(layers)]


def decompress_layers(model: CompressionSystem, prior: Prior | None, data: bytes) -> dict[int, Tensor]:
    """Every layer the file holds: {layer: LongTensor [B, h, w]} (one layer unless progressive)."""
    head = read_header(data)
    mhash = model_hash(model)
    if bytes.fromhex(mhash)[:8] != head.model_hash:
        raise CodecError(f"the file was made for another model (model hash {head.model_hash.hex()}, "
                         f"this model's {mhash[:16]})")
    kind = "uniform" if prior is None else prior.kind
    if kind != head.prior_kind:
        raise CodecError(f"the file was coded with a {head.prior_kind} prior, not {kind}")
    layers = _layers(model, prior, head.layer)
    if layers[0] != head.top:
        raise CodecError(f"the file's top layer is {head.top}; this prior's is {layers[0]}")
    phash = (UniformPrior.fit(model, layer=head.layer) if prior is None else prior).hash
    if bytes.fromhex(phash)[:8] != head.prior_hash:
        raise CodecError(f"the file was made with another prior (prior hash {head.prior_hash.hex()}, "
                         f"this prior's {phash[:16]})")
    _check_prior(model, prior, mhash)
    size, k = model.config.latent_size(head.layer), model.config.codes(head.layer)
    if (head.height, head.width, head.codes) != (size, size, k):
        raise CodecError(f"the file's grid {head.height}x{head.width}x{head.codes} is not layer {head.layer}'s "
                         f"{size}x{size}x{k}")
    words = np.frombuffer(data, dtype="<u4", offset=HEADER_BYTES).astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    out: dict[int, Tensor] = {}
    try:
        with coding_threads():  # as on the encoder's side
            for j in layers:
                if isinstance(prior, ProgressivePrior) and j != layers[0]:
                    out[j] = _decode_refinement(decoder, out[j + 1], prior, model, j)
                else:
                    top = prior.top_prior(model) if isinstance(prior, ProgressivePrior) else _grid_prior(model, prior, j)
                    out[j] = _decode_grid(decoder, head.images, top)
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction's errors on a bad stream
        raise CodecError(f"corrupt payload: it does not decode ({exc})") from None
    return out


# ---------------------------------------------------------------- command line
def system_classes() -> dict[str, type[CompressionSystem]]:
    """Every imported :class:`CompressionSystem` subclass that names its own ``kind``."""
    found: dict[str, type[CompressionSystem]] = {}
    todo = list(CompressionSystem.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if "kind" in cls.__dict__:
            found.setdefault(cls.kind, cls)
        todo.extend(cls.__subclasses__())
    return found


def load_system(path: str | os.PathLike[str], imports: Sequence[str] = ()) -> CompressionSystem:
    """Load a model saved by ``CompressionSystem.save``, finding its class by the checkpoint's
    kind among the imported systems. ``hqa`` knows HQA (and the HAMs rows, which are HQA);
    others (``baselines``' VQVAE, KMeansVQ) are found once their module is imported: pass it
    in ``imports`` (e.g. ``["baselines"]``). ``hqa`` never imports them itself."""
    for name in imports:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CodecError(f"cannot import {name!r}: {exc}") from None
    if not os.path.isfile(path):
        raise CodecError(f"model file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        kind = obj["kind"]
    except Exception as exc:
        raise CodecError(f"corrupt or unreadable model file {path}: {type(exc).__name__}") from None
    classes = system_classes()
    if kind not in classes:
        raise CodecError(f"{path} holds a {kind!r} model, not a kind imported here ({sorted(classes)}); "
                         "pass --import MODULE (e.g. --import baselines)")
    try:
        return classes[kind].load(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CodecError(str(exc)) from None


def read_pngs(paths: Sequence[str], channels: int, size: int) -> Tensor:
    """PNG files -> images [B, channels, size, size] in [0, 1] (8-bit greyscale or RGB)."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise CodecError(f"the model takes {channels}-channel images; PNG input supports 1 (greyscale) or 3 (RGB)")
    out = []
    for p in paths:
        try:
            with Image.open(p) as img:
                img.load()
                if img.mode != mode:
                    raise CodecError(f"{p}: a {img.mode} image; the model takes {channels}-channel {mode} PNGs")
                if img.size != (size, size):
                    raise CodecError(f"{p}: {img.size[0]}x{img.size[1]} pixels; the model takes {size}x{size}")
                arr = np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError) as exc:
            raise CodecError(f"{p}: not a readable image ({type(exc).__name__})") from None
        t = torch.from_numpy(arr.copy()).float().div(255.0)
        out.append(t[None] if channels == 1 else t.permute(2, 0, 1))
    return torch.stack(out)


def write_pngs(images: Tensor, folder: str | os.PathLike[str]) -> list[Path]:
    """Images [B, C, H, W] in [0, 1] -> folder/00000.png, ... (8-bit, rounded)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    paths = []
    for i, x in enumerate(arr):
        path = folder / f"{i:05d}.png"
        img = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m hqa.codec", description="Entropy-coded files of a system's codes.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("compress", "decompress"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True, help="a model saved by CompressionSystem.save")
        p.add_argument("--prior", help="a prior saved by Prior.save (default: uniform, the nominal rate)")
        p.add_argument("--seed", type=int, help="sample codes under torch.Generator().manual_seed(SEED) as the "
                       "suite does (compress), or sample on the way down (decompress); default: most probable codes")
        p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                       help="import MODULE first, for systems defined outside hqa (e.g. baselines)")
        p.add_argument("-o", "--output", required=True, help="the file (compress) or folder of PNGs (decompress)")
    sub.choices["compress"].add_argument("--layer", type=int, required=True)
    sub.choices["compress"].add_argument("images", nargs="+", help="PNG images of the model's size and channels")
    sub.choices["decompress"].add_argument("file")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (0, or 2 with one line on stderr on bad input)."""
    args = _parser().parse_args(argv)
    try:
        model = load_system(args.model, args.imports)
        prior = load_prior(args.prior) if args.prior else None
        gen = None if args.seed is None else torch.Generator().manual_seed(args.seed)
        if args.command == "compress":
            x = read_pngs(args.images, model.config.channels, model.config.image_size)
            data, stats = compress_with_stats(model, prior, x, args.layer, gen)
            Path(args.output).write_bytes(data)
            print(f"{args.output}: {stats.images} images at layer {args.layer}, {stats.total_bytes} bytes "
                  f"({stats.bits_per_image:.1f} bits per image, {stats.payload_bits_per_image:.1f} without the header)")
        else:
            data = Path(args.file).read_bytes()
            layer = read_header(data).layer
            codes = decompress(model, prior, data)
            paths = write_pngs(model.decode(codes, layer, gen), args.output)
            print(f"{args.output}: {len(paths)} images decoded from layer {layer}")
    except (ValueError, OSError) as exc:  # CodecError and PriorError are ValueErrors
        print(f"hqa.codec: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
