"""Issue 24 / 26: the context prior's training steps, chosen on VALIDATION images. For one
quick-profile HQA of a validation seed (saved by issue24-validation.py), the context prior of
layers 1-2 is fitted on the training images' codes with each number of steps, and the
validation images' codes (the sweep's test-time sampling) are coded in one real file.

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue24-context-steps.py \
        MODEL.pt SEED [STEPS ...]

One JSON line per (layer, steps): bits per image (header included), fit seconds (one thread).
"""
import json
import sys
import time

import torch

from benchmarks.datasets import sweep_data
from benchmarks.metrics import reconstruct_all
from benchmarks.profiles import get_profile
from hqa.codec import compress_codes
from hqa.hierarchy import HQA
from hqa.priors import ContextConfig, ContextPrior, FactorizedPrior

torch.set_num_threads(1)
data = sweep_data("mnist", None, get_profile("quick"))
model, seed = HQA.load(sys.argv[1]), int(sys.argv[2])
steps_list = [int(s) for s in sys.argv[3:]] or [100, 300, 900]
for layer in (1, 2):
    codes = reconstruct_all(model, data.validation.images, layer, seed)[1]
    factorized = FactorizedPrior.fit(model, data.train.images, layer, seed)
    base = compress_codes(model, factorized, {layer: codes}, layer)[1].bits_per_image
    for steps in steps_list:
        t = time.time()
        prior = ContextPrior.fit(model, data.train.images, layer, ContextConfig(steps=steps), seed=seed)
        fit_s = time.time() - t
        bits = compress_codes(model, prior, {layer: codes}, layer)[1].bits_per_image
        print(json.dumps({"layer": layer, "nominal": model.rates[layer - 1], "seed": seed, "steps": steps,
                          "context_bits": round(bits, 2), "factorized_bits": round(base, 2),
                          "context_over_factorized": round(bits / base, 4), "fit_s": round(fit_s, 1)}), flush=True)
