"""Every differentiable op: one `Function` each, forward and local backward side by side on ndarrays.

`forward(*arrays, **kw)` computes the result and keeps on `self` what backward needs;
`backward(g)` returns the gradient for each input (one array, or a tuple for several inputs; None
where an input gets no gradient). Gradients of broadcasting ops may come back in the broadcast shape:
the engine sums them back to each input's shape (autograd._unbroadcast), so no op repeats that code.
`self.needs` (tuple of bools, one per input) lets an op skip work for inputs that need no gradient.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .autograd import STATE, OuterSum, _check_finite, _Released


class Function:
    """Base class: `Op.apply(*tensors, **kw)` runs forward and, if needed, records the graph node."""
    __slots__ = ("parents", "needs", "scope", "__dict__")

    # Set by a basic-index GetItem: the backward pass then adds g into one buffer per input
    # (autograd.run_backward) instead of a dense zeros array per slice (x[t] over T steps: O(T), not O(T^2)).
    slice_index = None
    # What a node becomes once backward has consumed it (one shared marker per op class).
    released: _Released = _Released("Function")

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.released = _Released(cls.__name__)

    def forward(self, *args: np.ndarray, **kw: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, g: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors, **kw):
        # The hot path of every op: unrolled for one and two inputs (a generic loop costs ~40% more
        # per call at small sizes), no reflection, the output Tensor built in place.
        ctx = cls()
        n = len(tensors)
        try:
            if n == 2:
                x, y = tensors
                data = ctx.forward(x._data, y._data, **kw)
                needs = (x.requires_grad, y.requires_grad) if STATE.grad_enabled else _NO_GRAD
            elif n == 1:
                x = tensors[0]
                data = ctx.forward(x._data, **kw)
                needs = (x.requires_grad,) if STATE.grad_enabled else _NO_GRAD
            else:
                data = ctx.forward(*[t._data for t in tensors], **kw)
                needs = tuple([t.requires_grad for t in tensors]) if STATE.grad_enabled else _NO_GRAD
        except (ValueError, IndexError) as e:  # name the op and every input shape (NumPy's message names neither)
            shapes = ", ".join(str(tuple(t._data.shape)) for t in tensors)
            kind = IndexError if isinstance(e, IndexError) else ValueError  # NumPy's AxisError is both
            raise kind(f"{cls.__name__}: {e} (input shapes {shapes})") from None
        out = _new(Tensor)
        out._data = data
        out.grad = None
        out._retain = False
        out._hooks = None
        out.name = None
        if True in needs:
            ctx.parents = tensors
            ctx.needs = needs
            ctx.scope = STATE.scope
            out.requires_grad = True
            out._ctx = ctx
        else:
            out.requires_grad = False
            out._ctx = None
        if STATE.anomaly:
            _check_finite(data, "forward", ctx)
        return out


_NO_GRAD = (False,)
_new = object.__new__


# ---------------------------------------------------------------- elementwise, binary (broadcasting)

class Add(Function):
    """z = x + y"""
    def forward(self, x, y): return x + y
    def backward(self, g): return g, g


class Sub(Function):
    """z = x - y"""
    def forward(self, x, y): return x - y
    def backward(self, g): return g, (-g if self.needs[1] else None)


class Mul(Function):
    """z = x * y"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y
    def backward(self, g):
        return (g * self.y if self.needs[0] else None), (g * self.x if self.needs[1] else None)


class Div(Function):
    """z = x / y;  dz/dx = 1/y,  dz/dy = -x/y^2"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return x / y
    def backward(self, g):
        gx = g / self.y
        return gx, (-gx * self.x / self.y if self.needs[1] else None)


class Pow(Function):
    """z = x ** y (tensor exponent);  dz/dx = y x^(y-1),  dz/dy = z ln x"""
    def forward(self, x, y):
        self.x, self.y = x, y
        self.out = x ** y
        return self.out
    def backward(self, g):
        x, y = self.x, self.y
        gx = g * y * x ** (y - 1) if self.needs[0] else None
        gy = None
        if self.needs[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = g * self.out * np.where(x > 0, np.log(np.where(x > 0, x, 1)), 0)
        return gx, gy


class PowConst(Function):
    """z = x ** c (constant c);  dz/dx = c x^(c-1)"""
    def forward(self, x, c):
        self.x, self.c = x, c
        return x ** c
    def backward(self, g):
        c = self.c
        if c == 2:
            return g * 2 * self.x
        if c == 0:  # constant output: zero gradient, not 0 * x^-1 (NaN at x = 0)
            return np.zeros_like(g)
        return g * c * self.x ** (c - 1)


class Maximum(Function):
    """z = max(x, y); ties split the gradient evenly (as PyTorch)"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return np.maximum(x, y)
    def backward(self, g):
        # w in g's dtype: a float64 weight would silently promote float32 gradients
        gx = g * ((self.x > self.y) + (self.x == self.y) * g.dtype.type(0.5))
        return gx, (g - gx if self.needs[1] else None)


