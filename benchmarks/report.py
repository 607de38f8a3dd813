"""Tables and figures made only from the stored rows of a sweep.

    python -m benchmarks.report results/mnist

writes ``table3.md``/``table3.csv`` (the lowest rate, mean ± 95% Student-t CI over seeds,
the paper's values beside ours), ``rates.md``/``rates.csv`` (every rate), ``figure3.png``
(rate against distortion, rFID and classification error, CI bands) and ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from hqa.config import HQAConfig  # noqa: E402
from hqa.data import DataNotFoundError  # noqa: E402

from .classifier import load_or_train_classifier  # noqa: E402
from .comparison import compared_rows  # noqa: E402
from .fidelity import FEATURE_SPACES, SPACE_LABELS, classifier_space  # noqa: E402
from .metrics import CLASS_ERROR, CODE_ENTROPY, CODES_USED, INFO_BITS, MSE, RFID, t_interval  # noqa: E402
from .datasets import sweep_data  # noqa: E402
from .curves import IMPROVING_SHARE, curves_figure, improving_table  # noqa: E402
from .figures import FigureData, write_figures  # noqa: E402
from .profiles import get_profile, per_layer_steps, whole_epochs  # noqa: E402
from .classical import LABELS as CLASSICAL_LABELS  # noqa: E402
from .registry import LABELS  # noqa: E402
from .reproduction import write_reproduction  # noqa: E402
from .store import CURVE_PREFIX, ResultStore  # noqa: E402

# The paper's Table 3 (MNIST, 8 bits, 10 seeds, Inception rFID): (MSE, rFID, class. error %).
PAPER_TABLE3: dict[str, tuple[str, str, str]] = {
    "none": ("0.000 ± 0.000", "0.0 ± 0.0", "3.13 ± 0.00"),
    "vqvae": ("0.040 ± 0.001", "85.9 ± 2.0", "21.6 ± 2.56"),
    "hams": ("0.090 ± 0.004", "45.6 ± 3.9", "29.9 ± 3.04"),
    "hams-gs": ("0.108 ± 0.009", "38.6 ± 3.1", "51.1 ± 6.28"),
    "hams-mse": ("0.052 ± 0.0004", "36.0 ± 1.0", "11.1 ± 0.46"),
    "hams-gs-mse": ("0.054 ± 0.0003", "21.0 ± 1.0", "10.6 ± 0.93"),
    "hqa": ("0.053 ± 0.0006", "22.8 ± 0.7", "12.4 ± 1.82"),
}
PAPER_RFID = "Paper rFID (Inception-v3; not comparable in value with offline spaces)"
CLASS_ERROR_LABEL = "Class. error (%, classifier)"
INFO_LABEL = "Information bits I(X;Z)"
INFO_NOTE = (
    "Information bits: I(X;Z) from each layer's posterior, per latent position, summed over positions "
    "(positions treated as independent: an upper bound on the joint I(X;Z)); entropy of emitted codes: of the "
    "codes actually sent (sampled where a system samples), per position, summed. They are equal for "
    "deterministic systems; a stochastic code whose posterior ignores the image has high entropy and 0 information."
)
ENTROPY_LABEL = "Entropy of emitted codes (bits)"
# Real files (benchmarks.files): the learned systems' context-prior files, the classical codecs' whole files.
REAL_BITS_LABEL = "Real bits, seed 0 (context prior, all test images in one file; JPEG/WebP: one file per image)"
REAL_BITS, CLASSICAL_FILE_BITS = "file_bits_context", "file_bits"
REAL_BITS_FIGURE = "figure3_real_bits.png"


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% Student-t interval over seeds per (system, layer, bits, metric, space)."""
    keys = ["system", "layer", "bits", "metric", "feature_space"]
    out = []
    for key, group in rows.groupby(keys, sort=False):
        mean, lo, hi = t_interval(group["value"].tolist())
        out.append(dict(zip(keys, key), mean=mean, lo=lo, hi=hi, half=(hi - lo) / 2, n=len(group)))
    return pd.DataFrame(out)


