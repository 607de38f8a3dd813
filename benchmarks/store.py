"""The result store: tidy rows, one CSV per finished (system, seed) cell, written atomically.

Layout of an output folder::

    run.json                  what the rows were made with (profile, dataset, code version, which
                              images), and under "recorded" how the last invocation ran
    in-progress.json          present while a run is unfinished (so --reproduce resumes it)
    reference/                a finished run's rows kept by --reproduce before retraining
    rows/<system>-seed<k>.csv one row per (system, seed, layer, metric[, feature space]), and
                              per (system, seed, layer, step, curve metric) of the learning curves
    rows/no-compression.csv   the "No Compression" row
    models/<system>-seed<k>.pt trained models (evaluation can be redone without training)
    leases/<cells>.lease      who is training a task now (host, pid, expiry); removed when done

A cell whose CSV exists is finished and never recomputed; a folder made by another profile
or dataset is refused rather than mixed, and rows of an older code version are moved aside.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
    "host",  # the machine whose worker trained and evaluated the cell
]
# Manifest keys that follow from a profile's definition in the code (not from the command).
PROFILE_DEFINED = ("steps", "batch_size", "independent_steps", "independent_batch", "curve_images", "validation", "images", "data")
# run.json's record of how the last invocation ran; never compared (train on a GPU, evaluate on a CPU).
RECORDED = "recorded"
IN_PROGRESS = "in-progress.json"
REFERENCE_DIR = "reference"
# Manifest keys added later, with the value every older folder was made with.
OLD_DEFAULTS = {"preprocess": "pad"}
# Rows of learning curves: metric "curve_<name>" at "step" (other rows: step 0, the trained model).
CURVE_PREFIX = "curve_"
_PACKAGES = ("hqa", "baselines", "benchmarks")
# Modules that write reports, figures, timings or the toy, or that orchestrate the sweep, not
# the numbers of a row. run.py (which images are evaluated, how cells are trained) and
# datasets.py (the subsets) do decide the numbers, so they are hashed.
_NOT_RESULTS = {"report.py", "speed.py", "store.py", "__init__.py", "figures.py", "curves.py", "toy.py",
                "cluster.py", "comparison.py", "progress.py", "reproduction.py"}


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


# A lease not renewed for this long is free: its holder is gone (a worker that trains keeps
# renewing it every LEASE_RENEW_SECONDS, so a cell of any length stays held while it trains).
# Expiry times are each host's clock: hosts sharing a folder must keep their clocks within
# a few minutes (NTP). A holder that loses its lease anyway writes no rows (Lease.lost).
LEASE_SECONDS = 300.0
LEASE_RENEW_SECONDS = 30.0


@dataclass
class Lease:
    """A held claim on one task of the sweep (see :meth:`ResultStore.try_lease`); ``lost``
    is set when a renewal finds it taken over (its holder then writes nothing)."""

    path: Path
    token: str
    lost: bool = False


def _holder(token: str, ttl: float) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": token, "expires": time.time() + ttl}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def lease_is_stale(holder: dict[str, Any]) -> bool:
    """Whether a lease's holder is gone: its expiry passed, or (on this host) its process
    no longer exists."""
    if float(holder.get("expires", 0)) < time.time():
        return True
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


class ResultStore:
    """Rows and models of one sweep in ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.rows_dir = self.root / "rows"
        self.models_dir = self.root / "models"

    # ---- the manifest ----
    def claim(self, manifest: dict[str, Any], recorded: dict[str, Any] | None = None) -> str | None:
        """Record what this folder's rows are made with, or refuse a folder made otherwise.

        Rows of an older code version (the same run otherwise) can never be resumed, so they
        are moved aside to ``stale-<version>/`` (rows, models, run log), not mixed and not
        deleted; the returned note says so. Raises ValueError naming the differing keys when
        ``manifest`` disagrees with the folder's ``run.json`` in anything else. ``recorded`` (how
        this invocation runs: device, precision, compiled kernels) is written under
        ``"recorded"`` and never compared.
        """
        path = self.root / "run.json"
        note = None
        stored = {**manifest, **({RECORDED: recorded} if recorded is not None else {})}
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise ValueError(f"{path} is corrupt; remove it or choose another --out") from None
            diff = sorted(k for k in manifest if old.get(k, OLD_DEFAULTS.get(k)) != manifest[k])
            if not diff:
                if recorded is not None and old.get(RECORDED) != recorded:
                    atomic_write_text(path, json.dumps(stored, indent=2) + "\n")
                return None
            # A new code version may redefine the same-named profile (its steps, batches):
            # those rows are stale too. Anything else (profile, dataset, data) is another run.
            redefined = "code_version" in diff and set(diff) <= {"code_version", *PROFILE_DEFINED}
            if not redefined:
                detail = ", ".join(f"{k}: {old.get(k)!r} here, {manifest[k]!r} now" for k in diff)
                raise ValueError(f"{self.root} holds rows of another run ({detail}); choose another --out")
            note = self._set_aside(str(old.get("code_version")))
        atomic_write_text(path, json.dumps(stored, indent=2) + "\n")
        return note

    def begin(self) -> None:
        """Mark this folder's run unfinished (until :meth:`finish`)."""
        if not (self.root / IN_PROGRESS).exists():
            atomic_write_text(self.root / IN_PROGRESS, json.dumps({"host": socket.gethostname(), "started": time.time()}))

    def finish(self) -> None:
        """Mark this folder's run finished: every cell asked for has its rows."""
        (self.root / IN_PROGRESS).unlink(missing_ok=True)

    def keep_reference(self) -> str | None:
        """Before a run that retrains (``--reproduce``): the rows of a finished run in this
        folder (the committed ones, or the last finished run here) become ``reference/``,
        replacing an older one, so the new run trains every cell and is compared with them.
        An unfinished run of this folder's own (``in-progress.json``) is kept, to resume.
        Returns a line saying what was done, or None."""
        if (self.root / IN_PROGRESS).exists() or not any(self.rows_dir.glob("*.csv")):
            return None
        dest = self.root / REFERENCE_DIR
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in ("rows", "models", "run.json", "runs.jsonl"):
            if (self.root / name).exists():
                os.replace(self.root / name, dest / name)
        return (f"{self.root} held the rows of a finished run: kept them as {dest} to compare with, "
                "and retraining every cell")

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

    def codes_path(self, system: str, seed: int) -> Path:
        """The cell's evaluated codes, kept for the files step (:mod:`benchmarks.eval_codes`)."""
        return self.models_dir / "codes" / f"{system}-seed{seed}.pt"

    def has_cell(self, system: str, seed: int) -> bool:
        return self.cell_path(system, seed).exists()

    def write_rows(self, path: Path, rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
        frame["step"] = frame["step"].fillna(0).astype(int)
        atomic_write_text(path, frame.to_csv(index=False))

    # ---- leases: one trainer per task, however many workers share this folder ----
    def lease_path(self, key: str) -> Path:
        return self.root / "leases" / f"{key}.lease"

    def try_lease(self, key: str, ttl: float = LEASE_SECONDS) -> Lease | None:
        """Claim task ``key`` for this process, atomically (a hard link of a complete file,
        which fails where the name exists, on local and network file systems alike), or
        None when a live holder has it. A stale lease (:func:`lease_is_stale`) is taken
        over: renamed away first, so that of several workers taking it over one wins."""
        path = self.lease_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        for _ in range(3):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".claim.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(_holder(token, ttl), f)
            try:
                os.link(tmp, path)
                return Lease(path, token)
            except FileExistsError:
                holder = self._read_lease(path)
                if holder is not None and not lease_is_stale(holder):
                    return None
                self._move_away(path, token, holder)
            finally:
                os.unlink(tmp)
        return None

    def _move_away(self, path: Path, token: str, judged: dict[str, Any] | None) -> None:
        """Move the stale lease ``judged`` out of the way (one taker's rename succeeds). If
        what was moved is not ``judged`` (another taker replaced it meanwhile with a fresh
        lease), put it back where it was, unless yet another lease took the name."""
        moved = path.with_name(f".stale.{token}.lease")
        try:
            os.replace(path, moved)
        except FileNotFoundError:
            return  # another taker moved it first; try to claim again
        taken = self._read_lease(moved)
        if judged is not None and taken is not None and taken.get("token") != judged.get("token"):
            try:
                os.link(moved, path)  # a fresh lease: give it back
            except FileExistsError:
                pass  # its holder will find it lost at its next renewal and write nothing
        os.unlink(moved)

    @staticmethod
    def _read_lease(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # gone, unreadable or half-written on a network file system
            return None

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still this holder's (not lost, not taken over)."""
        holder = self._read_lease(lease.path)
        return not lease.lost and holder is not None and holder.get("token") == lease.token

    def renew(self, lease: Lease, ttl: float = LEASE_SECONDS) -> bool:
        """Push the expiry of a lease this process holds; False when it is no longer ours."""
        holder = self._read_lease(lease.path)
        if holder is None or holder.get("token") != lease.token:
            return False
        atomic_write_text(lease.path, json.dumps(_holder(lease.token, ttl)))
        return True

    def release(self, lease: Lease) -> None:
        holder = self._read_lease(lease.path)
        if holder is not None and holder.get("token") == lease.token:
            lease.path.unlink(missing_ok=True)

    @contextmanager
    def kept(self, lease: Lease, every: float = LEASE_RENEW_SECONDS) -> Iterator[Lease]:
        """Hold ``lease`` for the block: renewed every ``every`` seconds by a background
        thread, released at the end (also on error). A process killed inside the block
        leaves a lease that :func:`lease_is_stale` reports once its process is gone."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(every):
                try:
                    if not self.renew(lease):
                        lease.lost = True
                except OSError:  # a network file system hiccup: try again at the next beat
                    pass

        thread = threading.Thread(target=renew, name=f"lease {lease.path.name}", daemon=True)
        thread.start()
        try:
            yield lease
        finally:
            stop.set()
            thread.join()
            self.release(lease)

    def rows(self) -> pd.DataFrame:
        """Every stored row (an empty frame with the right columns when there are none)."""
        files = sorted(self.rows_dir.glob("*.csv"))
        if not files:
            return pd.DataFrame(columns=ROW_COLUMNS)
        frame = pd.concat([pd.read_csv(f, keep_default_na=False) for f in files], ignore_index=True)
        return frame.fillna({"host": ""})  # rows written before hosts were recorded
