"""Every differentiable op: one `Function` each, forward and local backward side by side on ndarrays.

`forward(*arrays, **kw)` computes the result and keeps on `self` what backward needs;
`backward(g)` returns the gradient for each input (one array, or a tuple for several inputs; None
where an input gets no gradient). Gradients of broadcasting ops may come back in the broadcast shape:
the engine sums them back to each input's shape (autograd._unbroadcast), so no op repeats that code.
`self.needs` (tuple of bools, one per input) lets an op skip work for inputs that need no gradient.
Defining a subclass registers it (`REGISTRY`); an op that sets `method = "name"` is also `x.name(...)` and
`tg.name(x, ...)` with no other code (see Erf at the end), so a new op is one class here plus its test.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .autograd import STATE, OuterSum, _check_finite, _Released
from .errors import EngineError, OutOfRangeError, ShapeError


class Function:
    """Base class: `Op.apply(*tensors, **kw)` runs forward and, if needed, records the graph node."""
    __slots__ = ("parents", "needs", "scope", "clock", "__dict__")

    # Set by a basic-index GetItem: the backward pass then adds g into one buffer per input
    # (autograd.run_backward) instead of a dense zeros array per slice (x[t] over T steps: O(T), not O(T^2)).
    slice_index = None
    # What a node becomes once backward has consumed it (one shared marker per op class).
    released: _Released = _Released("Function")
    # Which arrays backward reads: input indices, -1 for the output. An in-place write into one of them
    # after the op ran makes backward raise (autograd._check_saved). Default: all of them.
    saves: tuple = (0, 1, 2, 3, -1)
    # cross[i]: the inputs whose gradient reads input i (x * y, x @ y: each only for the other's): as torch, a
    # write into input i then matters only if one of those needs a gradient. None: every gradient may read it.
    cross = None
    # True when the output is a view of input 0's storage (reshape, permute, basic indexing): an in-place
    # write into the output then also rewrites the input's graph (Tensor._inplace).
    view = False
    # The name under which the op is also `x.<method>(...)` and `tg.<method>(x, ...)` (tensor inputs positional,
    # options as keywords), with no other code: a new op is its class here plus its test. Ops whose methods
    # need argument handling leave this None and get a hand-written Tensor method instead.
    method: str | None = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.released = _Released(cls.__name__)
        REGISTRY.setdefault(cls.__name__, cls)  # defining an op registers it (the visualizer's labels, tests)
        if cls.__dict__.get("method"):
            METHODS[cls.method] = cls

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
                x, y = tensors  # (no `**kw` of an empty dict: ~0.15 us per call)
                data = ctx.forward(x._data, y._data, **kw) if kw else ctx.forward(x._data, y._data)
                needs = (x.requires_grad, y.requires_grad) if STATE.grad_enabled else _NO_GRAD
            elif n == 1:
                x = tensors[0]
                data = ctx.forward(x._data, **kw) if kw else ctx.forward(x._data)
                needs = (x.requires_grad,) if STATE.grad_enabled else _NO_GRAD
            else:
                data = ctx.forward(*[t._data for t in tensors], **kw)
                needs = tuple([t.requires_grad for t in tensors]) if STATE.grad_enabled else _NO_GRAD
        except (ValueError, IndexError) as e:  # name the op and every input shape (NumPy's message names neither)
            shapes = ", ".join(str(tuple(t._data.shape)) for t in tensors)
            kind = (type(e) if isinstance(e, EngineError) else
                    IndexError if isinstance(e, IndexError) else ShapeError)  # NumPy's AxisError is both
            raise kind(f"{cls.__name__}: {e} (input shapes {shapes})") from None
        if type(data) is not np.ndarray:  # NumPy gives scalars for 0-d results; a Tensor always holds an array
            data = np.asarray(data)
        out = _new(tensors[0]._result_type)  # a plain Tensor (tensor.py sets the class; this module never imports it)
        out._data = data
        out.grad = None
        out._retain = False
        out._hooks = None
        out.name = None
        out._history = None
        if ctx.view:
            ctx.clock = STATE.clock  # when the view was taken (autograd._check_view)
            out._view = (tensors[0], ctx)
        else:
            out._view = None
        if True in needs:
            ctx.parents = tensors
            ctx.needs = needs
            ctx.scope = STATE.scope
            ctx.clock = STATE.clock
            out.requires_grad = True
            out._ctx = ctx
        else:
            out.requires_grad = False
            out._ctx = None
        if STATE.anomaly:
            _check_finite(data, "forward", ctx)
        if _REC is not None:  # tg.compile is tracing: record this op (see compile.py)
            _REC(ctx, tensors, kw, out)
        return out


# The one registry of ops (name -> Function class), filled as each op class is defined.
REGISTRY: dict[str, type] = {}
METHODS: dict[str, type] = {}  # method name -> op (Function.method)
_NO_GRAD = (False,)
_ONE_NEEDS = (True,)
_REC = None  # tg.compile's recorder while it traces a call, else None (one global read per op)
_new = object.__new__


def _errstate_quiet():
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


try:  # NumPy >= 2 keeps the error state in a context variable: setting it directly costs ~0.3 us,
    # a fresh np.errstate ~2-4 us (these guards run on every call of log, exp, div, sqrt, pow, sum ...)
    from numpy._core._ufunc_config import _extobj_contextvar as _EXTOBJ
    with _errstate_quiet():
        _QUIET_EXTOBJ = _EXTOBJ.get()

    class _QuietState:
        __slots__ = ("token",)

        def __enter__(self):
            self.token = _EXTOBJ.set(_QUIET_EXTOBJ)

        def __exit__(self, *exc):
            _EXTOBJ.reset(self.token)

    _quiet = _QuietState
except (ImportError, AttributeError):  # older NumPy
    _quiet = _errstate_quiet
_quiet.__doc__ = """Ops whose inputs can leave the domain (log 0, x/0, overflow) compute under this: inf/NaN as
PyTorch gives them, without NumPy's RuntimeWarning (divide, invalid, overflow ignored inside only)."""


# ---------------------------------------------------------------- elementwise, binary (broadcasting)

class Add(Function):
    """z = x + y"""
    saves = ()
    def forward(self, x, y): return x + y
    def backward(self, g): return g, g


class Sub(Function):
    """z = x - y"""
    saves = ()
    def forward(self, x, y): return x - y
    def backward(self, g): return g, (-g if self.needs[1] else None)


class Mul(Function):
    """z = x * y"""
    saves = (0, 1)
    cross = ((1,), (0,))
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y
    def backward(self, g):
        return (g * self.y if self.needs[0] else None), (g * self.x if self.needs[1] else None)


class Div(Function):
    """z = x / y;  dz/dx = 1/y,  dz/dy = -x/y^2  (x/0 = ±inf, 0/0 = NaN, as PyTorch, without a warning)"""
    saves = (0, 1)
    def forward(self, x, y):
        self.x, self.y = x, y
        if y.ndim == 0 and 1.0 <= abs(float(y)) < math.inf:  # x / scale (|scale| >= 1) cannot warn
            return x / y
        with _quiet():
            return np.asarray(x / y)
    def backward(self, g):
        with _quiet():
            gx = g / self.y
            return gx, (-gx * self.x / self.y if self.needs[1] else None)


class Pow(Function):
    """z = x ** y (tensor exponent);  dz/dx = y x^(y-1),  dz/dy = z ln x"""
    def forward(self, x, y):
        self.x, self.y = x, y
        with _quiet():
            self.out = np.asarray(x ** y)
        return self.out
    def backward(self, g):
        # as PyTorch: dx is 0 where y = 0; dy is 0 where x = 0 and y >= 0, NaN for x < 0
        x, y = self.x, self.y
        gx = gy = None
        with _quiet():
            if self.needs[0]:
                gx = np.where(y == 0, 0, g * y * x ** (y - 1))
            if self.needs[1]:
                gy = np.where((x == 0) & (y >= 0), 0, g * self.out * np.log(x))
        return gx, gy


