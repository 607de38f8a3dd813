"""Rows of another sweep shown beside this one's: the same profile, data and code, trained once.

A sweep of new systems (e.g. ``results/mnist-modern``: FSQ and residual VQ) is compared with
systems already trained in another folder (``results/mnist``) instead of training them again:

    python -m benchmarks.run --systems modern --out results/mnist-modern --compare-with results/mnist:hqa,vqvae,kmeans

The runner records the request in ``compare.json``; the reports read the other folder's rows
of those systems only when its ``run.json`` matches this sweep's in everything that decides
the numbers (profile, data, preprocessing, code version), and say so in one line otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .store import ResultStore, atomic_write_text

COMPARE_FILE = "compare.json"
# run.json keys that must agree for rows of two folders to stand in one table.
MUST_MATCH = ("profile", "dataset", "train_size", "eval_size", "preprocess", "code_version", "steps",
              "independent_steps", "batch_size")


@dataclass(frozen=True)
class Comparison:
    """Another sweep's folder (relative to this one's, so a clone resolves it) and the systems
    of it to show; empty ``systems``: every system it holds."""

    folder: str
    systems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str, out: Path) -> "Comparison":
        """``"DIR"`` or ``"DIR:sys1,sys2"`` (DIR relative to the working directory) for a sweep in ``out``."""
        folder, _, names = spec.partition(":")
        if not folder:
            raise ValueError(f"--compare-with needs a folder, got {spec!r}")
        rel = os.path.relpath(Path(folder).resolve(), out.resolve())
        return cls(rel, tuple(n.strip() for n in names.split(",") if n.strip()))

    def save(self, out: Path) -> None:
        atomic_write_text(out / COMPARE_FILE, json.dumps({"folder": self.folder, "systems": list(self.systems)}, indent=2) + "\n")

    @classmethod
    def load(cls, out: Path) -> "Comparison | None":
        path = out / COMPARE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(str(data["folder"]), tuple(data.get("systems", ())))


def compared_rows(out: Path, own: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of the other sweep named in ``out``'s ``compare.json`` (measurements only: no
    learning curves or timings, which stay with the folder that trained them), less systems
    ``own`` already holds, and one sentence saying where they come from, or why none were read."""
    comparison = Comparison.load(out)
    if comparison is None:
        return own.iloc[:0], ""
    other = (out / comparison.folder).resolve()
    mine, theirs = ResultStore(out).manifest(), ResultStore(other).manifest()
    if not theirs:
        return own.iloc[:0], f"Rows to compare with were asked from `{comparison.folder}`, which holds no sweep: none shown."
    differ = [k for k in MUST_MATCH if mine.get(k) != theirs.get(k)]
    if differ:
        return own.iloc[:0], (f"Rows of `{comparison.folder}` not shown: that sweep differs from this one in "
                              f"{', '.join(differ)} (rerun it, or this one, with the same code and profile).")
    rows = ResultStore(other).rows()
    rows = rows[~rows["metric"].str.startswith("curve_") & ~rows["metric"].isin(["train_seconds", "eval_seconds"])]
    rows = rows[(rows["system"] != "none") & ~rows["system"].isin(set(own["system"]))]
    if comparison.systems:
        missing = sorted(set(comparison.systems) - set(rows["system"]))
        rows = rows[rows["system"].isin(comparison.systems)]
        if missing:
            return rows, (f"Rows of {', '.join(sorted(set(rows['system'])))} are read from `{comparison.folder}` (same profile, "
                          f"data and code version); {', '.join(missing)} not found there.")
    names = ", ".join(sorted(set(rows["system"]))) or "no system"
    return rows, f"Rows of {names} are read from `{comparison.folder}` (same profile, data and code version), not trained here."
