"""One-seed comparison of FSQ levels and residual-VQ stage splits on models 4 (32 bits) and 5
(8 bits) of the single-rate family, at the quick profile's steps (390 at batch 64); test MSE on
the first 1000 evaluation images and distinct codes emitted there. One JSON line per model.

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue16-levels.py fsq-8x8x4,fsq-4x4x4x4,fsq-16x16
    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue16-levels.py rvq-16x16,rvq-4x4x4x4,rvq-256
"""
import sys, time, json, torch
from baselines.vqvae import VQVAE, fsq_config, rvq_config
from benchmarks.datasets import sweep_data
from benchmarks.profiles import get_profile
from hqa.config import HQAConfig
from hqa.system import FitRun

torch.set_num_threads(1)
prof = get_profile("quick")
train, test = sweep_data("mnist", None, prof)
x = test.images[:1000]
epochs = prof.epochs(len(train), 5, independent=True)
batches = prof.layer_batches(5, independent=True)
variants = {
    "fsq-8x8x4": fsq_config(HQAConfig.mnist(fsq_levels=(8, 8, 4))),
    "fsq-4x4x4x4": fsq_config(HQAConfig.mnist(fsq_levels=(4, 4, 4, 4))),
    "fsq-16x16": fsq_config(HQAConfig.mnist(fsq_levels=(16, 16))),
    "rvq-16x16": rvq_config(HQAConfig.mnist(rvq_codes=(16, 16))),
    "rvq-4x4x4x4": rvq_config(HQAConfig.mnist(rvq_codes=(4, 4, 4, 4))),
    "rvq-256": rvq_config(HQAConfig.mnist(rvq_codes=(256,))),
}
for name in sys.argv[1].split(","):
    for k in (4, 5):
        m = VQVAE(variants[name])
        run = FitRun(tuple(batches), 0, torch.device("cpu"), False)
        t = time.time()
        log = m._fit_layer(k, train.images, epochs[k - 1], run)
        m.trained.fill_(5)
        with torch.no_grad():
            codes = m.encode(x, k)
            mse = float(((m.decode(codes, k) - x) ** 2).mean())
        print(json.dumps({"variant": name, "model": k, "bits": m.rates[k - 1], "steps": log["steps"], "heldout_mse": round(mse, 5),
                          "codes_used": int(codes.unique().numel()), "seconds": round(time.time() - t, 1)}), flush=True)
