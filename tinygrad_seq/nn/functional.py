"""Functional forms of the layers, activations and losses (`import tinygrad_seq.nn.functional as F`).

Every function checks its arguments' shapes and raises a ValueError naming the function and the shapes
before computing anything. The losses live in `tinygrad_seq.losses` and are re-exported here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import ops
from ..tensor import Tensor, rng
from ..tensor import pad as _tensor_pad
from ..losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: F401
                      huber_loss, kl_div, l1_loss, mse_loss, multi_margin_loss, nll_loss, smooth_l1_loss)


def _tuple(v, n: int, name: str, fn: str) -> tuple:
    """An int or a length-n sequence of ints -> a length-n tuple (PyTorch's _single/_pair)."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise ValueError(f"{fn}: {name} must be an int or {n} ints, got {v}")
    return v


# ---------------------------------------------------------------- linear, embedding, normalisation

def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b  (weight: out_features × in_features, as PyTorch)"""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input shape {x.shape} does not match weight shape {weight.shape} "
                         f"(last dim {x.shape[-1]} vs in_features {weight.shape[-1]})")
    if bias is None:
        return ops.Linear.apply(x, weight)
    return ops.Linear.apply(x, weight, bias)


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """y[...] = W[idx[...]] (rows of the weight); the row `padding_idx` receives no gradient."""
    idx = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"embedding: index out of range [0, {n}) (min {idx.min()}, max {idx.max()})")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} out of range for {n} embeddings")
        padding_idx %= n
    return ops.Embedding.apply(weight, idx=idx, padding_idx=padding_idx)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) from tg.rng() (inverted dropout); identity if not training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    mask = (rng().random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    mask *= 1.0 / (1.0 - p)
    return x * mask


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - μ) / √(σ² + ε) * weight + bias, μ and (biased) σ² over the trailing `normalized_shape` dims."""
    ns = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if x.shape[x.ndim - len(ns):] != ns or x.ndim < len(ns):
        raise ValueError(f"layer_norm: input shape {x.shape} does not end with normalized_shape {ns}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != ns:
            raise ValueError(f"layer_norm: {name} shape {t.shape} != normalized_shape {ns}")
    wb = [t for t in (weight, bias) if t is not None]
    return ops.LayerNorm.apply(x, *wb, ndim=len(ns), eps=eps, has_w=weight is not None, has_b=bias is not None)


# ---------------------------------------------------------------- convolution, pooling, padding

def _conv(x: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int, d: int) -> Tensor:
    fn = f"conv{d}d"
    if groups != 1:
        raise NotImplementedError(f"{fn}: only groups=1 is supported")
    if weight.ndim != d + 2:
        raise ValueError(f"{fn}: weight must be {d + 2}-D (out_channels, in_channels, *kernel), got {weight.shape}")
    unbatched = x.ndim == d + 1
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D (unbatched) or {d + 2}-D (batched) input, got shape {x.shape}")
    if unbatched:
        x = x.unsqueeze(0)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{fn}: input shape {x.shape} has {x.shape[1]} channels but weight shape "
                         f"{weight.shape} expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{fn}: bias shape {bias.shape} != (out_channels,) = ({weight.shape[0]},)")
    if isinstance(padding, str):
        x, padding = _string_padding(fn, x, weight, padding, stride, dilation, d)
    stride, padding, dilation = (_tuple(v, d, n, fn) for v, n in ((stride, "stride"), (padding, "padding"),
                                                                  (dilation, "dilation")))
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{fn}: stride and dilation must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}, dilation={dilation}")
    for i in range(d):
        ext = dilation[i] * (weight.shape[2 + i] - 1) + 1
        if x.shape[2 + i] + 2 * padding[i] < ext:
            raise ValueError(f"{fn}: padded input shape {x.shape} (padding {padding}) is smaller than the "
                             f"dilated kernel of weight shape {weight.shape}")
    args = (x, weight) if bias is None else (x, weight, bias)
    out = ops.ConvNd.apply(*args, stride=stride, padding=padding, dilation=dilation)
    return out[0] if unbatched else out


