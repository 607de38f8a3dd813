"""Running the sweep's tasks on a Dask cluster: a LocalCluster of worker processes
(``--cluster local:N``) or an existing scheduler (``--scheduler tcp://HOST:PORT``).

Dask does the distribution: each (sharing group, seed) task is one ``client.submit``, so a
task on a worker that dies is re-run elsewhere by the scheduler, and with ``gpu`` each task
asks for one ``GPU`` resource (a worker started with ``--resources GPU=1`` trains one cell at
a time). That a task is trained once, however many workers or invocations share the
results folder, is the store's job (leases, :meth:`benchmarks.store.ResultStore.try_lease`).
"""

from __future__ import annotations

import sys
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

# Environment of every LocalCluster worker process, on top of the nanny's defaults. A Dask
# worker runs its tasks in a thread, and glibc gives each non-main thread a malloc arena of
# its own, where hqa.allocator.keep_freed_memory's settings do not keep large tensors' pages
# the way the main arena does. Measured on the 2-core CPU (HQA layers 1-2, one epoch each,
# one thread; results/experiments/issue15-arena.md): 31.3-32.8 s in a main thread,
# 33.0-34.4 s as a Dask task, 31.9-32.7 s as a Dask task with one arena for all threads.
WORKER_ENVIRON = {"MALLOC_ARENA_MAX": 1}

# Dask's own periodic work on a LocalCluster, made rarer: on a machine whose every core trains,
# each wake-up of a worker's event loop (and of the nannies and scheduler in the client process)
# takes a core and the GIL from a training thread. Two single-thread HQA trainings at once on
# the 2-core CPU (results/experiments/issue15-quiet.md): 33.8 s as joblib tasks, 36.1 s as Dask
# tasks with the defaults (+6.8%). Lost: the dashboard's profile page, and system and memory
# readings every 5 s instead of several a second (spilling, pausing and the memory limit react
# up to 5 s late). Keys stay dotted: a nested {"distributed": {...}} passed as config= would
# replace the workers' whole "distributed" section, defaults included.
QUIET_CONFIG = {
    "distributed.worker.profile.enabled": False,  # default: walks the task thread's stack every 10 ms
    "distributed.admin.tick.interval": "1s",  # default 20 ms: the event loop's liveness check
    "distributed.admin.system-monitor.interval": "5s",  # default 500 ms: psutil readings for the dashboard
    "distributed.worker.memory.monitor-interval": "5s",  # default 100 ms: each nanny's and worker's memory check
}


def parse_local(spec: str) -> int:
    """``"local:N"`` -> N (>= 1); anything else is a ValueError naming the form."""
    kind, _, n = spec.partition(":")
    if kind != "local" or not n.isdigit() or int(n) < 1:
        raise ValueError(f"--cluster must be local:N with N >= 1 worker processes, got {spec!r}")
    return int(n)


def require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ValueError('--cluster and --scheduler need dask.distributed: pip install -e ".[dask]"') from None
    return distributed


@contextmanager
def dask_client(cluster: str | None, scheduler: str | None, gpu: bool) -> Iterator[Any]:
    """A ``distributed.Client`` for a new LocalCluster (``cluster="local:N"``: N single-task
    worker processes, each with one GPU resource when ``gpu``, :data:`WORKER_ENVIRON` in its
    environment and :data:`QUIET_CONFIG`) or for the scheduler at ``scheduler`` (its workers' environment is
    theirs: the README's recipes set the same). Prints the dashboard address. Closes what it
    started."""
    distributed = require_dask()
    if scheduler is not None:
        client = distributed.Client(scheduler)
        local = None
    else:
        import dask

        n = parse_local(cluster or "")
        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}
        # the scheduler and nannies read their settings once, as they are built; config= is what
        # each nanny hands to every worker it (re)starts (its copy of the global config is shallow)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **QUIET_CONFIG}):
            local = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             resources={"GPU": 1} if gpu else None, dashboard_address=":0",
                                             config=QUIET_CONFIG)
        client = distributed.Client(local)
    print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    try:
        yield client
    finally:
        client.close()
        if local is not None:
            local.close()


def run_tasks(
    client: Any, fn: Callable[..., Any], tasks: Sequence[tuple[Any, int]], context: Any, gpu: bool
) -> Iterator[Any]:
    """``fn(group, seed, context)`` for every task on the cluster, results as they finish.
    ``context`` is sent to every worker once (scattered), not once per task."""
    distributed = require_dask()
    run = uuid.uuid4().hex[:8]  # task keys unique to this invocation: a scheduler shared by two sweeps keeps both
    shared = client.scatter(context, broadcast=True)
    # tasks come longest first (the runner orders them): priorities keep that order on the
    # cluster, so that a short task never holds a worker while a long one waits
    futures = [
        client.submit(fn, group, seed, shared, key=f"cell-{'+'.join(group)}-seed{seed}-{run}", pure=False,
                      resources={"GPU": 1} if gpu else None, priority=len(tasks) - i)
        for i, (group, seed) in enumerate(tasks)
    ]
    for future in distributed.as_completed(futures):
        try:
            yield future.result()
        except distributed.client.FutureCancelledError:
            raise RuntimeError("a task was lost with every worker that held the sweep's data; run the same command "
                               "again: finished cells are kept and the rest resume") from None
