"""The sweep: train every system over seeds, evaluate every rate, write rows and reports.

    python -m benchmarks.run --systems hqa,hams,vqvae --profile quick --data-root DIR

Cells are (system, seed). Systems whose layer 1 is trained identically (same config but
for the target of higher layers; see ``HQA.adopt_bottom``) share one trained layer 1 per
seed, so they run as one task. Tasks run in parallel with joblib; each finished cell's rows
are written at once, each trained layer's model too, so a killed run resumes where it was.
Models train on the training images, learning curves are drawn on the validation images,
and the rows measure the test images (:mod:`benchmarks.datasets`).

``--reproduce`` (what ``./reproduce.sh`` runs) retrains: the rows a folder holds from a
finished run (such as the committed ones) become its ``reference/``, and the run ends with
``reproduction.md``, the new rows against them (:mod:`benchmarks.reproduction`). Without
it, finished cells are kept and skipped (adding a system or seeds to a sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from hqa.allocator import keep_freed_memory
from hqa.priors import model_hash
from hqa.data import DATA_ROOT_ENV, MNIST_PREPROCESSING, DataNotFoundError, ImageSet, resolve_root
from hqa.system import CompressionSystem, resolve_device

from .cluster import require_dask, dask_client, parse_local, run_tasks
from .comparison import COMPARE_FILE, Comparison
from .datasets import sweep_data
from .eval_codes import save_codes
from .progress import ProgressBoard, ProgressFile
from .fidelity import FeatureSpace
from .metrics import Measurement, evaluate_system, no_compression
from .profiles import PROFILES, Profile, get_profile
from .registry import DATASETS, SYSTEM_SETS, SYSTEMS, build_system, parse_systems
from .spaces import Preparation, SpacesSpec, prepare_spaces, wait_for_spec
from .store import CURVE_PREFIX, Lease, ResultStore, code_version

# Every profile has its own folder: results/mnist (quick), results/mnist-paper, results/mnist-smoke.
DEFAULT_PROFILE = "quick"


def default_out(dataset: str, profile: str) -> str:
    """The results folder of a sweep of ``dataset`` under ``profile``."""
    return f"results/{dataset}" if profile == DEFAULT_PROFILE else f"results/{dataset}-{profile}"


@dataclass(frozen=True)
class Context:
    """Everything a worker needs to train and evaluate cells (picklable)."""

    out: str
    dataset: str
    profile: Profile
    train: ImageSet
    test: ImageSet
    curve_images: torch.Tensor  # [M, C, H, W]: the fixed validation images of the learning curves
    # The feature spaces' networks and test statistics; None: the main process is preparing
    # them meanwhile, and a worker waits for them once it has trained (benchmarks.spaces).
    spaces: SpacesSpec | None
    device: str
    threads: int | None  # torch threads per task; None: the worker's own default (a remote cluster)
    progress: bool  # workers report to the main process's progress board
    compile: bool
    mixed_precision: bool
    manifest: dict[str, Any]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Train every system over seeds at every rate; write tidy rows, Table 3 and Figure 3.",
    )
    p.add_argument("--systems", default="all",
                   help=f"comma-separated names, a set ({', '.join(SYSTEM_SETS)}) or 'all' (known: {', '.join(SYSTEMS)})")
    p.add_argument("--dataset", default="mnist", help=f"dataset preset (known: {', '.join(DATASETS)})")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"run profile (known: {', '.join(PROFILES)}); default quick")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default: the profile's)")
    p.add_argument("--data-root", default=None, help="torchvision data root (default: $HQA_DATA_ROOT)")
    p.add_argument("--download", action="store_true",
                   help="where no data root is given and MNIST is not in the default folder, download it there with torchvision")
    p.add_argument("--mnist-preprocess", default="resize", choices=MNIST_PREPROCESSING,
                   help="MNIST 28 -> 32: 'resize' (bilinear, as the paper's reference code; default) or 'pad' (zeros)")
    p.add_argument("--out", default=None, help="output folder (default: results/<dataset> for quick, results/<dataset>-<profile> otherwise)")
    p.add_argument("--reproduce", action="store_true",
                   help="retrain: the rows of a finished run in --out become its reference/ (an interrupted run of its own "
                        "resumes), and the run ends with reproduction.md comparing the new rows with them")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel (system, seed) tasks (joblib); CPU threads are split between them; default min(2, cores)")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    p.add_argument("--inception-weights", default=None, help="local torch-fidelity Inception-v3 weights file")
    p.add_argument("--no-inception", action="store_true", help="skip Inception rFID (no download attempt)")
    p.add_argument("--cache-dir", default=None, help="where the classifier is cached (default: $HQA_CACHE_DIR or ~/.cache/hqa-suite)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="fused torch.compile kernels for the quantizer and Mish (same values; ~30 s of compiling per "
                        "worker; eager fallback where compilation fails); default: the profile's choice")
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="train under bfloat16 autocast (quantizer kept in float32; evaluation float32); default: on CUDA devices with bfloat16 support")
    p.add_argument("--cluster", default=None, metavar="local:N",
                   help="run the tasks on a new Dask LocalCluster of N worker processes (CPU threads split between "
                        "them, as --jobs does); needs the [dask] extra")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the tasks on an existing Dask cluster (workers see the same --out folder); with "
                        "--device cuda each task asks for one GPU resource (dask worker --resources GPU=1)")
    p.add_argument("--compare-with", default=None, metavar="DIR[:SYSTEMS]",
                   help="show these systems of another sweep's folder (all of them without ':SYSTEMS') beside this "
                        "sweep's in its tables and Figure 3, when that sweep has the same profile, data and code version "
                        "(e.g. results/mnist:hqa,vqvae,kmeans)")
    p.add_argument("--no-report", action="store_true", help="write rows only, no tables or figures")
    p.add_argument("--files", action="store_true",
                   help="after the sweep, the files step (python -m benchmarks.files): real entropy-coded files of every "
                        "stored model under learned priors, and JPEG/WebP on the same images")
    p.add_argument("--context-seeds", type=int, default=1, help="with --files: seeds 0..N-1 get the context prior (default 1)")
    return p


def share_groups(names: Sequence[str], dataset: str) -> list[list[str]]:
    """Group systems whose layer 1 is exactly the same training problem (adopt_bottom)."""
    groups: list[list[str]] = []
    keys: list[Any] = []
    for name in names:
        model = build_system(name, dataset)
        key = (type(model).__name__, model.config.replace(target="mse")) if hasattr(model, "adopt_bottom") else name
        if key in keys:
            groups[keys.index(key)].append(name)
        else:
            keys.append(key)
            groups.append([name])
    return groups


def _load_or_build(name: str, seed: int, ctx: Context, store: ResultStore) -> CompressionSystem:
    """The (partly) trained model of a cell from disk, or a fresh one; a corrupt file is
    reported in one line and its cell retrained."""
    model = build_system(name, ctx.dataset)
    path = store.model_path(name, seed)
    if path.exists():
        try:
            return type(model).load(path, expect_config=model.config)
        except (ValueError, FileNotFoundError) as exc:
            print(f"warning: {exc}; retraining {name} seed {seed}", file=sys.stderr)
    return model


def _fit_cell(name: str, seed: int, group: list[str], ctx: Context, store: ResultStore,
              board: ProgressFile | None = None) -> CompressionSystem:
    model = _load_or_build(name, seed, ctx, store)
    if model.trained_layers == 0 and hasattr(model, "adopt_bottom"):
        for sibling in group:
            sib_path = store.model_path(sibling, seed)
            if sibling != name and sib_path.exists():
                try:
                    other = type(model).load(sib_path, device=ctx.device)
                except ValueError:
                    continue
                if other.trained_layers >= 1:
                    model.adopt_bottom(other)
                    break
    epochs = ctx.profile.epochs(len(ctx.train), model.num_layers, independent=model.independent_rates)
    batches = ctx.profile.layer_batches(model.num_layers, independent=model.independent_rates)
    for k in range(model.trained_layers + 1, model.num_layers + 1):
        model.fit(ctx.train.images, epochs, batches, seed, ctx.device, layers=k, progress=False,
                  compile=ctx.compile, mixed_precision=ctx.mixed_precision, heldout=ctx.curve_images,
                  curve_points=ctx.profile.curve_points, report=None if board is None else board.training)
        model.save(store.model_path(name, seed))
    return model.use_compile(ctx.compile)  # evaluation too (a loaded model starts eager)


def configure_worker(threads: int | None) -> None:
    """This process's CPU settings for a task: its share of the cores (jobs x threads <=
    cores), and freed memory kept for the next step (:mod:`hqa.allocator`)."""
    # a remote worker (threads None) uses its host's cores: Dask's nanny sets OMP_NUM_THREADS=1
    torch.set_num_threads(threads if threads is not None else max(1, os.cpu_count() or 1))
    keep_freed_memory()


# How often a task whose cells another worker is training checks whether they are done.
LEASE_POLL_SECONDS = 5.0


def run_group(group: list[str], seed: int, ctx: Context) -> list[str]:
    """Train and evaluate the unfinished cells of one sharing group for one seed, holding
    the task's lease meanwhile. If another live worker holds it, wait until that worker
    finishes the cells (nothing to do) or its lease lapses (it died: take over)."""
    configure_worker(ctx.threads)
    store = ResultStore(ctx.out)
    key = f"{'+'.join(group)}-seed{seed}"
    while True:
        if all(store.has_cell(n, seed) for n in group):
            return []
        lease = store.try_lease(key)
        if lease is not None:
            break
        time.sleep(LEASE_POLL_SECONDS)
    board = ProgressFile(ctx.out, key) if ctx.progress else None
    try:
        with store.kept(lease):
            return _train_and_evaluate(group, seed, ctx, store, lease, board)
    finally:
        if board is not None:
            board.close()


def _train_and_evaluate(group: list[str], seed: int, ctx: Context, store: ResultStore, lease: Lease,
                        board: ProgressFile | None = None) -> list[str]:
    if code_version() != ctx.manifest["code_version"]:
        raise RuntimeError(f"this worker ({socket.gethostname()}) runs code version {code_version()}, the sweep "
                           f"{ctx.manifest['code_version']}: start every worker from the same checkout")
    todo = [n for n in group if not store.has_cell(n, seed)]
    spaces = None
    for name in todo:
        if board is not None:
            board.cell = f"{name} seed {seed}"
        model = _fit_cell(name, seed, group, ctx, store, board)
        if spaces is None:  # once per task, after its first training (the main process may still be preparing them)
            if board is not None and ctx.spaces is None:
                board.update("waiting for the feature spaces", 0, 1, force=True)
            spaces = (ctx.spaces or wait_for_spec(ctx.out)).spaces()
        start = time.perf_counter()
        codes: dict[int, torch.Tensor] = {}
        measurements = evaluate_system(model, ctx.test.images, ctx.test.labels, spaces, seed,
                                       report=None if board is None else board.evaluating, codes_out=codes)
        eval_seconds = time.perf_counter() - start
        save_codes(store.codes_path(name, seed), codes, model_hash(model))  # for the files step
        rows = cell_rows({"system": name, "seed": seed, **row_context(ctx.manifest)}, model, measurements, eval_seconds)
        if not store.holds(lease):  # taken over meanwhile (see benchmarks.store): its new holder writes the rows
            return []
        store.write_rows(store.cell_path(name, seed), rows)
    return todo


def cell_rows(base: dict[str, Any], model: CompressionSystem, measurements: list[Measurement],
              eval_seconds: float) -> list[dict[str, Any]]:
    """A cell's tidy rows: ``base`` (system, seed, run context) with every measurement, each trained
    layer's training seconds, the evaluation seconds and the learning curves."""
    rows = _measurement_rows(base, measurements)
    rows += [
        {**base, "layer": log["layer"], "bits": model.rates[log["layer"] - 1], "metric": "train_seconds",
         "feature_space": "", "value": log["seconds"]}
        for log in model.fit_log
        if "shared_from" not in log  # a shared layer 1 is timed once, where it was trained
    ]
    rows.append({**base, "layer": 0, "bits": 0, "metric": "eval_seconds", "feature_space": "", "value": eval_seconds})
    return rows + curve_rows(base, model)


