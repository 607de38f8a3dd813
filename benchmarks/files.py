"""Real files from a finished sweep's stored models: priors fitted on the training images'
codes, the evaluation images' codes range-coded under each (:mod:`hqa.codec`), and the
classical codecs (:mod:`benchmarks.classical`) on the same images.

    python -m benchmarks.files results/mnist [--data-root DIR] [--context-seeds 1]

For every (system, seed) whose model is stored and every layer, rows
``rows/files-<system>-seed<k>.csv`` with, in bits per image of a real file:

- ``file_bits_uniform`` and ``file_bits_factorized`` for every cell; ``file_bits_context`` and,
  for hierarchies, ``file_bits_progressive`` (the top code, then each refinement down to the
  layer through the model's own p(z_k | z_{k+1})) for the first ``--context-seeds`` seeds only.
  Measured on one quick-profile HQA (5k images, one core; results/experiments/issue26-codec-probe.jsonl):
  the context priors' fits take ~207 s per cell and their coding ~25 s, the progressive file
  ~68 s, the factorized and uniform files well under a second each. All the evaluation
  images in one file, amortised, the 38-byte header included;
- ``payload_bits_<prior>``: the same without the header (CompressAI's convention);
- ``single_file_bits_<prior>``: the mean size of one-image files (header and the coder's
  padding to a 32-bit word each), over the first ``SINGLE_IMAGES`` evaluation images
  (``SINGLE_IMAGES_CONTEXT`` for the context prior, whose coding is sequential per position).

The codes coded are the ones the sweep measured: :func:`benchmarks.metrics.reconstruct_all`'s,
sampled under the cell's evaluation seeds, kept by the evaluation (:mod:`benchmarks.eval_codes`)
or, where they were not kept, computed again. Priors are saved beside the models, in
``models/priors/`` (not in git, like the models). JPEG and WebP rows go to ``rows/classical.csv``.
A killed run resumes: finished cells' files rows are kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from hqa.codec import compress_codes
from hqa.data import DataNotFoundError
from hqa.hierarchy import HQA
from hqa.priors import ContextConfig, ContextPrior, FactorizedPrior, Prior, ProgressivePrior, load_prior, model_hash
from hqa.system import CompressionSystem

from .eval_codes import load_codes
from .metrics import reconstruct_all
from .registry import build_system
from .store import ResultStore, code_version

SINGLE_IMAGES = 100  # images coded one per file for the per-image figure
SINGLE_IMAGES_CONTEXT = 20  # measured: 100 one-image context files at 2048 bits cost ~27 s on one busy core
FILES_SECONDS = "files_seconds"


def file_rows(model: CompressionSystem, priors: dict[int, dict[str, Prior]], progressive: Prior | None,
              codes: dict[int, torch.Tensor], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of every prior's files for the evaluation ``codes[k]`` [N, h, w] of each layer k.
    ``priors[k]``: kind -> a grid prior of layer k (None: uniform)."""
    rows = []

    def add(layer: int, metric: str, value: float) -> None:
        rows.append({**base, "layer": layer, "bits": model.rates[layer - 1], "metric": metric,
                     "feature_space": "", "value": value})

    for layer, kinds in priors.items():
        for kind, prior in kinds.items():
            _, stats = compress_codes(model, prior, {layer: codes[layer]}, layer)
            add(layer, f"file_bits_{kind}", stats.bits_per_image)
            add(layer, f"payload_bits_{kind}", stats.payload_bits_per_image)
            n_single = min(SINGLE_IMAGES_CONTEXT if kind == "context" else SINGLE_IMAGES, len(codes[layer]))
            single = [compress_codes(model, prior, {layer: codes[layer][i : i + 1]}, layer)[1].bits_per_image
                      for i in range(n_single)]
            add(layer, f"single_file_bits_{kind}", sum(single) / len(single))
    if progressive is not None:
        _, stats = compress_codes(model, progressive, codes, 1)  # top first, then every refinement to layer 1
        header_bits = 8 * stats.header_bytes
        for layer, payload in stats.payload_bits_through.items():
            add(layer, "file_bits_progressive", (header_bits + payload) / stats.images)
            add(layer, "payload_bits_progressive", payload / stats.images)
    return rows


def _prior(path: Path, fit: Any) -> Prior:
    """The prior stored at ``path``, or ``fit()`` saved there (a corrupt file is refitted)."""
    if path.exists():
        try:
            return load_prior(path)
        except ValueError as exc:
            print(f"warning: {exc}; fitting it again", file=sys.stderr)
    prior = fit()
    prior.save(path)
    return prior