class Minimum(Function):
    """z = min(x, y); ties split the gradient evenly (as PyTorch)"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return np.minimum(x, y)
    def backward(self, g):
        gx = g * ((self.x < self.y) + (self.x == self.y) * g.dtype.type(0.5))
        return gx, (g - gx if self.needs[1] else None)


class Where(Function):
    """z = cond ? x : y  (cond is a constant bool array)"""
    def forward(self, x, y, cond):
        self.cond = cond
        return np.where(cond, x, y)
    def backward(self, g):
        c = self.cond
        return (np.where(c, g, 0) if self.needs[0] else None), (np.where(c, 0, g) if self.needs[1] else None)


class MaskedFill(Function):
    """z = mask ? value : x  (mask constant, broadcast to x)"""
    def forward(self, x, mask, value):
        self.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)
    def backward(self, g):
        return np.where(self.mask, 0, g)


# ---------------------------------------------------------------- elementwise, unary

class Neg(Function):
    """z = -x"""
    def forward(self, x): return -x
    def backward(self, g): return -g


class Exp(Function):
    """z = e^x;  dz/dx = z"""
    def forward(self, x):
        self.out = np.exp(x)
        return self.out
    def backward(self, g): return g * self.out


class Log(Function):
    """z = ln x;  dz/dx = 1/x"""
    def forward(self, x):
        self.x = x
        return np.log(x)
    def backward(self, g): return g / self.x


class Sqrt(Function):
    """z = sqrt(x);  dz/dx = 1/(2 z)"""
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out
    def backward(self, g): return g / (2 * self.out)


class Abs(Function):
    """z = |x|;  dz/dx = sign(x) (0 at 0, as PyTorch)"""
    def forward(self, x):
        self.x = x
        return np.abs(x)
    def backward(self, g): return g * np.sign(self.x)


class Tanh(Function):
    """z = tanh(x);  dz/dx = 1 - z^2"""
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out
    def backward(self, g):
        out = self.out
        return g * (1 - out * out)


class Sigmoid(Function):
    """z = σ(x) = 1/(1+e^-x), computed as 0.5 tanh(x/2) + 0.5: no overflow at any x;  dz/dx = z(1-z)"""
    def forward(self, x):
        out = np.tanh(x * 0.5)
        out *= 0.5
        out += 0.5
        self.out = out
        return out
    def backward(self, g):
        out = self.out
        return g * out * (1 - out)


class Relu(Function):
    """z = max(0, x);  dz/dx = [x > 0]"""
    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out
    def backward(self, g): return g * (self.out > 0)


class Gelu(Function):
    """z = x Φ(x) (exact, Φ via erf) or the tanh approximation
    0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))"""
    def forward(self, x, approximate="none"):
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            self.t = np.tanh(k * (x + 0.044715 * x ** 3))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf
    def backward(self, g):
        x = self.x
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = self.t
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (self.cdf + x * pdf)


class Clamp(Function):
    """z = min(max(x, lo), hi);  dz/dx = [lo <= x <= hi]"""
    def forward(self, x, lo=None, hi=None):
        self.x, self.lo, self.hi = x, lo, hi
        return np.clip(x, lo, hi)
    def backward(self, g):
        x, mask = self.x, True
        if self.lo is not None:
            mask = mask & (x >= self.lo)
        if self.hi is not None:
            mask = mask & (x <= self.hi)
        return g * mask


# ---------------------------------------------------------------- reductions

def _dim(d: int, ndim: int, op: str = "", shape: tuple | None = None) -> int:
    """`d` as a non-negative index into `ndim` dims; out of range raises (as PyTorch, not wrapped
    around). A 0-d tensor accepts 0 and -1."""
    n = ndim or 1
    if not -n <= d < n:
        raise IndexError(f"{op + ': ' if op else ''}dim {d} is out of range (expected {-n} to {n - 1})"
                         + (f" for input shape {tuple(shape)}" if shape is not None else ""))
    return d % n if ndim else 0


def _axes(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        return tuple(_dim(d, ndim) for d in dim)
    return _dim(dim, ndim)


def _reduced_size(shape, axis) -> int:
    """How many elements each output of a reduction over `axis` (None, int or tuple) combines."""
    if axis is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in axis) if isinstance(axis, tuple) else shape[axis]


def _expand_reduced(g, shape, axis, keepdim):
    """Put the reduced axes back (size 1) so g broadcasts against the input shape."""
    if keepdim or axis is None:
        return g if axis is not None else np.reshape(g, (1,) * len(shape))
    return np.expand_dims(g, axis)


class Sum(Function):
    """z = Σ x over dim;  dz/dx = 1"""
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        return np.asarray(x.sum(axis=self.axis, keepdims=keepdim))
    def backward(self, g):
        return np.broadcast_to(_expand_reduced(g, self.shape, self.axis, self.keepdim), self.shape)


class Mean(Function):
    """z = (1/n) Σ x over dim;  dz/dx = 1/n"""
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        out = np.asarray(x.mean(axis=self.axis, keepdims=keepdim))
        self.n = x.size // max(out.size, 1) if x.size else 1
        return out
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim) / self.n
        return np.broadcast_to(g, self.shape)


class Var(Function):
    """z = Σ (x - μ)² / max(n - correction, 0) over dim;  dz/dx = 2 (x - μ) / max(n - correction, 0)"""
    def forward(self, x, dim=None, keepdim=False, correction=1):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        d = x - x.mean(axis=self.axis, keepdims=True)
        self.d, self.denom = d, max(_reduced_size(x.shape, self.axis) - correction, 0)
        ss = np.asarray((d * d).sum(axis=self.axis, keepdims=keepdim))
        if self.denom:
            return np.asarray(ss / self.denom)
        with np.errstate(divide="ignore", invalid="ignore"):  # n <= correction: inf/NaN, as PyTorch
            return np.asarray(ss / 0)
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim)
        if self.denom:
            return g * self.d * (2 / self.denom)
        with np.errstate(invalid="ignore"):
            return g * self.d * np.inf


class Max(Function):
    """z = max x over dim (all tied maxima share the gradient evenly, as torch.amax)"""
    def forward(self, x, dim=None, keepdim=False, op=np.max):
        self.x, self.axis, self.keepdim = x, _axes(dim, x.ndim), keepdim
        self.out = np.asarray(op(x, axis=self.axis, keepdims=True))
        if keepdim:
            return self.out
        return self.out.reshape(()) if self.axis is None else np.squeeze(self.out, axis=self.axis)
    def backward(self, g):
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdim)
        hit = self.x == self.out
        return (g / hit.sum(axis=self.axis, keepdims=True).astype(g.dtype)) * hit


class MaxDim(Function):
    """values of max/min along one dim at `idx` (argmax/argmin, keepdim shape); the gradient goes to
    that index (as torch.max(dim))"""
    def forward(self, x, idx, dim, keepdim=False):
        self.shape, self.axis, self.keepdim, self.idx = x.shape, _dim(dim, x.ndim), keepdim, idx
        out = np.take_along_axis(x, self.idx, axis=self.axis)
        return out if keepdim else np.squeeze(out, self.axis)
    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.axis)
        full = np.zeros(self.shape, dtype=g.dtype)
        np.put_along_axis(full, self.idx, g, axis=self.axis)
        return full


def _exp_shifted(x, axis, keep_shifted=False):
    """(e, s, d, m): m = max x over `axis`, d = x - m, e = e^d, s = Σ e (keepdims shapes).

    Stable at any finite x (e <= 1, s >= 1); without `keep_shifted`, d's buffer is reused for e.
    Rows whose max is not finite take a path that never warns: a row of only -inf (fully masked)
    gets d = -inf, e = 0, s = 1; a row with +inf puts e = 1 on its +inf entries (the limit); NaN stays NaN.
    """
    m = np.max(x, axis=axis, keepdims=True)
    fin = np.isfinite(m)
    if fin.all():
        d = x - m
        e = np.exp(d) if keep_shifted else np.exp(d, out=d)
        return e, e.sum(axis=axis, keepdims=True), d, m
    with np.errstate(invalid="ignore", over="ignore"):
        d = x - np.where(fin, m, 0)
        e = np.exp(d)
    e = np.where(fin, e, np.where(np.isnan(m), x.dtype.type(np.nan), x == np.inf))
    s = e.sum(axis=axis, keepdims=True)
    return e, np.where(s == 0, 1, s), d, m


class LogSumExp(Function):
    """z = m + ln Σ e^(x - m), m = max x (stable for any finite x; ±inf rows give ±inf);  dz/dx = softmax(x)"""
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        self.e, self.s, _, m = _exp_shifted(x, self.axis)
        out = np.log(self.s) + m
        if not keepdim:
            out = out.reshape(()) if self.axis is None else np.squeeze(out, axis=self.axis)
        return out
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim)
        return g * (self.e / self.s)


class Softmax(Function):
    """y_i = e^(x_i - m) / Σ_j e^(x_j - m) (a fully masked row of -inf gives zeros);  dx = y * (g - Σ g y)"""
    def forward(self, x, dim=-1):
        self.axis = dim
        e, s, _, _ = _exp_shifted(x, dim)
        e /= s
        self.out = e
        return e
    def backward(self, g):
        y = self.out
        gy = g * y
        gy -= y * gy.sum(axis=self.axis, keepdims=True)
        return gy


class LogSoftmax(Function):
    """y = (x - m) - ln Σ e^(x - m) (= x - logsumexp x; a fully masked row stays -inf);  dx = g - softmax(x) Σ g"""
    def forward(self, x, dim=-1):
        self.axis = dim
        self.e, self.s, d, _ = _exp_shifted(x, dim, keep_shifted=True)
        d -= np.log(self.s)  # subtract from the shifted values: x - (m + ln s) loses digits at |x| ~ 1e4
        return d
    def backward(self, g):
        return g - (self.e / self.s) * g.sum(axis=self.axis, keepdims=True)


# ---------------------------------------------------------------- shape

class Reshape(Function):
    """z = x viewed with a new shape"""
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)
    def backward(self, g): return g.reshape(self.shape)


class Permute(Function):
    """z = x with axes permuted;  dx = g with the inverse permutation"""
    def forward(self, x, order):
        self.inv = tuple(np.argsort(order))
        return x.transpose(order)
    def backward(self, g): return g.transpose(self.inv)


class Cast(Function):
    """z = x converted to another float dtype;  dx = g converted back"""
    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)
    def backward(self, g): return g.astype(self.dtype)


class Expand(Function):
    """z = x broadcast to shape (a view);  the engine sums the gradient back"""
    def forward(self, x, shape):
        return np.broadcast_to(x, shape)
    def backward(self, g): return g


_ADVANCED = (np.ndarray, list)


def _is_advanced(index) -> bool:
    # a plain loop: this runs for every slice of every recurrent step (a generator costs 2x)
    if type(index) is tuple:
        for i in index:
            if isinstance(i, _ADVANCED):
                return True
        return False
    return isinstance(index, _ADVANCED)


class GetItem(Function):
    """z = x[index] (basic and advanced indexing);  dx = zeros with g scattered (repeats accumulate)"""
    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        if not _is_advanced(index):
            self.slice_index = index
        return x[index]
    def backward(self, g):
        full = np.zeros(self.shape, dtype=g.dtype)
        index = self.index
        if _is_advanced(index) and not (type(index) is np.ndarray and index.dtype == np.bool_):
            np.add.at(full, index, g)  # integer arrays may repeat an element: accumulate
        else:
            full[index] = g  # basic index or one bool mask: every element at most once
        return full


class Cat(Function):
    """z = [x_1, ..., x_n] along dim;  dx_i = the matching slice of g"""
    def forward(self, *xs, dim=0):
        self.axis = _dim(dim, xs[0].ndim)
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.axis)
    def backward(self, g):
        parts = tuple(np.split(g, self.bounds, axis=self.axis))
        return parts if len(parts) > 1 else parts[0]  # one input: one array, as every single-input op


class Stack(Function):
    """z = stack(x_1, ..., x_n) on a new dim;  dx_i = g[..., i, ...]"""
    def forward(self, *xs, dim=0):
        self.axis = _dim(dim, xs[0].ndim + 1)
        return np.stack(xs, axis=self.axis)
    def backward(self, g):
        parts = tuple(np.moveaxis(g, self.axis, 0))
        return parts if len(parts) > 1 else parts[0]  # one input: one array, as every single-input op


class Gather(Function):
    """z[i][j] = x[i][index[i][j]] along dim (as torch.gather);  dx = scatter-add of g"""
    def forward(self, x, index, dim):
        self.shape, self.index, self.axis = x.shape, index, _dim(dim, x.ndim)
        return np.take_along_axis(x, index, axis=self.axis)
    def backward(self, g):
        full = np.zeros(self.shape, dtype=g.dtype)
        # scatter-add: build full advanced indices so repeated entries accumulate
        idx = list(np.indices(self.index.shape, sparse=True))
        idx[self.axis] = self.index
        np.add.at(full, tuple(idx), g)
        return full


class Pad(Function):
    """z = x padded with a constant (`widths` per axis, NumPy order);  dx = the inner slice of g"""
    def forward(self, x, widths, value=0.0):
        self.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return np.pad(x, widths, constant_values=value)
    def backward(self, g): return g[self.slices]


# ---------------------------------------------------------------- linear algebra

def _matmul_problem(a: tuple, b: tuple) -> str:
    """What is wrong with shapes a @ b, in words (NumPy's gufunc message is hard to read)."""
    if not a or not b:
        return "both operands need at least one dim"
    k1, k2 = a[-1], (b[0] if len(b) == 1 else b[-2])
    if k1 != k2:
        where = "the size of the 1-D right operand" if len(b) == 1 else "the second-to-last dim of the right operand"
        return f"inner sizes differ: {k1} (last dim of the left operand) vs {k2} ({where})"
    return f"batch dims {tuple(a[:-2])} and {tuple(b[:-2])} do not broadcast"


class MatMul(Function):
    """z = x @ y (1-D, 2-D, batched with broadcast batch dims);  dx = g yᵀ,  dy = xᵀ g"""
    def forward(self, x, y):
        self.x, self.y = x, y
        try:
            return x @ y
        except ValueError:
            raise ValueError(_matmul_problem(x.shape, y.shape)) from None
    def backward(self, g):
        x, y = self.x, self.y
        if x.ndim == 2 and y.ndim == 2:
            return (g @ y.T if self.needs[0] else None), (x.T @ g if self.needs[1] else None)
        if x.ndim == 1 and y.ndim == 1:  # dot product: g is a scalar
            return (g * y if self.needs[0] else None), (g * x if self.needs[1] else None)
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        if x.ndim == 1:
            g = np.expand_dims(g, -2)
        if y.ndim == 1:
            g = np.expand_dims(g, -1)
        gx = gy = None
        if self.needs[0]:
            gx = g @ np.swapaxes(y2, -1, -2)
            if x.ndim == 1:
                gx = gx.reshape(-1, x.shape[0]).sum(0) if gx.ndim > 2 else gx[0]
        if self.needs[1]:
            if y2.ndim == 2 and x2.ndim > 2:  # shared weight: one big matmul instead of a batch + sum
                gy = x2.reshape(-1, x2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gy = np.swapaxes(x2, -1, -2) @ g
            if y.ndim == 1:
                gy = gy[..., 0]
        return gx, gy


class Linear(Function):
    """z = x Wᵀ + b  (W: out×in; x: ...×in; b: out, or any shape broadcasting to z, e.g. a per-row
    precomputed input projection in a recurrent step);  dx = g W,  dW = gᵀ x,  db = Σ g"""
    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        self.bias_vector = b is not None and b.ndim == 1
        if x.ndim > 2:  # one 2-D GEMM: NumPy runs a 3-D @ 2-D product as a loop of small ones (2x slower)
            out = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(x.shape[:-1] + (w.shape[0],))
        else:
            out = x @ w.T
        if b is not None:
            out += b
        return out
    def backward(self, g):
        x, w = self.x, self.w
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ w).reshape(x.shape) if self.needs[0] else None
        gw = OuterSum(g2, x.reshape(-1, x.shape[-1])) if self.needs[1] else None  # = g2ᵀ x, summed lazily
        if len(self.needs) == 3:
            # a non-vector bias gets g as is: the engine sums it back to the bias shape
            return gx, gw, ((g2.sum(0) if self.bias_vector else g) if self.needs[2] else None)
        return gx, gw


# ---------------------------------------------------------------- special functions

# W. J. Cody's rational approximations (as in SPECFUN's CALERF): erf to full double precision.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRPI = 5.6418958354775628695e-1  # 1/sqrt(pi)


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf(x) (NumPy has none): Cody's three rational approximations by |x| range."""
    x = np.asarray(x)
    ax = np.abs(x.astype(np.float64))
    out = np.empty_like(ax)
    small = ax <= 0.46875
    if small.any():
        y = ax[small]
        z = y * y
        num, den = _ERF_A[4] * z, z
        for i in range(3):
            num, den = (num + _ERF_A[i]) * z, (den + _ERF_B[i]) * z
        out[small] = y * (num + _ERF_A[3]) / (den + _ERF_B[3])
    mid = (~small) & (ax <= 4.0)
    if mid.any():
        y = ax[mid]
        num, den = _ERF_C[8] * y, y
        for i in range(7):
            num, den = (num + _ERF_C[i]) * y, (den + _ERF_D[i]) * y
        erfc = (num + _ERF_C[7]) / (den + _ERF_D[7])
        ysq = np.trunc(y * 16.0) / 16.0
        erfc *= np.exp(-ysq * ysq) * np.exp(-(y - ysq) * (y + ysq))
        out[mid] = 1.0 - erfc
    big = ax > 4.0
    if big.any():
        y = ax[big]
        z = 1.0 / (y * y)
        num, den = _ERF_P[5] * z, z
        for i in range(4):
            num, den = (num + _ERF_P[i]) * z, (den + _ERF_Q[i]) * z
        r = z * (num + _ERF_P[4]) / (den + _ERF_Q[4])
        r = (_SQRPI - r) / y
        ysq = np.trunc(y * 16.0) / 16.0
        erfc = np.exp(-ysq * ysq) * np.exp(-(y - ysq) * (y + ysq)) * r
        out[big] = 1.0 - erfc
    out = np.where(np.isnan(ax), np.nan, np.copysign(out, x))
    return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)


