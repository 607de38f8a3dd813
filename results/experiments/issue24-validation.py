"""Issue 24: the quick profile's decisive choices re-measured on validation images, on seeds the
sweep does not report (100 and up). One JSON line per trained model on stdout:

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue24-validation.py \
        full SYSTEM SEED [key=value ...] [save=PATH]
    ... top PATH SEED top_steps=S [save=PATH]

- ``full``: SYSTEM (a registry name) trained from scratch at the quick profile's steps and
  batches, with HQAConfig overrides given as key=value (Python literals, e.g. temp_start=0.667);
  the variant's own settings are applied first, the overrides last.
  ``only=4,5``: for single-rate families (VQ-VAE, FSQ, residual VQ), train and measure only
  those models (each is independent of the others).
  ``layer_steps=(800, 1000, 1600, 3000, 6000)`` / ``layer_batches=(128, 128, 128, 128, 128)``:
  steps (at least; whole epochs) and batches per layer instead of the profile's.
- ``top``: the hierarchy stored at PATH (by ``save=``) with its layer 5 retrained alone for
  ``top_steps`` steps (at least; whole epochs) at the profile's layer-5 batch.

Measured on the quick profile's **validation** images (the 5k test images its tables do not
report; ``benchmarks.datasets.split_sweep``) at every rate, with the sweep's own test-time
sampling: MSE and the sweep's classifier's error. The classifier is trained on the training
images only, as the sweep's is. One thread per process (two ran at once).
"""
import ast
import json
import sys
import time

import torch

from benchmarks.classifier import load_or_train_classifier
from benchmarks.curves import fit_log_falls
from benchmarks.datasets import sweep_data
from benchmarks.metrics import reconstruct_all
from benchmarks.profiles import get_profile, whole_epochs
from benchmarks.registry import build_system

torch.set_num_threads(1)
PROFILE = get_profile("quick")
DATA = sweep_data("mnist", None, PROFILE)
CLF = load_or_train_classifier(DATA.train, PROFILE.classifier_epochs, progress=False)[0].eval()
X, Y = DATA.validation.images, DATA.validation.labels


def parse(args: list[str]) -> tuple[dict, dict]:
    """key=value arguments -> (HQAConfig overrides, script options)."""
    over, opts = {}, {}
    for kv in args:
        key, value = kv.split("=", 1)
        if key in ("top_steps",):
            opts[key] = int(value)
        elif key in ("layer_steps", "layer_batches"):
            opts[key] = tuple(ast.literal_eval(value))
        elif key == "only":
            opts[key] = [int(v) for v in value.split(",")]
        elif key == "save":
            opts[key] = value
        else:
            try:
                over[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                over[key] = value  # a string setting (e.g. reset_rule)
    return over, opts


@torch.inference_mode()
def measures(model, seed: int, layers: list[int] | None = None) -> dict:
    """MSE and class error (%) at every rate (or ``layers``) on the validation images."""
    out = {}
    for layer in layers or range(1, model.num_layers + 1):
        x_hat, _ = reconstruct_all(model, X, layer, seed)
        logits = torch.cat([CLF(x_hat[i : i + 500]) for i in range(0, len(x_hat), 500)])
        out[f"mse_{model.rates[layer - 1]}"] = round(float(((x_hat - X) ** 2).mean()), 5)
        out[f"class_error_{model.rates[layer - 1]}"] = round(100 * float((logits.argmax(1) != Y).float().mean()), 2)
    return out


def full(name: str, seed: int, over: dict, only: list[int] | None = None, layer_steps: tuple | None = None,
         layer_batches: tuple | None = None) -> torch.nn.Module:
    model = build_system(name, "mnist")
    if over:
        model = type(model)(model.config.replace(**over))
    if only:  # independent single-rate models: the ones below are never used by these
        assert model.independent_rates and only == list(range(min(only), max(only) + 1)), "only= needs consecutive models"
        model.trained.fill_(min(only) - 1)
    epochs = PROFILE.epochs(len(DATA.train), model.num_layers, independent=model.independent_rates)
    batches = PROFILE.layer_batches(model.num_layers, independent=model.independent_rates)
    if layer_steps or layer_batches:
        batches = layer_batches or batches
        steps = layer_steps or PROFILE.layer_steps(model.num_layers, independent=model.independent_rates)
        epochs = whole_epochs(steps, len(DATA.train), batches)[0]
    return model.fit(DATA.train.images, epochs, batches, seed, layers=max(only) if only else None, progress=False,
                     compile=True, heldout=X[: PROFILE.curve_images], curve_points=PROFILE.curve_points)


def top(path: str, seed: int, steps: int) -> torch.nn.Module:
    from hqa.hierarchy import HQA

    model = HQA.load(path)
    model.trained.fill_(model.num_layers - 1)  # fit() retrains the top layer only
    model.fit_log = [log for log in model.fit_log if log["layer"] < model.num_layers]
    epochs = PROFILE.epochs(len(DATA.train), model.num_layers)
    batches = PROFILE.layer_batches(model.num_layers)
    epochs[-1] = whole_epochs([steps], len(DATA.train), batches[-1])[0][0]
    return model.fit(DATA.train.images, epochs, batches, seed, progress=False, compile=True,
                     heldout=X[: PROFILE.curve_images], curve_points=PROFILE.curve_points)


def main() -> None:
    mode, what, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    over, opts = parse(sys.argv[4:])
    start = time.time()
    model = (full(what, seed, over, opts.get("only"), opts.get("layer_steps"), opts.get("layer_batches"))
             if mode == "full" else top(what, seed, opts["top_steps"]))
    if "save" in opts:
        model.save(opts["save"])
    last = {log["layer"]: log["curve"][-1] for log in model.fit_log if log.get("curve")}
    line = {"mode": mode, "system": what, "seed": seed, **over, **{k: v for k, v in opts.items() if k != "save"},
            "steps": [log.get("steps") for log in model.fit_log], "seconds": round(time.time() - start, 1),
            "images": "validation (quick profile)", **measures(model, seed, opts.get("only")),
            "curve_last": {k: {m: round(v, 5) for m, v in c.items()} for k, c in last.items()},
            "fall_last_quarter": fit_log_falls(model.fit_log)}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