def cell_files(model: CompressionSystem, name: str, seed: int, train: torch.Tensor, test: torch.Tensor,
               store: ResultStore, base: dict[str, Any], context: ContextConfig | None) -> list[dict[str, Any]]:
    """Fit (or load) the priors of one cell and measure its files: rows of :func:`file_rows`
    (``context``: the context prior's training; None: neither the context nor the progressive
    prior, the two that cost minutes per cell)."""
    start = time.perf_counter()
    folder = store.models_dir / "priors"
    codes = load_codes(store.codes_path(name, seed), model_hash(model), len(test))  # the evaluation's own
    if codes is None or sorted(codes) != list(range(1, model.num_layers + 1)):
        codes = {k: reconstruct_all(model, test, k, seed)[1] for k in range(1, model.num_layers + 1)}
    priors: dict[int, dict[str, Prior | None]] = {}
    for k in range(1, model.num_layers + 1):
        stem = folder / f"{name}-seed{seed}-layer{k}"
        priors[k] = {"uniform": None,
                     "factorized": _prior(stem.with_suffix(".factorized"), lambda: FactorizedPrior.fit(model, train, k, seed))}
        if context is not None:
            priors[k]["context"] = _prior(stem.with_suffix(".context"),
                                          lambda: ContextPrior.fit(model, train, k, context, seed=seed))
    progressive = None
    if isinstance(model, HQA) and context is not None:
        progressive = _prior(folder / f"{name}-seed{seed}.progressive", lambda: ProgressivePrior.fit(model, train, seed=seed))
    rows = file_rows(model, priors, progressive, codes, {**base, "system": name, "seed": seed})
    rows.append({**base, "system": name, "seed": seed, "layer": 0, "bits": 0, "metric": FILES_SECONDS,
                 "feature_space": "", "value": time.perf_counter() - start})
    return rows


def _file_cell(path: Path, dataset: str, train: torch.Tensor, test: torch.Tensor, out: str, base: dict[str, Any],
               context: ContextConfig | None) -> None:
    """One worker's cell: its stored model's files rows, written atomically (a killed run resumes)."""
    torch.set_num_threads(1)  # the coders' per-position work is fastest on one thread (hqa.priors.coding_threads)
    store = ResultStore(out)
    name, seed = path.stem.rsplit("-seed", 1)
    model = build_system(name, dataset)
    try:
        model = type(model).load(path, expect_config=model.config)
    except ValueError as exc:
        print(f"warning: {exc}; no files for {path.stem}", file=sys.stderr)
        return
    if model.trained_layers < model.num_layers or not store.has_cell(name, int(seed)):
        return  # an unfinished cell
    rows = cell_files(model, name, int(seed), train, test, store, base, context)
    store.write_rows(store.rows_dir / f"files-{path.stem}.csv", rows)


def write_files(out: str | Path, data_root: str | None = None, context_seeds: int = 1,
                classical: bool = True, cache_dir: str | None = None, jobs: int = 2) -> int:
    """The files step for the sweep in ``out``, ``jobs`` cells at a time; returns how many
    cells it measured."""
    from .classical import classical_rows
    from .classifier import FEATURE_NET_ARCH, FEATURE_NET_SEED, load_or_train_classifier
    from .datasets import sweep_data
    from .fidelity import classifier_space, feature_net_space
    from .profiles import get_profile
    from .run import row_context

    store = ResultStore(out)
    manifest = store.manifest()
    if not manifest:
        raise ValueError(f"{out} holds no sweep (no run.json); run python -m benchmarks.run first")
    if manifest.get("code_version") != code_version():
        raise ValueError(f"{out} was made by code version {manifest.get('code_version')}, this checkout is "
                         f"{code_version()}: its models' files would not be the sweep's")
    profile = get_profile(manifest["profile"])
    data = sweep_data(manifest["dataset"], data_root, profile, preprocess=manifest.get("preprocess", "resize"))
    base = row_context(manifest)
    cells = sorted(store.models_dir.glob("*-seed*.pt"))
    todo = [p for p in cells if not (store.rows_dir / f"files-{p.stem}.csv").exists()]
    # context-prior cells first (the long ones), so the workers finish together
    todo.sort(key=lambda p: int(p.stem.rsplit("-seed", 1)[1]) >= context_seeds)
    context = ContextConfig(steps=profile.context_steps)
    results = Parallel(n_jobs=min(jobs, max(1, len(todo))), return_as="generator_unordered")(
        delayed(_file_cell)(path, manifest["dataset"], data.train.images, data.test.images, str(out), base,
                            context if int(path.stem.rsplit("-seed", 1)[1]) < context_seeds else None)
        for path in todo)
    for _ in tqdm(results, total=len(todo), desc="files: cells", disable=not todo):
        pass
    if classical and not (store.rows_dir / "classical.csv").exists() and bool((data.train.labels >= 0).all()):
        epochs = profile.classifier_epochs
        _, cls = load_or_train_classifier(data.train, epochs, cache=cache_dir, progress=False)
        _, net = load_or_train_classifier(data.train, epochs, FEATURE_NET_SEED, cache_dir, progress=False,
                                          arch=FEATURE_NET_ARCH)
        spaces = [classifier_space(str(cls), data.test.images), feature_net_space(str(net), data.test.images)]
        store.write_rows(store.rows_dir / "classical.csv",
                         classical_rows(data.test.images, data.test.labels, spaces, base))
    return len(todo)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.files",
                                description="Real entropy-coded files (and JPEG/WebP) from a sweep's stored models.")
    p.add_argument("out", help="a finished sweep's folder (e.g. results/mnist)")
    p.add_argument("--data-root", default=None, help="the sweep's data (default: $HQA_DATA_ROOT)")
    p.add_argument("--context-seeds", type=int, default=1,
                   help="seeds 0..N-1 get the context and progressive priors (default 1)")
    p.add_argument("--no-classical", action="store_true", help="skip the JPEG and WebP rows")
    p.add_argument("--cache-dir", default=None, help="the sweep's classifier cache (default: $HQA_CACHE_DIR)")
    p.add_argument("--jobs", type=int, default=2, help="cells measured at once (default 2)")
    args = p.parse_args(argv)
    try:
        n = write_files(args.out, args.data_root, args.context_seeds, not args.no_classical, args.cache_dir, args.jobs)
    except (ValueError, DataNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"files of {n} cells measured in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