# ---- nn ops (layer norm, embedding, convolution and pooling via im2col, softplus, BCE)

class LayerNorm(Function):
    """y = x̂ w + b,  x̂ = (x - μ) / √(σ² + ε), μ and biased σ² over the last `ndim` dims;
    dx = rstd (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)) with ĝ = g w,  dw = Σ g x̂,  db = Σ g (over the leading dims)"""
    def forward(self, x, *wb, ndim=1, eps=1e-5, has_w=True, has_b=True):
        self.axes = tuple(range(x.ndim - ndim, x.ndim))
        self.lead = tuple(range(x.ndim - ndim))
        xhat = x - x.mean(axis=self.axes, keepdims=True)
        var = np.mean(xhat * xhat, axis=self.axes, keepdims=True)
        self.rstd = 1.0 / np.sqrt(var + eps)
        xhat *= self.rstd
        self.xhat = xhat
        self.w = wb[0] if has_w else None
        self.has_b = has_b
        out = xhat * self.w if has_w else xhat.copy()
        if has_b:
            out += wb[-1]
        return out

    def backward(self, g):
        xhat, w = self.xhat, self.w
        grads = []
        if self.needs[0]:
            gh = g * w if w is not None else g
            m1 = gh.mean(axis=self.axes, keepdims=True)
            m2 = (gh * xhat).mean(axis=self.axes, keepdims=True)
            grads.append(self.rstd * (gh - m1 - xhat * m2))
        else:
            grads.append(None)
        if w is not None:
            grads.append((g * xhat).sum(axis=self.lead) if self.needs[1] else None)
        if self.has_b:
            grads.append(g.sum(axis=self.lead) if self.needs[-1] else None)
        return tuple(grads) if len(grads) > 1 else grads[0]


