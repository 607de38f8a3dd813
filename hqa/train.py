"""The training loop shared by every layer of every system.

RAdam, flat-then-cosine learning rate, gradient clipping, Gumbel temperature decayed
linearly towards 0 over the stage (Section 5.1), code resetting every few steps
(Section 5.3), tqdm progress; all randomness from one explicit generator.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .quantize import Quantizer

# (batch, temperature, generator) -> (loss, diagnostics for the progress bar)
StepLoss = Callable[[Tensor, float, torch.Generator], tuple[Tensor, dict[str, Tensor]]]
# () -> held-out metrics of the module as it is now (called in eval mode, see train_stage)
Monitor = Callable[[], dict[str, float]]
# Steps between two calls of train_stage's ``report`` (a call costs a clock read, not a host sync).
REPORT_EVERY = 10

# Latents per code in the data-dependent initialisation batch: the batch holds at least
# INIT_LATENTS_PER_CODE * K latent positions (and at least one training batch), so that even a
# 1x1 layer (one latent per image) starts its K codes at K distinct latents.
INIT_LATENTS_PER_CODE = 4


def init_batch_size(batch_size: int, codes: int, positions: int, n: int) -> int:
    """Images in the initialisation batch of a layer with ``codes`` codes and ``positions``
    latent positions per image, from ``n`` training items: enough for
    ``INIT_LATENTS_PER_CODE * codes`` latents, at least ``batch_size``, at most ``n``."""
    return min(n, max(batch_size, math.ceil(INIT_LATENTS_PER_CODE * codes / max(1, positions))))


@dataclass(frozen=True)
class Schedule:
    """Optimisation settings of one training stage (copied from the model's config)."""

    steps: int
    lr: float
    lr_final_ratio: float
    flat_fraction: float
    grad_clip: float
    temp_start: float
    temp_end: float
    reset_every: int
    reset_threshold: float
    reset_min_draws: float = 0.0

    def lr_factor(self, step: int) -> float:
        """Flat at 1 for ``flat_fraction`` of the steps, then cosine down to ``lr_final_ratio``."""
        flat = int(self.flat_fraction * self.steps)
        if step < flat:
            return 1.0
        progress = (step - flat) / max(1, self.steps - flat)
        return self.lr_final_ratio + (1 - self.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def temperature(self, step: int) -> float:
        """Gumbel-softmax temperature, linear from ``temp_start`` to ``temp_end`` (Section 5.1)."""
        frac = step / max(1, self.steps - 1)
        return self.temp_start + (self.temp_end - self.temp_start) * frac


def steps_for(epochs: int, n: int, batch_size: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``n`` items in full batches (at least one)."""
    return max(1, epochs * max(1, n // batch_size))


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterable[Tensor]:
    """Index batches for ``steps`` steps: a fresh permutation per epoch, full batches only."""
    per_epoch = max(1, n // batch_size)
    size = min(batch_size, n)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=generator, device=generator.device)
        for i in range(per_epoch):
            if done == steps:
                return
            yield perm[i * size : (i + 1) * size]
            done += 1


def monitor_steps(steps: int, points: int) -> set[int]:
    """The steps (0-based, after the update) at which a curve of ``points`` points is
    measured: evenly spaced, always including the last step."""
    if points < 1:
        return set()
    return {max(0, round(steps * (i + 1) / points) - 1) for i in range(points)}


def train_stage(
    module: nn.Module,
    step_loss: StepLoss,
    data: Tensor,
    batch_size: int,
    schedule: Schedule,
    generator: torch.Generator,
    quantizer: Quantizer | None = None,
    code_reset: bool = False,
    desc: str = "train",
    progress: bool = True,
    autocast_dtype: torch.dtype | None = None,
    monitor: Monitor | None = None,
    monitor_points: int = 0,
    init_size: int | None = None,
    report: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Train ``module``'s parameters on ``data`` [N, ...] for ``schedule.steps`` steps.

    ``step_loss`` computes the loss of one batch (already on the module's device). A module
    with ``pending_init`` set is first initialised from one batch of ``init_size`` items
    (default: the training batch; see :func:`init_batch_size`): ``step_loss`` is called on it
    without gradients, and the module's objective then only runs its data-dependent
    initialisation (:meth:`QuantizedAutoencoder.data_init`; a layer's running normalisation
    takes that batch's statistics as its first).
    ``quantizer``'s usage counts are checked every ``reset_every`` steps and its least-used
    code moved when ``code_reset`` is set (:meth:`Quantizer.reset_dead_codes`).
    ``autocast_dtype`` (e.g. bfloat16) runs the forward pass under ``torch.autocast`` (mixed
    precision: convolutions in that dtype; the quantizer keeps float32, see
    :meth:`Quantizer.forward`). ``monitor`` is called, with the module in eval mode, at
    ``monitor_points`` evenly spaced steps (the last included): the learning curve.
    ``report(step, steps)`` is told the steps done every ``REPORT_EVERY`` steps and at the end
    (for progress shown by another process, e.g. the sweep's board; it must be cheap).

    Returns the last logged diagnostics, ``codes_moved`` and ``curve``: one dict per
    monitored step with ``step`` (1-based), ``train_loss`` (mean over the steps since the
    previous point) and the monitor's metrics.
    """
    device = next(module.parameters()).device
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.RAdam(params, lr=schedule.lr)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
    autocast = (lambda: torch.autocast(device.type, dtype=autocast_dtype)) if autocast_dtype else contextlib.nullcontext
    module.train()
    if getattr(module, "pending_init", False):
        n_init = min(len(data), init_size or batch_size)
        idx = torch.randperm(len(data), generator=generator, device=generator.device)[:n_init]
        with torch.no_grad(), autocast():
            step_loss(data[idx.to(data.device)].to(device), schedule.temperature(0), generator)
    if quantizer is not None:
        quantizer.usage.zero_()
    logged: dict[str, float] = {}
    curve: list[dict[str, float]] = []
    at = monitor_steps(schedule.steps, monitor_points) if monitor is not None else set()
    loss_sum, loss_n = torch.zeros((), device=device), 0
    moved = torch.zeros((), dtype=torch.long, device=device)
    bar = tqdm(total=schedule.steps, desc=desc, disable=not progress, leave=False, mininterval=2.0)
    data_on_device = data.device == device
    for step, idx in enumerate(batches(len(data), batch_size, schedule.steps, generator)):
        batch = data[idx.to(data.device)]
        if not data_on_device:
            batch = batch.to(device, non_blocking=True)
        with autocast():
            loss, diag = step_loss(batch, schedule.temperature(step), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, schedule.grad_clip)
        optimizer.step()
        lr_sched.step()
        loss_sum += loss.detach().float()
        loss_n += 1
        if quantizer is not None and (step + 1) % schedule.reset_every == 0:
            if code_reset:
                moved += quantizer.reset_dead_codes(schedule.reset_threshold, generator, schedule.reset_min_draws)
            else:
                quantizer.usage.zero_()
        bar.update(1)
        if report is not None and ((step + 1) % REPORT_EVERY == 0 or step == schedule.steps - 1):
            report(step + 1, schedule.steps)
        if step % 50 == 0 or step == schedule.steps - 1:  # host syncs: logging and the curve only
            logged = {"loss": loss.item(), **{k: v.item() for k, v in diag.items()}}
            bar.set_postfix({k: f"{v:.4g}" for k, v in logged.items()}, refresh=False)
        if step in at:
            module.eval()
            curve.append({"step": step + 1, "train_loss": float(loss_sum) / loss_n, **monitor()})
            module.train()
            loss_sum.zero_()
            loss_n = 0
    bar.close()
    module.eval()
    return {**logged, "codes_moved": int(moved), "curve": curve}
