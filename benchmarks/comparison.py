"""Rows of another sweep shown beside this one's: the same profile, data and code, trained once.

A sweep of new systems (e.g. ``results/mnist-modern``: FSQ and residual VQ) is compared with
systems already trained in another folder (``results/mnist``) instead of training them again:

    python -m benchmarks.run --systems modern --out results/mnist-modern --compare-with results/mnist:hqa,vqvae,kmeans

The runner records the request in ``compare.json``; the reports read the other folder's rows
of those systems only when its ``run.json`` matches this sweep's in everything that decides
the numbers (profile, data, preprocessing, code version, and the device and precision of the
last invocation), and say so in one line otherwise. The tables' seed column shows how many
seeds each system has. A later run without ``--compare-with`` keeps the folder's
``compare.json``; delete it to show this sweep's systems alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .store import ResultStore, atomic_write_text

COMPARE_FILE = "compare.json"
# run.json keys that must agree for rows of two folders to stand in one table.
MUST_MATCH = ("profile", "dataset", "train_size", "eval_size", "preprocess", "code_version", "steps",
              "independent_steps", "independent_batch", "batch_size", "images")
# Keys of the last invocation (runs.jsonl) that must agree too: a GPU's bfloat16 rows are not a CPU's.
RUN_MUST_MATCH = ("device", "mixed_precision")


def _last_run(folder: Path) -> dict:
    path = folder / "runs.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


@dataclass(frozen=True)
class Comparison:
    """Another sweep's folder (relative to this one's, so a clone resolves it) and the systems
    of it to show; empty ``systems``: every system it holds."""

    folder: str
    systems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str, out: Path, known: Iterable[str] = ()) -> "Comparison":
        """``"DIR"`` or ``"DIR:sys1,sys2"`` (DIR relative to the working directory) for a sweep in
        ``out``; with ``known``, a system name not in it is a ValueError."""
        folder, _, names = spec.partition(":")
        if not folder:
            raise ValueError(f"--compare-with needs a folder, got {spec!r}")
        systems = tuple(n.strip() for n in names.split(",") if n.strip())
        unknown = [n for n in systems if known and n not in known]
        if unknown:
            raise ValueError(f"--compare-with names unknown system(s) {unknown}; known systems: {', '.join(known)}")
        rel = os.path.relpath(Path(folder).resolve(), out.resolve())
        return cls(rel, systems)

    def save(self, out: Path) -> None:
        atomic_write_text(out / COMPARE_FILE, json.dumps({"folder": self.folder, "systems": list(self.systems)}, indent=2) + "\n")

    @classmethod
    def load(cls, out: Path) -> "Comparison | None":
        path = out / COMPARE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(str(data["folder"]), tuple(data.get("systems", ())))


def compared_rows(out: Path, own: pd.DataFrame) -> tuple[pd.DataFrame, str, Path | None]:
    """The rows of the other sweep named in ``out``'s ``compare.json`` (measurements only: no
    learning curves or timings, which stay with the folder that trained them), less systems
    ``own`` already holds; one sentence saying where they come from, or why none were read;
    and that sweep's folder (None when no comparison was asked for)."""
    comparison = Comparison.load(out)
    if comparison is None:
        return own.iloc[:0], "", None
    other = (out / comparison.folder).resolve()
    mine, theirs = ResultStore(out).manifest(), ResultStore(other).manifest()
    if not theirs:
        return own.iloc[:0], f"Rows to compare with were asked from `{comparison.folder}`, which holds no sweep: none shown.", other
    differ = [k for k in MUST_MATCH if mine.get(k) != theirs.get(k)]
    mine_run, their_run = _last_run(out), _last_run(other)
    differ += [k for k in RUN_MUST_MATCH if mine_run.get(k) != their_run.get(k)]
    if differ:
        return own.iloc[:0], (f"Rows of `{comparison.folder}` not shown: that sweep differs from this one in "
                              f"{', '.join(differ)} (rerun it, or this one, with the same code and profile)."), other
    rows = ResultStore(other).rows()
    rows = rows[~rows["metric"].str.startswith("curve_") & ~rows["metric"].isin(["train_seconds", "eval_seconds"])]
    rows = rows[rows["system"] != "none"]
    if comparison.systems:
        rows = rows[rows["system"].isin(comparison.systems)]
    wanted = set(comparison.systems) or set(rows["system"])
    shadowed = sorted(wanted & set(own["system"]))  # this sweep's own rows win
    rows = rows[~rows["system"].isin(shadowed)]
    names = ", ".join(sorted(set(rows["system"]))) or "no system"
    note = (f"Rows of {names} are read from `{comparison.folder}` (same profile, data, code version, device "
            "and precision), not trained here.")
    missing = sorted(set(comparison.systems) - set(rows["system"]) - set(shadowed))
    if missing:
        note += f" Not found there: {', '.join(missing)}."
    if shadowed:
        note += f" Trained here too, so this sweep's rows are shown: {', '.join(shadowed)}."
    return rows, note, other