class Embedding(Function):
    """z = W[idx];  dW[r] = Σ_{idx = r} g (scatter-add by sort + reduceat; row `padding_idx` gets none),
    divided by the count of r in idx with scale_grad_by_freq"""
    def forward(self, w, idx, padding_idx=None, scale_grad_by_freq=False):
        self.idx, self.shape, self.padding_idx, self.by_freq = idx, w.shape, padding_idx, scale_grad_by_freq
        return w[idx]

    def backward(self, g):
        flat = self.idx.reshape(-1)
        g2 = g.reshape(-1, *self.shape[1:])
        order = np.argsort(flat, kind="stable")
        rows, starts = np.unique(flat[order], return_index=True)
        gw = np.zeros(self.shape, dtype=g.dtype)
        if flat.size:
            gw[rows] = np.add.reduceat(g2[order], starts, axis=0)
            if self.by_freq:
                counts = np.diff(np.append(starts, flat.size)).reshape((-1,) + (1,) * (len(self.shape) - 1))
                gw[rows] /= counts
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw


def _im2col(xp: np.ndarray, ksize: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """Strided view (N, C, *out, *k) of padded input xp (N, C, *spatial): cols[..., p, k] = xp[p*s + k*dil]."""
    d = len(ksize)
    ext = tuple(dl * (k - 1) + 1 for k, dl in zip(ksize, dilation))
    win = np.lib.stride_tricks.sliding_window_view(xp, ext, axis=tuple(range(2, 2 + d)))
    return win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
               + tuple(slice(None, None, dl) for dl in dilation)]


