"""The result store: tidy rows, one CSV per finished (system, seed) cell, written atomically.

Layout of an output folder::

    run.json                  what the rows were made with (profile, dataset, code version)
    rows/<system>-seed<k>.csv one row per (system, seed, layer, metric[, feature space]), and
                              per (system, seed, layer, step, curve metric) of the learning curves
    rows/no-compression.csv   the "No Compression" row
    models/<system>-seed<k>.pt trained models (evaluation can be redone without training)

A cell whose CSV exists is finished and never recomputed; a folder made by another profile
or dataset is refused rather than mixed, and rows of an older code version are moved aside.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROW_COLUMNS = [
    "system",
    "seed",
    "layer",
    "step",
    "bits",
    "metric",
    "feature_space",
    "value",
    "profile",
    "dataset",
    "train_size",
    "code_version",
]
# Manifest keys that follow from a profile's definition in the code (not from the command).
PROFILE_DEFINED = ("steps", "batch_size", "independent_steps", "curve_images")
# Manifest keys added later, with the value every older folder was made with.
OLD_DEFAULTS = {"preprocess": "pad"}
# Rows of learning curves: metric "curve_<name>" at "step" (other rows: step 0, the trained model).
CURVE_PREFIX = "curve_"
_PACKAGES = ("hqa", "baselines", "benchmarks")
# Modules that write reports, figures, timings or the toy (not rows of a sweep).
_NOT_RESULTS = {"report.py", "speed.py", "run.py", "store.py", "__init__.py", "figures.py", "curves.py", "toy.py"}


def code_version(root: Path | None = None) -> str:
    """A short hash of the source that decides the numbers (models, training, metrics)."""
    root = root or Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).glob("*.py")):
            if pkg == "benchmarks" and path.name in _NOT_RESULTS:
                continue
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ResultStore:
    """Rows and models of one sweep in ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.rows_dir = self.root / "rows"
        self.models_dir = self.root / "models"

    # ---- the manifest ----
    def claim(self, manifest: dict[str, Any]) -> str | None:
        """Record what this folder's rows are made with, or refuse a folder made otherwise.

        Rows of an older code version (the same run otherwise) can never be resumed, so they
        are moved aside to ``stale-<version>/`` (rows, models, run log), not mixed and not
        deleted; the returned note says so. Raises ValueError naming the differing keys when
        ``manifest`` disagrees with the folder's ``run.json`` in anything else.
        """
        path = self.root / "run.json"
        note = None
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise ValueError(f"{path} is corrupt; remove it or choose another --out") from None
            diff = sorted(k for k in manifest if old.get(k, OLD_DEFAULTS.get(k)) != manifest[k])
            if not diff:
                return None
            # A new code version may redefine the same-named profile (its steps, batches):
            # those rows are stale too. Anything else (profile, dataset, data) is another run.
            redefined = "code_version" in diff and set(diff) <= {"code_version", *PROFILE_DEFINED}
            if not redefined:
                detail = ", ".join(f"{k}: {old.get(k)!r} here, {manifest[k]!r} now" for k in diff)
                raise ValueError(f"{self.root} holds rows of another run ({detail}); choose another --out")
            note = self._set_aside(str(old.get("code_version")))
        atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
        return note

    def _set_aside(self, version: str) -> str:
        """Move the rows, models and run log of code version ``version`` to a new
        ``stale-<version>[-n]/`` folder (never into an earlier one)."""
        dest = self.root / f"stale-{version}"
        n = 1
        while dest.exists():
            n += 1
            dest = self.root / f"stale-{version}-{n}"
        dest.mkdir()
        for name in ("rows", "models", "run.json", "runs.jsonl"):
            if (self.root / name).exists():
                os.replace(self.root / name, dest / name)
        return f"{self.root} held rows of code version {version}; moved them to {dest} and starting afresh"

    def manifest(self) -> dict[str, Any]:
        path = self.root / "run.json"
        return json.loads(path.read_text()) if path.exists() else {}

    # ---- rows ----
    def cell_path(self, system: str, seed: int) -> Path:
        return self.rows_dir / f"{system}-seed{seed}.csv"

    def model_path(self, system: str, seed: int) -> Path:
        return self.models_dir / f"{system}-seed{seed}.pt"

    def has_cell(self, system: str, seed: int) -> bool:
        return self.cell_path(system, seed).exists()

    def write_rows(self, path: Path, rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
        frame["step"] = frame["step"].fillna(0).astype(int)
        atomic_write_text(path, frame.to_csv(index=False))

    def rows(self) -> pd.DataFrame:
        """Every stored row (an empty frame with the right columns when there are none)."""
        files = sorted(self.rows_dir.glob("*.csv"))
        if not files:
            return pd.DataFrame(columns=ROW_COLUMNS)
        frame = pd.concat([pd.read_csv(f, keep_default_na=False) for f in files], ignore_index=True)
        return frame