class PowConst(Function):
    """z = x ** c (constant c);  dz/dx = c x^(c-1)"""
    def forward(self, x, c):
        self.x, self.c = x, c
        if c == 2:  # x * x: as unguarded as Mul
            return x * x
        with _quiet():
            return np.asarray(x ** c)
    def backward(self, g):
        c = self.c
        if c == 2:
            return g * 2 * self.x
        if c == 0:  # constant output: zero gradient, not 0 * x^-1 (NaN at x = 0)
            return np.zeros_like(g)
        with _quiet():  # x^(c-1) at x = 0 for c < 1: inf, as PyTorch
            return g * c * self.x ** (c - 1)


def _split_ties(g, x, y, tie, x_loses, y_loses):
    """PyTorch's maximum/minimum backward: g/2 to both on ties, g to the larger (smaller) one, 0 to the
    other; both get g where a NaN makes the comparisons false. np.where, not g * mask: an inf g must
    not turn into NaN on the losing side."""
    gt = np.where(tie, g * g.dtype.type(0.5), g)
    zero = g.dtype.type(0)
    return np.where(x_loses, zero, gt), np.where(y_loses, zero, gt)


class Maximum(Function):
    """z = max(x, y); ties split the gradient evenly (as PyTorch)"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return np.maximum(x, y)
    def backward(self, g):
        x, y = self.x, self.y
        return _split_ties(g, x, y, x == y, x < y, x > y)


class Minimum(Function):
    """z = min(x, y); ties split the gradient evenly (as PyTorch)"""
    def forward(self, x, y):
        self.x, self.y = x, y
        return np.minimum(x, y)
    def backward(self, g):
        x, y = self.x, self.y
        return _split_ties(g, x, y, x == y, x > y, x < y)


class Where(Function):
    """z = cond ? x : y  (cond a bool input without gradient: tg.compile replays each call's condition)"""
    saves = ()
    def forward(self, x, y, cond):
        self.cond = cond
        return np.where(cond, x, y)
    def backward(self, g):
        c = self.cond
        return (np.where(c, g, 0) if self.needs[0] else None), (np.where(c, 0, g) if self.needs[1] else None), None


class Lerp(Function):
    """z = a + w (b - a) where |w| < 0.5, else b - (b - a)(1 - w): torch.lerp's two forms (exact at w = 0 and
    w = 1);  da = g (1 - w),  db = g w,  dw = g (b - a)"""
    saves = (2,)
    def forward(self, a, b, w):
        self.w = w
        self.d = d = b - a
        if w.ndim == 0:
            return a + w * d if abs(w) < 0.5 else b - d * (1 - w)
        return np.where(np.abs(w) < 0.5, a + w * d, b - d * (1 - w))
    def backward(self, g):
        w = self.w
        return (g * (1 - w) if self.needs[0] else None), (g * w if self.needs[1] else None), \
            (g * self.d if self.needs[2] else None)


class MaskedFill(Function):
    """z = mask ? value : x  (mask a bool input without gradient, broadcasting with x; value a number or a
    0-d tensor input);  dx = g where not mask,  dvalue = Σ g where mask"""
    saves = ()
    def forward(self, x, mask, *v, value=None):
        self.mask = mask
        return np.where(mask, np.asarray(v[0] if v else value, dtype=x.dtype), x)
    def backward(self, g):
        gx = np.where(self.mask, 0, g) if self.needs[0] else None
        if len(self.needs) == 2:
            return gx, None
        return gx, None, (np.where(self.mask, g, 0).sum() if self.needs[2] else None)


# ---------------------------------------------------------------- elementwise, unary

class Neg(Function):
    """z = -x"""
    saves = ()
    def forward(self, x): return -x
    def backward(self, g): return -g


class Exp(Function):
    """z = e^x;  dz/dx = z"""
    saves = (-1,)
    def forward(self, x):
        with _quiet():  # overflow: inf, as PyTorch
            self.out = np.asarray(np.exp(x))
        return self.out
    def backward(self, g):
        with _quiet():
            return g * self.out


class Log(Function):
    """z = ln x;  dz/dx = 1/x"""
    saves = (0,)
    def forward(self, x):
        self.x = x
        with _quiet():  # log 0 = -inf, log of a negative = NaN, as PyTorch
            return np.asarray(np.log(x))
    def backward(self, g):
        with _quiet():
            return g / self.x


class Sqrt(Function):
    """z = sqrt(x);  dz/dx = 1/(2 z)"""
    saves = (-1,)
    def forward(self, x):
        with _quiet():  # sqrt of a negative = NaN, as PyTorch
            self.out = np.asarray(np.sqrt(x))
        return self.out
    def backward(self, g):
        with _quiet():  # inf at 0, as PyTorch
            return g / (2 * self.out)


class Abs(Function):
    """z = |x|;  dz/dx = sign(x) (0 at 0, as PyTorch)"""
    saves = (0,)
    def forward(self, x):
        self.x = x
        return np.abs(x)
    def backward(self, g): return g * np.sign(self.x)


_NUMS: dict = {}


def _num(v: float, dt) -> np.ndarray:
    """v as a 0-d array of dtype dt (cached): a ufunc takes it ~1.5 us faster than a Python float, same result."""
    a = _NUMS.get((v, dt))
    if a is None:
        a = _NUMS[(v, dt)] = np.array(v, dt)
        a.flags.writeable = False
    return a


class Tanh(Function):
    """z = tanh(x);  dz/dx = 1 - z^2"""
    saves = (-1,)
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out
    def backward(self, g):
        out = self.out
        return g * (_num(1.0, out.dtype) - out * out)


class Sigmoid(Function):
    """z = σ(x) = 1/(1+e^-x), computed as 0.5 tanh(x/2) + 0.5: no overflow at any x;  dz/dx = z(1-z)"""
    saves = (-1,)
    def forward(self, x):
        h = _num(0.5, x.dtype)
        out = np.tanh(x * h)
        out *= h
        out += h
        self.out = out
        return out
    def backward(self, g):
        out = self.out
        return g * out * (_num(1.0, out.dtype) - out)


class Relu(Function):
    """z = max(0, x);  dz/dx = [x > 0]"""
    saves = (-1,)
    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out
    def backward(self, g): return g * (self.out > 0)


class Gelu(Function):
    """z = x Φ(x) (exact, Φ via erf) or the tanh approximation
    0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))"""
    saves = (0,)
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
    saves = (0,)
    def forward(self, x, lo=None, hi=None):
        self.x, self.lo, self.hi = x, lo, hi
        return np.clip(x, lo, hi)
    def backward(self, g):
        x, mask = self.x, True
        if self.lo is not None:
            mask = mask & (x >= self.lo)
        if self.hi is not None:
            mask = mask & (x <= self.hi)
        return np.where(mask, g, g.dtype.type(0))  # not g * mask: an inf g stays inf, 0 elsewhere


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
    # dim=() reduces over every dim (as PyTorch's sum(())); a 0-d tensor accepts dim 0 / -1 (all of it)
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        if not dim:
            return None
        axes = tuple(_dim(d, ndim) for d in dim)
        return axes if ndim else None
    d = _dim(dim, ndim)
    return d if ndim else None


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
    saves = ()
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        with _quiet():  # inf + -inf = NaN, as PyTorch
            return np.asarray(x.sum(axis=self.axis, keepdims=keepdim))
    def backward(self, g):
        return np.broadcast_to(_expand_reduced(g, self.shape, self.axis, self.keepdim), self.shape)


class Mean(Function):
    """z = (1/n) Σ x over dim;  dz/dx = 1/n"""
    saves = ()
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        with _quiet():
            out = np.asarray(x.mean(axis=self.axis, keepdims=keepdim))
        self.n = x.size // max(out.size, 1) if x.size else 1
        return out
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim) / self.n
        return np.broadcast_to(g, self.shape)


