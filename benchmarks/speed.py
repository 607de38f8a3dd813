"""Speed benchmark: training and evaluation throughput of each layer, against the
straightforward torch.distributions formulation, on this machine.

    python -m benchmarks.speed [--batch-size 64] [--steps 20] [--out results/speed.md]

The reference is the same HQA layer whose quantizer is written the obvious way
(RelaxedOneHotCategorical sample, probabilities, KL and commitment as separate ops): the
ratio is the speed-up of the fused path (hand-written backward, one pass over distances).
"""

from __future__ import annotations

import argparse
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
from hqa.layer import QuantizedAutoencoder
from hqa.quantize import QuantizeOutput, Quantizer, squared_distances

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


def run(batch_size: int, steps: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    rows: list[dict] = []
    hqa = HQA(HQAConfig.mnist())
    for k in range(1, hqa.num_layers + 1):
        inputs, target = layer_inputs(hqa, k, batch_size)
        unit = hqa.layers[k - 1]
        fast = _time(train_step_fn(unit, hqa.config, inputs, target), steps)
        ref_unit = QuantizedAutoencoder(unit.encoder, DistributionsQuantizer(hqa.config.codebook_size, hqa.config.code_dim, "gumbel", "probabilistic"), unit.decoder, unit.norm, unit.target)
        ref = _time(train_step_fn(ref_unit, hqa.config, inputs, target), steps)
        rows.append({"what": f"HQA layer {k} training", "fast": batch_size / fast, "reference": batch_size / ref})
    # evaluation: encode + stochastic decode of every rate, on the stack
    x = torch.rand(batch_size * 4, 1, 32, 32)
    hqa.eval()
    for k in range(1, hqa.num_layers + 1):
        gen = torch.Generator().manual_seed(0)
        t = _time(lambda: hqa.reconstruct(x, k, gen), max(2, steps // 4))
        rows.append({"what": f"HQA layer {k} eval (encode + stochastic decode)", "fast": len(x) / t, "reference": float("nan")})
    for name in SYSTEMS:
        model = build_system(name)
        if not hasattr(model, "models") and not hasattr(model, "layers"):
            continue  # not trained by gradient steps (k-means)
        unit = model.models[0] if hasattr(model, "models") else model.layers[0]
        x1 = torch.rand(batch_size, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        t = _time(train_step_fn(unit, model.config, x1, x1), steps)
        rows.append({"what": f"{name} bottom layer training", "fast": batch_size / t, "reference": float("nan")})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="results/speed.md")
    args = p.parse_args(argv)
    rows = run(args.batch_size, args.steps, args.threads)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, CPU, torch {torch.__version__}"
    lines = [
        "# Speed (images per second)",
        "",
        f"Machine: {machine}. Batch {args.batch_size}, {args.steps} timed steps after 2 warm-up steps.",
        "Reference: the same layer with the torch.distributions quantizer (RelaxedOneHotCategorical).",
        "",
        "| what | fast path (img/s) | reference (img/s) | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = r["fast"] / r["reference"] if r["reference"] == r["reference"] else float("nan")
        ref = f"{r['reference']:.0f}" if r["reference"] == r["reference"] else "–"
        lines.append(f"| {r['what']} | {r['fast']:.0f} | {ref} | {'–' if ratio != ratio else f'{ratio:.2f}x'} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
