"""Issue 13: why HQA's top layer clusters worse than k-means on its own input, and the Gumbel
temperature that fixes part of it. Three modes, one JSON line per model (stdout):

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue13-temperature.py diagnose SEED [MODELS]
    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue13-temperature.py top SEED [MODELS] key=value ...
    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/issue13-temperature.py full SYSTEM SEED key=value ...

MODELS: a sweep's models folder (default results/mnist/models; a superseded sweep's are in
results/mnist/stale-VERSION/models).

- ``diagnose``: the stored seed-SEED HQA: the median gap (nats) between the log-probabilities
  of the two best codes at each layer (first 2000 evaluation images); 8-bit classification error with
  sampled or most-probable codes at encode and decode; the label error of the top code itself
  (each code votes the majority label of the training images it receives; a code no
  training image reaches votes label 0); k-means (256
  clusters) on layer 5's input, the normalised z_e of layer 4: its label error and its MSE in
  that space, against layer 5's own reconstruction MSE there (most-probable codes).
- ``top``: layers 1-4 as stored, layer 5 retrained at the quick profile's steps and batch
  under HQAConfig overrides (e.g. temp_start=3.0); the same measures. Not config keys:
  top_steps_x=N (N times the current profile's layer-5 epochs: 6006 steps since session 8),
  top_steps=S and top_batch=B (layer 5's own).
- ``full``: SYSTEM trained from scratch at the quick profile's steps (times steps_x=a,b,c,d,e
  per layer, if given) with the overrides;
  MSE and classification error at every rate (the sweep's test-time sampling and seeds).

Classification error is the suite's classifier (cached as the sweep caches it), on the
quick profile's 5000 evaluation images. One thread per process; two ran at once.
"""
import ast
import json
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans

from benchmarks.classifier import load_or_train_classifier
from benchmarks.datasets import sweep_data
from benchmarks.metrics import reconstruct_all
from benchmarks.profiles import get_profile, whole_epochs
from benchmarks.registry import build_system
from hqa.config import HQAConfig
from hqa.hierarchy import HQA

torch.set_num_threads(1)
PROFILE = get_profile("quick")
train, test = sweep_data("mnist", None, PROFILE)
clf = load_or_train_classifier(train, PROFILE.classifier_epochs, progress=False)[0].eval()
x, y = test.images, test.labels


def overrides(args: list[str]) -> dict:
    """``["temp_start=3.0", "code_reset=False"]`` -> HQAConfig overrides (Python literals)."""
    out, extra = {}, {}
    for kv in args:
        key, value = kv.split("=", 1)
        if key in ("top_steps_x", "top_steps", "top_batch"):
            extra[key] = int(value)
            continue
        if key == "steps_x":  # full mode: each layer's epochs times these, e.g. steps_x=2,2,2,2,1
            extra[key] = [int(v) for v in value.split(",")]
            continue
        out[key] = ast.literal_eval(value) if key not in ("quantizer", "target", "codebook_loss", "vq_code",
                                                        "reset_rule", "codebook_init") else value
    HQAConfig(**out)  # one clear error for a bad key or value
    return {**out, **extra}


@torch.inference_mode()
def class_error(images: torch.Tensor) -> float:
    logits = torch.cat([clf(images[i : i + 500]) for i in range(0, len(images), 500)])
    return round(100 * float((logits.argmax(1) != y).float().mean()), 2)


@torch.inference_mode()
def top_code_measures(m: HQA, seed: int) -> dict:
    """8-bit error (sampled), label error of the top code, layer 5's MSE on normalised z_e4."""
    codes = lambda X: torch.cat([m.encode(X[i : i + 500], 5) for i in range(0, len(X), 500)]).flatten()
    z4 = lambda X: torch.cat([m.layers[4].normalize(m.encode_continuous(X[i : i + 500], 4)) for i in range(0, len(X), 500)])
    ctr, cte = codes(train.images), codes(x)
    votes = np.zeros((m.config.codes(5), 10))
    np.add.at(votes, (ctr.numpy(), train.labels.numpy()), 1)
    z, lay = z4(x), m.layers[4]
    z_hat = torch.cat([lay.decoder(lay.quantizer.lookup(cte[i : i + 500].view(-1, 1, 1))) for i in range(0, len(x), 500)])
    x_hat, _ = reconstruct_all(m, x, 5, seed)
    return dict(class_err_8bit=class_error(x_hat), mse_8bit=round(float(((x_hat - x) ** 2).mean()), 4),
                top_code_label_err=round(100 * float((votes.argmax(1)[cte.numpy()] != y.numpy()).mean()), 2),
                layer5_mse_on_z4=round(float(((z - z_hat) ** 2).mean()), 4), codes_used=int(cte.unique().numel()))


