"""Progress of a sweep's workers, shown by its main process: which cell, which layer, the
step and the time left.

Workers (joblib's processes, Dask's, or the main process itself) cannot share one terminal's
tqdm bars, so each task writes its state to ``<out>/progress/<task>.json`` (atomically, at
most every ``WRITE_SECONDS``), and the main process draws one tqdm bar per live task from
those files (:class:`ProgressBoard`). The folder is the sweep's own, which every worker of a
Dask cluster already shares. Files are removed when their task ends.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .store import atomic_write_text

PROGRESS_DIR = "progress"
WRITE_SECONDS = 1.0  # a worker writes its state at most this often
POLL_SECONDS = 1.0  # the board reads the states this often


class ProgressFile:
    """The state of one task, written for the board: ``cell`` (e.g. "hqa seed 0"), ``stage``
    (e.g. "HQA layer 2/5" or "evaluating layer 3/5"), ``step`` of ``total``."""

    def __init__(self, out: str | os.PathLike[str], task: str) -> None:
        self.path = Path(out) / PROGRESS_DIR / f"{task}.json"
        self.cell = ""
        self._last = 0.0

    def update(self, stage: str, step: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and step < total and now - self._last < WRITE_SECONDS:
            return
        self._last = now
        try:
            atomic_write_text(self.path, json.dumps({"cell": self.cell, "stage": stage, "step": step, "total": total,
                                                     "pid": os.getpid()}))
        except OSError:  # progress is never worth failing a cell for
            pass

    def training(self, stage: str, step: int, total: int) -> None:
        """``CompressionSystem.fit``'s ``report``: a layer's step of its total."""
        self.update(stage, step, total, force=step == total)

    def evaluating(self, layer: int, layers: int) -> None:
        """``evaluate_system``'s ``report``: the layer being evaluated."""
        self.update(f"evaluating layer {layer}/{layers}", layer - 1, layers, force=True)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def read_states(folder: Path) -> dict[str, dict[str, Any]]:
    """task -> its last written state, for every progress file in ``folder``."""
    states = {}
    for path in sorted(folder.glob("*.json")):
        try:
            states[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # removed or replaced meanwhile
            continue
    return states


class ProgressBoard:
    """A background thread of the main process that draws one tqdm bar per running task
    (below the sweep's own bar), from the files its workers write. Use as a context manager."""

    def __init__(self, out: str | os.PathLike[str], enabled: bool = True) -> None:
        self.folder = Path(out) / PROGRESS_DIR
        self.enabled = enabled
        self._bars: dict[str, tuple[tqdm, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ProgressBoard":
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob("*.json"):  # left by a killed run
                stale.unlink(missing_ok=True)
            self._thread = threading.Thread(target=self._loop, name="progress board", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for bar, _ in self._bars.values():
            bar.close()
        self._bars.clear()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.refresh()

    def refresh(self) -> None:
        """Redraw from the files now present: new tasks get a bar, a new stage resets it
        (so the time left is the stage's), finished tasks lose theirs."""
        states = read_states(self.folder)
        for task in [t for t in self._bars if t not in states]:
            self._bars.pop(task)[0].close()
        for task, st in states.items():
            label = f"{st.get('cell', task)}: {st.get('stage', '')}"
            total = max(1, int(st.get("total", 1)))
            if task not in self._bars:
                bar = tqdm(total=total, desc=label, leave=False, position=len(self._bars) + 1, dynamic_ncols=True)
                self._bars[task] = (bar, label)
            bar, shown = self._bars[task]
            if shown != label:
                bar.reset(total=total)
                bar.set_description_str(label, refresh=False)
                self._bars[task] = (bar, label)
            step = min(int(st.get("step", 0)), total)
            if step != bar.n:
                bar.update(step - bar.n)  # tqdm's own rate and time left (a new stage restarted them)