class Var(Function):
    """z = Σ (x - μ)² / max(n - correction, 0) over dim;  dz/dx = 2 (x - μ) / max(n - correction, 0)"""
    saves = ()
    def forward(self, x, dim=None, keepdim=False, correction=1):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        self.denom = max(_reduced_size(x.shape, self.axis) - correction, 0)
        with _quiet():  # inf entries give NaN, n <= correction inf/NaN, as PyTorch
            d = x - x.mean(axis=self.axis, keepdims=True)
            self.d = d
            ss = np.asarray((d * d).sum(axis=self.axis, keepdims=keepdim))
            return np.asarray(ss / self.denom) if self.denom else np.asarray(ss / 0)
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim)
        with _quiet():
            return g * self.d * (2 / self.denom) if self.denom else g * self.d * np.inf


class Max(Function):
    """z = max x over dim (all tied maxima share the gradient evenly, as torch.amax; a NaN result
    gives NaN gradients as amax, or with `nan_hit` (torch.max()) goes to the NaN entries)"""
    def forward(self, x, dim=None, keepdim=False, op=np.max, nan_hit=False):
        self.x, self.axis, self.keepdim, self.nan_hit = x, _axes(dim, x.ndim), keepdim, nan_hit
        self.out = np.asarray(op(x, axis=self.axis, keepdims=True))
        if keepdim:
            return self.out
        return self.out.reshape(()) if self.axis is None else np.squeeze(self.out, axis=self.axis)
    def backward(self, g):
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdim)
        hit = self.x == self.out
        with _quiet():
            if self.nan_hit:  # torch.max(): g / count put on the hits, zeros elsewhere (even for an inf g)
                if self.x.dtype.kind == "f":
                    hit |= np.isnan(self.x) & np.isnan(self.out)
                return np.where(hit, g / hit.sum(axis=self.axis, keepdims=True).astype(g.dtype), g.dtype.type(0))
            # torch.amax: (g / count) * hit, so no hit (a NaN result) gives NaN, and an inf g NaN off the hits
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


def _row_max(x: np.ndarray, axis) -> np.ndarray:
    """max over `axis`, keepdims: np.maximum.reduce's values. NumPy reduces a short last axis one row at a
    time (~80 ns a row of 16, ~90 of 64); rows of at most 64 are instead transposed in L1-sized slabs and
    reduced along the then outer axis, one vectorised pass: (4096, 64) 354 -> 130 us, (16384, 16) 1311 ->
    132 us. The maxima are the same (a max is exact; NaN wins in any order)."""
    S = x.shape[-1] if x.ndim else 0
    R = x.size // S if S else 0
    if axis not in (-1, x.ndim - 1) or not 2 <= S <= 64 or R < 32 or not x.flags.c_contiguous:
        return np.maximum.reduce(x, axis=axis, keepdims=True)
    x2 = x.reshape(R, S)
    xt = np.empty((S, R), x.dtype)
    n = max(1, 32768 // (S * x.itemsize))  # rows per slab: the slab fits in L1
    for i in range(0, R, n):
        xt[:, i:i + n] = x2[i:i + n].T
    return np.maximum.reduce(xt, axis=0).reshape(x.shape[:-1] + (1,))


def _exp_shifted(x, axis, keep_shifted=False):
    """(e, s, d, m, ok): m = max x over `axis`, d = x - m, e = e^d, s = Σ e (keepdims shapes); ok: every
    row's max is finite (softmax and log_softmax give NaN for the other rows, as PyTorch).

    Stable at any finite x (e <= 1, s >= 1); without `keep_shifted`, d's buffer is reused for e.
    Rows whose max is not finite take a path that never warns: a row of only -inf (fully masked)
    gets d = -inf, e = 0, s = 1; a row with +inf puts e = 1 on its +inf entries (the limit); NaN stays NaN.
    """
    if not x.ndim:  # x - m of 0-d arrays is a NumPy scalar, which exp(out=) rejects
        x = x.reshape(1)
    m = _row_max(x, axis)
    fin = np.isfinite(m)
    if fin.all():
        d = x - m
        e = np.exp(d) if keep_shifted else np.exp(d, out=d)
        return e, e.sum(axis=axis, keepdims=True), d, m, True
    with np.errstate(invalid="ignore", over="ignore"):
        d = x - np.where(fin, m, 0)
        e = np.exp(d)
    e = np.where(fin, e, np.where(np.isnan(m), x.dtype.type(np.nan), x == np.inf))
    s = e.sum(axis=axis, keepdims=True)
    return e, np.where(s == 0, 1, s), d, m, False


class LogSumExp(Function):
    """z = m + ln Σ e^(x - m), m = max x (stable for any finite x; ±inf rows give ±inf);  dz/dx = softmax(x)"""
    saves = ()
    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.axis, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        self.e, self.s, _, m, _ = _exp_shifted(x, self.axis)
        out = np.log(self.s) + m
        if not keepdim:
            out = out.reshape(()) if self.axis is None else np.squeeze(out, axis=self.axis)
        return out
    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdim)
        return g * (self.e / self.s)


class Softmax(Function):
    """y_i = e^(x_i - m) / Σ_j e^(x_j - m) (a row of only -inf, or with +inf, gives NaN, as PyTorch;
    MaskedSoftmax gives zeros there);  dx = y * (g - Σ g y)"""
    saves = (-1,)
    def forward(self, x, dim=-1):
        if not x.ndim:  # 0-d: dim 0 / -1 is the one element (as PyTorch)
            return self.forward(x.reshape(1), _axes(dim, 0) or 0).reshape(())
        self.axis = dim
        e, s, _, m, ok = _exp_shifted(x, dim)
        e /= s
        if not ok:
            e = np.where(np.isfinite(m), e, x.dtype.type(np.nan))
        self.out = e
        return e
    def backward(self, g):
        y = self.out
        gy = g * y
        gy -= y * gy.sum(axis=self.axis, keepdims=True)
        return gy


class LogSoftmax(Function):
    """y = (x - m) - ln Σ e^(x - m) (= x - logsumexp x; a row of only -inf, or with +inf, gives NaN, as
    PyTorch);  dx = g - softmax(x) Σ g"""
    saves = ()
    def forward(self, x, dim=-1):
        if not x.ndim:
            return self.forward(x.reshape(1), _axes(dim, 0) or 0).reshape(())
        self.axis = dim
        self.e, self.s, d, m, ok = _exp_shifted(x, dim, keep_shifted=True)
        d -= np.log(self.s)  # subtract from the shifted values: x - (m + ln s) loses digits at |x| ~ 1e4
        if ok:
            return d
        self.e = np.where(np.isfinite(m), self.e, x.dtype.type(np.nan))  # and NaN gradients, as PyTorch
        return np.where(np.isfinite(m), d, x.dtype.type(np.nan))
    def backward(self, g):
        return g - (self.e / self.s) * g.sum(axis=self.axis, keepdims=True)


# ---------------------------------------------------------------- shape

class Reshape(Function):
    """z = x viewed with a new shape"""
    saves = ()
    def forward(self, x, shape):
        self.shape = x.shape
        out = x.reshape(shape)
        self.view = out.base is not None and (out.base is x or out.base is x.base)  # NumPy copies some reshapes
        return out
    def backward(self, g): return g.reshape(self.shape)


