"""Batch normalisation with PyTorch's semantics: `F.batch_norm`, `BatchNorm1d`, `BatchNorm2d`, `BatchNorm3d`.

    y = γ (x - μ_B) / √(σ²_B + ε) + β

μ_B and the biased σ²_B are taken per channel (dim 1) over the batch and every position (all dims but 1).
In training the running estimates move towards the batch's: `r ← (1 - m) r + m · stat`, with the
*unbiased* variance n/(n-1) σ²_B for running_var (n = values per channel), as PyTorch; `momentum=None`
makes m = 1/num_batches_tracked (a cumulative average). In evaluation the running estimates replace μ_B
and σ²_B, so a sample's output no longer depends on the rest of its batch.

Unlike LayerNorm (statistics over one sample's features), the training-mode output of one sample depends
on every other sample in the batch and on any padding: see `tinygrad-seq norms`.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import Tensor
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "batch_norm"]


def _channel(a: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (1, C, 1, ...) so it broadcasts against an (N, C, ...) input."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNorm(ops.Function):
    """y = x̂ w + b,  x̂ = (x - μ) rstd,  rstd = 1/√(σ² + ε), μ and σ² per channel (given: batch or running).
    batch statistics: dx = rstd (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)) over all dims but 1, with ĝ = g w;
    running statistics (constants): dx = rstd ĝ;   dw = Σ g x̂,  db = Σ g (over all dims but 1)"""
    saves = (1,)

    def forward(self, x, *wb, mean, var, eps=1e-5, batch_stats=True, has_w=True, has_b=True):
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.batch_stats = batch_stats
        self.rstd = _channel(1.0 / np.sqrt(var + eps), x.ndim).astype(x.dtype, copy=False)
        self.xhat = xhat = (x - _channel(mean, x.ndim).astype(x.dtype, copy=False)) * self.rstd
        self.w = _channel(wb[0], x.ndim) if has_w else None
        self.has_b = has_b
        out = xhat * self.w if has_w else xhat.copy()
        if has_b:
            out += _channel(wb[-1], x.ndim)
        return out

    def backward(self, g):
        xhat, w, axes = self.xhat, self.w, self.axes
        grads = []
        if self.needs[0]:
            gh = g * w if w is not None else g
            if self.batch_stats:  # μ and σ² depend on x: the two extra terms are their paths
                m1 = gh.mean(axis=axes, keepdims=True)
                m2 = (gh * xhat).mean(axis=axes, keepdims=True)
                grads.append(self.rstd * (gh - m1 - xhat * m2))
            else:
                grads.append(self.rstd * gh)
        else:
            grads.append(None)
        if w is not None:
            grads.append((g * xhat).sum(axis=axes) if self.needs[1] else None)
        if self.has_b:
            grads.append(g.sum(axis=axes) if self.needs[-1] else None)
        return tuple(grads) if len(grads) > 1 else grads[0]


ops.REGISTRY.setdefault("BatchNorm", BatchNorm)


def _check_channels(name: str, t: Tensor | None, c: int, shape: tuple) -> None:
    if t is not None and t.numel() != c:
        raise RuntimeError(f"batch_norm: {name} should contain {c} elements not {t.numel()} "
                           f"(input shape {shape}, channels are dim 1)")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """y = (x - μ) / √(σ² + ε) * weight + bias per channel (dim 1).

    training=True: μ, σ² (biased) of this batch over all dims but 1; running_mean / running_var, when
    given, are updated in place: r ← (1 - momentum) r + momentum · stat (unbiased variance).
    training=False: μ, σ² are running_mean / running_var (both required).
    """
    x = input
    if x.ndim < 2:
        raise IndexError(f"batch_norm: expected an input with a channel dim 1, (N, C, ...), got shape {x.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    if not training and running_mean is None:
        raise RuntimeError("batch_norm: running_mean and running_var must be defined in evaluation mode "
                           "(training=False)")
    if momentum is None or not isinstance(momentum, (int, float, np.floating, np.integer)):
        raise TypeError(f"batch_norm: momentum must be a float, got {type(momentum).__name__}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_channels(name, t, c, x.shape)
    xa = x.numpy()
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        n = xa.size // c if c else 0
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        mean = xa.mean(axis=axes)
        var = np.square(xa - _channel(mean, x.ndim)).mean(axis=axes)
        if running_mean is not None:
            # written into the buffers' arrays, outside the graph, as torch's no-grad in-place update
            rm, rv = running_mean.numpy(), running_var.numpy()
            rm *= 1 - momentum
            rm += momentum * mean
            rv *= 1 - momentum
            rv += momentum * var * (n / (n - 1))
    else:
        mean, var = running_mean.numpy(), running_var.numpy()
    wb = [t for t in (weight, bias) if t is not None]
    return BatchNorm.apply(x, *wb, mean=mean, var=var, eps=eps, batch_stats=training,
                           has_w=weight is not None, has_b=bias is not None)


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d/3d: weight γ = 1, bias β = 0 (if affine), buffers running_mean = 0,
    running_var = 1, num_batches_tracked = 0 (int64) when track_running_stats."""
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"{type(self).__name__}: only device='cpu' is supported, got {device!r}")
        dt = np.dtype(dtype or np.float32)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.use_bias = affine and bias
        if affine:
            self.weight = Parameter(np.ones(num_features, dt))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dt))
            self.register_buffer("running_var", np.ones(num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.numpy()[...] = 0
            self.running_var.numpy()[...] = 1
            self.num_batches_tracked.numpy()[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.numpy()[...] = 1
            if self.bias is not None:
                self.bias.numpy()[...] = 0

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{type(self).__name__}({self.extra_repr()}): expected {want} input "
                             f"(got {x.ndim}D input of shape {tuple(x.shape)})")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked.numpy()
            nbt += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(nbt)
        # batch statistics in training, and in eval when there are no running ones to use
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        try:
            return batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                              self.weight, self.bias, use_batch, factor, self.eps)
        except (ValueError, RuntimeError) as e:
            raise type(e)(f"{type(self).__name__}({self.extra_repr()}): {e}") from None

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.use_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """y = γ (x - μ_B) / √(σ²_B + ε) + β per channel, over N (and L) of an (N, C) or (N, C, L) input"""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """y = γ (x - μ_B) / √(σ²_B + ε) + β per channel, over N, H, W of an (N, C, H, W) input"""
    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    """y = γ (x - μ_B) / √(σ²_B + ε) + β per channel, over N, D, H, W of an (N, C, D, H, W) input"""
    _dims = (5,)