def _col2im(gcols: np.ndarray, xp_shape: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """Adjoint of _im2col: scatter-add gcols (N, C, *out, *k) back into an array of shape xp_shape,
    one vectorised slice per kernel tap (overlapping windows accumulate)."""
    d = len(stride)
    out, ksize = gcols.shape[2:2 + d], gcols.shape[2 + d:]
    gx = np.zeros(xp_shape, dtype=gcols.dtype)
    lead = (slice(None),) * (2 + d)
    for tap in np.ndindex(*ksize):
        sl = tuple(slice(t * dl, t * dl + s * (o - 1) + 1, s) for t, dl, s, o in zip(tap, dilation, stride, out))
        gx[(slice(None), slice(None)) + sl] += gcols[lead + tap]
    return gx


def _pad_spatial(x: np.ndarray, padding: tuple, value: float = 0.0, extra: tuple | None = None) -> np.ndarray:
    """Pad each spatial dim by p on both sides, plus extra[i] more on the right (pooling's ceil_mode)."""
    extra = extra or (0,) * len(padding)
    if not any(padding) and not any(extra):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p + e) for p, e in zip(padding, extra)], constant_values=value)


def _unpad_spatial(g: np.ndarray, padding: tuple, shape: tuple) -> np.ndarray:
    if not any(padding) and g.shape == shape:  # (pooling's ceil_mode may leave extra columns on the right)
        return g
    return g[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, shape[2:]))]