class Permute(Function):
    """z = x with axes permuted;  dx = g with the inverse permutation"""
    saves = ()
    view = True
    def forward(self, x, order):
        self.inv = tuple(order.index(i) for i in range(len(order)))  # np.argsort costs ~2 us on a 2-tuple
        return x.transpose(order)
    def backward(self, g): return g.transpose(self.inv)


class Cast(Function):
    """z = x converted to another float dtype;  dx = g converted back"""
    saves = ()
    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)
    def backward(self, g): return g.astype(self.dtype)


class Expand(Function):
    """z = x broadcast to shape (a view);  the engine sums the gradient back"""
    saves = ()
    view = True
    def forward(self, x, shape):
        return np.broadcast_to(x, shape)
    def backward(self, g): return g


# bool scalars too: x[True] / x[0, False] copy in NumPy, so their gradient must be scattered, not added into a view
_ADVANCED = (np.ndarray, list, bool, np.bool_)


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
    saves = ()
    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        if not _is_advanced(index):
            self.slice_index = index
            self.view = True
        out = x[index]
        if type(out) is not np.ndarray:  # one element: a 0-d array (a view for basic indices), never a NumPy scalar
            out = x[(index if type(index) is tuple else (index,)) + (Ellipsis,)]
        return out
    @classmethod
    def pieces(cls, x, indices: list) -> list:
        """[x[i] for i in indices] for basic indices that each select a view (split, chunk): the same
        nodes as one `apply` each, built in one loop (a recurrent step's gate chunk(4): ~2x faster)."""
        if STATE.anomaly or _REC is not None:  # the checks and the recorder see every op on the generic path
            return [cls.apply(x, index=i) for i in indices]
        data = x._data
        grad = x.requires_grad and STATE.grad_enabled
        clock, scope, shape, dtype, new_t = STATE.clock, STATE.scope, data.shape, data.dtype, x._result_type
        outs = []
        for index in indices:
            ctx = _new(cls)
            ctx.shape, ctx.dtype, ctx.index, ctx.slice_index, ctx.view, ctx.clock = shape, dtype, index, index, True, clock
            out = _new(new_t)
            out._data, out.grad, out._retain, out._hooks, out.name, out._history = data[index], None, False, None, None, None
            out._view = (x, ctx)
            if grad:
                ctx.parents, ctx.needs, ctx.scope = (x,), _ONE_NEEDS, scope
                out.requires_grad, out._ctx = True, ctx
            else:
                out.requires_grad, out._ctx = False, None
            outs.append(out)
        return outs

    def backward(self, g):
        full = np.zeros(self.shape, dtype=g.dtype)
        index = self.index
        if _is_advanced(index) and not (type(index) is np.ndarray and index.dtype == np.bool_):
            np.add.at(full, index, g)  # integer arrays may repeat an element: accumulate
        else:
            full[index] = g  # basic index or one bool mask: every element at most once
        return full


class SetItem(Function):
    """x[index] = v, written into x's own array (torch's CopySlices);  dx = g with g[index] = 0,  dv = g[index]
    (summed back to v's shape by the engine). Tensor.__setitem__ runs it on a stand-in for x's old value."""
    saves = ()
    def forward(self, x, v, index):
        self.index = index
        x[index] = v
        return x
    def backward(self, g):
        gx = None
        if self.needs[0]:
            gx = g.copy()
            gx[self.index] = 0
        return gx, (g[self.index] if self.needs[1] else None)


class Clone(Function):
    """z = a copy of x;  dx = g"""
    saves = ()
    def forward(self, x): return x.copy()
    def backward(self, g): return g


class Cat(Function):
    """z = [x_1, ..., x_n] along dim;  dx_i = the matching slice of g"""
    saves = ()
    def forward(self, *xs, dim=0):
        self.axis = _dim(dim, xs[0].ndim)
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.axis)
    def backward(self, g):
        parts = tuple(np.split(g, self.bounds, axis=self.axis))
        return parts if len(parts) > 1 else parts[0]  # one input: one array, as every single-input op


class Stack(Function):
    """z = stack(x_1, ..., x_n) on a new dim;  dx_i = g[..., i, ...]"""
    saves = ()
    def forward(self, *xs, dim=0):
        self.axis = _dim(dim, xs[0].ndim + 1)
        return np.stack(xs, axis=self.axis)
    def backward(self, g):
        parts = tuple(np.moveaxis(g, self.axis, 0))
        return parts if len(parts) > 1 else parts[0]  # one input: one array, as every single-input op


class Gather(Function):
    """z[i][j] = x[i][index[i][j]] along dim (as torch.gather);  dx = scatter-add of g"""
    saves = ()
    def forward(self, x, index, dim):
        self.shape = x.shape
        # full advanced indices: the index may be smaller than x in the other dims (as torch.gather)
        self.pos = _along_axis(index, _dim(dim, x.ndim))
        return x[self.pos] if x.ndim else x[()].reshape(index.shape)
    def backward(self, g):
        full = np.zeros(self.shape, dtype=g.dtype)
        if not self.shape:
            return np.asarray(g.sum(), dtype=g.dtype)
        np.add.at(full, self.pos, g)  # repeated entries accumulate
        return full


class Pad(Function):
    """z = x padded with a constant (`widths` per axis, NumPy order);  dx = the inner slice of g"""
    saves = ()
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
    saves = (0, 1)
    cross = ((1,), (0,))
    def forward(self, x, y):
        if STATE.blas_hook is not None:  # the BLAS thread default, applied at the first BLAS op (threads.py)
            STATE.blas_hook()
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
    saves = (0, 1)
    cross = ((1,), (0,))
    def forward(self, x, w, b=None):
        if STATE.blas_hook is not None:  # the BLAS thread default, applied at the first BLAS op (threads.py)
            STATE.blas_hook()
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

    def take_bias(self, out, b):
        """`out + b` where `out` is this bias-free node's output and nothing else holds it (`x_t + h @ W.T`):
        b becomes the node's bias, z = x Wᵀ + b, one node instead of Linear then Add. The same two
        floating-point steps as forward with b (GEMM, then += b), so the same bits; b broadcasts to z."""
        np.add(out._data, b._data, out=out._data)
        self.parents += (b,)
        self.needs += (b.requires_grad,)
        self.bias_vector = b._data.ndim == 1
        return out


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


# ---------------------------------------------------------------- more math (PyTorch surface)


class Sin(Function):
    """z = sin x;  dz/dx = cos x"""
    def forward(self, x):
        self.x = x
        with _quiet():  # sin(±inf) = NaN
            return np.asarray(np.sin(x))
    def backward(self, g):
        with _quiet():
            return g * np.cos(self.x)


class Cos(Function):
    """z = cos x;  dz/dx = -sin x"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.cos(x))
    def backward(self, g):
        with _quiet():
            return -g * np.sin(self.x)


class Tan(Function):
    """z = tan x;  dz/dx = 1 + z²"""
    def forward(self, x):
        with _quiet():
            self.out = np.asarray(np.tan(x))
        return self.out
    def backward(self, g):
        with _quiet():
            return g * (1 + self.out * self.out)


class Sinh(Function):
    """z = sinh x;  dz/dx = cosh x"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.sinh(x))
    def backward(self, g):
        with _quiet():
            return g * np.cosh(self.x)


class Cosh(Function):
    """z = cosh x;  dz/dx = sinh x"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.cosh(x))
    def backward(self, g):
        with _quiet():
            return g * np.sinh(self.x)


class Asin(Function):
    """z = asin x;  dz/dx = 1/√(1 - x²)"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.arcsin(x))
    def backward(self, g):
        with _quiet():
            return g / np.sqrt(1 - self.x * self.x)