@torch.inference_mode()
def diagnose(seed: int, models: str) -> dict:
    m = HQA.load(f"{models}/hqa-seed{seed}.pt").eval()
    out = dict(mode="diagnose", seed=seed, **top_code_measures(m, seed))
    for tag, enc, dec in (("mode_encode", False, True), ("mode_decode", True, False), ("mode_both", False, False)):
        ge, gd = (torch.Generator().manual_seed(10_000 * seed + 5) for _ in range(2))
        x_hat = torch.cat([m.decode(m.encode(x[i : i + 100], 5, ge if enc else None), 5, gd if dec else None)
                           for i in range(0, len(x), 100)])
        out[f"class_err_8bit_{tag}"] = class_error(x_hat)
    z4 = lambda X: torch.cat([m.layers[4].normalize(m.encode_continuous(X[i : i + 500], 4)) for i in range(0, len(X), 500)]).flatten(1).numpy()
    ztr, zte = z4(train.images), z4(x)
    km = KMeans(m.config.codes(5), n_init=1, random_state=0).fit(ztr)
    cte = km.predict(zte)
    votes = np.zeros((m.config.codes(5), 10))
    np.add.at(votes, (km.labels_, train.labels.numpy()), 1)
    for layer in range(1, 6):  # how peaked q is: median log-probability gap between the two best codes (nats)
        q = torch.cat([m.posterior(x[i : i + 500], layer) for i in range(0, 2000, 500)]).flatten(0, -2)
        top2 = q.topk(2, dim=1).values
        out[f"median_gap_nats_layer{layer}"] = round(float((top2[:, 0].log() - top2[:, 1].clamp_min(1e-30).log()).median()), 2)
    out["kmeans_on_z4_label_err"] = round(100 * float((votes.argmax(1)[cte] != y.numpy()).mean()), 2)
    out["kmeans_on_z4_mse"] = round(float(((zte - km.cluster_centers_[cte]) ** 2).mean()), 4)
    return out


def retrain_top(seed: int, models: str, over: dict) -> dict:
    scale = over.pop("top_steps_x", 1)  # layer 5's steps times this (not an HQAConfig key)
    top_batch = over.pop("top_batch", None)  # layer 5's batch (default: the profile's)
    top_steps = over.pop("top_steps", None)  # layer 5's steps (default: the profile's, times top_steps_x)
    if top_steps is not None and scale != 1:
        raise SystemExit("give top_steps or top_steps_x, not both")
    old = HQA.load(f"{models}/hqa-seed{seed}.pt")
    m = HQA(old.config.replace(**over), seed=seed)
    m.load_state_dict(old.state_dict())
    m.fit_log = old.fit_log[:4]
    m.trained.fill_(4)  # layers 1-4 count as trained: fit() trains layer 5 only
    start = time.perf_counter()
    epochs = PROFILE.epochs(len(train), 5)
    batches = PROFILE.layer_batches(5)
    if top_batch is not None:
        batches = (*batches[:4], top_batch)
    top_epochs = epochs[4] * scale
    if top_steps is not None:
        top_epochs = whole_epochs([top_steps], len(train), batches[4])[0][0]
    m.fit(train.images, (*epochs[:4], top_epochs), batch_size=batches, seed=seed, progress=False, compile=True)
    over.update({k: v for k, v in (("top_steps_x", scale), ("top_batch", top_batch), ("top_steps", top_steps))
                 if v is not None and v != 1})
    return dict(mode="top", seed=seed, over=over, seconds=round(time.perf_counter() - start, 1), **top_code_measures(m.eval(), seed))


def full(name: str, seed: int, over: dict) -> dict:
    scale = over.pop("steps_x", [1] * 5)
    if len(scale) != 5:
        raise SystemExit(f"steps_x needs one factor per layer (5), got {scale}")
    m = HQA(build_system(name).config.replace(**over), seed=seed)
    start = time.perf_counter()
    epochs = [e * x for e, x in zip(PROFILE.epochs(len(train), 5), scale)]
    m.fit(train.images, epochs, batch_size=PROFILE.layer_batches(5), seed=seed, progress=False, compile=True)
    if scale != [1] * 5:
        over["steps_x"] = scale
    rates = {}
    for layer, bits in enumerate(m.rates, start=1):
        x_hat, _ = reconstruct_all(m, x, layer, seed)
        rates[bits] = dict(mse=round(float(((x_hat - x) ** 2).mean()), 4), class_err=class_error(x_hat))
    return dict(mode="full", system=name, seed=seed, over=over, seconds=round(time.perf_counter() - start, 1), rates=rates)


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    models = rest.pop(1) if mode != "full" and len(rest) > 1 and "=" not in rest[1] else "results/mnist/models"
    if mode == "diagnose":
        result = diagnose(int(rest[0]), models)
    elif mode == "top":
        result = retrain_top(int(rest[0]), models, overrides(rest[1:]))
    else:
        result = full(rest[0], int(rest[1]), overrides(rest[2:]))
    print(json.dumps(result), flush=True)
