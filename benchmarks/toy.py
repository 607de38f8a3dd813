"""Figure 1 (Section 4): a 1-D density with four modes, compressed by quantized models.

    python -m benchmarks.toy --out results/toy        (or ./reproduce.sh toy)

Panels: (a) the data density; (b) reconstructions of a 4-code and a 2-code VQ-VAE; (c) the
4-code VQ-VAE of (b) as layer 1 with a new 2-code layer trained on its latents (a 1-bit
encoding), quantized deterministically; (d) the *same* layer 1 with a stochastic 2-code
layer on top (HQA), decoded by sampling both layers' posteriors (Eq. 3 over layer 1's
codebook; Figure 1's caption: "HQA uses the pre-trained 4-code VQ-VAE from Figure 1b").
Beside the paper's panels, a fifth: HQA trained whole as on MNIST (both layers Gumbel with
Eq. 4), which shows what the stochastic *training* of layer 1 adds to the construction.
Every model is the library's own :class:`hqa.HQA` with small MLP layers (1x1 convs on a 1x1
"image"), built through ``layer_factory``. Each panel is quantified:

- ``wasserstein``: 1-D Wasserstein distance between data and reconstructions (scipy);
- ``realism``: share of reconstructions within ``NEAR`` of a mode centre;
- ``coverage``: share of the four modes that receive at least ``MIN_SHARE`` (10%; uniform
  is 25%) of the reconstructions: a mode is reached only when reconstructions land on it;
- ``shares``: the share of reconstructions near each mode (data: 1/4 each).

The run repeats over ``SEEDS`` seeds and reports each number as mean ± 95% interval. The
paper's claims: the 2-code VQ-VAE mode-covers (low realism), the deterministic hierarchy
drops modes (coverage 1/2), the stochastic hierarchy does neither.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import wasserstein_distance
from torch import Tensor, nn
from tqdm.auto import tqdm

from hqa import HQA, HQAConfig
from hqa.activation import Mish
from hqa.layer import QuantizedAutoencoder
from hqa.normalize import RunningNorm
from hqa.quantize import Quantizer

from .metrics import t_interval
from .store import atomic_write_text

# The reference code's temperature start, with which results/toy was made (HQAConfig's 3.0 came later, for MNIST).
TOY_TEMP_START = 0.667

MODES: tuple[float, ...] = (0.125, 0.375, 0.625, 0.875)  # centres, in the [0, 1] "pixel" range
MODE_STD = 0.02
NEAR = 4 * MODE_STD  # a reconstruction this close to a centre is "realistic"
MIN_SHARE = 0.10  # a mode is reached when at least 10% of reconstructions land near it (uniform: 25%)
SEEDS = 5


@dataclass(frozen=True)
class ToySettings:
    """Sizes of the toy run (``small()`` for tests)."""

    n_train: int = 4000
    n_eval: int = 4000
    epochs: int = 40  # 1,240 steps per layer
    batch_size: int = 128
    width: int = 32
    code_dim: int = 4

    @classmethod
    def small(cls) -> "ToySettings":
        """Fewer evaluation points (training is what makes the panels; it is not cut)."""
        return cls(n_eval=1000)


def sample_data(n: int, generator: torch.Generator) -> Tensor:
    """``n`` points of the four-mode mixture as [n, 1, 1, 1] "images" in [0, 1]."""
    centres = torch.tensor(MODES)[torch.randint(len(MODES), (n,), generator=generator)]
    x = centres + MODE_STD * torch.randn(n, generator=generator)
    return x.clamp(0, 1).view(n, 1, 1, 1)


class MLP(nn.Module):
    """[B, in, 1, 1] -> [B, out, 1, 1]: two hidden layers (1x1 convs on a 1x1 grid are an
    MLP, so the hierarchy's [B, C, h, w] interface is kept). ``projection`` is the last
    layer, which the layer's data-dependent initialisation rescales."""

    def __init__(self, n_in: int, width: int, n_out: int, sigmoid: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(n_in, width, 1), Mish(), nn.Conv2d(width, width, 1), Mish(), nn.Conv2d(width, n_out, 1)
        )
        self.out = nn.Sigmoid() if sigmoid else nn.Identity()

    @property
    def projection(self) -> nn.Conv2d:
        return self.net[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.net(x))


def mlp_layer(config: HQAConfig, index: int) -> QuantizedAutoencoder:
    """Layer ``index`` of a toy hierarchy: MLP encoder/decoder around the library's quantizer."""
    d, width = config.code_dim, config.enc_widths[index - 1]
    n_in = config.channels if index == 1 else d
    return QuantizedAutoencoder(
        MLP(n_in, width, d),
        Quantizer.for_layer(config, index),
        MLP(d, config.dec_widths[index - 1], n_in, sigmoid=index == 1),
        RunningNorm(d, config.norm_momentum) if index > 1 else None,
        "pixels" if index == 1 else "mse",
    )


def toy_config(codes: tuple[int, ...], stochastic: bool, settings: ToySettings) -> HQAConfig:
    """A 1x1 "image" hierarchy with ``codes[k]`` codes at layer k; stochastic = HQA's
    Gumbel posterior and Eq. 4, deterministic = nearest code and Eq. 2 (VQ-VAE). Codebooks
    start from k-means++ seeds of the data's latents: with 4 codes drawn uniformly, two
    often start in one mode and stay there (at lr 3e-3 and uniform draws, the 4-code VQ-VAE
    reached all four modes in 2 of 4 seeds; with k-means++ and lr 1e-3 in 5 of 5)."""
    n = len(codes)
    return HQAConfig(
        image_size=1,
        channels=1,
        num_layers=n,
        codebook_size=codes[0],
        codebook_sizes=codes,
        code_dim=settings.code_dim,
        enc_widths=(settings.width,) * n,
        dec_widths=(settings.width,) * n,
        strides=(1,) * n,
        quantizer="gumbel" if stochastic else "nearest",
        codebook_loss="probabilistic" if stochastic else "vq",
        code_reset=True,
        codebook_init="kmeans++",
        lr=1e-3,
        temp_start=TOY_TEMP_START,
    )


def panel_metrics(data: Tensor, recon: Tensor) -> dict[str, Any]:
    """Wasserstein distance, realism, coverage and per-mode shares of reconstructions
    ``recon`` of ``data``."""
    x, r = data.flatten().numpy(), recon.flatten().numpy()
    gap = np.abs(r[:, None] - np.asarray(MODES)[None, :])  # [N, modes]
    near = gap.min(axis=1) <= NEAR
    shares = ((gap <= NEAR).sum(axis=0)) / len(r)
    return {
        "wasserstein": float(wasserstein_distance(x, r)),
        "realism": float(near.mean()),
        "coverage": float((shares >= MIN_SHARE).mean()),
        "shares": [round(float(v), 3) for v in shares],
    }


PANELS: tuple[str, ...] = (
    "4-code VQ-VAE (2 bits)",
    "2-code VQ-VAE (1 bit)",
    "deterministic hierarchy (1 bit)",
    "stochastic hierarchy, HQA (1 bit)",
    "HQA trained whole (1 bit)",
)


def _on_layer_one(codes: tuple[int, ...], stochastic: bool, layer_one: HQA, settings: ToySettings, seed: int) -> HQA:
    """A 2-layer hierarchy whose layer 1 is ``layer_one``'s trained layer (frozen), its
    layer 2 untrained. Stochastic: layer 1's codebook is read through Eq. 3's posterior."""
    model = HQA(toy_config(codes, stochastic, settings), seed=seed, layer_factory=mlp_layer)
    model.layers[0].load_state_dict(layer_one.layers[0].state_dict())
    model.trained.fill_(1)
    return model


def run_toy(settings: ToySettings, seed: int = 0) -> tuple[Tensor, dict[str, Tensor], dict[str, dict[str, Any]]]:
    """Train the four panels' models for one seed; return (eval data, reconstructions per
    panel, metrics per panel)."""
    gen = torch.Generator().manual_seed(seed)
    train, test = sample_data(settings.n_train, gen), sample_data(settings.n_eval, gen)
    fit = dict(epochs=settings.epochs, batch_size=settings.batch_size, seed=seed, progress=False)

    vq4 = HQA(toy_config((4,), False, settings), seed=seed, layer_factory=mlp_layer).fit(train, **fit)
    vq2 = HQA(toy_config((2,), False, settings), seed=seed, layer_factory=mlp_layer).fit(train, **fit)
    # (c) and (d): the pretrained 4-code VQ-VAE as layer 1, a new 2-code layer on top (Section 4)
    det = _on_layer_one((4, 2), False, vq4, settings, seed).fit(train, **fit)
    sto = _on_layer_one((4, 2), True, vq4, settings, seed).fit(train, **fit)
    # beside the paper's panels: HQA as the MNIST systems train it, layer 1 stochastic too (Eq. 4)
    whole = HQA(toy_config((4, 2), True, settings), seed=seed, layer_factory=mlp_layer).fit(train, **fit)

    decode_gen = torch.Generator().manual_seed(seed + 1)
    recons = dict(zip(PANELS, (
        vq4.reconstruct(test, 1),
        vq2.reconstruct(test, 1),
        det.reconstruct(test, 2),
        sto.reconstruct(test, 2, decode_gen),
        whole.reconstruct(test, 2, decode_gen),
    )))
    return test, recons, {name: panel_metrics(test, r) for name, r in recons.items()}


def run_seeds(settings: ToySettings, seeds: int = SEEDS) -> tuple[list[tuple[Tensor, dict[str, Tensor]]], pd.DataFrame]:
    """:func:`run_toy` for seeds 0..seeds-1: ((data, reconstructions) per seed, for the
    figure; a tidy frame with one row per seed, panel and metric, ``mode`` set for shares)."""
    rows: list[dict[str, Any]] = []
    runs: list[tuple[Tensor, dict[str, Tensor]]] = []
    for seed in tqdm(range(seeds), desc="toy seeds"):
        data, recons, metrics = run_toy(settings, seed)
        runs.append((data, recons))
        for panel, m in metrics.items():
            rows += [{"seed": seed, "panel": panel, "metric": k, "mode": "", "value": m[k]}
                     for k in ("wasserstein", "realism", "coverage")]
            rows += [{"seed": seed, "panel": panel, "metric": "share", "mode": f"{c:g}", "value": v}
                     for c, v in zip(MODES, m["shares"])]
    return runs, pd.DataFrame(rows)


def seed_summary(rows: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """(mean, 95% half-width) per panel of wasserstein, realism, coverage and each mode's share."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for (panel, metric, mode), group in rows.groupby(["panel", "metric", "mode"], sort=False):
        mean, lo, hi = t_interval(group["value"].tolist())
        out.setdefault(panel, {})[metric if metric != "share" else f"share {mode}"] = (mean, (hi - lo) / 2)
    return out


def claims(summary: dict[str, dict[str, tuple[float, float]]]) -> list[tuple[str, bool]]:
    """Section 4's claims, checked on the seed means."""
    mean = lambda panel, metric: summary[panel][metric][0]  # noqa: E731
    vq4, vq2, det, sto, _ = PANELS
    return [
        ("4-code VQ-VAE matches the density (realism > 0.9, coverage 1)", mean(vq4, "realism") > 0.9 and mean(vq4, "coverage") == 1.0),
        ("2-code VQ-VAE mode-covers (realism < 0.5)", mean(vq2, "realism") < 0.5),
        ("deterministic hierarchy is realistic (realism > 0.9) but drops modes (coverage <= 0.5)",
         mean(det, "realism") > 0.9 and mean(det, "coverage") <= 0.5),
        ("stochastic hierarchy does neither (realism > 0.9, coverage 1)",
         mean(sto, "realism") > 0.9 and mean(sto, "coverage") == 1.0),
    ]


def write_figure(runs: list[tuple[Tensor, dict[str, Tensor]]], path: Path) -> None:
    """Figure 1, one row per seed: (a) the data, (b) the two VQ-VAEs, (c), (d) and the
    whole-trained HQA, each a histogram of reconstructions over the data's (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    titles = ["(a) data", "(b) VQ-VAE, 4 and 2 codes", "(c) deterministic hierarchy\n(2 codes on (b)'s 4-code layer)",
              "(d) stochastic hierarchy, HQA\n(2 codes on (b)'s 4-code layer)",
              "beside the paper: HQA trained whole\n(layer 1 stochastic too, Eq. 4)"]
    series = [[], [PANELS[0], PANELS[1]], [PANELS[2]], [PANELS[3]], [PANELS[4]]]
    fig, axes = plt.subplots(len(runs), len(titles), figsize=(3.6 * len(titles), 2.4 * len(runs) + 0.8),
                             sharex=True, squeeze=False)
    bins = np.linspace(0, 1, 101)
    for row, (data, recons) in enumerate(runs):
        for col, (ax, names) in enumerate(zip(axes[row], series)):
            sns.histplot(data.flatten().numpy(), bins=bins, stat="density", color="0.8", ax=ax,
                         label="data" if names else None)
            for name in names:
                sns.histplot(recons[name].flatten().numpy(), bins=bins, stat="density", element="step", fill=False,
                             ax=ax, label=name.replace(" VQ-VAE", "").replace(" hierarchy", "") if col == 1 else None)
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
            ax.set_ylabel("")
            ax.set_yticks([])
            if col == 1:
                ax.legend(fontsize=7)
        axes[row][0].set_ylabel(f"seed {row}\ndensity")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    fig.suptitle(f"Figure 1 over {len(runs)} seeds (rows): reconstructions of a four-mode density; grey: data")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_report(rows: pd.DataFrame, out: Path, settings: ToySettings) -> str:
    """``README.md`` of the toy run from its per-seed rows (also written as ``rows.csv``)."""
    seeds = sorted(rows["seed"].unique())
    summary = seed_summary(rows)
    ci = lambda panel, metric, d: f"{summary[panel][metric][0]:.{d}f} ± {summary[panel][metric][1]:.{d}f}"  # noqa: E731
    lines = [
        "# Figure 1: a four-mode 1-D density through quantized models",
        "",
        f"Command: `python -m benchmarks.toy --out {out}` ({len(seeds)} seeds, 0..{seeds[-1]}; {settings.n_train} "
        f"training points and {settings.n_eval} evaluated per seed; modes at {list(MODES)}, std {MODE_STD}).",
        f"Panels (c) and (d) share layer 1: the 4-code VQ-VAE of panel (b), trained once per seed (the paper's construction). "
        f"The last row is not in the paper: HQA trained whole, both layers stochastic with Eq. 4, as on MNIST. "
        f"The toy's Gumbel temperature starts at {TOY_TEMP_START} (the reference code's; `benchmarks/toy.py`), while "
        f"MNIST HQA's starts at {HQAConfig.__dataclass_fields__['temp_start'].default} (`HQAConfig.temp_start`). "
        f"Realism: share of reconstructions within {NEAR:g} of a mode centre. Coverage: share of the four modes "
        f"receiving at least {MIN_SHARE:.0%} of reconstructions (uniform: 25%). Wasserstein: 1-D W1 between data and "
        "reconstructions. Mean ± 95% Student-t interval over seeds.",
        "",
        "| panel | Wasserstein | realism | coverage | mean share near each mode (data: 0.25 each) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {panel} | {ci(panel, 'wasserstein', 4)} | {ci(panel, 'realism', 2)} | {ci(panel, 'coverage', 2)} | "
        + " / ".join(f"{summary[panel][f'share {c:g}'][0]:.2f}" for c in MODES) + " |"
        for panel in PANELS
    ]
    lines += ["", "Claims of Section 4, on the seed means:", ""]
    lines += [f"- {text}: **{'holds' if ok else 'does not hold'}**" for text, ok in claims(summary)]
    cov = rows[rows["metric"] == "coverage"].pivot(index="seed", columns="panel", values="value")
    dropped = [int(s) for s in cov.index if cov.loc[s, PANELS[3]] < 1.0]
    lines += ["", ("HQA (d) reaches every mode in every seed." if not dropped else
                   f"HQA (d) drops at least one mode (under {MIN_SHARE:.0%} of reconstructions) in seed(s) {dropped}.")]
    shares = rows[rows["metric"] == "share"].copy()
    shares["cell"] = shares["value"].map(lambda v: f"{v:.2f}")
    per_seed = shares.groupby(["panel", "seed"], sort=False)["cell"].agg(" / ".join).unstack("seed")
    lines += ["", "Share near each mode, per seed (modes left to right):", "",
              per_seed.rename(columns=lambda s: f"seed {s}").to_markdown(), "",
              "![Figure 1](figure1.png)", "", "Figure: one row per seed. Per-seed rows: `rows.csv`.", ""]
    text = "\n".join(lines)
    atomic_write_text(out / "rows.csv", rows.to_csv(index=False))
    atomic_write_text(out / "README.md", text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.toy", description="Figure 1: the four-mode toy experiment")
    p.add_argument("--out", default="results/toy")
    p.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds 0..N-1 (default {SEEDS})")
    args = p.parse_args(argv)
    if args.seeds < 2:
        print("error: --seeds must be >= 2 (the numbers are means with 95% intervals)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # tiny MLPs: threads only add overhead
    settings = ToySettings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, rows = run_seeds(settings, args.seeds)
    write_figure(runs, out / "figure1.png")
    print(write_report(rows, out, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