def _string_padding(fn: str, x: Tensor, weight: Tensor, padding: str, stride, dilation, d: int):
    """padding='valid' (none) or 'same' (output size = input size, stride 1; an odd total pads one more
    on the right, as PyTorch) -> (possibly padded x, numeric padding)."""
    if padding == "valid":
        return x, 0
    if padding != "same":
        raise ValueError(f"{fn}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    if _tuple(stride, d, "stride", fn) != (1,) * d:
        raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions (stride={stride})")
    dil = _tuple(dilation, d, "dilation", fn)
    total = [dl * (k - 1) for dl, k in zip(dil, weight.shape[2:])]
    if all(t % 2 == 0 for t in total):
        return x, tuple(t // 2 for t in total)
    widths = []
    for t in reversed(total):  # F.pad lists the last dim first
        widths += [t // 2, t - t // 2]
    return pad(x, widths), 0


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """y[n,o,l] = b[o] + Σ_{c,k} w[o,c,k] xpad[n, c, l*stride + k*dilation]  (x: (N, C, L) or (C, L))"""
    return _conv(x, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """y[n,o,i,j] = b[o] + Σ_{c,ki,kj} w[o,c,ki,kj] xpad[n, c, i*s + ki*dil, j*s + kj*dil]  (x: (N,C,H,W) or (C,H,W))"""
    return _conv(x, weight, bias, stride, padding, dilation, groups, 2)


def _pool_args(fn: str, x: Tensor, kernel_size, stride, padding, d: int = 2):
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D or {d + 2}-D input, got shape {x.shape}")
    k = _tuple(kernel_size, d, "kernel_size", fn)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _tuple(stride, d, "stride", fn)
    p = _tuple(padding, d, "padding", fn)
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"{fn}: kernel_size and stride must be >= 1 and padding >= 0, got {k}, {s}, {p}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{fn}: padding {p} should be at most half of kernel_size {k}")
    for i in range(d):
        if x.shape[x.ndim - d + i] + 2 * p[i] < k[i]:
            raise ValueError(f"{fn}: input shape {x.shape} (padding {p}) is smaller than kernel_size {k}")
    return k, s, p


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1) -> Tensor:
    """y[n,c,i,j] = max over the window xpad[n, c, i*s + ki*dil, j*s + kj*dil] (padding counts as -inf)"""
    k, s, p = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    dl = _tuple(dilation, 2, "dilation", "max_pool2d")
    unbatched = x.ndim == 3
    xb = x.unsqueeze(0) if unbatched else x
    out = ops.MaxPoolNd.apply(xb, kernel_size=k, stride=s, padding=p, dilation=dl)
    return out[0] if unbatched else out


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """y[n,c,i,j] = mean of the window xpad[n, c, i*s + ki, j*s + kj] (zero padding counted if count_include_pad)"""
    if ceil_mode:
        raise NotImplementedError("avg_pool2d: ceil_mode=True is not supported")
    k, s, p = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    unbatched = x.ndim == 3
    xb = x.unsqueeze(0) if unbatched else x
    out = ops.AvgPoolNd.apply(xb, kernel_size=k, stride=s, padding=p, count_include_pad=count_include_pad)
    return out[0] if unbatched else out


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Constant padding, PyTorch's convention: `pad` = (left, right) for the last dim, then the one
    before it, ... e.g. (1, 1, 2, 0) pads W by 1 each side and H by 2 at the top; negative amounts crop."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    return _tensor_pad(x, pad, value)


# ---------------------------------------------------------------- activations

def relu(x: Tensor) -> Tensor:
    """y = max(0, x)"""
    return x.relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """y = x Φ(x) (exact) or 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))) (approximate='tanh')"""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x.gelu(approximate=approximate)


def tanh(x: Tensor) -> Tensor:
    """y = tanh(x)"""
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    """y = 1 / (1 + e^-x)"""
    return x.sigmoid()


def softplus(x: Tensor) -> Tensor:
    """y = ln(1 + e^x), stable at any x"""
    return ops.Softplus.apply(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """y_i = e^{x_i} / Σ_j e^{x_j} along dim"""
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """y_i = x_i - ln Σ_j e^{x_j} along dim"""
    return x.log_softmax(dim)


from .batchnorm import batch_norm  # noqa: F401,E402  (issue 12; at the end: batchnorm.py needs nothing from here)
