"""Issue 24: how much each layer's held-out error still fell over the last quarter of its steps, read
from the learning curves (validation images) that saved hierarchies keep in ``fit_log``:

    PYTHONPATH=. python results/experiments/issue24-curve-falls.py MODEL.pt [MODEL.pt ...] > falls.jsonl

One JSON line per model and layer: the relative fall (%) in the layer's own target space and of
pixel MSE, by the rule of the sweep's convergence table (``benchmarks.curves``).
"""
import json
import sys

import pandas as pd

from benchmarks.curves import PIXEL, last_quarter_drop, own_target
from benchmarks.store import CURVE_PREFIX
from hqa.hierarchy import HQA


def curve_frame(model: HQA) -> pd.DataFrame:
    """The model's curves as the sweep's tidy curve rows (system, layer, metric, step, value)."""
    rows = [dict(system="hqa", layer=log["layer"], metric=CURVE_PREFIX + name, step=point["step"], value=value)
            for log in model.fit_log for point in log.get("curve") or []
            for name, value in point.items() if name.startswith("heldout_")]
    return pd.DataFrame(rows)


for path in sys.argv[1:]:
    curves = curve_frame(HQA.load(path))
    own = last_quarter_drop(own_target(curves)).set_index("layer")
    pixel = last_quarter_drop(curves[curves["metric"] == PIXEL]).set_index("layer")
    for layer in own.index:
        print(json.dumps({"model": path.rsplit("/", 1)[-1], "layer": int(layer), "steps": int(own.loc[layer, "steps"]),
                          "fall_own_pct": round(100 * own.loc[layer, "drop"], 2),
                          "fall_pixel_pct": round(100 * pixel.loc[layer, "drop"], 2)}))