def _fmt(mean: float, half: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def metric_columns(summary: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """(column title, metric, feature space, digits) of the metrics present."""
    cols = [("Distortion (MSE)", MSE, "", 4)]
    for space in FEATURE_SPACES:
        if ((summary["metric"] == RFID) & (summary["feature_space"] == space)).any():
            cols.append((SPACE_LABELS[space], RFID, space, 1))
    cols += [(CLASS_ERROR_LABEL, CLASS_ERROR, "", 2), (INFO_LABEL, INFO_BITS, "", 2), (ENTROPY_LABEL, CODE_ENTROPY, "", 2),
             ("Codes emitted", CODES_USED, "", 1), (REAL_BITS_LABEL, REAL_BITS, "", 1)]
    return [c for c in cols if (summary["metric"] == c[1]).any() or c[1] == MSE]


def rate_table(summary: pd.DataFrame, layer: int | None, paper_values: bool = True) -> pd.DataFrame:
    """One row per system (and rate): formatted mean ± CI per metric; ``layer=None``: all rates,
    the classical codecs' quality settings included (they have no layer of a given rate)."""
    cols = metric_columns(summary)
    systems = [s for s in ["none", *LABELS, *(CLASSICAL_LABELS if layer is None else ())] if s in set(summary["system"])]
    records = []
    for system in systems:
        sub = summary[summary["system"] == system]
        layers = [0] if system == "none" else sorted(sub["layer"].unique()) if layer is None else [layer]
        for lay in layers:
            cell = sub[sub["layer"] == lay]
            if cell.empty:
                continue
            rec = {"System": "No compression" if system == "none" else LABELS.get(system, CLASSICAL_LABELS.get(system, system))}
            if layer is None:
                rec["Bits"] = int(cell["bits"].iloc[0])
            rec["Seeds"] = int(cell["n"].max())
            for title, metric, space, digits in cols:
                if metric == REAL_BITS and system in CLASSICAL_LABELS:
                    metric = CLASSICAL_FILE_BITS
                hit = cell[(cell["metric"] == metric) & (cell["feature_space"] == space)]
                if title == REAL_BITS_LABEL and len(hit) and hit["n"].iloc[0] == 1:  # one seed's file: no interval
                    rec[title] = f"{hit['mean'].iloc[0]:.{digits}f}"
                else:
                    rec[title] = _fmt(hit["mean"].iloc[0], hit["half"].iloc[0], digits) if len(hit) else "–"
            if layer is not None and paper_values:
                paper = PAPER_TABLE3.get(system)
                rec["Paper MSE"], rec[PAPER_RFID], rec["Paper class. error (%)"] = paper or ("–",) * 3
            records.append(rec)
    return pd.DataFrame(records)


@dataclass(frozen=True)
class OutputNames:
    """What a dataset's outputs are called after the paper: MNIST's Table 3 / Figure 3,
    CelebA's Figure 2 (right); paper values exist for MNIST's Table 3 only."""

    table: str
    table_title: str
    figure: str
    figure_title: str
    paper_values: bool


def output_names(dataset: str) -> OutputNames:
    if dataset == "celeba":
        return OutputNames("lowest_rate", "Lowest rate", "figure2_right.png", "Figure 2 (right)", False)
    return OutputNames("table3", "Table 3", "figure3.png", "Figure 3", dataset == "mnist")


def figure3(rows: pd.DataFrame, path: Path) -> None:
    """Rate (log) against distortion, rFID per feature space, classification error and the
    information the codes carry (a grid of panels, three per row)."""
    data = rows[(rows["system"] != "none") & (rows["layer"] > 0) & ~rows["system"].isin(list(CLASSICAL_LABELS))].copy()
    data["System"] = data["system"].map(lambda s: LABELS.get(s, s))
    present = lambda metric, space="": ((data["metric"] == metric) & (data["feature_space"] == space)).any()  # noqa: E731
    panels = [(MSE, "", "Distortion (MSE)")]
    panels += [(RFID, s, SPACE_LABELS[s]) for s in FEATURE_SPACES if present(RFID, s)]
    panels += [(m, "", t) for m, t in ((CLASS_ERROR, CLASS_ERROR_LABEL), (INFO_BITS, INFO_LABEL)) if present(m)]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    flat = list(axes.flat)
    order = [LABELS[s] for s in LABELS if LABELS[s] in set(data["System"])]

    def interval(values: pd.Series) -> tuple[float, float]:
        _, lo, hi = t_interval(values.tolist())
        return lo, hi

    for i, (ax, (metric, space, title)) in enumerate(zip(flat, panels)):
        sel = data[(data["metric"] == metric) & (data["feature_space"] == space)]
        sns.lineplot(data=sel, x="bits", y="value", hue="System", hue_order=order, marker="o", errorbar=interval, ax=ax,
                     legend=i == ncols - 1)
        ax.set_xscale("log", base=2)
        if metric == INFO_BITS:  # the nominal rate is the most a code can carry
            ax.set_yscale("symlog", base=2, linthresh=1.0)  # log-like, but 0 bits stays on the axis
            rates = sorted(sel["bits"].unique())
            ax.plot(rates, rates, "k:", lw=1)
            ax.annotate("nominal rate", (rates[-1], rates[-1]), xytext=(-4, 0), textcoords="offset points",
                        ha="right", va="bottom", fontsize=8)
        else:
            # Every metric is >= 0; with few seeds a t-interval can be far wider than the spread
            # of the means, so the axis follows the means and the bands are clipped by it.
            top = sel.groupby(["System", "bits"])["value"].mean().max()
            ax.set_ylim(0, 1.3 * top if top > 0 else 1)
        ax.set_xlabel("nominal rate (bits per image)")
        ax.set_ylabel(title)
        ax.set_title(title)
    for ax in flat[len(panels):]:
        ax.axis("off")
    n = data.groupby("system")["seed"].nunique().min()
    fig.suptitle(f"Rate against distortion, rFID, classification error and information (mean over {n}+ seeds; "
                 "bands: 95% t-interval, clipped to the axes)")
    sns.move_legend(flat[ncols - 1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def real_bits_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (system, layer, metric, feature space): x, the real bits per image (the learned
    systems' context-prior file, mean over the seeds that have one; the classical codecs' whole
    file), and the metric's mean and 95% interval over seeds. Empty without file rows."""
    bits_rows = rows[((rows["metric"] == REAL_BITS) & ~rows["system"].isin(list(CLASSICAL_LABELS)))
                     | ((rows["metric"] == CLASSICAL_FILE_BITS) & rows["system"].isin(list(CLASSICAL_LABELS)))]
    if bits_rows.empty:
        return pd.DataFrame(columns=["system", "layer", "metric", "feature_space", "x", "mean", "lo", "hi"])
    x = bits_rows.groupby(["system", "layer"])["value"].mean()
    out = []
    for (system, layer, metric, space), group in rows[rows["layer"] > 0].groupby(["system", "layer", "metric", "feature_space"]):
        if (system, layer) in x.index and metric in (MSE, RFID, CLASS_ERROR):
            mean, lo, hi = t_interval(group["value"].tolist())
            out.append({"system": system, "layer": layer, "metric": metric, "feature_space": space,
                        "x": float(x[(system, layer)]), "mean": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(out)


def figure3_real_bits(rows: pd.DataFrame, path: Path) -> bool:
    """Figure 3 with real file bits on the x axis (log): the learned systems under their context
    prior, JPEG and WebP over their quality range. False (nothing drawn) without file rows."""
    points = real_bits_points(rows)
    if points.empty:
        return False
    panels = [(MSE, "", "Distortion (MSE)")]
    panels += [(RFID, s, SPACE_LABELS[s]) for s in FEATURE_SPACES if ((points["metric"] == RFID) & (points["feature_space"] == s)).any()]
    panels += [(CLASS_ERROR, "", CLASS_ERROR_LABEL)] if (points["metric"] == CLASS_ERROR).any() else []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    names = [s for s in [*LABELS, *CLASSICAL_LABELS] if s in set(points["system"])]
    colours = dict(zip(names, sns.color_palette("tab10", len(names))))
    for ax, (metric, space, title) in zip(axes.flat, panels):
        for system in names:
            sel = points[(points["system"] == system) & (points["metric"] == metric) & (points["feature_space"] == space)]
            sel = sel.sort_values("x")
            label = LABELS.get(system, CLASSICAL_LABELS.get(system, system))
            style = "s--" if system in CLASSICAL_LABELS else "o-"
            ax.errorbar(sel["x"], sel["mean"], yerr=[sel["mean"] - sel["lo"], sel["hi"] - sel["mean"]], fmt=style,
                        ms=4, lw=1.2, capsize=2, color=colours[system], label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("real bits per image (file size, headers included)")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
    axes.flat[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Rate as real files. x: learned systems, seed 0's codes under their context prior, all test images "
                 "in one file; JPEG and WebP, one file per image at each quality. y: mean and 95% t-interval over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return True


def figure_data(out: Path, data_root: str | None, cache_dir: str | None = None) -> FigureData:
    """The evaluation images and cached classifier a sweep in ``out`` used (from its run.json).

    Raises DataNotFoundError / ValueError when the data cannot be found.
    """
    manifest = ResultStore(out).manifest()
    profile = get_profile(manifest.get("profile", "quick"))
    # Sweeps before the preprocessing was recorded zero-padded MNIST.
    data = sweep_data(manifest.get("dataset", "mnist"), data_root, profile, preprocess=manifest.get("preprocess", "pad"))
    train, test = data.train, data.test
    space = None
    if bool((train.labels >= 0).all()):  # the sweep's cached classifier (trained only if missing)
        _, path = load_or_train_classifier(train, profile.classifier_epochs, cache=cache_dir)
        space = classifier_space(path)  # outputs only: the figures need no FID statistics
    return FigureData(test.images, test.labels, space)


def write_reports(
    out: str | Path,
    data_root: str | None = None,
    figures: bool = True,
    cache_dir: str | None = None,
    data: FigureData | None = None,
) -> None:
    """Write every table, figure and the README of the sweep in ``out`` from its rows; with
    ``figures``, also the pictures made from its stored models (:mod:`benchmarks.figures`),
    which need the test images and the sweep's classifier: ``data`` when the caller holds
    them (the runner), else read again from ``data_root`` (or $HQA_DATA_ROOT) and the
    classifier cache (``cache_dir`` or $HQA_CACHE_DIR)."""
    out = Path(out)
    store = ResultStore(out)
    rows = store.rows()
    if rows.empty:
        raise ValueError(f"no result rows in {out / 'rows'}; run python -m benchmarks.run first")
    curves = rows[rows["metric"].str.startswith(CURVE_PREFIX)]
    rows = rows[~rows["metric"].str.startswith(CURVE_PREFIX)]
    others, compare_note, other_folder = compared_rows(out, rows)  # systems trained in another folder (benchmarks.comparison)
    if compare_note:
        print(compare_note, file=sys.stderr)
    rows = pd.concat([rows, others], ignore_index=True) if len(others) else rows
    summary = summarize(rows[~rows["metric"].isin(["train_seconds", "eval_seconds", "files_seconds"])])
    top = int(summary[~summary["system"].isin(["none", *CLASSICAL_LABELS])]["layer"].max())
    manifest = store.manifest()
    names = output_names(manifest.get("dataset", "mnist"))
    table3 = rate_table(summary, top, paper_values=names.paper_values)
    table3.to_csv(out / f"{names.table}.csv", index=False)
    bits = int(summary[(summary["layer"] == top) & ~summary["system"].isin(list(CLASSICAL_LABELS))]["bits"].iloc[0])
    header = (
        f"{names.table_title}: {bits}-bit rate (layer {top}), {manifest.get('dataset', '?')} test set "
        f"({manifest.get('eval_size', '?')} images), trained on {manifest.get('train_size', '?')} images, "
        f"profile `{manifest.get('profile', '?')}`. Mean ± 95% Student-t interval over seeds. "
        f"{INFO_NOTE}" + (f" {compare_note}" if compare_note else "") + "\n\n"
    )
    (out / f"{names.table}.md").write_text(header + table3.to_markdown(index=False) + "\n")
    rates = rate_table(summary, None)
    rates.to_csv(out / "rates.csv", index=False)
    (out / "rates.md").write_text(f"Every rate, mean ± 95% Student-t interval over seeds. {INFO_NOTE}"
                                  + (f" {compare_note}" if compare_note else "") + "\n\n"
                                  + rates.to_markdown(index=False) + "\n")
    figure3(rows, out / names.figure)
    real_bits_figure = figure3_real_bits(rows, out / REAL_BITS_FIGURE)
    improving = None
    if not curves.empty:
        curves_figure(curves, out / "curves.png")
        improving = improving_table(curves)
        improving.to_csv(out / "convergence.csv", index=False)
    figures_md = None
    if figures:
        try:
            data = data or figure_data(out, data_root, cache_dir)
            compared = (other_folder, sorted(set(others["system"]))) if len(others) else None  # their models too, where stored
            figures_md = write_figures(out, manifest.get("dataset", "mnist"), data, compared)
        except (DataNotFoundError, ValueError) as exc:
            print(f"figures from stored models skipped: {exc}", file=sys.stderr)
    if figures_md is None and (out / "figures.md").exists():
        # not remade (--no-figures, or a clone: models are not in git): keep the figures as they are
        if figures:
            print(f"no trained models in {out / 'models'}; the figures made from them are kept as they are", file=sys.stderr)
        figures_md = (out / "figures.md").read_text()
    write_readme(out, rows, manifest, header + table3.to_markdown(index=False), names, figures_md, improving)
    reproduction = write_reproduction(out)
    if reproduction is not None:
        print(f"reproduction report: {reproduction}", file=sys.stderr)


def _steps_run(manifest: dict) -> str:
    """The optimizer steps and batch each layer actually took (profiles ask for at least N
    steps and train whole epochs), and those of each independent model (VQ-VAE) when
    budgeted apart."""
    try:
        n = int(manifest["train_size"])
        layers = HQAConfig.preset(manifest["dataset"]).num_layers
        steps = per_layer_steps(manifest["steps"], layers)
        batch = manifest["batch_size"]
        batches = per_layer_steps([batch] if isinstance(batch, int) else batch, layers)
        taken = whole_epochs(steps, n, batches)[1]
        text = f"{taken} optimizer steps per layer at batch {list(batches)}"
        if manifest.get("independent_steps"):
            ind = int(manifest.get("independent_batch") or batches[0])  # older run.json: the bottom batch
            text += f"; each single-rate model (VQ-VAE, FSQ, residual VQ) {whole_epochs([manifest['independent_steps']], n, ind)[1][0]} steps at batch {ind}"
        return text
    except (KeyError, TypeError, ValueError):
        return "?"


_PREPROCESSING = {
    "resize": "MNIST resized 28 -> 32 (bilinear, as the paper's reference code)",
    "pad": "MNIST zero-padded 28 -> 32 (MSE not comparable with the paper's: ~19% of pixels are trivially 0)",
}


def _yes_no(flag: object) -> str:
    return {True: "yes", False: "no"}.get(flag, "not recorded")  # type: ignore[call-overload]


def write_readme(
    out: Path,
    rows: pd.DataFrame,
    manifest: dict,
    table3_md: str,
    names: OutputNames,
    figures_md: str | None = None,
    improving: pd.DataFrame | None = None,
) -> None:
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()] if (out / "runs.jsonl").exists() else []
    last = runs[-1] if runs else {}
    train_s = rows[rows["metric"] == "train_seconds"].groupby("system")["value"].sum() / rows[rows["metric"] == "train_seconds"].groupby("system")["seed"].nunique()
    eval_s = rows[rows["metric"] == "eval_seconds"].groupby("system")["value"].mean()
    timing = pd.DataFrame({"train s / seed": train_s.round(0), "eval s / seed": eval_s.round(1)}).fillna("–")
    n_train = manifest.get("train_size")
    lines = [
        f"# Results: {manifest.get('dataset', '?')}, profile `{manifest.get('profile', '?')}`",
        "",
        f"- Command: `{last.get('command', '?')}`" + (f" ({len(runs)} invocations; resumed runs append)" if len(runs) > 1 else ""),
        f"- Profile: `{manifest.get('profile')}`: at least {manifest.get('steps')} steps per layer, run as whole epochs: "
        f"{_steps_run(manifest)}; seeds {last.get('seeds', '?')}",
        f"- Data: trained on {n_train} images" + (f" ({manifest['data']})" if manifest.get("data") else "")
        + (" (the offline 5k subset or part of it, not the paper's 60k)" if isinstance(n_train, int) and n_train <= 5000 else "")
        + f"; evaluated on {manifest.get('eval_size')} test images; preprocessing: "
        + _PREPROCESSING.get(manifest.get("preprocess", "pad"), str(manifest.get("preprocess"))),
        f"- Machine: {last.get('machine', '?')}; jobs {last.get('jobs', '?')} x {last.get('threads_per_job', '?')} threads; "
        f"device {last.get('device', '?')}; fused compiled kernels: {_yes_no(last.get('compiled'))}; "
        f"mixed precision: {_yes_no(last.get('mixed_precision'))}",
        f"- Wall time: {sum(r.get('wall_seconds', 0) for r in runs) / 60:.1f} min"
        + (f" over {len(runs)} invocations (the last {last.get('wall_seconds', 0) / 60:.1f} min; a resumed run "
           "skips finished cells)" if len(runs) > 1 else "")
        + (f" ({last['note']})" if last.get("note") else ""),
        f"- Code version: `{manifest.get('code_version')}`",
        "- Protocol: " + (f"models, classifiers and feature networks were fit on the training images, every training "
                          f"choice and the learning curves use validation images ({manifest['validation']}, none of "
                          f"them among the {manifest.get('eval_size', '')} test images the tables measure); the tables "
                          f"measure those test images, looked at once, on seeds "
                          f"0-{int(last.get('seeds', 1)) - 1}." if "validation" in manifest else
                          "this run predates the validation split: its learning curves and several of its profile's "
                          "choices were measured on test images (results/experiments/decisions.md)."),
        f"- {last.get('inception', '')}. rFID columns name their feature space; the paper's rFID is Inception-v3, so only the ordering, not the values, compares with ours when Inception is absent.",
        "",
        table3_md,
        "",
        f"![{names.figure_title}]({names.figure})",
        "",
        *([f"Rate as real files (`benchmarks.files`: seed 0's context-prior file of all test images for the learned "
           f"systems, one file per image for JPEG and WebP at every quality; `rows/files-*.csv` also hold one-image "
           f"files, `single_file_bits_*`): ![real bits]({REAL_BITS_FIGURE})", ""] if (out / REAL_BITS_FIGURE).exists() else []),
        "Every rate: [rates.md](rates.md). Against the run it retrained, where there was one: "
        "[reproduction.md](reproduction.md). Per-cell rows: `rows/`. Trained models: `models/` (on the machine that ran the sweep; too large for git, so a clone regenerates the figures only after a run).",
        "",
        "## Time per system (training all layers, evaluating all rates)",
        "",
        timing.to_markdown(),
        "",
    ]
    if improving is not None:
        still = improving[improving["Still improving"] == "yes"]
        summary = ", ".join(f"{s} layer {layer}" for s, layer in zip(still["System"], still["Layer"])) or "none"
        lines += [
            "## Convergence: learning curves",
            "",
            "![learning curves](curves.png)",
            "",
            f"Held-out metrics on the first {manifest.get('curve_images', '?')} "
            f"{'validation' if 'validation' in manifest else 'evaluation (test)'} images, logged at evenly spaced "
            f"steps of every layer. A layer is marked *still improving* when its held-out error in its own target "
            f"space fell by more than {100 * IMPROVING_SHARE:.0f}% over the last quarter of its steps (mean over seeds). "
            f"Still improving at the last step: {summary}.",
            "",
            improving.to_markdown(index=False),
            "",
        ]
    if figures_md:
        lines += [figures_md.replace("# Figures", "## Figures", 1).replace("\n## ", "\n### "), ""]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description="Regenerate tables and figures from stored rows.")
    p.add_argument("out", help="a sweep's output folder (e.g. results/mnist)")
    p.add_argument("--data-root", default=None, help="test images for the figures from stored models (default: $HQA_DATA_ROOT)")
    p.add_argument("--no-figures", action="store_true", help="tables and Figure 3 only")
    p.add_argument("--cache-dir", default=None, help="where the sweep cached its classifier (default: $HQA_CACHE_DIR or ~/.cache/hqa-suite)")
    args = p.parse_args(argv)
    try:
        write_reports(args.out, args.data_root, figures=not args.no_figures, cache_dir=args.cache_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"reports written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
