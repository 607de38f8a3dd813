"""The sweep on a Dask LocalCluster: flags, and surviving a killed worker or client."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmarks import run
from benchmarks.cluster import parse_local

from conftest import SHARED_MNIST

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="offline MNIST not beside the checkout")
CELLS = {f"{s}-seed{k}.csv" for s in ("hqa", "kmeans") for k in (0, 1)}


def test_cluster_flag_errors_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="local:N"):
        parse_local("local:0")
    for argv, message in ((["--cluster", "slurm:4"], "--cluster must be local:N"),
                          (["--cluster", "local:2", "--scheduler", "tcp://h:1"], "not both")):
        assert run.main([*argv, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def _sweep(out: Path, cache: Path) -> subprocess.Popen:
    """The smoke sweep of hqa and kmeans, 2 seeds, on a 2-worker LocalCluster, as its own
    process group (so a test can kill the client with its workers); its output goes to a
    file beside ``out`` (a pipe nobody reads could fill and block it)."""
    argv = [sys.executable, "-m", "benchmarks.run", "--profile", "smoke", "--systems", "hqa,kmeans", "--seeds", "2",
            "--cluster", "local:2", "--no-inception", "--no-report", "--data-root", str(SHARED_MNIST), "--out", str(out)]
    env = {**os.environ, "HQA_CACHE_DIR": str(cache)}
    log = open(out.parent / f"{out.name}-{time.time_ns()}.log", "w+")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    process.log = log  # type: ignore[attr-defined]
    return process


def _wait_for_lease(out: Path, process: subprocess.Popen, timeout: float = 120) -> dict:
    """The first lease a worker takes: who holds it (its host and pid)."""
    start = time.time()
    while time.time() - start < timeout and process.poll() is None:
        for path in (out / "leases").glob("*.lease"):
            try:
                return {**json.loads(path.read_text()), "task": path.stem}
            except (FileNotFoundError, json.JSONDecodeError):
                pass
        time.sleep(0.02)
    raise AssertionError(f"no worker took a lease (exit code {process.poll()})")


def _finish(process: subprocess.Popen) -> str:
    process.wait(timeout=600)
    process.log.seek(0)  # type: ignore[attr-defined]
    err = process.log.read()  # type: ignore[attr-defined]
    assert process.returncode == 0, err[-2000:]
    return err


def _wakeups(server: Any) -> dict[str, Any]:
    """How often a Dask server's periodic work wakes: tick (s), system and memory monitors (ms)."""
    calls = server.periodic_callbacks
    return dict(tick_s=server._tick_interval, system_monitor_ms=calls["monitor"].callback_time,
                memory_monitor_ms=calls["memory_monitor"].callback_time if "memory_monitor" in calls else None)


def test_local_workers_share_one_malloc_arena_and_wake_rarely() -> None:
    """LocalCluster workers start with MALLOC_ARENA_MAX=1 (tasks run in a worker thread; see
    benchmarks.cluster.WORKER_ENVIRON) and Dask's periodic work made rarer (QUIET_CONFIG), also
    after a restart; they keep the nanny's own settings; the client's config is untouched."""
    import dask
    import distributed  # noqa: F401  (loads the distributed.* config)

    from benchmarks.cluster import QUIET_CONFIG, dask_client

    def worker(dask_worker: Any) -> dict[str, Any]:
        return dict(arena=os.environ.get("MALLOC_ARENA_MAX"), omp=os.environ.get("OMP_NUM_THREADS"),
                    profiler="profile" in dask_worker.periodic_callbacks, **_wakeups(dask_worker))

    before = {key: dask.config.get(key) for key in ("distributed.nanny.pre-spawn-environ", *QUIET_CONFIG)}
    quiet = dict(tick_s=1.0, system_monitor_ms=5000.0)
    with dask_client("local:1", None, gpu=False) as client:
        settings = client.run(worker)
        nanny = client.run(lambda dask_worker: _wakeups(dask_worker), nanny=True)  # the nanny, built in this process
        scheduler = client.run_on_scheduler(lambda dask_scheduler: _wakeups(dask_scheduler))
        client.restart()  # a restarted worker (after a crash, or the memory limit) keeps them
        settings_after = client.run(worker)
    expected = dict(arena="1", omp="1", profiler=False, **quiet, memory_monitor_ms=5000.0)
    assert list(settings.values()) == [expected] and list(settings_after.values()) == [expected]
    assert list(nanny.values()) == [dict(**quiet, memory_monitor_ms=5000.0)]
    assert scheduler == dict(**quiet, memory_monitor_ms=None)
    assert {key: dask.config.get(key) for key in before} == before  # the settings were scoped to the cluster


@pytest.mark.slow
@needs_mnist
def test_a_killed_worker_loses_nothing_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep = _sweep(out, tmp_path / "cache")
    holder = _wait_for_lease(out, sweep)
    time.sleep(1.0)  # into its training
    cells = {f"{holder['task']}.csv"} & CELLS
    assert len(cells) == 1 and not (out / "rows" / cells.pop()).exists()  # not finished when killed
    killed_at = time.time_ns()
    os.kill(holder["pid"], signal.SIGKILL)  # the worker process training that task
    _finish(sweep)
    retried = out / "rows" / f"{holder['task']}.csv"
    assert retried.stat().st_mtime_ns > killed_at  # trained again after the kill, by another worker process
    rows = {p.name for p in (out / "rows").glob("*.csv")}
    assert CELLS <= rows
    assert not list((out / "leases").glob("*.lease"))
    frame = pd.concat(pd.read_csv(out / "rows" / name, keep_default_na=False) for name in CELLS)
    assert set(frame["host"]) == {os.uname().nodename}
    stamps = {name: (out / "rows" / name).stat().st_mtime_ns for name in CELLS}
    err = _finish(_sweep(out, tmp_path / "cache"))
    assert "4 finished (system, seed) cells" in err
    assert {name: (out / "rows" / name).stat().st_mtime_ns for name in CELLS} == stamps


@pytest.mark.slow
@needs_mnist
def test_a_killed_client_resumes_and_skips_finished_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep = _sweep(out, tmp_path / "cache")
    start = time.time()
    while not CELLS & {p.name for p in (out / "rows").glob("*.csv")}:  # one cell finished
        assert sweep.poll() is None and time.time() - start < 300, "the sweep ended before the client was killed"
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGKILL)  # the client and its local workers, as a crashed machine
    sweep.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.csv") if p.name in CELLS}
    assert 0 < len(done) < len(CELLS)
    err = _finish(_sweep(out, tmp_path / "cache"))
    assert f"{len(done)} finished (system, seed) cells" in err
    assert CELLS <= {p.name for p in (out / "rows").glob("*.csv")}
    assert all((out / "rows" / name).stat().st_mtime_ns == stamp for name, stamp in done.items())
