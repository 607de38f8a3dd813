"""Issue 15: two single-thread HQA trainings at once (layers 1-2, one epoch each on 5000 random
images, eager kernels), so that both cores of the machine train, as two joblib (loky) tasks, two
plain spawned processes, or two tasks on a 2-worker Dask LocalCluster; prints each task's
training seconds and the wall time.

    PYTHONPATH=. python results/experiments/issue15-quiet.py MODE

MODE: joblib | procmain | dask (the suite's WORKER_ENVIRON, Dask's default periodic work) |
dask-noprofile | dask-tick | dask-monitor (one part of the quiet set) | daskquiet (the whole set)
| suite (the suite's own benchmarks.cluster.dask_client, with its QUIET_CONFIG).
"""
import sys
import time

QUIET = {  # as measured in session 8; benchmarks.cluster.QUIET_CONFIG keeps the first four
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "5s",
    "distributed.scheduler.work-stealing": False,
}
PARTS = {
    "dask": [],
    "dask-noprofile": ["distributed.worker.profile.enabled"],
    "dask-tick": ["distributed.admin.tick.interval"],
    "dask-monitor": ["distributed.admin.system-monitor.interval", "distributed.worker.memory.monitor-interval"],
    "daskquiet": list(QUIET),
}


def train(seed: int = 0) -> float:
    import time

    import torch

    from benchmarks.registry import build_system
    from hqa.allocator import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    x = torch.rand(5000, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    m = build_system("hqa")
    t = time.perf_counter()
    m.fit(x, epochs=1, batch_size=64, seed=seed, layers=2, progress=False, compile=False)
    return time.perf_counter() - t


if __name__ == "__main__":
    mode = sys.argv[1]
    t0 = time.perf_counter()
    if mode == "joblib":
        from joblib import Parallel, delayed

        times = Parallel(n_jobs=2)(delayed(train)(s) for s in (0, 1))
    elif mode == "procmain":
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
            times = list(ex.map(train, (0, 1)))
    elif mode == "suite":
        from benchmarks.cluster import dask_client

        with dask_client("local:2", None, gpu=False) as c:
            t0 = time.perf_counter()
            times = [f.result() for f in [c.submit(train, s, pure=False) for s in (0, 1)]]
    else:
        import dask
        import distributed

        from benchmarks.cluster import WORKER_ENVIRON

        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_ENVIRON}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **{k: QUIET[k] for k in PARTS[mode]}}):
            with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                    distributed.Client(lc) as c:
                t0 = time.perf_counter()
                times = [f.result() for f in [c.submit(train, s, pure=False) for s in (0, 1)]]
    print(mode, [round(t, 2) for t in times], round(time.perf_counter() - t0, 2), flush=True)
