"""HQA layer 1, one epoch, 1 thread: in this process's main thread, in a plain worker thread, and
as a task on a 1-worker Dask LocalCluster (nanny defaults, or with env changes)."""
import concurrent.futures as cf, os, sys, time, torch

def train(compile_=False):
    import torch, time
    from hqa.allocator import keep_freed_memory
    from benchmarks.registry import build_system
    torch.set_num_threads(1)
    keep_freed_memory()
    x = torch.rand(5000, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    m = build_system("hqa")
    t = time.perf_counter()
    m.fit(x, epochs=1, batch_size=64, seed=0, layers=2, progress=False, compile=compile_)
    return time.perf_counter() - t

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "main":
        print(mode, round(train(), 2), flush=True)
    elif mode == "thread":
        with cf.ThreadPoolExecutor(1) as ex:
            print(mode, round(ex.submit(train).result(), 2), flush=True)
    else:
        import dask, distributed
        env = {"arena1": {"MALLOC_ARENA_MAX": "1"}, "noenv": {}, "dask": None, "daskarena": "merge"}[mode]
        if env == "merge":
            dask.config.set({"distributed.nanny.pre-spawn-environ": {**dask.config.get("distributed.nanny.pre-spawn-environ"), "MALLOC_ARENA_MAX": 1}})
        elif env is not None:
            dask.config.set({"distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, **env}})
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, distributed.Client(lc) as c:
            print(mode, round(c.submit(train, pure=False).result(), 2), flush=True)