def curve_rows(base: dict[str, Any], model: CompressionSystem) -> list[dict[str, Any]]:
    """The learning curve of every trained layer as tidy rows: metric ``curve_<name>`` at
    ``step`` (a layer shared with a sibling carries the curve it was trained with)."""
    return [
        {**base, "layer": log["layer"], "bits": model.rates[log["layer"] - 1], "step": point["step"],
         "metric": CURVE_PREFIX + name, "feature_space": "", "value": value}
        for log in model.fit_log
        for point in log.get("curve", [])
        for name, value in point.items()
        if name != "step"
    ]


def _measurement_rows(base: dict[str, Any], measurements: list[Measurement]) -> list[dict[str, Any]]:
    """Tidy rows: ``base`` (system, seed, run context) plus one measurement each."""
    return [
        {**base, "layer": m.layer, "bits": m.bits, "metric": m.metric, "feature_space": m.feature_space, "value": m.value}
        for m in measurements
    ]


def row_context(m: dict[str, Any]) -> dict[str, Any]:
    """The columns every row of this process shares: the run's manifest ``m``, and this host."""
    return {"profile": m["profile"], "dataset": m["dataset"], "train_size": m["train_size"],
            "code_version": m["code_version"], "host": socket.gethostname()}


def announce_download(dataset: str, root: str | None) -> bool:
    """Whether to let torchvision download ``dataset``: only MNIST, only where no data root is
    given (flag or $HQA_DATA_ROOT), and only when it is not already in the default folder,
    announced in one line."""
    if dataset != "mnist" or root is not None or os.environ.get(DATA_ROOT_ENV):
        return False
    folder = resolve_root(None)
    if (folder / "MNIST" / "raw").is_dir():
        return False
    print(f"no data root given: downloading MNIST with torchvision into {folder}", file=sys.stderr)
    return True