def _group_mm(a: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    """(P, G·I) with per-group matrices b (G, I, J) -> (P, G·J): group gi's columns times b[gi]."""
    p = a.shape[0]
    return np.matmul(a.reshape(p, groups, -1).transpose(1, 0, 2), b).transpose(1, 0, 2).reshape(p, -1)


class ConvNd(Function):
    """Cross-correlation (as PyTorch conv1d/conv2d) via im2col, x: (N, C, *S), w: (O, C, *k):
    y[n,o,p] = b[o] + Σ_{c,k} w[o,c,k] xpad[n, c, p*s + k*dil]  (one GEMM: cols (N·P, C·K) @ Wᵀ);
    dW = gᵀ cols,  db = Σ g,  dx = col2im(g W)  (scatter each kernel tap back)"""
    def forward(self, x, w, b=None, stride=(1,), padding=(0,), dilation=(1,), groups=1):
        d = w.ndim - 2
        self.stride, self.padding, self.dilation, self.xshape, self.wshape = stride, padding, dilation, x.shape, w.shape
        self.groups = groups
        xp = _pad_spatial(x, padding)
        self.xp_shape = xp.shape
        cols = _im2col(xp, w.shape[2:], stride, dilation)  # (N, C, *out, *k) view
        n, out = x.shape[0], cols.shape[2:2 + d]
        self.out = out
        order = (0,) + tuple(range(2, 2 + d)) + (1,) + tuple(range(2 + d, 2 + 2 * d))
        self.cols = np.ascontiguousarray(cols.transpose(order)).reshape(n * int(np.prod(out)), -1)
        self.w2 = w.reshape(w.shape[0], -1)
        if groups == 1:
            y = self.cols @ self.w2.T  # (N·P, O)
        else:  # one GEMM per group: channels [gi·C/G, (gi+1)·C/G) meet filters [gi·O/G, (gi+1)·O/G)
            y = _group_mm(self.cols, self.w2.reshape(groups, -1, self.w2.shape[1]).transpose(0, 2, 1), groups)
        if b is not None:
            y += b
        return np.ascontiguousarray(np.moveaxis(y.reshape((n,) + out + (w.shape[0],)), -1, 1))

    def backward(self, g):
        d = len(self.stride)
        g2 = np.moveaxis(g, 1, -1).reshape(-1, g.shape[1])  # (N·P, O)
        gx = gw = None
        G = self.groups
        if self.needs[0]:
            n, c, k = self.xshape[0], self.wshape[1] * G, self.wshape[2:]
            gcols = g2 @ self.w2 if G == 1 else _group_mm(g2, self.w2.reshape(G, -1, self.w2.shape[1]), G)
            gcols = gcols.reshape((n,) + self.out + (c,) + k)
            gcols = np.moveaxis(gcols, 1 + d, 1)  # (N, C, *out, *k) view
            gx = _unpad_spatial(_col2im(gcols, self.xp_shape, self.stride, self.dilation), self.padding, self.xshape)
        if self.needs[1]:
            if G == 1:
                gw = (g2.T @ self.cols).reshape(self.wshape)
            else:
                gw = np.matmul(g2.reshape(len(g2), G, -1).transpose(1, 2, 0),
                               self.cols.reshape(len(g2), G, -1).transpose(1, 0, 2)).reshape(self.wshape)
        if len(self.needs) == 3:
            return gx, gw, (g2.sum(0) if self.needs[2] else None)
        return gx, gw


class MaxPoolNd(Function):
    """y[n,c,p] = max_k xpad[n, c, p*s + k*dil] (padding with -inf);  dx: g routed to the argmax of each
    window (first maximum on ties), overlapping windows accumulate"""
    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), extra=None):
        self.stride, self.padding, self.dilation, self.xshape = stride, padding, dilation, x.shape
        xp = _pad_spatial(x, padding, -np.inf, extra)
        self.xp_shape = xp.shape
        cols = _im2col(xp, kernel_size, stride, dilation)
        self.cshape = cols.shape
        flat = cols.reshape(cols.shape[:2 + len(stride)] + (-1,))
        self.arg = np.argmax(flat, axis=-1)[..., None]
        return np.take_along_axis(flat, self.arg, axis=-1)[..., 0]

    def backward(self, g):
        gcols = np.zeros(self.cshape[:2 + len(self.stride)] + (int(np.prod(self.cshape[2 + len(self.stride):])),),
                         dtype=g.dtype)
        np.put_along_axis(gcols, self.arg, g[..., None], axis=-1)
        gx = _col2im(gcols.reshape(self.cshape), self.xp_shape, self.stride, self.dilation)
        return _unpad_spatial(gx, self.padding, self.xshape)


