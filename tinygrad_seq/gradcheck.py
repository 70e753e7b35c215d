"""`gradcheck`: compare backward() with float64 central differences."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .autograd import grad, no_grad
from .tensor import Tensor


@no_grad()  # forward passes only: recording graphs would just cost time
def numerical_grads(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6) -> list[np.ndarray]:
    """d sum(fn(*inputs) * w) / d input by central differences, w a fixed random projection."""
    out = fn(*inputs)
    w = np.random.default_rng(0).standard_normal(out.shape)
    grads = []
    for x in inputs:
        g = np.zeros(x.numpy().shape, x.numpy().dtype)  # C order, like .flat
        if x.requires_grad:
            flat, gflat = x.numpy().flat, g.reshape(-1)  # .flat writes through even for non-contiguous data
            for i in range(x.numpy().size):
                old = flat[i]
                flat[i] = old + eps
                fp = float((fn(*inputs).numpy() * w).sum())
                flat[i] = old - eps
                fm = float((fn(*inputs).numpy() * w).sum())
                flat[i] = old
                gflat[i] = (fp - fm) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check the analytic gradient of `fn` at `inputs` (float64 tensors) against finite differences.

    Returns True, or raises AssertionError naming the input and the worst element (False if
    `raise_exception=False`).
    """
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; use float64 inputs for finite differences")
    out = fn(*inputs)
    w = np.random.default_rng(0).standard_normal(out.shape)
    wrt = [x for x in inputs if x.requires_grad]
    # autograd.grad, not backward(): the inputs' .grad stay as they were
    got = iter(grad(out, wrt, grad_outputs=w, allow_unused=True))
    analytic = [(next(got) if x.requires_grad else None) for x in inputs]
    analytic = [np.zeros_like(x.numpy()) if a is None else a.numpy() for a, x in zip(analytic, inputs)]
    numeric = numerical_grads(fn, inputs, eps)
    for i, (a, n, x) in enumerate(zip(analytic, numeric, inputs)):
        if not x.requires_grad:
            continue
        if not np.allclose(a, n, atol=atol, rtol=rtol):
            err = np.abs(a - n)
            j = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
            msg = (f"gradcheck: input {i} (shape {x.shape}): analytic {a[j]:.6g} vs numeric {n[j]:.6g} "
                   f"at index {j}, max abs error {err.max():.3g}")
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
