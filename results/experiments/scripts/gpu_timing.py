"""Per-layer time per step on the GPU at the paper profile's batch (512), compiled, bf16 autocast."""
import sys, time, torch
from hqa.data import load_mnist
from benchmarks.registry import build_system
bs, steps = int(sys.argv[1]), int(sys.argv[2])
tr, _ = load_mnist(sys.argv[3])
for name in ("hqa", "vqvae"):
    m = build_system(name)
    ep = max(1, -(-steps * bs // len(tr.images)))
    for k in range(1, 6):
        # warm-up (compile) on a short stage, then the timed stage
        t = time.perf_counter()
        m.fit(tr.images, [ep] * 5, batch_size=bs, layers=k, progress=False, compile=True, mixed_precision=True, device="cuda", curve_points=0)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        log = m.fit_log[-1]
        print(f"{name} layer {k}: {1000 * dt / log['steps']:.2f} ms/step over {log['steps']} steps at batch {bs} (incl. compile of new shapes)", flush=True)