class Acos(Function):
    """z = acos x;  dz/dx = -1/√(1 - x²)"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.arccos(x))
    def backward(self, g):
        with _quiet():
            return -g / np.sqrt(1 - self.x * self.x)


class Atan(Function):
    """z = atan x;  dz/dx = 1/(1 + x²)"""
    def forward(self, x):
        self.x = x
        return np.asarray(np.arctan(x))
    def backward(self, g):
        with _quiet():
            return g / (1 + self.x * self.x)


class Atan2(Function):
    """z = atan2(y, x);  dz/dy = x/(x² + y²),  dz/dx = -y/(x² + y²)"""
    def forward(self, y, x):
        self.y, self.x = y, x
        return np.asarray(np.arctan2(y, x))
    def backward(self, g):
        with _quiet():
            d = self.x * self.x + self.y * self.y
            r = np.where(d == 0, 0, g / d)  # 0 at the origin, as PyTorch
            return (r * self.x if self.needs[0] else None), (-r * self.y if self.needs[1] else None)


class Log2(Function):
    """z = log₂ x;  dz/dx = 1/(x ln 2)"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.log2(x))
    def backward(self, g):
        with _quiet():
            return g / (self.x * math.log(2))


class Log10(Function):
    """z = log₁₀ x;  dz/dx = 1/(x ln 10)"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.log10(x))
    def backward(self, g):
        with _quiet():
            return g / (self.x * math.log(10))


class Log1p(Function):
    """z = ln(1 + x) (accurate near 0);  dz/dx = 1/(1 + x)"""
    def forward(self, x):
        self.x = x
        with _quiet():
            return np.asarray(np.log1p(x))
    def backward(self, g):
        with _quiet():
            return g / (1 + self.x)


class Expm1(Function):
    """z = e^x - 1 (accurate near 0);  dz/dx = z + 1"""
    def forward(self, x):
        with _quiet():
            self.out = np.asarray(np.expm1(x))
        return self.out
    def backward(self, g):
        with _quiet():
            return g * (self.out + 1)


class Exp2(Function):
    """z = 2^x;  dz/dx = z ln 2"""
    def forward(self, x):
        with _quiet():
            self.out = np.asarray(np.exp2(x))
        return self.out
    def backward(self, g):
        with _quiet():
            return g * self.out * math.log(2)


class _Piecewise(Function):
    """Piecewise-constant ops: zero gradient everywhere (as PyTorch's sign/floor/ceil/round)."""
    def backward(self, g): return np.zeros_like(g)


class Sign(_Piecewise):
    """z = sign x (0 at 0, NaN at NaN);  dz/dx = 0"""
    def forward(self, x): return np.asarray(np.sign(x))


class Floor(_Piecewise):
    """z = ⌊x⌋;  dz/dx = 0"""
    def forward(self, x): return np.asarray(np.floor(x))


class Ceil(_Piecewise):
    """z = ⌈x⌉;  dz/dx = 0"""
    def forward(self, x): return np.asarray(np.ceil(x))


class Round(_Piecewise):
    """z = x rounded to `decimals` places, halves to even (as PyTorch);  dz/dx = 0"""
    def forward(self, x, decimals=0):
        with _quiet():  # x·10^d may overflow for huge d: NaN/inf as PyTorch
            return np.asarray(np.round(x, decimals))


class ClampT(Function):
    """z = min(max(x, lo), hi) with tensor bounds (either may be absent);  dz/dx = [lo <= x <= hi],
    dz/dlo = [x < lo] (and lo < hi), dz/dhi = [x > hi] (or hi < lo): ties go to x, as PyTorch"""
    def forward(self, x, *bounds, has_lo=True, has_hi=True):
        lo = bounds[0] if has_lo else None
        hi = bounds[-1] if has_hi else None
        self.x, self.lo, self.hi = x, lo, hi
        out = x if lo is None else np.maximum(x, lo)
        return np.asarray(out if hi is None else np.minimum(out, hi))
    def backward(self, g):
        x, lo, hi = self.x, self.lo, self.hi
        zero = g.dtype.type(0)
        keep = True
        if lo is not None:
            keep = keep & (x >= lo)
        if hi is not None:
            keep = keep & (x <= hi)
        grads = [np.where(keep, g, zero) if self.needs[0] else None]
        if lo is not None:
            grads.append(np.where((x < lo) & (lo < hi) if hi is not None else x < lo, g, zero)
                         if self.needs[1] else None)
        if hi is not None:
            grads.append(np.where((x > hi) | (hi < lo) if lo is not None else x > hi, g, zero)
                         if self.needs[-1] else None)
        return tuple(grads)


class TakeAlong(MaxDim):
    """z = x at `idx` along dim (sort, topk: distinct indices, keepdim shape);  dx = g scattered back"""


class Triu(Function):
    """z = x with the entries below `diagonal` zeroed (last two dims);  dx = triu(g)"""
    def forward(self, x, diagonal=0):
        self.k = diagonal
        return np.triu(x, diagonal)
    def backward(self, g): return np.triu(g, self.k)


class Tril(Function):
    """z = x with the entries above `diagonal` zeroed (last two dims);  dx = tril(g)"""
    def forward(self, x, diagonal=0):
        self.k = diagonal
        return np.tril(x, diagonal)
    def backward(self, g): return np.tril(g, self.k)


def _rev_cumsum(a, axis):
    return np.flip(np.cumsum(np.flip(a, axis), axis), axis)


class Cumsum(Function):
    """z_k = Σ_{j<=k} x_j along dim;  dx_k = Σ_{j>=k} g_j"""
    def forward(self, x, dim=0):
        self.axis = dim
        return np.cumsum(x, axis=dim, dtype=np.int64 if x.dtype.kind in "biu" else None)
    def backward(self, g): return _rev_cumsum(g, self.axis)


def _first_zero(x, axis):
    """Bool mask of the first zero of x along `axis` (per slice; all False where a slice has none)."""
    z = x == 0
    first = np.cumsum(z, axis=axis) == 1
    return z & first


class Cumprod(Function):
    """z_k = Π_{j<=k} x_j along dim;  dx_k = Σ_{j>=k} g_j z_j / x_k where x_k != 0 and no zero precedes;
    exact at zeros (as PyTorch): at a slice's first zero x_z, dx_z = Σ_{j>=z} g_j Π_{i<=j, i!=z} x_i,
    and 0 after it"""
    def forward(self, x, dim=0):
        self.axis, self.x = dim, x
        self.out = np.cumprod(x, axis=dim, dtype=np.int64 if x.dtype.kind in "biu" else None)
        return self.out
    def backward(self, g):
        x, ax = self.x, self.axis
        first = _first_zero(x, ax)
        with _quiet():
            gx = _rev_cumsum(g * self.out, ax) / np.where(x == 0, 1, x)
        if first.any():
            before = np.cumsum(x == 0, axis=ax) == 0  # no zero at or before k
            at_zero = _rev_cumsum(g * np.cumprod(np.where(first, 1, x), axis=ax), ax)
            gx = np.where(before, gx, np.where(first, at_zero, 0))
        return gx


class Prod(Function):
    """z = Π x over dim (or all);  dx_k = z / x_k for x_k != 0; exact at zeros (as PyTorch): a slice's
    first zero gets the product of the others, every other entry of a slice with a zero gets 0"""
    def forward(self, x, dim=None, keepdim=False):
        self.x, self.axis, self.keepdim = x, dim, keepdim
        kind = np.int64 if x.dtype.kind in "biu" else None
        self.out = np.asarray(np.prod(x, axis=dim, keepdims=True, dtype=kind))
        if keepdim:
            return self.out
        return self.out.reshape(()) if dim is None else np.squeeze(self.out, axis=dim)
    def backward(self, g):
        x, ax = self.x, self.axis
        g = _expand_reduced(g, x.shape, ax, self.keepdim)
        zero = x == 0
        if not zero.any():
            with _quiet():
                return g * self.out / x
        flat = x.reshape(-1) if ax is None else x
        first = _first_zero(flat, 0 if ax is None else ax).reshape(x.shape)
        others = np.prod(np.where(first, 1, x), axis=ax, keepdims=True)
        has_zero = zero.any(axis=ax, keepdims=True)
        with _quiet():
            nz = self.out / np.where(zero, 1, x)
        return g * np.where(has_zero, np.where(first, others, 0), nz)


class Norm(Function):
    """z = (Σ |x|^p)^(1/p) over dim (p = 2: √Σx², 1: Σ|x|, ±inf: max/min |x|, 0: count of nonzeros);
    dz/dx = sign(x) |x|^(p-1) / z^(p-1), 0 where x = 0 or z = 0 (as PyTorch); ±inf: sign(x) on the
    entries attaining z, shared evenly among ties"""
    def forward(self, x, p=2.0, dim=None, keepdim=False):
        self.x, self.p, self.axis, self.keepdim = x, p, dim, keepdim
        a = np.abs(x)
        with _quiet():
            if p == 2:
                out = np.sqrt((x * x).sum(axis=dim, keepdims=True))
            elif p == 1:
                out = a.sum(axis=dim, keepdims=True)
            elif p == math.inf:
                out = a.max(axis=dim, keepdims=True, initial=0)
            elif p == -math.inf:
                out = a.min(axis=dim, keepdims=True)
            elif p == 0:
                out = (x != 0).sum(axis=dim, keepdims=True).astype(x.dtype)
            else:
                out = (a ** p).sum(axis=dim, keepdims=True) ** (1.0 / p)
        self.out = np.asarray(out)
        if keepdim:
            return self.out
        return self.out.reshape(()) if dim is None else np.squeeze(self.out, axis=dim)
    def backward(self, g):
        x, p, z = self.x, self.p, self.out
        g = _expand_reduced(g, x.shape, self.axis, self.keepdim)
        zero = g.dtype.type(0)
        if p == 0:
            return np.zeros(x.shape, g.dtype)
        if p == 1:
            return g * np.sign(x)
        if p == math.inf or p == -math.inf:
            hit = np.abs(x) == z
            return g * np.sign(x) * hit / hit.sum(axis=self.axis, keepdims=True)
        with _quiet():
            if p == 2:
                return np.where(z == 0, zero, g * x / z)
            d = np.sign(x) * np.abs(x) ** (p - 1) / z ** (p - 1)
            return g * np.where((x == 0) | (z == 0), zero, d)


def _einsum_parse(eq: str, ndims: list) -> tuple[list, str]:
    """Explicit subscripts for `eq` (ellipsis replaced by unused letters, right-aligned as NumPy
    broadcasts it; an implicit output made explicit: ellipsis dims, then the letters used once, sorted)."""
    eq = eq.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum: the equation {eq!r} names {len(ins)} operands but {len(ndims)} were given")
    if not arrow:
        letters = [c for s in ins for c in s.replace("...", "")]
        rhs = ("..." if any("..." in s for s in ins) else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    free = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
    ell = max((n - len(s.replace("...", "")) for s, n in zip(ins, ndims) if "..." in s), default=0)
    ell_letters = "".join(free[:ell])
    out_ins = []
    for s, n in zip(ins, ndims):
        if "..." in s:
            k = n - len(s.replace("...", ""))
            s = s.replace("...", ell_letters[ell - k:] if k else "")
        if len(s) != n:
            raise ValueError(f"einsum: subscripts {s!r} name {len(s)} dims but the operand has {n}")
        out_ins.append(s)
    return out_ins, rhs.replace("...", ell_letters)


class Einsum(Function):
    """z = einsum(eq, *xs);  dx_k = einsum of g with the other operands into x_k's subscripts
    (letters only x_k has are broadcast back; a repeated letter, a diagonal, gets g on that diagonal)"""
    def forward(self, *xs, equation):
        if STATE.blas_hook is not None:  # the BLAS thread default, applied at the first BLAS op (threads.py)
            STATE.blas_hook()
        self.ins, self.outs = _einsum_parse(equation, [x.ndim for x in xs])
        self.xs = xs
        return np.asarray(np.einsum(",".join(self.ins) + "->" + self.outs, *xs))
    def backward(self, g):
        grads = []
        for k, (sub, x) in enumerate(zip(self.ins, self.xs)):
            if not self.needs[k]:
                grads.append(None)
                continue
            others = [(s, a) for j, (s, a) in enumerate(zip(self.ins, self.xs)) if j != k]
            seen = set(self.outs).union(*[set(s) for s, _ in others])
            uniq = "".join(dict.fromkeys(sub))  # x_k's letters in order, each once
            kept = "".join(c for c in uniq if c in seen)
            r = np.einsum(",".join([self.outs] + [s for s, _ in others]) + "->" + kept, g, *[a for _, a in others])
            if len(kept) < len(uniq):  # letters only x_k has were summed in forward: broadcast g back over them
                size = dict(zip(sub, x.shape))
                r = np.expand_dims(r, [i for i, c in enumerate(uniq) if c not in kept])
                r = np.broadcast_to(r, [size[c] if c not in kept else n for c, n in zip(uniq, r.shape)])
            if len(uniq) < len(sub):  # repeated letters: write onto the diagonal view
                full = np.zeros(x.shape, dtype=g.dtype)
                np.einsum(sub + "->" + uniq, full)[...] = r
                r = full
            grads.append(r)
        return tuple(grads) if len(grads) > 1 else grads[0]


# ---- nn ops (layer norm, embedding, convolution and pooling via im2col, softplus, BCE)

def _mean(x: np.ndarray, axes: tuple, n: int) -> np.ndarray:
    """x.mean(axes, keepdims=True), the same sum-then-divide, without np.mean's Python layer (~4 us a call);
    float16 keeps np.mean, which sums it in float32."""
    if x.dtype.itemsize < 4:
        return x.mean(axis=axes, keepdims=True)
    s = np.add.reduce(x, axis=axes, keepdims=True)
    return np.true_divide(s, n, out=s)


class LayerNorm(Function):
    """y = x̂ w + b,  x̂ = (x - μ) / √(σ² + ε), μ and biased σ² over the last `ndim` dims;
    dx = rstd (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)) with ĝ = g w,  dw = Σ g x̂,  db = Σ g (over the leading dims)"""
    saves = (1,)
    def forward(self, x, *wb, ndim=1, eps=1e-5, has_w=True, has_b=True):
        self.axes = tuple(range(x.ndim - ndim, x.ndim))
        self.lead = tuple(range(x.ndim - ndim))
        self.n = math.prod(x.shape[x.ndim - ndim:])
        xhat = x - _mean(x, self.axes, self.n)
        var = _mean(xhat * xhat, self.axes, self.n)
        var += eps
        self.rstd = np.reciprocal(np.sqrt(var, out=var), out=var)
        xhat *= self.rstd
        self.xhat = xhat
        self.w = wb[0] if has_w else None
        self.has_b = has_b
        out = xhat * self.w if has_w else xhat.copy()
        if has_b:
            out += wb[-1]
        return out

    def backward(self, g):
        xhat, w, axes, n = self.xhat, self.w, self.axes, self.n
        grads = []
        if self.needs[0]:
            gh = g * w if w is not None else g
            dx = gh - _mean(gh, axes, n)  # in place from here, in the order of the formula (the same digits)
            dx -= xhat * _mean(gh * xhat, axes, n)
            dx *= self.rstd
            grads.append(dx)
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
    saves = ()
    def forward(self, w, idx, padding_idx=None, scale_grad_by_freq=False):
        self.check(idx, w.shape[0])
        self.idx, self.shape, self.padding_idx, self.by_freq = idx, w.shape, padding_idx, scale_grad_by_freq
        return w[idx]

    @staticmethod
    def check(idx: np.ndarray, n: int) -> None:
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"embedding: index out of range [0, {n}) (min {idx.min()}, max {idx.max()})")

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
        return gw, None


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
        if STATE.blas_hook is not None:  # the BLAS thread default, applied at the first BLAS op (threads.py)
            STATE.blas_hook()
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
    m = _row_max(x, axis)
    fin = np.isfinite(m)
    nan_rows = None if fin.all() else ~fin & (m != -np.inf)  # a row holding +inf or NaN: all NaN, as torch
    if nan_rows is not None:
        m[~fin] = 0  # an all -inf row: exp(-inf - 0) = 0 everywhere, no inf - inf
    with _quiet():
        e = np.subtract(x, m, out=x if overwrite else None)
        np.exp(e, out=e)
        s = e.sum(axis=axis, keepdims=True)
        s[s == 0] = 1
        e *= np.reciprocal(s)
    if nan_rows is not None:
        np.copyto(e, np.nan, where=nan_rows)
    return e


class MaskedSoftmax(Softmax):
    """y = softmax(x) over the entries not blocked (mask True or x = -inf); blocked entries and fully
    blocked rows give 0 (as torch's scaled_dot_product_attention; its softmax gives NaN there);
    dx = y * (g - Σ g y), Softmax's backward (blocked entries have y = 0, so they get no gradient).
    `x.masked_softmax(mask=None, dim=-1)`: the mask a bool tensor input without gradient (tg.compile replays
    each call's mask) or a constant array."""
    method = "masked_softmax"
    def forward(self, x, *m, mask=None, dim=-1):
        self.axis = dim
        self.out = _masked_softmax(x, m[0] if m else mask, dim)
        return self.out
    def backward(self, g):
        gx = super().backward(g)
        return gx if len(self.needs) == 1 else (gx, None)


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


def _class_targets(fn: str, target: np.ndarray, C: int, weight, ignore_index: int, dtype):
    """Checked class indices -> (safe indices, valid mask, per-element weight w[t]·valid)."""
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= C))
    if bad.any():
        raise OutOfRangeError(f"{fn}: target {target[bad][0]} is out of bounds for {C} classes "
                              f"(ignore_index={ignore_index})")
    ts = np.where(valid, target, 0)
    wt = (weight[ts] * valid if weight is not None else valid).astype(dtype)
    return ts, valid, wt


