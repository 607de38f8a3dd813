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


def _worker_settings(dask_worker: Any) -> dict[str, Any]:
    """What a worker process runs with: its environment and how often its periodic work wakes."""
    return dict(arena=os.environ.get("MALLOC_ARENA_MAX"), omp=os.environ.get("OMP_NUM_THREADS"),
                profiler="profile" in dask_worker.periodic_callbacks, tick_s=dask_worker._tick_interval,
                monitor_ms=dask_worker.periodic_callbacks["monitor"].callback_time)


def test_local_workers_share_one_malloc_arena_and_wake_rarely() -> None:
    """LocalCluster workers start with MALLOC_ARENA_MAX=1 (tasks run in a worker thread; see
    benchmarks.cluster.WORKER_ENVIRON) and Dask's periodic work made rarer (QUIET_CONFIG), also
    after a restart; they keep the nanny's own settings; the client's config is untouched."""
    import dask
    import distributed  # noqa: F401  (loads the distributed.* config)

    from benchmarks.cluster import dask_client

    before = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    tick_before = dask.config.get("distributed.admin.tick.interval")
    expected = dict(arena="1", omp="1", profiler=False, tick_s=1.0, monitor_ms=5000.0)
    with dask_client("local:1", None, gpu=False) as client:
        settings = client.run(_worker_settings)
        scheduler_ms = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.periodic_callbacks["monitor"].callback_time)
        client.restart()  # a restarted worker (after a crash, or the memory limit) keeps them
        settings_after = client.run(_worker_settings)
    assert list(settings.values()) == [expected] and list(settings_after.values()) == [expected]
    assert scheduler_ms == 5000.0  # the scheduler, built in this process, too
    assert dict(dask.config.get("distributed.nanny.pre-spawn-environ")) == before  # the settings were scoped
    assert dask.config.get("distributed.admin.tick.interval") == tick_before


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
