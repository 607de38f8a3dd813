"""Issue 25, item 2: how many training processes one GPU holds before a step slows down.

    python results/experiments/scripts/gpu_packing.py measure 2,4,8 [STEPS] [--device cuda] > packing.jsonl
    python results/experiments/scripts/gpu_packing.py worker SYSTEM STEPS DEVICE    (one process; used by measure)

For each packing N, N worker processes start at once; each trains a fresh HQA or VQ-VAE
(alternating) with the `paper` profile's batch (512) for about STEPS steps per layer or model
(whole epochs of the offline 5k; the runner's own fit path, compiled kernels, data on the
device), once to warm up (compiling) and once timed. Each worker prints its per-layer ms per
step; ``measure`` samples GPU utilisation with nvidia-smi every 0.5 s meanwhile and prints one
JSON line per N: per-layer ms per step (mean over workers), utilisation, and the projection of
the full paper sweep (7 systems x 10 seeds at 5,850 steps per layer, hierarchies sharing a
layer 1 as the runner does) at that packing. Synthetic images stand in for MNIST: step time
does not depend on the pixels.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PAPER_STEPS, BATCH, TRAIN = 5850, 512, 5000
ROOT = Path(__file__).resolve().parents[3]  # the checkout: workers import the suite from it


def worker(system: str, steps: int, device: str) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks.registry import build_system

    torch.manual_seed(0)
    images = torch.rand(TRAIN, 1, 32, 32)
    epochs = max(1, steps // (TRAIN // BATCH))
    times = {}
    for phase in ("warm-up", "timed"):
        model = build_system(system, "mnist")
        model.fit(images, epochs, BATCH, seed=0, device=device, progress=False, compile=device.startswith("cuda"),
                  mixed_precision=device.startswith("cuda") and torch.cuda.is_bf16_supported())
        times = {log["layer"]: 1000 * log["seconds"] / log["steps"] for log in model.fit_log}
    print(json.dumps({"system": system, "ms_per_step": times}), flush=True)


def gpu_utilisation() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout.split()
        return float(out[0]) if out else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def projection_minutes(ms: dict[str, dict[int, float]], packing: int) -> float:
    """Wall minutes of the paper sweep with ``packing`` cells training at once at these step times:
    per seed, HQA's 5 layers; the four HAMs rows at HQA's step times with their layer 1 shared
    (two groups: 2 layer 1s for 4 cells); VQ-VAE's 5 models; k-means left out (seconds)."""
    hqa = sum(ms["hqa"].values()) * PAPER_STEPS / 1000
    upper = sum(v for k, v in ms["hqa"].items() if k > 1) * PAPER_STEPS / 1000
    hams = 2 * hqa + 2 * upper
    vq = sum(ms["vqvae"].values()) * PAPER_STEPS / 1000
    return 10 * (hqa + hams + vq) / packing / 60


def measure(packings: list[int], steps: int, device: str) -> None:
    for n in packings:
        systems = ["hqa" if i % 2 == 0 else "vqvae" for i in range(n)]  # n >= 2: both kinds of cell
        start = time.time()
        procs = [subprocess.Popen([sys.executable, __file__, "worker", s, str(steps), device], stdout=subprocess.PIPE,
                                  text=True) for s in systems]
        util = []
        while any(p.poll() is None for p in procs):
            u = gpu_utilisation()
            if u is not None:
                util.append(u)
            time.sleep(0.5)
        results = [json.loads(p.stdout.read().strip().splitlines()[-1]) for p in procs if p.returncode == 0]
        ms: dict[str, dict[int, float]] = {}
        for system in ("hqa", "vqvae"):
            runs = [r["ms_per_step"] for r in results if r["system"] == system]
            if runs:
                ms[system] = {int(k): statistics.mean(r[k] for r in runs) for k in runs[0]}
        line = {"packing": n, "device": device, "workers_ok": len(results), "of": len(procs),
                "ms_per_step": ms, "gpu_util_mean": statistics.mean(util) if util else None,
                "gpu_util_samples": len(util), "wall_s": round(time.time() - start, 1)}
        if {"hqa", "vqvae"} <= set(ms):
            line["projected_paper_sweep_min"] = round(projection_minutes(ms, n), 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        args = [a for a in sys.argv[2:] if not a.startswith("--")]
        dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
        args = [a for a in args if a != dev]
        measure([int(x) for x in args[0].split(",")], int(args[1]) if len(args) > 1 else 90, dev)
