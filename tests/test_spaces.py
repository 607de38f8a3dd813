"""The feature spaces prepared in the main process while workers train (benchmarks.spaces):
workers wait for the spec, get exactly what was prepared, and stop waiting when it fails."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.spaces import Preparation, SpacesSpec, spec_path, wait_for_spec, write_spec


def _spec() -> SpacesSpec:
    stats = {"mu": np.arange(3.0), "sigma": np.eye(3) * 2.0}
    return SpacesSpec("/cache/classifier.pt", None, None, {"classifier": stats}, "Inception rFID not requested")


def test_a_worker_waits_until_the_main_process_has_written_the_spec(tmp_path: Path) -> None:
    release = threading.Event()
    prepared = _spec()

    def prepare():
        release.wait(10)
        return [], prepared

    write_spec(tmp_path, SpacesSpec(None, None, None, {}))  # an earlier run's: must not be read
    preparation = Preparation(tmp_path, prepare).start()
    got: list[SpacesSpec] = []
    worker = threading.Thread(target=lambda: got.append(wait_for_spec(tmp_path, poll=0.01)))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not got  # still waiting: the stale spec was removed at start
    release.set()
    worker.join(10)
    spec = got[0]
    assert spec.classifier_path == "/cache/classifier.pt" and spec.feature_net_path is None
    np.testing.assert_array_equal(spec.reference_stats["classifier"]["sigma"], np.eye(3) * 2.0)
    assert spec.inception_note == "Inception rFID not requested"
    assert preparation.result()[1] is prepared  # the main process keeps its own spaces


def test_a_failed_preparation_stops_the_waiting_workers_with_its_message(tmp_path: Path) -> None:
    def prepare():
        raise ValueError("classifier checkpoint is corrupt")

    preparation = Preparation(tmp_path, prepare).start()
    with pytest.raises(ValueError, match="corrupt"):
        preparation.result()
    with pytest.raises(RuntimeError, match="could not be prepared: ValueError: classifier checkpoint is corrupt"):
        wait_for_spec(tmp_path, poll=0.01)
    assert not spec_path(tmp_path).exists()
