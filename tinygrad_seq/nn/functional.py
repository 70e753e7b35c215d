"""Functional forms of the layers, activations and losses (`import tinygrad_seq.nn.functional as F`).

Every function checks its arguments' shapes and raises a ValueError naming the function and the shapes
before computing anything. The losses live in `tinygrad_seq.losses` and are re-exported here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import ops
from ..autograd import bump_version
from ..errors import DtypeError, ShapeError
from ..tensor import Tensor, cat, rng, where
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
        raise ShapeError(f"linear: input shape {x.shape} does not match weight shape {weight.shape} "
                         f"(last dim {x.shape[-1]} vs in_features {weight.shape[-1]})")
    dt = x.dtype
    if weight.dtype != dt or (bias is not None and bias.dtype != dt):  # as torch: no promotion inside linear
        dts = ", ".join(str(t.dtype) for t in (x, weight, bias) if t is not None)
        raise RuntimeError(f"linear: input, weight and bias must have the same dtype, got {dts} "
                           "(cast with .to(dtype), or convert the layer with .to(dtype))")
    if bias is None:
        return ops.Linear.apply(x, weight)
    return ops.Linear.apply(x, weight, bias)


def embedding(input, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """y[...] = W[idx[...]] (rows of the weight); the row `padding_idx` receives no gradient. With max_norm,
    every looked-up row whose norm_type-norm exceeds max_norm is first rescaled to norm max_norm, in place in
    the weight and outside the graph (as PyTorch); scale_grad_by_freq divides each row's gradient by the
    number of times its index occurs in `input`."""
    # the indices are the op's second (gradient-free) input, not an option: tg.compile then replays the lookup
    # with each call's indices (the range check runs in the op, at every call)
    idx = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    if idx.dtype.kind not in "iu":
        raise DtypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    if sparse:
        raise NotImplementedError("embedding: sparse=True (sparse gradients) is not supported; use sparse=False")
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} out of range for {n} embeddings")
        padding_idx %= n
    if max_norm is not None and idx.numel():  # rewrites rows of the weight in place (under tg.compile: eager)
        idx_arr = idx.numpy()
        ops.Embedding.check(idx_arr, n)
        _embedding_renorm(weight.numpy(), idx_arr, float(max_norm), float(norm_type))
    return ops.Embedding.apply(weight, idx, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)


def _embedding_renorm(w: np.ndarray, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """PyTorch's embedding_renorm_: rows with norm > max_norm scaled by max_norm / (norm + 1e-7), in place."""
    rows = np.unique(idx)
    norms = np.linalg.norm(w[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        w[rows[big]] *= (max_norm / (norms[big] + 1e-7)).astype(w.dtype)[:, None]
        bump_version(w, "embedding_renorm_")  # a graph that saved the weight before now sees the write


def _result(input: Tensor, fn, inplace: bool) -> Tensor:
    """fn(input), or with torch's `inplace=True` written into `input` (a recorded in-place write) and returned;
    fn then reads a copy, so what its backward saved is not the array being overwritten."""
    if not inplace:
        return fn(input)
    out = fn(input.clone())
    return input.copy_(out)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) from tg.rng() (inverted dropout); identity if not training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _result(input, lambda x: x * 0.0, inplace)
    return _result(input, lambda x: ops.Dropout.apply(x, p=p), inplace)  # mask drawn in the op: replays redraw it


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - μ) / √(σ² + ε) * weight + bias, μ and (biased) σ² over the trailing `normalized_shape` dims."""
    ns = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if input.shape[input.ndim - len(ns):] != ns or input.ndim < len(ns):
        raise ShapeError(f"layer_norm: input shape {input.shape} does not end with normalized_shape {ns}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != ns:
            raise ShapeError(f"layer_norm: {name} shape {t.shape} != normalized_shape {ns}")
    wb = [t for t in (weight, bias) if t is not None]
    return ops.LayerNorm.apply(input, *wb, ndim=len(ns), eps=eps, has_w=weight is not None, has_b=bias is not None)


def _conv(x: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int, d: int) -> Tensor:
    fn = f"conv{d}d"
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive integer, got {groups!r}")
    if weight.ndim != d + 2:
        raise ValueError(f"{fn}: weight must be {d + 2}-D (out_channels, in_channels/groups, *kernel), "
                         f"got {weight.shape}")
    unbatched = x.ndim == d + 1
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D (unbatched) or {d + 2}-D (batched) input, got shape {x.shape}")
    if unbatched:
        x = x.unsqueeze(0)
    if weight.shape[0] % groups:
        raise ValueError(f"{fn}: weight shape {weight.shape}: out_channels {weight.shape[0]} is not divisible by "
                         f"groups={groups}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ShapeError(f"{fn}: input shape {x.shape} has {x.shape[1]} channels but weight shape "
                         f"{weight.shape} with groups={groups} expects {weight.shape[1] * groups}")
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
    out = ops.ConvNd.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=int(groups))
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
    total = _same_total(weight.shape[2:], dilation, d, fn)
    if all(t % 2 == 0 for t in total):
        return x, tuple(t // 2 for t in total)
    widths = []
    for t in reversed(total):  # F.pad lists the last dim first
        widths += [t // 2, t - t // 2]
    return pad(x, widths), 0


def _same_total(ksize, dilation, d: int, fn: str) -> list:
    return [dl * (k - 1) for dl, k in zip(_tuple(dilation, d, "dilation", fn), ksize)]


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_mode_pad(x: Tensor, widths: Sequence[tuple], mode: str, fn: str) -> Tensor:
    """Pad the trailing len(widths) dims of x by (left, right) each, for Conv's padding_mode 'reflect'
    (mirror without the edge), 'replicate' (repeat the edge) or 'circular' (wrap around): one gather per
    dim, so the gradient sums back into the source positions."""
    d = len(widths)
    for i, (lo, hi) in enumerate(widths):
        if not lo and not hi:
            continue
        axis = x.ndim - d + i
        n = x.shape[axis]
        if mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(f"{fn}: padding_mode='reflect' needs padding ({lo}, {hi}) < input size {n} in dim {axis} "
                             f"(input shape {x.shape})")
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(f"{fn}: padding_mode='circular' needs padding ({lo}, {hi}) <= input size {n} in dim "
                             f"{axis} (input shape {x.shape})")
        j = np.arange(-lo, n + hi)
        if mode == "circular":
            j %= n
        elif mode == "replicate":
            j = np.clip(j, 0, n - 1)
        else:
            j = np.abs(j)
            j = np.where(j > n - 1, 2 * (n - 1) - j, j)
        x = x[(slice(None),) * axis + (j,)]
    return x


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """y[n,o,l] = b[o] + Σ_{c,k} w[o,c,k] xpad[n, g·C/G + c, l*stride + k*dilation], g = o's group
    (x: (N, C, L) or (C, L); w: (O, C/groups, k))"""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """y[n,o,i,j] = b[o] + Σ_{c,ki,kj} w[o,c,ki,kj] xpad[n, g·C/G + c, i*s + ki*dil, j*s + kj*dil], g = o's group
    (x: (N,C,H,W) or (C,H,W); w: (O, C/groups, kh, kw))"""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


def _pool_args(fn: str, x: Tensor, kernel_size, stride, padding, d: int = 2, dilation=1, ceil_mode: bool = False):
    """Checked (kernel, stride, padding, dilation) tuples and the extra right padding per dim that ceil_mode
    needs (the last window may run past the input, but must start inside it or its left padding)."""
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D or {d + 2}-D input, got shape {x.shape}")
    k = _tuple(kernel_size, d, "kernel_size", fn)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _tuple(stride, d, "stride", fn)
    p = _tuple(padding, d, "padding", fn)
    dl = _tuple(dilation, d, "dilation", fn)
    if min(k) < 1 or min(s) < 1 or min(p) < 0 or min(dl) < 1:
        raise ValueError(f"{fn}: kernel_size, stride and dilation must be >= 1 and padding >= 0, "
                         f"got {k}, {s}, {p}, {dl}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{fn}: padding {p} should be at most half of kernel_size {k}")
    extra = []
    for i in range(d):
        n, ext = x.shape[x.ndim - d + i], dl[i] * (k[i] - 1) + 1
        if n + 2 * p[i] < ext:
            raise ValueError(f"{fn}: input shape {x.shape} (padding {p}) is smaller than kernel_size {k}")
        out = (n + 2 * p[i] - ext) // s[i] + 1
        if ceil_mode:
            out = -(-(n + 2 * p[i] - ext) // s[i]) + 1
            if (out - 1) * s[i] >= n + p[i]:
                out -= 1
        extra.append(max(0, (out - 1) * s[i] + ext - (n + 2 * p[i])))
    return k, s, p, dl, tuple(extra)


def _max_pool(fn: str, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool,
              return_indices: bool, d: int):
    k, s, p, dl, extra = _pool_args(fn, input, kernel_size, stride, padding, d, dilation, ceil_mode)
    unbatched = input.ndim == d + 1
    xb = input.unsqueeze(0) if unbatched else input
    out = ops.MaxPoolNd.apply(xb, kernel_size=k, stride=s, padding=p, dilation=dl, extra=extra)
    out = out[0] if unbatched else out
    if not return_indices:
        return out
    idx = _max_pool_indices(xb.numpy(), k, s, p, dl, extra)
    return out, Tensor(idx[0] if unbatched else idx)


def _max_pool_indices(x: np.ndarray, k: tuple, s: tuple, p: tuple, dl: tuple, extra: tuple) -> np.ndarray:
    """PyTorch's return_indices: each window's (first) argmax as a flat index into the input's spatial dims."""
    d = len(k)
    xp = ops._pad_spatial(x, p, -np.inf, extra)
    cols = ops._im2col(xp, k, s, dl)
    out = cols.shape[2:2 + d]
    taps = np.unravel_index(np.argmax(cols.reshape(cols.shape[:2 + d] + (-1,)), axis=-1), k)
    coords = [np.arange(o).reshape((-1,) + (1,) * (d - 1 - i)) * s[i] + taps[i] * dl[i] - p[i]
              for i, o in enumerate(out)]
    return np.ravel_multi_index(coords, x.shape[2:]).astype(np.int64)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """y[n,c,i] = max over the window xpad[n, c, i*s + k*dil] (padding counts as -inf); with return_indices
    also the argmax positions in the input (first maximum on ties)"""
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """y[n,c,i,j] = max over the window xpad[n, c, i*s + ki*dil, j*s + kj*dil] (padding counts as -inf); with
    return_indices also the flat (i·W + j) argmax positions in the input (first maximum on ties)"""
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def _avg_pool(fn: str, input: Tensor, kernel_size, stride, padding, ceil_mode: bool, count_include_pad: bool,
              divisor_override, d: int) -> Tensor:
    if divisor_override is not None and (isinstance(divisor_override, bool) or int(divisor_override) != divisor_override
                                         or divisor_override <= 0):
        raise ValueError(f"{fn}: divisor must be a positive integer, got divisor_override={divisor_override!r}")
    k, s, p, _, extra = _pool_args(fn, input, kernel_size, stride, padding, d, 1, ceil_mode)
    unbatched = input.ndim == d + 1
    xb = input.unsqueeze(0) if unbatched else input
    out = ops.AvgPoolNd.apply(xb, kernel_size=k, stride=s, padding=p, count_include_pad=count_include_pad,
                              extra=extra, divisor_override=divisor_override)
    return out[0] if unbatched else out


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """y[n,c,i] = mean of the window xpad[n, c, i*s + k] (zero padding counted if count_include_pad)"""
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """y[n,c,i,j] = Σ window xpad[n, c, i*s + ki, j*s + kj] / D, D = divisor_override, else the window size
    (zero padding counted if count_include_pad; ceil_mode's overhang never counted)"""
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2)


