"""The one interface every compression system in the suite answers (DESIGN.md).

A system transmits ``rates[k-1]`` bits per image at layer k (1 = bottom) and answers
``encode``, ``decode``, ``reconstruct``, ``encode_continuous``, ``decode_continuous``,
``fit``, ``save`` and ``load``. Subclasses supply four things: the z_e of a layer, the
quantizer of a layer, the decode path from a layer's quantized latents, and how to train a
layer; input checking, persistence and the greedy/per-rate training loop live here once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .checkpoint import load_checkpoint, save_checkpoint
from .checks import check_codes, check_continuous, check_images, check_layer
from .allocator import keep_freed_memory
from .compiled import use_compile
from .config import HQAConfig
from .layer import QuantizedAutoencoder
from .quantize import Quantizer
from .train import Schedule, StepLoss, init_batch_size, steps_for, train_stage

# Held-out images of the learning curve (fit(heldout=...)) decoded per point; the same
# images and the same sampling noise at every point, so the curve shows the model moving.
CURVE_SEED = 12_345


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def schedule_for(config: HQAConfig, steps: int) -> Schedule:
    """The optimisation settings of ``config`` for a stage of ``steps`` steps."""
    return Schedule(
        steps=steps,
        lr=config.lr,
        lr_final_ratio=config.lr_final_ratio,
        flat_fraction=config.flat_fraction,
        grad_clip=config.grad_clip,
        temp_start=config.temp_start,
        temp_end=config.temp_end,
        reset_every=config.reset_every,
        reset_threshold=config.reset_threshold,
        reset_min_draws=config.reset_min_draws,
    )


def per_layer(value: int | Sequence[int], n: int, name: str) -> list[int]:
    """Broadcast an int, or check a per-layer sequence, to a list of ``n`` ints."""
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or {n} positive ints, got {value!r}")
    return values


@dataclass(frozen=True)
class FitRun:
    """What one :meth:`CompressionSystem.fit` call trains every layer with.

    ``autocast_dtype``: bfloat16 for mixed precision, else None. ``heldout``: images
    [M, C, H, W] whose metrics are logged at ``curve_points`` evenly spaced steps of each
    layer (the learning curve; None: no curve).
    """

    batch_sizes: tuple[int, ...]  # per layer, bottom first
    seed: int
    device: torch.device
    progress: bool = True
    autocast_dtype: torch.dtype | None = None
    heldout: Tensor | None = None
    curve_points: int = 0
    # (what is training, e.g. "HQA layer 2/5", steps done, steps in all): progress for another process
    report: Callable[[str, int, int], None] | None = None


def layer_seed(seed: int, layer: int) -> int:
    """The seed of layer ``layer``'s initialisation and batches: depends on nothing else."""
    return seed * 1000 + layer


