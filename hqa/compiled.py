"""Optional ``torch.compile`` of the suite's element-wise hot spots, with an eager fallback.

Two kernels are worth fusing on a CPU (measured, ``python -m benchmarks.speed``): the
quantizer's pass over the [N, K] distances (:func:`hqa.quantize.gumbel_terms`) and Mish
(:mod:`hqa.activation`). Each is wrapped once per process in a :class:`Compiled`, so a
kernel compiled for one layer, seed or task is reused by the next; modules opt in through
``use_compile`` and :func:`use_compile` switches a whole model.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable

import torch
from torch import nn


NO_CUDA_NOTICE = "No CUDA runtime is found"
_CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"


class _DropNoCudaNotice(logging.Filter):
    """Drops torch's "No CUDA runtime is found, using CUDA_HOME=..." notice, which every
    process that compiles prints on a machine without a GPU, where none is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return NO_CUDA_NOTICE not in record.getMessage()


def silence_no_cuda_notice() -> None:
    """Install :class:`_DropNoCudaNotice` on torch's C++-extension logger (once per process;
    every other message of that logger still shows)."""
    logger = logging.getLogger(_CPP_EXTENSION_LOGGER)
    if not any(isinstance(f, _DropNoCudaNotice) for f in logger.filters):
        logger.addFilter(_DropNoCudaNotice())


class Compiled:
    """``fn`` run through ``torch.compile`` (compiled at the first call), or eagerly, with one
    warning, wherever compilation fails (no C++ compiler, unsupported platform). The eager
    path is ``fallback`` when given (an equal function that is faster uncompiled), else
    ``fn``; an error that ``fn`` itself raises is raised again by the eager call."""

    def __init__(self, fn: Callable[..., Any], fallback: Callable[..., Any] | None = None, **options: Any) -> None:
        self.compilable = fn
        self.eager = fallback or fn
        self.options = options
        self.fn: Callable[..., Any] | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.eager(*args)
        try:
            if self.fn is None:
                if not torch.cuda.is_available():
                    silence_no_cuda_notice()
                self.fn = torch.compile(self.compilable, **self.options)
            return self.fn(*args)
        except Exception as exc:  # compilation happens inside the first call for each shape
            self.failed = True
            warnings.warn(
                f"torch.compile unavailable for {self.compilable.__name__} ({type(exc).__name__}); running it eagerly",
                stacklevel=2,
            )
            return self.eager(*args)


def use_compile(model: nn.Module, enabled: bool) -> None:
    """Switch every submodule of ``model`` that has fused kernels (quantizers, Mish) to its
    compiled (``enabled``) or eager path. Same values either way, to float rounding."""
    for module in model.modules():
        if module is not model and hasattr(module, "use_compile"):
            module.use_compile(enabled)
