"""The reproduction report: a sweep's rows against the reference run they retrained.

``./reproduce.sh`` (the runner's ``--reproduce``) keeps the finished rows a folder held, such
as the committed ones, as ``<out>/reference/`` before training; when the new run's reports are
written, ``reproduction.md`` says for every (system, rate, metric) the new mean over seeds,
the reference's mean and 95% interval, and one verdict:

- identical: every seed's value equals the reference's value for that seed;
- within: the new mean lies inside the reference's 95% Student-t interval; where that
  interval is degenerate (one seed, or all seeds equal) the new mean is within ``REL_TOL``
  of the reference's mean instead;
- outside: neither.

Timings (training and evaluation seconds) and learning curves are left out. Runs are
compared only like for like: when the reference differs in what decides the numbers
(profile, data, images, code version), the report's first line says how, and it gives no
verdicts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .metrics import t_interval
from .classical import LABELS as CLASSICAL_LABELS
from .registry import LABELS
from .store import CURVE_PREFIX, REFERENCE_DIR, ResultStore, atomic_write_text

REPORT_FILE = "reproduction.md"
# Relative tolerance where the reference's interval is degenerate (one seed or +- 0).
REL_TOL = 0.05
TIMINGS = ("train_seconds", "eval_seconds", "files_seconds")
# run.json keys that must agree for a comparison (each is the profile, the data or the code).
LIKE_FOR_LIKE = ("profile", "dataset", "train_size", "eval_size", "preprocess", "steps", "independent_steps",
                 "independent_batch", "batch_size", "validation", "images", "data", "code_version")
KEYS = ["system", "layer", "bits", "metric", "feature_space"]


def differences(new: dict, ref: dict) -> list[str]:
    """What differs between two manifests in the keys that decide the numbers, one phrase each."""
    out = []
    for key in LIKE_FOR_LIKE:
        a, b = new.get(key), ref.get(key)
        if a != b:
            out.append(f"{key}: {b!r} in the reference, {a!r} here" if b is not None
                       else f"{key}: not recorded by the reference, {a!r} here")
    return out


def verdict(new: pd.Series, ref: pd.Series) -> tuple[str, float, float, float]:
    """(verdict, reference mean, lower, upper) for the values of one (system, rate, metric):
    ``new`` and ``ref`` map seed -> value."""
    mean, lo, hi = t_interval(ref.tolist())
    new_mean = float(new.mean())
    if set(new.index) == set(ref.index) and all(new[s] == ref[s] for s in ref.index):
        return "identical", mean, lo, hi
    if hi > lo:
        inside = lo <= new_mean <= hi
    else:
        inside = abs(new_mean - mean) <= REL_TOL * max(abs(mean), 1e-12)
    return ("within" if inside else "outside"), mean, lo, hi


def _values(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[~rows["metric"].str.startswith(CURVE_PREFIX) & ~rows["metric"].isin(TIMINGS)]
    return rows[[*KEYS, "seed", "value"]]


def compare(new_rows: pd.DataFrame, ref_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, layer, bits, metric, feature space) present in both: the new
    mean and seeds, the reference's mean, interval and seeds, and the verdict."""
    new, ref = _values(new_rows), _values(ref_rows)
    ref_groups = {k: g.set_index("seed")["value"] for k, g in ref.groupby(KEYS, sort=False)}
    out = []
    for key, group in new.groupby(KEYS, sort=False):
        if key not in ref_groups:
            continue
        values = group.set_index("seed")["value"]
        v, mean, lo, hi = verdict(values, ref_groups[key])
        out.append({**dict(zip(KEYS, key)), "new_mean": float(values.mean()), "new_seeds": len(values),
                    "ref_mean": mean, "ref_lo": lo, "ref_hi": hi, "ref_seeds": len(ref_groups[key]), "verdict": v})
    return pd.DataFrame(out)


def _num(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def report_text(out: Path) -> str | None:
    """The text of ``reproduction.md`` for the sweep in ``out``, or None without a reference."""
    ref_store, store = ResultStore(out / REFERENCE_DIR), ResultStore(out)
    if not ref_store.rows_dir.is_dir():
        return None
    diff = differences(store.manifest(), ref_store.manifest())
    where = f"`{REFERENCE_DIR}/` (the rows this folder held before `--reproduce` retrained it)"
    if diff:
        return (f"Not compared: the reference run differs in what decides the numbers ({'; '.join(diff)}).\n\n"
                f"Reference: {where}. A run compares with its reference only like for like: the same profile, "
                "data, images and code version. Where the training images differ (for example MNIST downloaded by "
                "torchvision and subset to 5k here, against the offline 5k subset of the committed rows), "
                "no value is expected to agree.\n")
    table = compare(store.rows(), ref_store.rows())
    if table.empty:
        return f"Reference: {where}. The new run and the reference share no (system, rate, metric) to compare.\n"
    counts = table["verdict"].value_counts()
    lines = [
        f"Reproduced against {where}, like for like (same profile, data, images and code version): " + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("identical", "within", "outside"))
        + f" of {len(table)} (system, rate, metric) values.",
        "",
        "Verdicts: *identical*, every seed's value equals the reference's; *within*, the new mean lies in the "
        f"reference's 95% Student-t interval over seeds (where that interval is degenerate, one seed or ± 0, within "
        f"{REL_TOL:.0%} of the reference's mean instead); *outside*, neither. Timings and learning curves are left out.",
        "",
        "| System | Bits | Metric | Feature space | New mean (seeds) | Reference mean [95% interval] (seeds) | Verdict |",
        "| --- | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for r in table.itertuples():
        label = "No compression" if r.system == "none" else LABELS.get(r.system, CLASSICAL_LABELS.get(r.system, r.system))
        lines.append(f"| {label} | {r.bits} | {r.metric} | {r.feature_space or '–'} | {_num(r.new_mean)} ({r.new_seeds}) "
                     f"| {_num(r.ref_mean)} [{_num(r.ref_lo)}, {_num(r.ref_hi)}] ({r.ref_seeds}) | {r.verdict} |")
    return "\n".join(lines) + "\n"


def write_reproduction(out: str | Path) -> Path | None:
    """Write ``reproduction.md`` in ``out`` when it has a reference; returns its path."""
    out = Path(out)
    text = report_text(out)
    if text is None:
        return None
    path = out / REPORT_FILE
    atomic_write_text(path, "# Reproduction report\n\n" + text)
    return path