class CompressionSystem(nn.Module):
    """Base class of every system: a stack of ``config.num_layers`` rates, trained per layer."""

    kind = "CompressionSystem"
    # True when each rate is its own model trained from pixels (the VQ-VAE family), not a
    # layer on a frozen stack: run profiles may budget its steps differently.
    independent_rates = False

    def __init__(self, config: HQAConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("trained", torch.zeros((), dtype=torch.long))
        self.fit_log: list[dict[str, Any]] = []

    # ---- what subclasses supply ----
    def _z_e(self, x: Tensor, layer: int) -> Tensor:
        """Continuous latents [B, D, h, w] of ``layer`` for images [B, C, H, W]."""
        raise NotImplementedError

    def _quantizer(self, layer: int) -> Quantizer:
        raise NotImplementedError

    def _decode_from(self, z_q: Tensor, layer: int, generator: torch.Generator | None) -> Tensor:
        """Images [B, C, H, W] from quantized latents [B, D, h, w] of ``layer``."""
        raise NotImplementedError

    def _latent_dim(self, layer: int) -> int:
        """D, the channels of ``layer``'s continuous latents (the code dimension by default)."""
        return self.config.code_dim

    def _fit_layer(self, k: int, images: Tensor, epochs: int, run: FitRun) -> dict[str, Any]:
        """Train layer k; return its log (steps, diagnostics, learning curve)."""
        raise NotImplementedError

    @torch.no_grad()
    def _heldout_metrics(self, k: int, images: Tensor) -> dict[str, float]:
        """The learning curve's held-out metrics of layer k: pixel MSE of reconstructions
        (test-time semantics: sampled where the system is stochastic, with a fixed seed).
        Hierarchies add the layer's error in its own target space."""
        gen = torch.Generator(device=self.device).manual_seed(CURVE_SEED + k)
        x = images.to(self.device)
        return {"heldout_pixel_mse": float(((self.reconstruct(x, k, gen) - x) ** 2).mean())}

    # ---- facts ----
    @property
    def rates(self) -> list[int]:
        """Bits per image transmitted at each layer, bottom first."""
        return [self.config.bits(k) for k in range(1, self.config.num_layers + 1)]

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def trained_layers(self) -> int:
        """How many layers, from the bottom, have been trained."""
        return int(self.trained)

    @property
    def device(self) -> torch.device:
        return self.trained.device

    @property
    def stochastic(self) -> bool:
        """Whether decoding depends on the generator."""
        return any(self._quantizer(k).stochastic for k in range(1, self.num_layers + 1))

    # ---- the interface ----
    @torch.inference_mode()
    def encode_continuous(self, x: Tensor, layer: int) -> Tensor:
        """z_e of ``layer`` before quantization: [B, C, H, W] -> [B, D, h, w]."""
        check_layer(layer, self.num_layers)
        check_images(x, self.config.channels, self.config.image_size)
        return self._z_e(x.to(self.device), layer)

    @torch.inference_mode()
    def encode(self, x: Tensor, layer: int, generator: torch.Generator | None = None) -> Tensor:
        """Integer codes of ``layer``: [B, C, H, W] -> LongTensor [B, h, w].

        The most probable code, or a posterior sample when ``generator`` is given
        (stochastic quantizers only; deterministic ones ignore it).
        """
        z_e = self.encode_continuous(x, layer)  # validates x and layer first
        return self._quantizer(layer).quantize(z_e, generator)

    @torch.inference_mode()
    def posterior(self, x: Tensor, layer: int) -> Tensor:
        """q(z | x) of ``layer``'s quantizer at every latent position: [B, C, H, W] ->
        [B, h, w, K] probabilities (one-hot for deterministic quantizers); what
        :meth:`encode` samples from, or takes the mode of."""
        return self._quantizer(layer).posterior(self.encode_continuous(x, layer))

    @torch.inference_mode()
    def decode(self, codes: Tensor, layer: int, generator: torch.Generator | None = None) -> Tensor:
        """Images from codes of ``layer``: LongTensor [B, h, w] -> [B, C, H, W] in [0, 1].

        Stochastic systems sample on the way down when ``generator`` is given (the same
        generator state gives the same images); without one they take the most probable code.
        """
        check_layer(layer, self.num_layers)
        check_codes(codes, self.config.latent_size(layer), self.config.codes(layer))
        z_q = self._quantizer(layer).lookup(codes.to(self.device).long())
        return self._decode_from(z_q, layer, generator)

    @torch.inference_mode()
    def decode_continuous(self, z: Tensor, layer: int, generator: torch.Generator | None = None) -> Tensor:
        """Quantize a z_e of ``layer`` (e.g. an interpolation) and decode: [B, D, h, w] -> images."""
        check_layer(layer, self.num_layers)
        check_continuous(z, self._latent_dim(layer), self.config.latent_size(layer))
        quantizer = self._quantizer(layer)
        codes = quantizer.quantize(z.to(self.device), generator)
        return self._decode_from(quantizer.lookup(codes), layer, generator)

    def reconstruct(self, x: Tensor, layer: int, generator: torch.Generator | None = None) -> Tensor:
        """decode(encode(x)) at ``layer``: [B, C, H, W] -> [B, C, H, W]."""
        return self.decode(self.encode(x, layer, generator), layer, generator)

    # ---- training ----
    def fit(
        self,
        images: Tensor,
        epochs: int | Sequence[int],
        batch_size: int | Sequence[int] = 64,
        seed: int = 0,
        device: str | torch.device = "cpu",
        layers: int | None = None,
        progress: bool = True,
        compile: bool | None = None,
        mixed_precision: bool = False,
        heldout: Tensor | None = None,
        curve_points: int = 16,
        report: Callable[[str, int, int], None] | None = None,
    ) -> "CompressionSystem":
        """Train layers bottom first; layers already trained (e.g. loaded) are kept.

        ``images``: [N, C, H, W] in [0, 1]. ``epochs`` and ``batch_size``: one int, or one per layer.
        ``layers=k`` trains the bottom k only. Layer k's initialisation and batches come
        from ``seed`` and k alone, so a layer trained here equals one trained elsewhere.
        ``compile`` switches the model to its fused, ``torch.compile``d kernels (quantizer
        pass, Mish; see :meth:`use_compile`) for this training and afterwards; None (the
        default) compiles where it pays: on CUDA, and on CPU when the layers this call trains
        process enough images in all to repay ~30 s of compiling (:func:`compile_pays`). Such a
        CPU fit also makes this process keep freed memory (:func:`hqa.allocator.keep_freed_memory`:
        a process-wide glibc setting, 1.7x faster steps at large batches; the process keeps
        its peak memory). ``mixed_precision=True`` trains under
        bfloat16 autocast (for GPUs: convolutions in bfloat16, which needs no loss scaling;
        the quantizer stays float32). Evaluation is always float32. ``heldout``: images
        [M, C, H, W] (e.g. a fixed slice of the validation images) measured at ``curve_points``
        steps of each layer; the curve is in ``fit_log[i]["curve"]``. ``report(what, step, steps)``
        is told every few steps which layer trains and how far it is (the sweep's progress board).
        """
        check_images(images, self.config.channels, self.config.image_size)
        if heldout is not None:
            check_images(heldout, self.config.channels, self.config.image_size)
        top = self.num_layers if layers is None else layers
        check_layer(top, self.num_layers)
        epochs_per = per_layer(epochs, self.num_layers, "epochs")
        batches = per_layer(batch_size, self.num_layers, "batch_size")
        dev = resolve_device(device)
        self.to(dev)
        todo = range(self.trained_layers + 1, top + 1)
        work = sum(steps_for(epochs_per[k - 1], len(images), batches[k - 1]) * batches[k - 1] for k in todo)
        pays = compile_pays(dev, work)
        self.use_compile(pays if compile is None else compile)
        if pays and dev.type == "cpu":
            keep_freed_memory()  # large per-step tensors reused, not page-faulted in again (hqa.allocator)
        run = FitRun(
            tuple(batches), seed, dev, progress, torch.bfloat16 if mixed_precision else None, heldout, curve_points,
            report,
        )
        for k in todo:
            start = time.perf_counter()
            log = self._fit_layer(k, images, epochs_per[k - 1], run)
            self.trained.fill_(k)
            self.fit_log.append({"layer": k, "seconds": time.perf_counter() - start, **log})
        return self

    def use_compile(self, enabled: bool) -> "CompressionSystem":
        """Run the fused ``torch.compile`` kernels (quantizer training pass, Mish) from now
        on, or (False) PyTorch's eager ones. Same values to float rounding; compiling costs
        ~10-20 s once per process, and falls back to eager (one warning) where it fails."""
        use_compile(self, enabled)
        return self

    # ---- persistence ----
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and config atomically; reload with :meth:`load`."""
        save_checkpoint(path, self.kind, self.config.to_dict(), self.state_dict(), {"fit_log": self.fit_log})

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expect_config: HQAConfig | None = None, device: str = "cpu"
    ) -> "CompressionSystem":
        """Read a model written by :meth:`save`; with ``expect_config``, refuse any other config."""
        cfg_dict, state, extra = load_checkpoint(path, cls.kind)
        try:
            config = HQAConfig.from_dict(cfg_dict)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint {path} holds an invalid config: {exc}") from None
        if expect_config is not None and config != expect_config:
            diff = sorted(k for k, v in config.to_dict().items() if expect_config.to_dict()[k] != v)
            raise ValueError(f"checkpoint {path} was made with another config (differs in {diff})")
        model = cls(config)
        try:
            model.load_state_dict(state)
        except RuntimeError:
            raise ValueError(f"checkpoint {path} does not match its config (weights of other shapes)") from None
        model.fit_log = list(extra.get("fit_log", []))
        return model.to(resolve_device(device))

    def _train_unit(
        self,
        unit: QuantizedAutoencoder,
        build: Callable[[], QuantizedAutoencoder],
        step_loss: StepLoss,
        data: Tensor,
        k: int,
        epochs: int,
        run: FitRun,
    ) -> dict[str, Any]:
        """Re-initialise ``unit`` from ``build()`` under layer k's seed, then train it."""
        with torch.random.fork_rng(devices=[]):  # initialisation leaves the global RNG alone
            torch.manual_seed(layer_seed(run.seed, k))
            fresh = build()
        unit.load_state_dict(fresh.state_dict())
        unit.pending_init = True
        generator = torch.Generator(device=run.device).manual_seed(layer_seed(run.seed, k))
        batch_size = run.batch_sizes[k - 1]
        steps = steps_for(epochs, len(data), batch_size)
        heldout = run.heldout
        desc = f"{self.kind} layer {k}/{self.num_layers}"
        report = None if run.report is None else (lambda step, total: run.report(desc, step, total))
        diag = train_stage(
            unit,
            step_loss,
            data,
            batch_size,
            schedule_for(self.config, steps),
            generator,
            quantizer=unit.quantizer,
            code_reset=self.config.code_reset,
            desc=desc,
            progress=run.progress,
            report=report,
            autocast_dtype=run.autocast_dtype,
            monitor=None if heldout is None else lambda: self._heldout_metrics(k, heldout),
            monitor_points=run.curve_points,
            init_size=init_batch_size(batch_size, self.config.codes(k), self.config.latent_size(k) ** 2, len(data)),
        )
        return {"steps": steps, "batch_size": batch_size, **diag}


# CPU work (training images x steps) above which fit() compiles by default: ~30 s of compiling
# pays for itself where the eager quantizer pass would take minutes (measured 1.4-2.7x).
COMPILE_MIN_WORK = 200_000


def compile_pays(device: torch.device, work: int) -> bool:
    """Whether fit() should compile by default: on CUDA always, on CPU for ``work`` (images
    through the training step) of at least :data:`COMPILE_MIN_WORK`."""
    return device.type == "cuda" or work >= COMPILE_MIN_WORK