def _adaptive_avg(fn: str, input: Tensor, output_size, d: int) -> Tensor:
    """Window i of a dim of size n covers [floor(i·n/m), ceil((i+1)·n/m)) (PyTorch's); the mean over a box is
    the mean over each dim in turn."""
    if input.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D or {d + 2}-D input, got shape {input.shape}")
    one = isinstance(output_size, (int, np.integer)) or output_size is None
    sizes = (output_size,) * d if one else tuple(output_size)
    if len(sizes) != d:
        raise ValueError(f"{fn}: output_size must be an int or {d} values, got {output_size!r}")
    x = input
    for i, m in enumerate(sizes):
        axis = x.ndim - d + i
        n = x.shape[axis]
        m = n if m is None else int(m)
        if m < 1 and n:
            raise ValueError(f"{fn}: output_size must be positive, got {output_size!r}")
        if m == n:
            continue
        lead = (slice(None),) * axis
        parts = [x[lead + (slice((j * n) // m, -(-((j + 1) * n) // m)),)].mean(axis, keepdim=True) for j in range(m)]
        x = cat(parts, axis)
    return x


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """y[n,c,i] = mean of x[n, c, floor(i·L/out) : ceil((i+1)·L/out)]"""
    return _adaptive_avg("adaptive_avg_pool1d", input, output_size, 1)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """y[n,c,i,j] = mean of the box [floor(i·H/oh), ceil((i+1)·H/oh)) × [floor(j·W/ow), ceil((j+1)·W/ow)); an
    output_size entry None keeps that dim"""
    return _adaptive_avg("adaptive_avg_pool2d", input, output_size, 2)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Padding in PyTorch's convention: `pad` = (left, right) for the last dim, then the one before it,
    ... e.g. (1, 1, 2, 0) pads W by 1 each side and H by 2 at the top; negative amounts crop.
    mode 'constant' (value), or 'reflect' / 'replicate' / 'circular' (see _pad_mode)."""
    if mode != "constant":
        return _pad_mode(x, pad, mode, value)
    return _tensor_pad(x, pad, 0.0 if value is None else value)


# ---- attention: torch.nn.functional.scaled_dot_product_attention is tinygrad_seq.models' (the models build on
# this module; the one lazy lookup of model names lives in nn/__init__.py)

def __getattr__(name: str):
    if name == "scaled_dot_product_attention":
        import sys
        value = sys.modules["tinygrad_seq.nn"].from_models(name, "attention")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinygrad_seq.nn.functional' has no attribute '{name}'")


# ---------------------------------------------------------------- activations

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """y = max(0, x)"""
    return _result(input, lambda x: x.relu(), inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """y = x Φ(x) (exact) or 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))) (approximate='tanh')"""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return input.gelu(approximate=approximate)


def tanh(input: Tensor) -> Tensor:
    """y = tanh(x)"""
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    """y = 1 / (1 + e^-x)"""
    return input.sigmoid()


# ---- more activations (torch.nn.functional's names and defaults), composed from differentiable ops;
# the gradient at each kink is PyTorch's (leaky_relu/elu: the negative side's slope at 0, hardtanh: 0 at its
# bounds).

def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """y = x if x > 0 else negative_slope · x"""
    return _result(input, lambda x: where(x.numpy() > 0, x, x * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """y = x if x > 0 else α (e^x - 1)"""
    pos = input.numpy() > 0
    # exp never sees a large x
    return _result(input, lambda x: where(pos, x, (where(pos, 0.0, x).exp() - 1.0) * alpha), inplace)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """y = scale · elu(x, α), scale ≈ 1.0507, α ≈ 1.6733 (self-normalising)"""
    return _result(input, lambda x: elu(x, _SELU_ALPHA) * _SELU_SCALE, inplace)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """y = x σ(x)"""
    return _result(input, lambda x: x * x.sigmoid(), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """y = x tanh(softplus(x))"""
    return _result(input, lambda x: x * softplus(x).tanh(), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """y = min(max(x, min_val), max_val); dy/dx = 1 strictly inside (min_val, max_val), else 0"""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    a = input.numpy()
    inside = (a > min_val) & (a < max_val)
    return _result(input, lambda x: where(inside, x, np.clip(a, min_val, max_val)), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """y = min(max(x, 0), 6)"""
    return hardtanh(input, 0.0, 6.0, inplace)


def logsigmoid(input: Tensor) -> Tensor:
    """y = ln σ(x) = -softplus(-x)"""
    return -softplus(-input)


def softsign(input: Tensor) -> Tensor:
    """y = x / (1 + |x|)"""
    return input / (input.abs() + 1.0)


def _channel_dropout(fn: str, input: Tensor, p: float, training: bool, d: int) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}: expected a {d + 1}-D or {d + 2}-D input, got shape {input.shape}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    shape = input.shape[:input.ndim - d] + (1,) * d  # one draw per channel: whole feature maps are zeroed
    mask = (rng().random(shape, dtype=np.float32) >= p).astype(input.dtype)
    mask *= 1.0 / (1.0 - p)
    return input * mask


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels x[n, c, :] with probability p, scale the rest by 1 / (1 - p)"""
    return _result(input, lambda x: _channel_dropout("dropout1d", x, p, training, 1), inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels x[n, c, :, :] with probability p, scale the rest by 1 / (1 - p)"""
    return _result(input, lambda x: _channel_dropout("dropout2d", x, p, training, 2), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """y = ln(1 + e^{βx}) / β, stable at any x; y = x where βx > threshold (as PyTorch)"""
    return ops.Softplus.apply(input, beta=beta, threshold=threshold)


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    """y_i = e^{x_i} / Σ_j e^{x_j} along dim"""
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """y_i = x_i - ln Σ_j e^{x_j} along dim"""
    return input.log_softmax(dim)


# ---------------------------------------------------------------- indexing (PyTorch surface)

def _pad_mode(x: Tensor, pad: Sequence[int], mode: str, value) -> Tensor:
    """Non-constant F.pad, checked as PyTorch: k (left, right) pairs pad the last k dims (k = 1, 2, 3) of a
    (k+1)-D or (k+2)-D input; reflect needs each amount < that dim's size, circular <= it."""
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'pad: Padding mode "{mode}" doesn\'t take in value argument')
    pad = tuple(int(p) for p in pad)
    k = len(pad) // 2
    if len(pad) % 2 or k not in (1, 2, 3) or x.ndim not in (k + 1, k + 2):
        raise NotImplementedError(f"pad: Padding size {len(pad)} is not supported for {x.ndim}D input tensor "
                                  f"(shape {x.shape}) in mode {mode!r}: {mode} pads the last 1, 2 or 3 dims of a "
                                  "2-3D, 3-4D or 4-5D input")
    widths = [(0, 0)] * x.ndim
    for i in range(k):
        d = x.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        n = x.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(f"pad: Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({lo}, {hi}) at dimension {d} of input {list(x.shape)}")
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError(f"pad: Padding value causes wrapping around more than once (padding ({lo}, {hi}) "
                               f"at dimension {d} of input {list(x.shape)})")
        if n + lo + hi < 0 or (n == 0 and (lo > 0 or hi > 0)):
            raise RuntimeError(f"pad: padding {pad} gives a negative or impossible size for input shape {x.shape}")
        widths[d] = (lo, hi)
    return ops.PadMode.apply(x, widths=tuple(widths), mode=mode)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """out[..., c] = 1 where c = tensor[...] (int64, shape tensor.shape + (num_classes,); -1: max + 1)."""
    idx = tensor.numpy() if isinstance(tensor, Tensor) else np.asarray(tensor)
    if idx.dtype != np.int64:
        raise RuntimeError(f"one_hot is only applicable to index tensor of type LongTensor (int64), got {idx.dtype}")
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("one_hot: Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and idx.min() < 0:
        raise RuntimeError(f"one_hot: Class values must be non-negative, got {int(idx.min())}")
    if idx.size and idx.max() >= num_classes:
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes ({num_classes}), got {int(idx.max())}")
    return Tensor._wrap((idx[..., None] == np.arange(num_classes)).astype(np.int64))


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """y = x / max(‖x‖_p, eps) over dim."""
    if not p > 0:
        raise ValueError(f"normalize: p must be > 0, got {p}")
    d = ops._dim(dim, input.ndim, "normalize", input.shape)
    if input.ndim == 0:
        input = input.reshape(1)
    return ops.Normalize.apply(input, p=float(p), dim=d, eps=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """y = Σ x1 x2 / (max(‖x1‖₂, eps) · max(‖x2‖₂, eps)) over dim (x1, x2 broadcast), as PyTorch."""
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise RuntimeError(f"cosine_similarity: x1 shape {x1.shape} and x2 shape {x2.shape} do not broadcast") from None
    d = ops._dim(dim, len(shape), "cosine_similarity", shape)
    if x1.dtype != x2.dtype:
        raise RuntimeError(f"cosine_similarity: x1 ({x1.dtype}) and x2 ({x2.dtype}) must have the same dtype")
    return ops.CosineSimilarity.apply(x1, x2, dim=d, eps=eps)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """y = ‖x1 - x2 + eps‖_p over the last dim."""
    diff = x1 - x2 + eps
    if p == 2:
        return (diff * diff).sum(-1, keepdim=keepdim).sqrt()
    if p == 1:
        return diff.abs().sum(-1, keepdim=keepdim)
    return (diff.abs() ** p).sum(-1, keepdim=keepdim) ** (1.0 / p)


from .batchnorm import batch_norm  # noqa: F401,E402  (at the end: batchnorm.py needs nothing from here)