class AvgPoolNd(Function):
    """y[n,c,p] = Σ_k xpad[n, c, p*s + k] / D, D = divisor_override, or the number of window elements inside
    the zero-padded input (count_include_pad) or inside the input itself (windows that ceil_mode lets run
    past the padding are clipped, as PyTorch);  dx = col2im(g / D)"""
    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), count_include_pad=True, extra=None,
                divisor_override=None):
        d = len(stride)
        self.stride, self.padding, self.xshape, self.ksize = stride, padding, x.shape, kernel_size
        xp = _pad_spatial(x, padding, 0.0, extra)
        self.xp_shape = xp.shape
        ones = (1,) * d
        axes = tuple(range(2 + d, 2 + 2 * d))
        s = _im2col(xp, kernel_size, stride, ones).sum(axis=axes)
        if divisor_override:
            self.div = np.asarray(divisor_override, dtype=x.dtype)
        elif (count_include_pad or not any(padding)) and not any(extra or ()):
            self.div = np.asarray(np.prod(kernel_size), dtype=x.dtype)
        else:
            if count_include_pad:  # the zero padding counts, the ceil_mode overhang does not
                padded = tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
                mask = _pad_spatial(np.ones((1, 1) + padded, dtype=x.dtype), (0,) * d, 0.0, extra)
            else:
                mask = _pad_spatial(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), padding, 0.0, extra)
            self.div = _im2col(mask, kernel_size, stride, ones).sum(axis=axes)
        return s / self.div

    def backward(self, g):
        d = len(self.stride)
        gd = (g / self.div).reshape(g.shape + (1,) * d)
        gcols = np.broadcast_to(gd, g.shape + tuple(self.ksize))
        gx = _col2im(gcols, self.xp_shape, self.stride, (1,) * d)
        return _unpad_spatial(gx, self.padding, self.xshape)


class Softplus(Function):
    """z = ln(1 + e^{βx}) / β = (max(βx, 0) + ln(1 + e^-|βx|)) / β (no overflow at any x), and z = x where
    βx > threshold (as PyTorch);  dz/dx = σ(βx) (1 where linear)"""
    def forward(self, x, beta=1.0, threshold=20.0):
        bx = x * beta if beta != 1 else x
        self.bx, self.lin = bx, bx > threshold
        z = np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))
        if beta != 1:
            z /= beta
        return np.where(self.lin, x, z)

    def backward(self, g):
        e = np.exp(-np.abs(self.bx))  # σ(βx) = 1/(1+e) for βx >= 0, e/(1+e) below: accurate in both tails
        return g * np.where(self.lin, 1, np.where(self.bx >= 0, 1, e) / (1 + e))


class BinaryCrossEntropy(Function):
    """ℓ = -(t ln p + (1 - t) ln(1 - p)), each log clamped at -100 (as PyTorch: finite at p ∈ {0, 1});
    dℓ/dp = (p - t) / max(p (1 - p), 1e-12),  dℓ/dt = ln(1 - p) - ln p (clamped logs)"""
    def forward(self, p, t):
        with np.errstate(divide="ignore"):
            self.lp = np.maximum(np.log(p), -100.0)
            self.l1p = np.maximum(np.log1p(-p), -100.0)
        self.p, self.t = p, t
        return -(t * self.lp + (1 - t) * self.l1p)

    def backward(self, g):
        p, t = self.p, self.t
        gp = g * (p - t) / np.maximum(p * (1 - p), 1e-12) if self.needs[0] else None
        gt = g * (self.l1p - self.lp) if self.needs[1] else None
        return gp, gt


# ---------------------------------------------------------------- attention helpers

def _masked_softmax(x: np.ndarray, mask, axis: int = -1, overwrite: bool = False) -> np.ndarray:
    """softmax over `axis` where True in `mask` (and -inf in x) means "excluded"; a row with nothing
    left gives all zeros instead of NaN (0/0). overwrite=True reuses x's memory for the result."""
    if mask is not None:
        x, overwrite = np.where(mask, -np.inf, x), True
    m = np.max(x, axis=axis, keepdims=True)
    m[~np.isfinite(m)] = 0  # an all -inf row: exp(-inf - 0) = 0 everywhere, no inf - inf
    e = np.subtract(x, m, out=x if overwrite else None)
    np.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    s[s == 0] = 1
    e *= np.reciprocal(s)
    return e


