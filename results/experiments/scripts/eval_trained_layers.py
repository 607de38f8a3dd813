"""Rows for the trained layers of a cell that a cut-short run left unfinished (not part of the suite).

The sweep evaluates a cell only once all its layers are trained. When a run is stopped (here:
a device call's time limit) after some of a system's layers or models, this script evaluates
those, with the sweep's own measures, classifier and feature network (the cached ones of the
folder's profile), and writes the cell's rows as the runner would, for layers 1..trained only:

    HQA_DATA_ROOT=../shared/data/mnist-5k PYTHONPATH=. python results/experiments/scripts/eval_trained_layers.py \
        results/mnist-paper vqvae 0

Rows go to FOLDER/rows/SYSTEM-seedSEED.csv; the model is read from FOLDER/models/.
"""
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.classifier import FEATURE_NET_ARCH, FEATURE_NET_SEED, load_or_train_classifier
from benchmarks.datasets import sweep_data
from benchmarks.fidelity import classifier_space, feature_net_space
from benchmarks.metrics import evaluate_system
from benchmarks.profiles import get_profile
from benchmarks.registry import build_system
from benchmarks.run import cell_rows, row_context
from benchmarks.store import ResultStore, code_version


class FirstLayers:
    """``system`` seen through its first ``n`` rates only (every other attribute is the system's)."""

    def __init__(self, system, n: int) -> None:
        self._system = system
        self.rates = system.rates[:n]

    def __getattr__(self, name: str):
        return getattr(self._system, name)


def main(folder: str, name: str, seed: int) -> None:
    torch.set_num_threads(2)
    manifest = json.loads((Path(folder) / "run.json").read_text())
    if code_version() != manifest["code_version"]:
        raise SystemExit(f"this checkout is code version {code_version()}, the sweep {manifest['code_version']}")
    profile = get_profile(manifest["profile"])
    data = sweep_data(manifest["dataset"], None, profile)
    train, test = data.train, data.test
    _, cls = load_or_train_classifier(train, profile.classifier_epochs)
    _, net = load_or_train_classifier(train, profile.classifier_epochs, FEATURE_NET_SEED, arch=FEATURE_NET_ARCH)
    spaces = [classifier_space(str(cls), test.images), feature_net_space(str(net), test.images)]
    store = ResultStore(folder)
    model = type(build_system(name, manifest["dataset"])).load(store.model_path(name, seed))
    n = int(model.trained_layers)
    start = time.perf_counter()
    measurements = evaluate_system(FirstLayers(model.eval(), n), test.images, test.labels, spaces, seed)
    base = {"system": name, "seed": seed, **row_context(manifest)}
    rows = cell_rows(base, model, measurements, time.perf_counter() - start)
    store.write_rows(store.cell_path(name, seed), rows)
    print(f"{name} seed {seed}: layers 1-{n} of {len(model.rates)} evaluated; rows in {store.cell_path(name, seed)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