class _ClassLoss(Function):
    """Shared reduction of the class-index losses: 'none' (per element), 'sum', or 'mean' = Σ ℓ / Σ w[t] over
    non-ignored targets (PyTorch's weighted mean; NaN when every target is ignored). The targets are the
    op's gradient-free second input, checked here, so tg.compile replays each call's targets."""
    saves = ()
    def reduce(self, loss, wt, reduction):
        self.denom = None  # 'none': g is per element already
        if reduction == "none":
            return loss
        self.denom = wt.dtype.type(1) if reduction == "sum" else wt.sum()
        if reduction == "sum":
            return np.asarray(loss.sum())
        with _quiet():  # every target ignored: 0/0 = NaN, as PyTorch
            return np.asarray(loss.sum() / self.denom)
    def element_grad(self, g):
        if self.denom is None:
            return g
        with _quiet():
            return np.broadcast_to(g / self.denom, self.valid.shape)


class CrossEntropy(_ClassLoss):
    """Cross-entropy with class indices (class dim 1), weights and label smoothing ε:
    ℓ_n = v_n [(1 - ε) w_{t_n} (-log p_{n,t_n}) + ε/C Σ_c w_c (-log p_{n,c})],  p = softmax(x, 1), v_n = [t_n not ignored];
    dℓ_n/dx_{n,j} = v_n [p_j ((1 - ε) w_{t_n} + ε/C Σ_c w_c) - (1 - ε) w_{t_n} δ_{j,t_n} - ε/C w_j]"""
    def forward(self, x, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="none"):
        C, eps = x.shape[1], label_smoothing
        ts, valid, wt = _class_targets("cross_entropy", target, C, weight, ignore_index, x.dtype)
        m = np.max(x, axis=1, keepdims=True)
        lp = x - np.where(np.isfinite(m), m, 0)
        lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
        self.lp, self.t, self.valid, self.wt, self.eps = lp, np.expand_dims(ts, 1), valid, wt, eps
        self.wc = None if weight is None else weight.reshape((1, C) + (1,) * (x.ndim - 2))
        loss = -(1 - eps) * wt * np.take_along_axis(lp, self.t, axis=1)[:, 0]
        if eps:
            smooth = lp.sum(axis=1) if self.wc is None else (lp * self.wc).sum(axis=1)
            loss -= (eps / C) * smooth * valid
        return self.reduce(loss, wt, reduction)

    def backward(self, g):
        g = self.element_grad(g)
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
        return gx, None


