"""The feature spaces prepared in the main process while workers train (benchmarks.spaces):
workers wait for the spec, get exactly what was prepared, and stop waiting when it fails or
its main process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.spaces import OWNER_SUFFIX, Preparation, SpacesSpec, spec_path, wait_for_spec, write_spec


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


def test_a_worker_stops_waiting_when_the_main_process_is_gone(tmp_path: Path) -> None:
    """A main process killed before it wrote the spec (no .failed file either) must not leave
    its workers waiting forever: on its own host they see it has exited; elsewhere they time out."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process (pids are not reused this fast)
    owner = spec_path(tmp_path).with_name(spec_path(tmp_path).name + OWNER_SUFFIX)
    owner.parent.mkdir(parents=True)
    owner.write_text(f"{socket.gethostname()} {dead.pid}\n")
    with pytest.raises(RuntimeError, match=f"main process {dead.pid} .* has exited"):
        wait_for_spec(tmp_path, poll=0.01, timeout=5)  # a regression fails here instead of hanging
    owner.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # alive: it waits, up to the timeout
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="did not appear .* within"):
        wait_for_spec(tmp_path, poll=0.01, timeout=0.2)
    assert time.monotonic() - start >= 0.2
    owner.write_text(f"another-host-{socket.gethostname()} {dead.pid}\n")  # cannot be checked: waits
    with pytest.raises(RuntimeError, match="within"):
        wait_for_spec(tmp_path, poll=0.01, timeout=0.1)


def test_the_main_process_names_itself_for_its_workers(tmp_path: Path) -> None:
    release = threading.Event()
    preparation = Preparation(tmp_path, lambda: (release.wait(10), ([], _spec()))[1]).start()
    owner = spec_path(tmp_path).with_name(spec_path(tmp_path).name + OWNER_SUFFIX)
    assert owner.read_text().split() == [socket.gethostname(), str(os.getpid())]
    release.set()
    preparation.result()
    assert wait_for_spec(tmp_path, poll=0.01).classifier_path == "/cache/classifier.pt"