class MaskedSoftmax(Softmax):
    """y = softmax(x) over the entries not blocked (mask True or x = -inf); blocked entries and fully
    blocked rows give 0 (PyTorch's softmax gives NaN for a fully -inf row);  dx = y * (g - Σ g y),
    Softmax's backward (blocked entries have y = 0, so they get no gradient)"""
    def forward(self, x, mask=None, dim=-1):
        self.axis = dim
        self.out = _masked_softmax(x, mask, dim)
        return self.out


class ScaledDotProductAttention(Function):
    """o = dropout(softmax(q kᵀ · scale + bias, blocked)) v over the last two dims (batched, broadcast
    batch dims allowed between q and k/v; bias additive float, blocked bool; fully blocked rows give 0).
    Backward:  dP = g vᵀ,  dS = P ⊙ (dP - Σ dP ⊙ P) · scale,  dq = dS k,  dk = dSᵀ q,  dv = Pᵀ g
    (P = the dropped-out weights, with the dropout mask folded into dP). One node instead of ~6.
    The scores are kept transposed, Sᵀ = k qᵀ (..., S, L): the softmax reductions then run over axis -2,
    which NumPy vectorises along the contiguous last axis (about 2x faster than over a short last axis)."""
    def forward(self, q, k, v, bias=None, blocked=None, scale=1.0, keep=None):
        st = k @ np.swapaxes(q, -1, -2)
        st *= scale
        if bias is not None:
            st += np.swapaxes(bias, -1, -2)
        pt = _masked_softmax(st, None if blocked is None else np.swapaxes(blocked, -1, -2), -2, True)
        self.keep_t = None if keep is None else np.swapaxes(keep, -1, -2)
        pdt = pt if keep is None else pt * self.keep_t
        self.q, self.k, self.v, self.pt, self.pdt, self.scale = q, k, v, pt, pdt, scale
        return np.swapaxes(pdt, -1, -2) @ v
    def backward(self, g):
        q, k, v, pt = self.q, self.k, self.v, self.pt
        gv = self.pdt @ g if self.needs[2] else None
        dpt = v @ np.swapaxes(g, -1, -2)
        if self.keep_t is not None:
            dpt *= self.keep_t
        dpt *= pt
        dpt -= pt * dpt.sum(axis=-2, keepdims=True)
        dpt *= self.scale
        gq = np.swapaxes(dpt, -1, -2) @ k if self.needs[0] else None
        gk = dpt @ q if self.needs[1] else None
        return gq, gk, gv


class CrossEntropy(Function):
    """Per-element cross-entropy with class indices (class dim 1), weights and label smoothing ε:
    ℓ_n = v_n [(1 - ε) w_{t_n} (-log p_{n,t_n}) + ε/C Σ_c w_c (-log p_{n,c})],  p = softmax(x, 1), v_n = [t_n not ignored];
    dℓ_n/dx_{n,j} = v_n [p_j ((1 - ε) w_{t_n} + ε/C Σ_c w_c) - (1 - ε) w_{t_n} δ_{j,t_n} - ε/C w_j]"""
    def forward(self, x, target, valid, wt, weight=None, label_smoothing=0.0):
        C, eps = x.shape[1], label_smoothing
        m = np.max(x, axis=1, keepdims=True)
        lp = x - np.where(np.isfinite(m), m, 0)
        lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
        self.lp, self.t, self.valid, self.wt, self.eps = lp, np.expand_dims(target, 1), valid, wt, eps
        self.wc = None if weight is None else weight.reshape((1, C) + (1,) * (x.ndim - 2))
        loss = -(1 - eps) * wt * np.take_along_axis(lp, self.t, axis=1)[:, 0]
        if eps:
            smooth = lp.sum(axis=1) if self.wc is None else (lp * self.wc).sum(axis=1)
            loss -= (eps / C) * smooth * valid
        return loss

    def backward(self, g):
        C, eps = self.lp.shape[1], self.eps
        wsum = C if self.wc is None else float(self.wc.sum())
        gv = g * self.valid
        a = (1 - eps) * g * self.wt + (eps / C) * wsum * gv
        gx = np.exp(self.lp)
        gx *= np.expand_dims(a, 1)
        hit = np.take_along_axis(gx, self.t, axis=1) - (1 - eps) * np.expand_dims(g * self.wt, 1)
        np.put_along_axis(gx, self.t, hit, axis=1)
        if eps:
            gx -= (eps / C) * (1 if self.wc is None else self.wc) * np.expand_dims(gv, 1)
        return gx


# The one registry of ops (name -> Function), e.g. for the visualizer's labels and for tests.
REGISTRY: dict[str, type[Function]] = {}


def _register_all() -> None:
    for name, obj in list(globals().items()):
        if isinstance(obj, type) and issubclass(obj, Function) and obj is not Function:
            REGISTRY[name] = obj


_register_all()

from .tensor import Tensor  # noqa: E402  (tensor.py imports this module; bound at the end to avoid a cycle)
