import sys, time, torch
from torch import nn
from hqa.allocator import keep_freed_memory
from hqa import HQA, HQAConfig
from hqa.train import Schedule
torch.set_num_threads(1); keep_freed_memory()
cfg = HQAConfig.mnist(lr=1e-3)
m = HQA(cfg); m.use_compile(True)
# usage: step_time.py [LAYERS [BATCHES]], e.g. step_time.py 5 128,256,512,1024 (default: all layers, 32-256)
LAYERS = [int(a) for a in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1, 2, 3, 4, 5]
BATCHES = [int(a) for a in sys.argv[2].split(",")] if len(sys.argv) > 2 else [32, 64, 128, 256]
for k in LAYERS:
    lay = m.layer(k)
    lay.train()
    size = cfg.latent_size(k - 1) if k > 1 else 32
    ch = 1 if k == 1 else 64
    for bs in BATCHES:
        for foreach in (False, True):
            data = torch.rand(bs, ch, size, size).contiguous(memory_format=torch.channels_last)
            params = [p for p in lay.parameters() if p.requires_grad]
            opt = torch.optim.RAdam(params, lr=1e-3, foreach=foreach)
            g = torch.Generator().manual_seed(0)
            def step():
                inp = lay.normalize(data) if k > 1 else data
                loss, _ = lay.objective(inp, inp, cfg, 0.5, g)
                opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(params, 1.0, foreach=foreach); opt.step()
            for _ in range(3): step()
            n = 10 if k <= 2 and bs >= 128 else 30
            t = time.perf_counter()
            for _ in range(n): step()
            dt = (time.perf_counter() - t) / n
            print(f"L{k} b{bs} foreach={foreach}: {1000*dt:.1f} ms/step, {1000*dt/bs:.2f} ms/img", flush=True)
