"""Learning curves from the stored rows: ``curves.png`` and which layers were still improving.

Every trained layer logs, at evenly spaced steps, its mean training loss since the previous
point and held-out metrics on a fixed slice of the validation split (the first ``curve_images`` validation images) (rows ``curve_<name>``, see
:func:`benchmarks.run.curve_rows`): pixel MSE of reconstructions decoded from that layer, and
the layer's error in its own target space (MSE to the normalised lower z_e, or the
cross-entropy over the lower codes for HAMs levels; pixels at layer 1 and for VQ-VAE).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .registry import LABELS  # noqa: E402
from .store import CURVE_PREFIX  # noqa: E402

PIXEL = CURVE_PREFIX + "heldout_pixel_mse"
TARGET_MSE = CURVE_PREFIX + "heldout_target_mse"
TARGET_CE = CURVE_PREFIX + "heldout_target_ce"
TRAIN_LOSS = CURVE_PREFIX + "train_loss"
# A layer counts as still improving when its held-out error fell by more than this share
# over the last quarter of its steps (mean over seeds); the sampled metrics move ~1% by noise.
IMPROVING_SHARE = 0.02


def own_target(curves: pd.DataFrame) -> pd.DataFrame:
    """Each layer's held-out error in its own target space: the target metric where the layer
    has one (layers >= 2 of a hierarchy), else pixel MSE (layer 1, VQ-VAE models)."""
    has_target = curves[curves["metric"].isin([TARGET_MSE, TARGET_CE])][["system", "layer"]].drop_duplicates()
    pixel = curves[curves["metric"] == PIXEL].merge(has_target, how="left", indicator=True)
    pixel = pixel[pixel["_merge"] == "left_only"].drop(columns="_merge")
    return pd.concat([curves[curves["metric"].isin([TARGET_MSE, TARGET_CE])], pixel], ignore_index=True)


def last_quarter_drop(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (system, layer, metric): the relative fall of the seed-mean curve from the point at
    75% of the steps to the last point (positive: still falling), with the last step."""
    out = []
    for (system, layer, metric), group in curves.groupby(["system", "layer", "metric"]):
        mean = group.groupby("step")["value"].mean().sort_index()
        if len(mean) < 2:
            continue
        last_step = int(mean.index[-1])
        at = mean.index[(abs(mean.index - 0.75 * last_step)).argmin()]
        if at == last_step:
            at = mean.index[-2]
        last = float(mean.iloc[-1])
        drop = (float(mean.loc[at]) - last) / abs(last) if last else 0.0
        out.append(dict(system=system, layer=int(layer), metric=metric, steps=last_step, drop=drop))
    return pd.DataFrame(out, columns=["system", "layer", "metric", "steps", "drop"])


def improving_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, layer): steps, the last-quarter fall of the held-out error in the
    layer's own target space and of the held-out pixel MSE (%), and whether it was still
    improving (own-target fall > :data:`IMPROVING_SHARE`)."""
    own = last_quarter_drop(own_target(curves)).rename(columns={"drop": "own"})
    pixel = last_quarter_drop(curves[curves["metric"] == PIXEL]).rename(columns={"drop": "pixel"})
    table = own.merge(pixel[["system", "layer", "pixel"]], on=["system", "layer"], how="left")
    order = {name: i for i, name in enumerate(LABELS)}
    table = table.sort_values(["system", "layer"], key=lambda c: c.map(order) if c.name == "system" else c)
    return pd.DataFrame(
        {
            "System": table["system"].map(lambda s: LABELS.get(s, s)),
            "Layer": table["layer"],
            "Steps": table["steps"],
            "Own target": table["metric"].str.removeprefix(CURVE_PREFIX + "heldout_"),
            "Fall over last quarter, own target (%)": (100 * table["own"]).round(1),
            "Fall over last quarter, pixel MSE (%)": (100 * table["pixel"]).round(1),
            "Still improving": (table["own"] > IMPROVING_SHARE).map({True: "yes", False: "no"}),
        }
    )


def curves_figure(curves: pd.DataFrame, path: Path) -> None:
    """``curves.png``: one column per layer; rows: held-out pixel MSE, held-out error in the
    layer's own target space (MSE targets; HAMs' cross-entropy is in other units and left
    out) and training loss, against step. A line per system (mean over seeds), seeds as a
    band (their range)."""
    rows = [(PIXEL, "held-out pixel MSE"), (TARGET_MSE, "held-out MSE, own target (layers >= 2)"), (TRAIN_LOSS, "training loss")]
    rows = [r for r in rows if (curves["metric"] == r[0]).any()]  # single-rate systems have no own-target row
    layers = sorted(curves["layer"].unique())
    data = curves.copy()
    data["System"] = data["system"].map(lambda s: LABELS.get(s, s))
    order = [LABELS[s] for s in LABELS if LABELS[s] in set(data["System"])]
    fig, axes = plt.subplots(len(rows), len(layers), figsize=(4.2 * len(layers), 3.6 * len(rows)), squeeze=False)
    for r, (metric, title) in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r][c]
            sel = data[(data["metric"] == metric) & (data["layer"] == layer)]
            if sel.empty:
                ax.set_visible(False)
                continue
            sns.lineplot(data=sel, x="step", y="value", hue="System", hue_order=order, errorbar=("pi", 100),
                         ax=ax, legend=(r == 0 and c == len(layers) - 1))
            ax.set_yscale("log")
            ax.set_title(f"layer {layer}: {title}", fontsize=9)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(title if c == 0 else "")
    legend_ax = axes[0][len(layers) - 1]
    if legend_ax.get_legend() is not None:
        sns.move_legend(legend_ax, "upper left", bbox_to_anchor=(1.02, 1))
    n = curves.groupby("system")["seed"].nunique().min()
    fig.suptitle(f"Learning curves (held-out: fixed validation slice; line: mean over {n}+ seeds; band: range over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def fit_log_falls(fit_log: list[dict], system: str = "model") -> dict[int, dict[str, float]]:
    """Per layer of a trained model's ``fit_log``: the last-quarter fall (%) of its held-out error
    in its own target space ("own") and of held-out pixel MSE ("pixel"), by :func:`last_quarter_drop`."""
    rows = [dict(system=system, layer=log["layer"], metric=CURVE_PREFIX + name, step=point["step"], value=value)
            for log in fit_log for point in log.get("curve") or [] for name, value in point.items()
            if name.startswith("heldout_")]
    if not rows:
        return {}
    curves = pd.DataFrame(rows)
    own = last_quarter_drop(own_target(curves)).set_index("layer")["drop"]
    pixel = last_quarter_drop(curves[curves["metric"] == PIXEL]).set_index("layer")["drop"]
    return {int(k): {"own": round(100 * own[k], 2), "pixel": round(100 * pixel[k], 2)} for k in own.index}
