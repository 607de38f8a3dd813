"""Speed benchmark: training and evaluation throughput of each layer, against the
straightforward torch.distributions formulation, on this machine.

    python -m benchmarks.speed [--batch-size 64] [--steps 20] [--out results/speed.md]

The reference is the same HQA layer written the obvious way (RelaxedOneHotCategorical
sample, probabilities, KL and commitment as separate ops; NCHW layout): the ratio is the
speed-up of the suite's path (one pass over distances, channels-last convs, optionally
torch.compile).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.distributions import RelaxedOneHotCategorical

from hqa import HQA, HQAConfig
from hqa.allocator import keep_freed_memory
from hqa.compiled import use_compile
from hqa.layer import QuantizedAutoencoder
from hqa.quantize import QuantizeOutput, Quantizer, squared_distances

from .classifier import Classifier
from .fidelity import classifier_space
from .metrics import evaluate_system
from .registry import SYSTEMS, build_system


class DistributionsQuantizer(Quantizer):
    """The straightforward Gumbel-softmax quantizer (torch.distributions), for reference."""

    def forward(self, z_e: torch.Tensor, temperature: float, generator: torch.Generator | None) -> QuantizeOutput:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        dist = squared_distances(flat, self.codebook)
        posterior = RelaxedOneHotCategorical(torch.tensor(temperature), logits=-dist)
        soft = posterior.rsample()
        indices = soft.argmax(dim=1)
        probs = posterior.probs
        kl = (probs * (probs.add(1e-9).log() + math.log(self.size))).sum(1).view(b, -1).sum(1)
        commit = (probs * dist).sum(1).view(b, -1).sum(1)
        self.usage += torch.bincount(indices, minlength=self.size).to(self.usage.dtype)
        z_q = (soft @ self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        return QuantizeOutput(z_q, indices.view(b, h, w), kl, commit, flat.new_zeros(()))


def _time(fn: Callable[[], None], steps: int) -> float:
    """Seconds per call of ``fn`` after two warm-up calls."""
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def train_step_fn(unit: QuantizedAutoencoder, config: HQAConfig, inputs: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    """One optimizer step of ``unit`` on a fixed batch."""
    opt = torch.optim.RAdam(unit.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(0)
    unit.train()

    def step() -> None:
        loss, _ = unit.objective(inputs, target, config, 0.5, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unit.parameters(), config.grad_clip)
        opt.step()

    return step


def layer_inputs(model: HQA, k: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of layer k's (encoder input, target) for a fresh model: synthetic but shaped right."""
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    if k == 1:
        x = torch.rand(batch, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)
        return x, x
    size = cfg.latent_size(k - 1)
    z = torch.randn(batch, cfg.code_dim, size, size, generator=gen)
    return z, z


def _reference_unit(unit: QuantizedAutoencoder, config: HQAConfig) -> QuantizedAutoencoder:
    """The same layer written the straightforward way: torch.distributions quantizer,
    default (NCHW) memory layout, same weights."""
    enc, dec = copy.deepcopy(unit.encoder), copy.deepcopy(unit.decoder)
    enc.to(memory_format=torch.contiguous_format)
    dec.to(memory_format=torch.contiguous_format)
    quantizer = DistributionsQuantizer(config.codebook_size, config.code_dim, "gumbel", "probabilistic")
    return QuantizedAutoencoder(enc, quantizer, dec, copy.deepcopy(unit.norm), unit.target)