def machine_description() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    keep_freed_memory()
    try:
        names = parse_systems(args.systems)
        if args.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {args.dataset!r}; known datasets: {', '.join(DATASETS)}")
        profile = get_profile(args.profile)
        seeds = profile.seeds if args.seeds is None else args.seeds
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        if args.cluster is not None and args.scheduler is not None:
            raise ValueError("give --cluster local:N or --scheduler tcp://HOST:PORT, not both")
        workers = parse_local(args.cluster) if args.cluster is not None else args.jobs
        on_dask = args.cluster is not None or args.scheduler is not None
        if on_dask:
            require_dask()
        device = str(resolve_device(args.device))
        out = Path(args.out or default_out(args.dataset, profile.name)).resolve()  # workers may run elsewhere
        comparison = Comparison.parse(args.compare_with, out, SYSTEMS) if args.compare_with is not None else None
        download = args.download and announce_download(args.dataset, args.data_root)
        data = sweep_data(args.dataset, args.data_root, profile, download, args.mnist_preprocess)
    except (ValueError, DataNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train, test = data.train, data.test

    manifest = {
        "profile": profile.name,
        "dataset": args.dataset,
        "train_size": len(train),
        "eval_size": len(test),
        "code_version": code_version(),
        "steps": list(profile.steps),
        "independent_steps": profile.independent_steps,
        "independent_batch": profile.layer_batches(1, independent=True)[0],
        "batch_size": profile.batch_size if isinstance(profile.batch_size, int) else list(profile.batch_size),
        "curve_images": profile.curve_images,
        "preprocess": args.mnist_preprocess if args.dataset == "mnist" else "centre crop 148, resize 64",
        "validation": f"{len(data.validation)} images from the {data.fingerprints['validation'].split(':')[0]} split",
        "images": data.fingerprints,  # which images train, validate and test (benchmarks.datasets.fingerprint)
        "data": train.source,
    }
    compile = profile.compile if args.compile is None else args.compile
    auto_mixed = device.startswith("cuda") and torch.cuda.is_bf16_supported()  # bfloat16 needs Ampere or later
    mixed = auto_mixed if args.mixed_precision is None else args.mixed_precision
    # Recorded, not identifying: a folder trained on a GPU may be evaluated or resumed on a CPU.
    recorded = {"compiled": compile, "mixed_precision": mixed, "device": device}
    store = ResultStore(out)
    try:
        kept = store.keep_reference() if args.reproduce else None
        note = store.claim(manifest, recorded)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store.begin()

    for line in (kept, note):
        if line:
            print(line, file=sys.stderr)
    if comparison is not None:
        comparison.save(out)
    print(f"{args.dataset}: training on {len(train)} images ({train.source}), evaluating on {len(test)}", file=sys.stderr)
    # CPU threads split between the local worker processes; a remote cluster's workers keep their own
    threads = None if args.scheduler else max(1, (os.cpu_count() or 1) // workers) if device == "cpu" else 1
    # The evaluation networks train in the background while the first cells do (benchmarks.spaces).
    ctx = Context(str(out), args.dataset, profile, train, test, data.validation.images[: profile.curve_images],
                  None, device, threads, True, compile, mixed, manifest)
    spaces_board = ProgressFile(out, "feature-spaces")
    spaces_board.cell = "evaluation networks"

    def prepare() -> tuple[list[FeatureSpace], SpacesSpec]:
        try:
            return prepare_spaces(train, test, profile.classifier_epochs, args.cache_dir, not args.no_inception,
                                  args.inception_weights, report=spaces_board.training)
        finally:
            spaces_board.close()

    preparation = Preparation(out, prepare)

    # Longest tasks first (families of independent models, e.g. VQ-VAE, train every rate
    # from pixels), so the workers finish together.
    groups = sorted(
        share_groups(names, args.dataset),
        key=lambda g: (not build_system(g[0], args.dataset).independent_rates, -len(g)),
    )
    tasks = [(g, s) for g in groups for s in range(seeds)]  # every seed of a long group before shorter groups
    tasks = [(g, s) for g, s in tasks if not all(store.has_cell(n, s) for n in g)]
    skipped = len(names) * seeds - sum(len(g) for g, _ in tasks)
    if skipped:
        print(f"{skipped} finished (system, seed) cells of this run found in {out}: keeping them, training the "
              f"other {len(names) * seeds - skipped}" + ("" if args.reproduce else " (--reproduce retrains all)"),
              file=sys.stderr)
    desc = f"{profile.name} sweep: tasks done"
    with ProgressBoard(out):
        preparation.start()
        if on_dask:
            gpu = device.startswith("cuda")
            try:
                with dask_client(args.cluster, args.scheduler, gpu) as client:
                    for _ in tqdm(run_tasks(client, run_group, tasks, ctx, gpu), total=len(tasks), desc=desc, position=0):
                        pass
            except (RuntimeError, OSError) as exc:  # a lost task, a worker of another checkout, no scheduler
                print(f"error: {exc}", file=sys.stderr)
                return 2
        else:
            results = Parallel(n_jobs=args.jobs, return_as="generator_unordered")(
                delayed(run_group)(g, s, ctx) for g, s in tasks
            )
            try:
                for _ in tqdm(results, total=len(tasks), desc=desc, position=0):
                    pass
            except RuntimeError as exc:  # a worker of another code version (the checkout changed mid-run)
                print(f"error: {exc}", file=sys.stderr)
                return 2
        try:
            spaces, spec = preparation.result()
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"error: the feature spaces could not be prepared: {exc}", file=sys.stderr)
            return 2
    nc_path = store.rows_dir / "no-compression.csv"
    if not nc_path.exists():
        base = {"system": "none", "seed": 0, **row_context(ctx.manifest)}
        store.write_rows(nc_path, _measurement_rows(base, no_compression(test.images, test.labels, spaces)))
    if args.files:
        from .files import write_files

        try:
            write_files(out, args.data_root, args.context_seeds, classical=not (out / COMPARE_FILE).exists(),
                        cache_dir=args.cache_dir, jobs=workers if args.scheduler is None else 1)
        except (ValueError, DataNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if all(store.has_cell(n, s) for n in names for s in range(seeds)):
        store.finish()  # a later --reproduce treats these rows as a finished run

    wall = time.time() - started
    log = {
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "systems": names,
        "seeds": seeds,
        "jobs": workers,
        "engine": f"dask {args.cluster or args.scheduler}" if on_dask else "joblib",
        "threads_per_job": threads,
        "compiled": compile,
        "mixed_precision": mixed,
        "device": device,
        "machine": machine_description(),
        "wall_seconds": round(wall, 1),
        "inception": spec.inception_note,
        "data": train.source,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(out / "runs.jsonl", "a") as f:
        f.write(json.dumps(log) + "\n")
    if not args.no_report:
        from .figures import FigureData
        from .report import write_reports

        classifier = next((s for s in spaces if s.provides_logits), None)  # no re-reading the test set
        write_reports(out, data=FigureData(test.images, test.labels, classifier))
    print(f"done in {wall / 60:.1f} min; results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
