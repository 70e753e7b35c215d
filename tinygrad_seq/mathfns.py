"""Function forms of the Tensor math methods, as PyTorch has both: `tg.exp(x)` is `x.exp()`.

Each `tg.f(input, *args, **kw)` calls `input.f(*args, **kw)` (PyTorch names the first argument `input`);
`einsum` and `pow` with a number base are the only ones that are not plain method calls.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

from . import ops
from .tensor import Tensor

_METHODS = """exp log sin cos tan tanh sigmoid relu softmax log_softmax sqrt rsqrt abs sign floor ceil round
    log2 log10 log1p expm1 exp2 square sinh cosh asin acos atan atan2 arcsin arccos arctan arctan2
    matmul mm bmm outer dot triu tril topk sort argsort argmax argmin max min amax amin cumsum cumprod
    norm dist allclose equal isnan isinf isfinite clone numel prod sum mean var std logsumexp
    clamp clip clamp_min clamp_max neg reciprocal""".split()

__all__ = _METHODS + ["pow", "einsum"]


def _bind(name: str) -> Callable[..., Any]:
    def fn(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"tg.{name}(input, ...) = input.{name}(...)"
    return fn


for _name in _METHODS:
    globals()[_name] = _bind(_name)


def pow(input: Tensor | numbers.Number, exponent: Tensor | numbers.Number) -> Tensor:
    """input ** exponent; either may be a number (not both)"""
    if isinstance(input, Tensor):
        return input ** exponent
    if isinstance(exponent, Tensor):
        return exponent.__rpow__(input)
    raise TypeError(f"pow(): expected a Tensor as input or exponent, got {type(input).__name__} and "
                    f"{type(exponent).__name__}")


def einsum(equation: str, *operands: Tensor) -> Tensor:
    """Einstein summation (NumPy's forward, '...' and an implicit output allowed); differentiable in
    every operand. Operands may also be passed as one list, as PyTorch allows."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for i, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operand {i} must be a Tensor, not {type(t).__name__}")
    return ops.Einsum.apply(*operands, equation=equation)
