import pytest
import torch
import torch.nn.functional as F

from hqa import compiled
from hqa.activation import Mish, mish_rational, mish_rational_grad


def _points() -> torch.Tensor:
    """Both tails, the bend near 0 and both sides of the clamp at 20."""
    return torch.cat([torch.linspace(-40, 40, 801), torch.tensor([-1e4, -0.3, 19.9, 20.0, 20.1, 1e4])]).double()


def test_one_exp_mish_equals_torch_mish() -> None:
    x = _points()
    torch.testing.assert_close(mish_rational(x), F.mish(x), rtol=1e-12, atol=1e-12)


def test_one_exp_mish_slope_equals_autograd_of_torch_mish() -> None:
    x = _points().requires_grad_()
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    (expected,) = torch.autograd.grad(F.mish(x), x, grad_out)
    torch.testing.assert_close(mish_rational_grad(x.detach(), grad_out), expected, rtol=1e-10, atol=1e-12)


def test_mish_module_is_torch_mish_until_switched() -> None:
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(Mish()(x), F.mish(x), rtol=0, atol=0)


def test_fused_mish_falls_back_to_torch_kernels(monkeypatch) -> None:
    """Without a compiler the fused module still gives Mish and its gradient (PyTorch's own
    kernels), after one warning."""

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(compiled.torch, "compile", broken)
    from hqa import activation

    monkeypatch.setattr(activation, "_FORWARD", compiled.Compiled(mish_rational, fallback=F.mish))
    monkeypatch.setattr(activation, "_BACKWARD", compiled.Compiled(mish_rational_grad, fallback=activation._aten_mish_grad))
    m = Mish()
    m.use_compile(True)
    x = torch.randn(50, requires_grad=True)
    with pytest.warns(UserWarning, match="torch.compile unavailable for mish_rational"):
        y = m(x)
        y.sum().backward()
    torch.testing.assert_close(y, F.mish(x))
    (expected,) = torch.autograd.grad(F.mish(x).sum(), x)
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.slow
def test_compiled_mish_equals_torch_mish_with_gradients() -> None:
    m = Mish()
    m.use_compile(True)
    x = (torch.randn(3, 8, 5, 5) * 8).requires_grad_()
    y = m(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    (expected,) = torch.autograd.grad(F.mish(x).sum(), x)
    torch.testing.assert_close(y, F.mish(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(m(x.detach()), F.mish(x.detach()), rtol=1e-5, atol=1e-6)


def test_no_cuda_notice_is_dropped_and_other_messages_kept() -> None:
    import logging

    from hqa.compiled import NO_CUDA_NOTICE, silence_no_cuda_notice

    logger = logging.getLogger("torch.utils.cpp_extension")
    silence_no_cuda_notice()
    silence_no_cuda_notice()  # idempotent: one filter
    assert sum(type(f).__name__ == "_DropNoCudaNotice" for f in logger.filters) == 1
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("%s, using CUDA_HOME='%s'", NO_CUDA_NOTICE, "/usr/local")
        logger.warning("a compiler error the user must see")
    finally:
        logger.removeHandler(handler)
    assert seen == ["a compiler error the user must see"]
