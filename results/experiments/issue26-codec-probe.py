"""Issue 26, for planning: real file sizes of one quick-profile HQA model's codes on the quick
profile's VALIDATION images (not the tables' test images), per prior and layer, with timings.

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue26-codec-probe.py MODEL.pt SEED

MODEL: an HQA saved by results/experiments/issue24-validation.py (save=...). One JSON line per
layer: bits per image (all validation images in one file, header included) under the uniform,
factorized, context and progressive priors; context / factorized; seconds to fit and to code.
"""
import json
import sys
import time

import torch

from benchmarks.datasets import sweep_data
from benchmarks.metrics import reconstruct_all
from benchmarks.profiles import get_profile
from hqa.codec import compress_codes, decompress_layers
from hqa.hierarchy import HQA
from hqa.priors import ContextConfig, ContextPrior, FactorizedPrior, ProgressivePrior

torch.set_num_threads(1)
profile = get_profile("quick")
data = sweep_data("mnist", None, profile)
model, seed = HQA.load(sys.argv[1]), int(sys.argv[2])
x = data.validation.images
codes = {k: reconstruct_all(model, x, k, seed)[1] for k in range(1, model.num_layers + 1)}
t = time.time()
progressive = ProgressivePrior.fit(model, data.train.images, seed=seed)
fit_p = time.time() - t
t = time.time()
_, pstats = compress_codes(model, progressive, codes, 1)
code_p = time.time() - t
for k in range(1, model.num_layers + 1):
    line = {"layer": k, "nominal": model.rates[k - 1], "images": len(x), "seed": seed}
    t = time.time()
    fact = FactorizedPrior.fit(model, data.train.images, k, seed)
    ctx = ContextPrior.fit(model, data.train.images, k, ContextConfig(steps=profile.context_steps), seed=seed)
    line["fit_s"] = round(time.time() - t, 1)
    for kind, prior in (("uniform", None), ("factorized", fact), ("context", ctx)):
        t = time.time()
        blob, stats = compress_codes(model, prior, {k: codes[k]}, k)
        line[f"{kind}_bits"] = round(stats.bits_per_image, 2)
        line[f"{kind}_encode_s"] = round(time.time() - t, 2)
        if kind == "context" and k <= 2:
            t = time.time()
            from hqa.codec import decompress
            back = decompress(model, prior, blob)
            line["context_decode_s"] = round(time.time() - t, 2)
            line["context_exact"] = bool(torch.equal(back, codes[k]))
    line["context_over_factorized"] = round(line["context_bits"] / line["factorized_bits"], 4)
    line["progressive_bits_through"] = round((8 * pstats.header_bytes + pstats.payload_bits_through[k]) / pstats.images, 2)
    print(json.dumps(line), flush=True)
print(json.dumps({"progressive_fit_s": round(fit_p, 1), "progressive_encode_s": round(code_p, 1)}), flush=True)
