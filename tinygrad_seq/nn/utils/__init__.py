"""Gradient utilities: clip_grad_norm_, clip_grad_value_ (as torch.nn.utils).

Both replace `p.grad` with a new Tensor rather than writing into its array, which may be shared."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ...tensor import Tensor
from . import rnn  # noqa: F401,E402


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters[{i}] is {type(p).__name__}, not a Tensor")
    return [p for p in params if p.grad is not None]


def _vector_norm(g: np.ndarray, norm_type: float) -> float:
    """||g||_p of the flattened array, computed in float64."""
    a = np.abs(g.astype(np.float64, copy=False)).ravel()
    if a.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(a.max())
    if norm_type == -math.inf:
        return float(a.min())
    if norm_type == 0:
        return float(np.count_nonzero(a))
    if norm_type == 2:
        return float(np.sqrt(a @ a))
    if norm_type == 1:
        return float(a.sum())
    return float((a ** norm_type).sum() ** (1.0 / norm_type))


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their total norm is at most `max_norm`.

    total = || (||g_1||_p, ..., ||g_n||_p) ||_p  (the p-norm of all gradients as one vector);
    every g <- g * min(1, max_norm / (total + 1e-6)). Returns `total` (a 0-d Tensor, in the gradients'
    dtype). With error_if_nonfinite, a NaN/inf total raises RuntimeError and nothing changes."""
    norm_type = float(norm_type)
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm!r}")
    params = _with_grads(parameters)
    if not params:
        return Tensor(np.zeros((), np.float32))
    dtype = np.result_type(*[p.grad.numpy().dtype for p in params])
    total = _vector_norm(np.array([_vector_norm(p.grad.numpy(), norm_type) for p in params]), norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    with np.errstate(invalid="ignore"):  # a NaN/inf total makes NaN gradients, silently, as in PyTorch
        coef = min(max_norm / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
        if coef < 1.0 or math.isnan(coef):
            for p in params:
                g = p.grad.numpy()
                p.grad = Tensor._wrap(g * g.dtype.type(coef))
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for p in _with_grads(parameters):
        p.grad = Tensor._wrap(np.clip(p.grad.numpy(), -clip_value, clip_value))