class NllLoss(_ClassLoss):
    """ℓ_n = -w_{t_n} x[n, t_n] (x: log-probabilities, class dim 1; 0 for ignored targets);
    dx[n, j] = -w_{t_n} δ_{j,t_n}"""
    def forward(self, x, target, weight=None, ignore_index=-100, reduction="none"):
        ts, valid, wt = _class_targets("nll_loss", target, x.shape[1], weight, ignore_index, x.dtype)
        self.t, self.valid, self.wt, self.shape = np.expand_dims(ts, 1), valid, wt, x.shape
        return self.reduce(-(np.take_along_axis(x, self.t, axis=1)[:, 0] * wt), wt, reduction)

    def backward(self, g):
        gx = np.zeros(self.shape, dtype=self.wt.dtype)
        np.put_along_axis(gx, self.t, np.expand_dims(-self.element_grad(g) * self.wt, 1), axis=1)
        return gx, None


# ---------------------------------------------------------------- indexing (PyTorch surface)

def _take_adjoint(g: np.ndarray, index: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Adjoint of np.take(x, index, axis) for 1-D `index`: scatter-add g's slices into `n` slots along
    `axis` (repeated indices accumulate)."""
    shape = list(g.shape)
    shape[axis] = n
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(np.moveaxis(out, axis, 0), index, np.moveaxis(g, axis, 0))
    return out


def _along_axis(index: np.ndarray, axis: int) -> tuple:
    """Full advanced indices addressing x[i_0, ..., index[i], ..., i_n] for every position of `index`."""
    idx = list(np.indices(index.shape, sparse=True))
    idx[axis] = index
    return tuple(idx)


class Flip(Function):
    """z = x reversed along `dims`;  dx = g reversed along the same dims"""
    def forward(self, x, dims):
        self.dims = dims
        return np.flip(x, dims).copy()
    def backward(self, g): return np.flip(g, self.dims)


class Roll(Function):
    """z = x shifted cyclically by `shifts` along `dims` (flattened when dims is None);  dx = g rolled back"""
    def forward(self, x, shifts, dims):
        self.shifts, self.dims, self.shape = shifts, dims, x.shape
        if dims is None:
            return np.roll(x.reshape(-1), shifts).reshape(x.shape)
        return np.roll(x, shifts, dims)
    def backward(self, g):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        if self.dims is None:
            return np.roll(g.reshape(-1), back).reshape(self.shape)
        return np.roll(g, back, self.dims)


class IndexSelect(Function):
    """z = x[..., index, ...] along dim (1-D integer index, repeats allowed);  dx = scatter-add of g"""
    def forward(self, x, index, dim):
        self.index, self.axis, self.n = index, dim, x.shape[dim]
        return np.take(x, index, axis=dim)
    def backward(self, g): return _take_adjoint(g, self.index, self.axis, self.n)


class IndexAdd(Function):
    """z = x;  z[..., index[i], ...] += alpha * src[..., i, ...] along dim;  dx = g,  dsrc = alpha * g[..., index, ...]"""
    def forward(self, x, src, index, dim, alpha=1):
        self.index, self.axis, self.alpha = index, dim, alpha
        out = x.copy()
        np.add.at(np.moveaxis(out, dim, 0), index, np.moveaxis(src * alpha if alpha != 1 else src, dim, 0))
        return out
    def backward(self, g):
        gs = np.take(g, self.index, axis=self.axis) * self.alpha if self.needs[1] else None
        return g, gs


class Scatter(Function):
    """z = x with z[i][index[i][j]] = src[i][j] along dim (src a tensor or the constant `value`);
    reduce 'add'/'multiply' combine with x instead of overwriting.
    dx = g with the written positions zeroed ('set') or g ('add');  dsrc = gather(g, index) (scatter_add:
    the same with 'add'). scatter with reduce= has no derivative in PyTorch, so none here either."""
    def forward(self, x, *src, index, dim, value=None, reduce=None, differentiable=True):
        self.reduce, self.differentiable = reduce, differentiable
        self.pos, self.index = _along_axis(index, dim), index
        self.src_shape = src[0].shape if src else None
        v = src[0][tuple(slice(0, s) for s in index.shape)] if src else np.asarray(value, dtype=x.dtype)
        out = x.copy()
        if reduce is None:
            out[self.pos] = v  # a repeated index keeps one of its values (PyTorch leaves which undefined)
        elif reduce == "add":
            np.add.at(out, self.pos, np.broadcast_to(v, index.shape))
        else:
            np.multiply.at(out, self.pos, np.broadcast_to(v, index.shape))
        return out
    def backward(self, g):
        if not self.differentiable:
            raise RuntimeError("derivative for scatter with reduce= is not implemented (as in PyTorch): "
                               "use scatter_add, or scatter without reduce")
        gx = g
        if self.reduce is None and self.needs[0]:
            gx = g.copy()
            gx[self.pos] = 0
        if len(self.needs) == 1:
            return gx
        gs = None
        if self.needs[1]:
            gs = np.zeros(self.src_shape, dtype=g.dtype)
            gs[tuple(slice(0, s) for s in self.index.shape)] = g[self.pos]
        return gx, gs


def _pad_source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For one axis of length n padded by (lo, hi) (negative crops): which input position each output
    position copies (reflect: mirrored about the edge, replicate: the edge, circular: wrapped)."""
    if mode == "circular":  # as PyTorch: crop first, then wrap around what is left
        start, m = max(-lo, 0), n - max(-lo, 0) - max(-hi, 0)
        return start + np.arange(-max(lo, 0), m + max(hi, 0)) % m
    q = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(q, 0, n - 1)
    if n == 1:
        return np.zeros_like(q)
    q = np.abs(q) % (2 * n - 2)
    return np.where(q >= n, 2 * n - 2 - q, q)


class PadMode(Function):
    """z = x padded by copying its own entries (reflect, replicate or circular), `widths` per axis in
    NumPy order (negative crops);  dx = scatter-add of g back to the entries each output copied"""
    def forward(self, x, widths, mode):
        self.shape = x.shape
        self.maps = [(a, _pad_source_index(n, lo, hi, mode)) for a, ((lo, hi), n) in enumerate(zip(widths, x.shape))
                     if lo or hi]
        out = x
        for a, src in self.maps:
            out = np.take(out, src, axis=a)
        return out if self.maps else x.copy()
    def backward(self, g):
        for a, src in reversed(self.maps):
            g = _take_adjoint(g, src, a, self.shape[a])
        return g


class Normalize(Function):
    """y = x / max(‖x‖_p, eps) over dim (as F.normalize);
    dx = g / d - [‖x‖_p >= eps] (Σ g x) / d² · ∂‖x‖_p/∂x,  d = max(‖x‖_p, eps),
    ∂‖x‖_p/∂x = sign(x) |x|^(p-1) / ‖x‖_p^(p-1) (p = inf: sign(x) on the maxima, shared evenly)"""
    def forward(self, x, p, dim, eps):
        self.x, self.p, self.axis = x, p, dim
        ax = np.abs(x)
        if p == math.inf:
            n = ax.max(axis=dim, keepdims=True)
        elif p == 2:
            n = np.sqrt((x * x).sum(axis=dim, keepdims=True))
        else:
            n = (ax ** p).sum(axis=dim, keepdims=True) ** (1.0 / p)
        self.n, self.d = n, np.maximum(n, eps)
        with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 and a zero vector: NaN, as PyTorch
            return x / self.d
    def backward(self, g):
        x, n, d, p = self.x, self.n, self.d, self.p
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == math.inf:
                hit = np.abs(x) == n
                dn = np.sign(x) * hit / hit.sum(axis=self.axis, keepdims=True)
            elif p == 2:
                dn = np.where(n > 0, x / np.where(n > 0, n, 1), 0)
            else:
                dn = np.where(n > 0, np.sign(x) * (np.abs(x) / np.where(n > 0, n, 1)) ** (p - 1), 0)
            return g / d - (n >= d) * (g * x).sum(axis=self.axis, keepdims=True) / (d * d) * dn


class CosineSimilarity(Function):
    """y = Σ (x1 / n1)(x2 / n2) over dim, n_i = max(‖x_i‖₂, eps) (as PyTorch: each norm clamped, the
    clamp itself not differentiated);  dx1 = g (x2 / (n1 n2) - y x1 / (n1 ‖x1‖₂)), dx2 likewise"""
    def forward(self, x1, x2, dim, eps):
        x1, x2 = np.broadcast_arrays(x1, x2)
        self.x1, self.x2, self.axis = x1, x2, dim
        self.r1 = np.sqrt((x1 * x1).sum(axis=dim, keepdims=True))
        self.r2 = np.sqrt((x2 * x2).sum(axis=dim, keepdims=True))
        self.n1, self.n2 = np.maximum(self.r1, eps), np.maximum(self.r2, eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.y = ((x1 / self.n1) * (x2 / self.n2)).sum(axis=dim, keepdims=True)
        return np.squeeze(self.y, dim)
    def backward(self, g):
        g = np.expand_dims(g, self.axis)
        y, n1, n2 = self.y, self.n1, self.n2

        def part(xa, xb, na, nb, ra):
            with np.errstate(divide="ignore", invalid="ignore"):
                unit = np.where(ra > 0, xa / np.where(ra > 0, ra, 1), 0)  # ∂‖x‖/∂x, 0 at 0 as PyTorch
                return g * (xb / (na * nb) - y / na * unit)
        return (part(self.x1, self.x2, n1, n2, self.r1) if self.needs[0] else None,
                part(self.x2, self.x1, n2, n1, self.r2) if self.needs[1] else None)


# ---------------------------------------------------------------- random ops (tg.compile)

class Dropout(Function):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) drawn in forward (so a compiled replay draws fresh numbers);
    dx = g * m / (1 - p)"""
    saves = ()
    draws_random = True  # tg.compile: forward draws from the library's generator
    def forward(self, x, p):
        mask = (STATE.rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
        mask *= 1.0 / (1.0 - p)
        self.mask = mask
        return x * mask
    def backward(self, g): return g * self.mask


# ---------------------------------------------------------------- ops that are their own method and function

class Erf(Function):
    """z = erf(x) = 2/√π ∫₀ˣ e^(-t²) dt;  dz/dx = 2/√π e^(-x²)   (x.erf(), tg.erf(x): from `method` alone)"""
    method = "erf"
    saves = (0,)
    def forward(self, x):
        self.x = x
        return erf(x)
    def backward(self, g): return g * (2 / math.sqrt(math.pi)) * np.exp(-self.x * self.x)
