"""The paper's pictures from a sweep's stored models (no retraining), each with its numbers.

- ``table4_interpolations.png`` (Table 4): linear interpolation of the top-layer z_e between
  two test images, decoded, for HQA, HAMs, VQ-VAE and k-means. Numbers: the classifier's
  confidence (max softmax) along the path and the classifier-feature distance from each
  decoded image to its nearest test image (real test images give the reference distance).
- ``reconstructions.png`` (the MNIST counterpart of Table 2): the same test images
  reconstructed by every system at every rate, labelled with the bits transmitted.
- ``stochastic_decodes.png``: several decodes of the same top-layer code; number: the mean
  pixel variance across decodes (0 for a deterministic decoder).

All numbers go to ``figures.md`` beside the pictures. Used by :mod:`benchmarks.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from hqa.system import CompressionSystem

from .fidelity import FeatureSpace
from .registry import LABELS, build_system
from .store import ResultStore

INTERPOLATION_SYSTEMS = ("hqa", "hams", "vqvae", "kmeans", "fsq", "rvq")
STEPS = 8  # points on each interpolation path, ends included
PAIRS = 32  # pairs whose numbers are averaged (the first few are drawn)
SHOWN = 3  # pairs drawn per system
DECODES = 8  # stochastic decodes per image
GRID_IMAGES = 8
HELD_OUT = 1000  # test images that pairs are drawn from; the rest is the reference set


@dataclass(frozen=True)
class FigureData:
    """What the figures need: the evaluation images and labels, the classifier's feature
    space (the one the sweep's rFID and classification error use), the seed."""

    images: Tensor
    labels: Tensor
    classifier: FeatureSpace | None  # None: an unlabelled dataset (CelebA), pictures without classifier numbers
    seed: int = 0


def load_models(out: Path, dataset: str, seed: int = 0, names: Sequence[str] | None = None) -> dict[str, CompressionSystem]:
    """Every fully trained model of ``seed`` stored in a sweep folder (of ``names`` only, when
    given), by system name."""
    store = ResultStore(out)
    models: dict[str, CompressionSystem] = {}
    for name in LABELS if names is None else [n for n in LABELS if n in names]:
        path = store.model_path(name, seed)
        if not path.exists():
            continue
        empty = build_system(name, dataset)
        model = type(empty).load(path, expect_config=empty.config)
        if model.trained_layers == model.num_layers:
            models[name] = model
    return models


# Image grids: inches per image cell and resolution, so that a cell is 0.5 x 110 = 55 px.
CELL_INCHES = 0.5
DPI = 110
GAP_CELLS = 0.25  # white gap between an interpolation's ends and its path, in cells
BLOCK_HEAD_INCHES = 0.8  # a block's title and column labels


def _grid(rows: list[list[Tensor]], row_labels: list[str], col_labels: list[str], path: Path, title: str) -> None:
    """Save a grid of image strips: ``rows[i][j]`` is a [n, C, H, W] strip shown side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    n_rows, n_cols = len(rows), len(rows[0])
    # Sized by the images in each strip, so an image cell is CELL_INCHES * DPI >= 48 px however
    # many images a strip holds (one wide column of 12 images, or 5 columns of 8).
    widths = [max(len(row[j]) for row in rows) for j in range(n_cols)]
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(CELL_INCHES * sum(widths) + 0.3 * n_cols, (CELL_INCHES + 0.3) * n_rows + 0.6),
        squeeze=False, gridspec_kw={"width_ratios": widths},
    )
    for i, row in enumerate(rows):
        for j, strip in enumerate(row):
            ax = axes[i][j]
            grid = make_grid(strip.float().clamp(0, 1), nrow=len(strip), padding=1, pad_value=1.0)
            ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # tight: row labels and titles are never clipped
    plt.close(fig)


def interpolation_blocks(blocks: list[tuple[Tensor, Tensor, Tensor]], labels: list[str], path: Path, title: str) -> None:
    """Table 4's layout: one block per system (titled with its name), one row per pair:
    original a, a gap, the decoded path a -> b, a gap, original b. ``blocks[i]`` is
    (a [P, C, H, W], paths [P, S, C, H, W], b [P, C, H, W]); every image cell is
    CELL_INCHES * DPI px in the saved file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    steps = blocks[0][1].shape[1]
    cells = steps + 2 + 2 * GAP_CELLS  # images and gaps per row
    heights = [len(a) for a, _, _ in blocks]
    fig, axes = plt.subplots(
        len(blocks), 1, figsize=(CELL_INCHES * cells + 0.4, sum(CELL_INCHES * h + BLOCK_HEAD_INCHES for h in heights) + 0.5),
        squeeze=False, gridspec_kw={"height_ratios": heights},
    )
    for ax, (a, paths, b), label in zip(axes[:, 0], blocks, labels):
        c, size = a.shape[1], a.shape[-1]
        gap = torch.ones(len(a), c, size, int(GAP_CELLS * size))
        rows = [torch.cat([a[p], gap[p], *paths[p].unbind(0), gap[p], b[p]], dim=-1) for p in range(len(a))]
        image = make_grid(torch.stack(rows).float().clamp(0, 1), nrow=1, padding=2, pad_value=1.0)
        ax.imshow(image.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
        width = image.shape[-1]
        a_mid, path_mid, b_mid = size / 2, width / 2, width - size / 2
        ax.set_xticks([a_mid, path_mid, b_mid], ["a", f"decoded path a \u2192 b ({steps} points)", "b"], fontsize=8)
        ax.xaxis.set_ticks_position("top")
        ax.tick_params(length=0)
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(label, loc="left", fontsize=9, fontweight="bold", pad=14)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _classify(space: FeatureSpace, images: Tensor) -> tuple[Tensor, Tensor]:
    """(max softmax probability [N], penultimate features [N, F]) from the classifier space's
    one pass (the same uint8 inputs and features as its rFID)."""
    feats, logits = space.outputs(images)
    return torch.softmax(logits, dim=1).amax(dim=1), feats


def _nearest_distance(feats: Tensor, reference: Tensor) -> Tensor:
    """Euclidean distance from each row of ``feats`` to its nearest row of ``reference``."""
    return torch.cat([torch.cdist(feats[i : i + 1000], reference).min(dim=1).values for i in range(0, len(feats), 1000)])


def _layer_of_size(model: CompressionSystem, latent: int | None) -> int:
    """The layer whose code grid is ``latent`` x ``latent`` (None: the top layer)."""
    if latent is None:
        return model.num_layers
    for k in range(1, model.num_layers + 1):
        if model.config.latent_size(k) == latent:
            return k
    raise ValueError(f"no layer with a {latent}x{latent} latent")


def interpolations(
    models: dict[str, CompressionSystem], data: FigureData, path: Path, latent: int | None = None
) -> list[str]:
    """Table 4 (MNIST: the top layer) / Table 1 (CelebA: the 8x8 layer, ``latent=8``): decode a
    straight line between two images' z_e. Returns Markdown with the numbers."""
    # Pairs and the "real" row come from a held-out part; distances are to the rest, so
    # no decoded image is measured against its own source image.
    if len(data.images) < 3:
        return [f"Interpolations skipped: {len(data.images)} evaluation images (need 3: a pair and a reference)", ""]
    n_held = min(HELD_OUT, max(2, len(data.images) // 2))
    held, rest = data.images[:n_held], data.images[n_held:]
    pairs = min(PAIRS, n_held // 2)
    gen = torch.Generator().manual_seed(data.seed)
    pick = torch.randperm(n_held, generator=gen)
    a_idx, b_idx = pick[:pairs], pick[pairs : 2 * pairs]
    t = torch.linspace(0, 1, STEPS)
    rows, labels = [], []
    where = "the top layer's z_e" if latent is None else f"the {latent}x{latent} layer's z_e"
    title = f"## {'Table 4' if latent is None else 'Table 1'}: interpolations in {where}"
    if data.classifier is None:
        lines = [title, "", "No classifier for this (unlabelled) dataset: pictures without numbers."]
    else:
        _, ref_feats = _classify(data.classifier, rest)
        real_conf, real_feats = _classify(data.classifier, held)
        real_dist = _nearest_distance(real_feats, ref_feats)
        lines = _interpolation_header(title, pairs, n_held, real_conf.mean().item(), real_dist.mean().item())
    for name in INTERPOLATION_SYSTEMS:
        if name not in models:
            continue
        model = models[name]
        top = _layer_of_size(model, latent)
        z_a, z_b = model.encode_continuous(held[a_idx], top), model.encode_continuous(held[b_idx], top)
        path_z = torch.stack([(1 - s) * z_a + s * z_b for s in t], dim=1)  # [P, STEPS, D, h, w]
        decode_gen = torch.Generator(device=model.device).manual_seed(data.seed)
        decoded = model.decode_continuous(path_z.flatten(0, 1), top, decode_gen).cpu()  # [P * STEPS, C, H, W]
        if data.classifier is not None:
            conf, feats = _classify(data.classifier, decoded)
            dist = _nearest_distance(feats, ref_feats)
            interior = torch.ones(pairs, STEPS, dtype=torch.bool)
            interior[:, [0, -1]] = False
            interior = interior.flatten()
            lines.append(
                f"| {LABELS[name]} | {conf[interior].mean():.3f} | {dist[interior].mean():.2f} | {dist[~interior].mean():.2f} |"
            )
        shown = min(SHOWN, pairs)  # the two originals frame each decoded path
        rows.append((held[a_idx[:shown]], decoded.view(pairs, STEPS, *decoded.shape[1:])[:shown], held[b_idx[:shown]]))
        labels.append(LABELS[name])
    if not rows:  # none of the systems Table 4 shows
        return []
    interpolation_blocks(rows, labels, path, title.lstrip("# "))
    return lines + ["", f"![interpolations]({path.name})", ""]


def _interpolation_header(title: str, pairs: int, n_held: int, real_conf: float, real_dist: float) -> list[str]:
    return [
        title,
        "",
        f"{pairs} random pairs from {n_held} held-out test images, {STEPS} points per path (ends included), decoded from "
        "the top layer (stochastic systems sample). Confidence: the classifier's max softmax probability. Distance: "
        "classifier-feature distance from each image to its nearest image among the other test images (the reference "
        "row: the held-out real images themselves). Interior: the path without its two ends.",
        "",
        "| system | classifier confidence (interior) | classifier-feature distance to data (interior) | "
        "classifier-feature distance at the ends |",
        "| --- | ---: | ---: | ---: |",
        f"| real test images | {real_conf:.3f} | {real_dist:.2f} | – |",
    ]


def reconstructions(models: dict[str, CompressionSystem], data: FigureData, path: Path) -> list[str]:
    """The same test images through every system at every rate. Returns Markdown."""
    x = data.images[:GRID_IMAGES]
    names = [n for n in LABELS if n in models]
    if not names:
        return []
    rates = models[names[0]].rates
    rows = [[x] * len(rates)]
    labels = ["original"]
    for name in names:
        model = models[name]
        gen = torch.Generator(device=model.device).manual_seed(data.seed)
        rows.append([model.reconstruct(x, k, gen).cpu() for k in range(1, model.num_layers + 1)])
        labels.append(LABELS[name])
    _grid(rows, labels, [f"{b} bits" for b in rates], path, "Reconstructions at every rate (columns: bits transmitted)")
    return ["## Reconstructions at every rate", "", f"![Reconstructions]({path.name})", ""]


def stochastic_decodes(models: dict[str, CompressionSystem], data: FigureData, path: Path) -> list[str]:
    """Several decodes of the same top-layer code. Returns Markdown with the pixel variance."""
    x = data.images[:GRID_IMAGES]
    lines = [
        "## Stochastic decodes of one top-layer code",
        "",
        f"Each image is encoded once (its most probable top-layer code) and decoded {DECODES} times with different "
        "generators. Variance: per-pixel variance across the decodes, averaged over pixels and images.",
        "",
        "| system | bits | mean pixel variance across decodes |",
        "| --- | ---: | ---: |",
    ]
    rows, labels = [], []
    names = [n for n in LABELS if n in models]
    shown = [n for n in ("hqa", "vqvae") if n in models] or names[:2]  # HQA beside a deterministic baseline
    if not any(models[n].stochastic for n in names):  # identical decodes: the variance column says it all
        shown = []
    for name in names:
        model = models[name]
        top = model.num_layers
        codes = model.encode(x, top)  # the mode: the same code for every decode
        decodes = torch.stack(
            [model.decode(codes, top, torch.Generator(device=model.device).manual_seed(d)).cpu() for d in range(DECODES)]
        )  # [DECODES, B, C, H, W]
        lines.append(f"| {LABELS[name]} | {model.rates[-1]} | {decodes.var(dim=0).mean():.5f} |")
        if name in shown:
            for i in range(min(3, len(x))):
                rows.append([decodes[:, i]])
                labels.append(f"{LABELS[name]}, image {i + 1}")
    if not rows:
        return lines + [""]
    title = "Stochastic decodes: " + LABELS[shown[0]]
    if len(shown) > 1:
        title += (" against a deterministic " if not models[shown[1]].stochastic else " and ") + LABELS[shown[1]]
    _grid(rows, labels, [f"{DECODES} decodes of one code"], path, title)
    return lines + ["", f"![Stochastic decodes]({path.name})", ""]


def write_figures(
    out: Path, dataset: str, data: FigureData, compared: tuple[Path, Sequence[str]] | None = None
) -> str | None:
    """Make every figure of this module from the stored seed-``data.seed`` models in ``out``
    (and, with ``compared``, those systems' models in another sweep's folder, the systems its
    tables compare with: :mod:`benchmarks.comparison`); write ``figures.md``. Returns its
    text, or None when no trained models of this sweep are stored."""
    models = load_models(out, dataset, data.seed)
    if not models:
        return None
    if compared is not None:
        folder, names = compared
        models = {**load_models(folder, dataset, data.seed, names), **models}
    for model in models.values():
        model.eval()
    lines = [f"# Figures from the stored models of seed {data.seed} (no retraining)", ""]
    if dataset == "celeba":  # Table 1: interpolations at the 8x8 layer
        lines += interpolations(models, data, out / "table1_interpolations.png", latent=8)
    else:
        lines += interpolations(models, data, out / "table4_interpolations.png")
    lines += reconstructions(models, data, out / "reconstructions.png")
    lines += stochastic_decodes(models, data, out / "stochastic_decodes.png")
    text = "\n".join(lines)
    (out / "figures.md").write_text(text)
    return text
