"""Issue 24: how much each layer's held-out error still fell over the last quarter of its steps, read
from the learning curves (validation images) that saved hierarchies keep in ``fit_log``:

    PYTHONPATH=. python results/experiments/issue24-curve-falls.py MODEL.pt [MODEL.pt ...] > falls.jsonl

One JSON line per model and layer: the relative fall (%) in the layer's own target space and of
pixel MSE, by the rule of the sweep's convergence table (``benchmarks.curves.fit_log_falls``).
"""
import json
import sys

from benchmarks.curves import fit_log_falls
from hqa.hierarchy import HQA

for path in sys.argv[1:]:
    model = HQA.load(path)
    steps = {log["layer"]: log.get("steps") for log in model.fit_log}
    for layer, fall in fit_log_falls(model.fit_log, "hqa").items():
        print(json.dumps({"model": path.rsplit("/", 1)[-1], "layer": layer, "steps": steps[layer],
                          "fall_own_pct": fall["own"], "fall_pixel_pct": fall["pixel"]}))