def run(batch_size: int, steps: int, threads: int, compile: bool, keep_memory: bool) -> tuple[list[dict], float | None]:
    """Rows of img/s, and the reference's layer-1 img/s in a plain process (timed before
    :func:`keep_freed_memory` changes this process; None when ``keep_memory`` is False)."""
    torch.set_num_threads(threads)
    rows: list[dict] = []
    hqa = HQA(HQAConfig.mnist())
    plain = None
    if keep_memory:  # the reference as its own script would run it, before the allocator changes
        inputs, target = layer_inputs(hqa, 1, batch_size)
        plain = batch_size / _time(train_step_fn(_reference_unit(hqa.layers[0], hqa.config), hqa.config, inputs, target), steps)
        keep_freed_memory()
    for k in range(1, hqa.num_layers + 1):
        inputs, target = layer_inputs(hqa, k, batch_size)
        unit = hqa.layers[k - 1]
        ref = _time(train_step_fn(_reference_unit(unit, hqa.config), hqa.config, inputs, target), steps)
        fast = _time(train_step_fn(unit, hqa.config, inputs, target), steps)
        row = {"what": f"HQA layer {k} training", "fast": batch_size / fast, "reference": batch_size / ref}
        if compile:
            use_compile(unit, True)
            row["compiled"] = batch_size / _time(train_step_fn(unit, hqa.config, inputs, target), steps)
            use_compile(unit, False)
        rows.append(row)
    # evaluation: encode + stochastic decode of every rate, on the stack
    x = torch.rand(batch_size * 4, 1, 32, 32)
    hqa.eval().use_compile(compile)
    for k in range(1, hqa.num_layers + 1):
        gen = torch.Generator().manual_seed(0)
        t = _time(lambda: hqa.reconstruct(x, k, gen), max(2, steps // 4))
        rows.append({"what": f"HQA layer {k} eval (encode + stochastic decode)", "compiled" if compile else "fast": len(x) / t})
    for name in SYSTEMS:
        model = build_system(name)
        if not hasattr(model, "models") and not hasattr(model, "layers"):
            continue  # not trained by gradient steps (k-means)
        unit = model.models[0] if hasattr(model, "models") else model.layers[0]
        use_compile(unit, compile)
        x1 = torch.rand(batch_size, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        t = _time(train_step_fn(unit, model.config, x1, x1), steps)
        rows.append({"what": f"{name} bottom layer training", "compiled" if compile else "fast": batch_size / t})
    return rows, plain


def evaluation_seconds(n_images: int, compile: bool) -> float:
    """Wall seconds to evaluate every rate of one MNIST HQA on ``n_images`` test-like images:
    MSE, classification error and classifier-feature rFID, as the sweep does (random
    weights: the cost does not depend on training)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.pt"
        Classifier().save(path)
        images = torch.rand(n_images, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        labels = torch.zeros(n_images, dtype=torch.long)
        space = classifier_space(path, images)  # the sweep computes these statistics once per run
        model = HQA(HQAConfig.mnist()).use_compile(compile)
        evaluate_system(model, images[:100], labels[:100], [space], seed=0)  # compiles, when asked
        start = time.perf_counter()
        evaluate_system(model, images, labels, [space], seed=0)
        return time.perf_counter() - start


def _cell(value: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="results/speed.md")
    p.add_argument("--compile", action="store_true", help="also time the fused torch.compile kernels (quantizer, Mish)")
    p.add_argument("--default-allocator", action="store_true",
                   help="leave glibc's allocator as a plain process has it (default: keep freed memory, as the runner does)")
    p.add_argument("--eval-images", type=int, default=10_000, help="images for the whole-system evaluation timing (0: skip)")
    args = p.parse_args(argv)
    rows, plain = run(args.batch_size, args.steps, args.threads, args.compile, not args.default_allocator)
    eval_s = evaluation_seconds(args.eval_images, args.compile) if args.eval_images > 0 else None
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, CPU, torch {torch.__version__}"
    allocator = "glibc's default" if args.default_allocator else "freed memory kept (`hqa.allocator`, as the runner does)"
    lines = [
        "# Speed (images per second)",
        "",
        f"Machine: {machine}. Batch {args.batch_size}, {args.steps} timed steps after 2 warm-up steps. Allocator: {allocator}.",
        f"Command: `python -m benchmarks.speed {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "Reference: the same layer written the straightforward way: torch.distributions quantizer",
        "(RelaxedOneHotCategorical sample, probabilities, KL and commitment as separate ops) and",
        "the default NCHW memory layout. Eager: the suite's one-pass quantizer and channels-last",
        "convolutions. Compiled: the same with the fused `torch.compile` kernels of the quantizer",
        "and Mish (`--compile`). Every column of a row is timed in this one process, under the",
        "same allocator.",
        "",
        "| what | eager (img/s) | compiled (img/s) | reference (img/s) | speed-up (best / reference) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        best = max(r.get("fast", 0.0), r.get("compiled", 0.0))
        ratio = best / r["reference"] if "reference" in r else None
        lines.append(
            f"| {r['what']} | {_cell(r.get('fast'))} | {_cell(r.get('compiled'))} | {_cell(r.get('reference'))} "
            f"| {_cell(ratio, '{:.2f}x')} |"
        )
    if plain is not None:
        best = max(rows[0]["fast"], rows[0].get("compiled", 0.0))
        tuned = rows[0]["reference"]
        why = (
            "Most of the gap between the two reference numbers is page faults: glibc maps large tensors afresh "
            "and returns them on free (always above 32 MB, below that until its adaptive threshold has grown; see "
            "`hqa/allocator.py`)."
            if plain < 0.8 * tuned
            else "At this batch the quantizer's tensors stay under glibc's 32 MB mapping threshold, so keeping freed "
            "memory changes little (see `hqa/allocator.py`)."
        )
        lines += [
            "",
            f"The reference's layer 1 timed first, in this process before its allocator was changed (as the "
            f"straightforward code runs as a script of its own): **{plain:.0f} img/s**; the suite's best layer-1 path "
            f"above is **{best / plain:.2f}x** that. {why}",
        ]
    if eval_s is not None:
        how = "compiled kernels" if args.compile else "eager"
        lines += [
            "",
            f"Evaluating all 5 rates of one MNIST HQA on {args.eval_images} images (encode + stochastic decode, MSE, "
            f"classification error and classifier-feature rFID; test-set statistics computed once per run, not "
            f"counted; {how}): **{eval_s:.0f} s** with {args.threads} threads.",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
