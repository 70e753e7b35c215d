"""`Tensor`: an ndarray plus the graph node that made it. Thin: every op is a `Function` in ops.py."""
from __future__ import annotations

import itertools
import numbers
import sys
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import autograd
from . import dtypes
from . import ops
from .errors import ShapeError
from .printing import tensor_repr
from .autograd import STATE, run_backward
from .device import CPU as _CPU
from .device import check as _check_device
from .device import parse_to as _parse_to

DEFAULT_DTYPE = np.float32  # the initial default; the current one is dtypes.get_default_dtype()
_FLOATS = (np.float16, np.float32, np.float64)

# ---- tg.compile (issue 10): the trace now recording (compile._Trace) or None; checked where tensors are
# made outside ops, read in Python or written in place, so a replay never repeats a stale value.
_TRACE = None


def _refs(o) -> int:
    """References to `o`, not counting those a tracing tg.compile holds."""
    return sys.getrefcount(o) - (0 if _TRACE is None else _TRACE.holds(o))


class _RefProbe:
    def __matmul__(self, o):
        return _refs(o)

    def __add__(self, o):
        return _refs(self), _refs(o)


# _refs of a right operand of `@` that nothing else holds (`x @ W.T`), as __matmul__ sees it: measured
# once, since interpreters differ in how many references the call itself holds. The same for either
# operand of `+` (`x_t + h @ W.T`, `h @ W.T + b`).
_TEMP_OPERAND_REFS = _RefProbe() @ object()
_TEMP_LEFT_REFS, _TEMP_RIGHT_REFS = _RefProbe() + object()
_LINEAR = ops.Linear


def _bias_taker(y: "Tensor", b: "Tensor") -> bool:
    """Whether `y + b` may fold b into y's node as its bias (ops.Linear.take_bias): y is the output of a
    bias-free Linear node made since the last in-place write (so b is the value it would have read), with
    no name, hook or retain_grad, nobody else holds it (the caller checked), b broadcasts to y's shape
    without growing it, and neither tg.compile nor anomaly detection is watching the ops one by one."""
    ctx = y._ctx
    if len(ctx.parents) != 2 or ctx.clock != STATE.clock or _TRACE is not None or STATE.anomaly:
        return False
    if y.name is not None or y._hooks or y._retain:
        return False
    ys, bs = y._data.shape, b._data.shape
    return bs == ys or (len(bs) == 1 and ys and bs[0] == ys[-1])


def _reads_values(fn: Callable) -> Callable:
    """tg.compile: fn computes a tensor from its operands' values outside the engine's ops (comparisons,
    isnan, argmax ...): while tracing, that is a graph break unless every operand is a constant."""
    def wrapper(*args, **kw):
        if _TRACE is None:
            return fn(*args, **kw)
        for a in args:
            if isinstance(a, Tensor):
                _TRACE.on_read(a, f"{fn.__name__.strip('_')}()")
        r = fn(*args, **kw)
        _TRACE.on_made(r, "const")
        return r
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper
_DEFAULT = np.dtype(DEFAULT_DTYPE)
_CACHED_TYPES = (int, float)
_CONSTS: dict = {}  # (number, dtype) -> constant Tensor, see Tensor._const


def manual_seed(seed: int) -> None:
    """Seed every random draw of the library (randn, rand, init, dropout, sampling)."""
    STATE.rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The library's random generator (reseeded by `manual_seed`)."""
    return STATE.rng


def _sequence_dtype(data) -> np.dtype:
    """torch.tensor's dtype for (nested) lists of numbers: the promotion of its elements' dtypes, a Python
    float counting as the default float dtype and a NumPy scalar, array or tensor as its own
    ([np.float64(1.), 2.] is float64, [1., np.float16(2)] float32; NumPy says float64 for both)."""
    if isinstance(data, Tensor):
        return data._data.dtype
    python = {float: dtypes.get_default_dtype(), int: dtypes.int64, bool: dtypes.bool_}
    found, stack = set(), [data if type(data) is list or type(data) is tuple else [data]]
    while stack:
        for v in stack.pop():
            t = type(v)
            if t is list or t is tuple:
                stack.append(v)
            else:  # (keyed by type: a NumPy dtype compares equal to the Python type float)
                found.add(python[t] if t in python else v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype)
    out = None
    for d in found:
        out = d if out is None else dtypes.promote_types(out, d)
    return dtypes.get_default_dtype() if out is None else out


def _as_array(data: Any, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (np.ndarray, np.generic)):  # a NumPy scalar keeps its dtype too (np.float64(1.5))
        arr = np.asarray(data)
    else:
        arr = np.asarray(data)
        if dtype is None and arr.dtype.kind == "f":  # NumPy's float64 for Python floats is not torch's dtype
            arr = arr.astype(_sequence_dtype(data), copy=False)
    if dtype is not None:
        arr = arr.astype(dtypes.to_dtype(dtype), copy=False)
    elif arr.dtype.kind in "cuSUOVM" and arr.dtype != dtypes.uint8:  # complex, uint16+, text, objects: refused
        dtypes.to_dtype(arr.dtype)
    return arr


class Tensor:
    """A multi-dimensional array that records the operations applied to it for reverse-mode autodiff.

    `Tensor(data, requires_grad=False, dtype=None)`: Python floats become float32, a NumPy array keeps
    its dtype (float64 stays float64). `.grad` is a Tensor after `backward()`.
    """
    # _view: (base, op) when this tensor's array is a view of base's (in-place writes rewrite base's graph too);
    # _history: [(clock, stand-in for the old value)] of in-place writes into this tensor (autograd._resolve)
    __slots__ = ("_data", "grad", "requires_grad", "_ctx", "_retain", "_hooks", "name", "_view", "_history",
                 "__weakref__")
    __array_ufunc__ = None  # make `ndarray * Tensor` defer to Tensor.__rmul__ instead of looping

    def __init__(self, *data: Any, requires_grad: bool = False, dtype=None):
        if not data or all(type(d) is int for d in data):  # torch.Tensor(2, 3): a shape (zero-filled here)
            self._data = np.zeros(data or (0,), dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype))
        elif len(data) == 1:
            d = data[0]
            if dtype is None and not isinstance(d, (Tensor, np.ndarray, np.generic)):
                dtype = dtypes.get_default_dtype()  # torch.Tensor([1, 2]) is a float tensor; arrays keep their dtype
            self._data = _as_array(d, dtype)
        else:
            raise TypeError(f"Tensor(): expected one data argument or sizes (ints), got {data!r}")
        if _TRACE is not None:  # tg.compile
            if len(data) == 1 and isinstance(data[0], Tensor):
                _TRACE.on_made(self, "wrap", data[0])
            else:
                _TRACE.on_made(self, "init")
        self.grad: Tensor | None = None
        self._ctx = None
        self._retain = False
        self._hooks: list | None = None
        self.name: str | None = None
        self._view = self._history = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __getattr__(self, name: str):
        """x.<method>(...) for an op that declares `method` (ops.Function.method) and has no hand-written method."""
        op = ops.METHODS.get(name)
        if op is None:
            raise AttributeError(f"'Tensor' object has no attribute '{name}'")
        return lambda *others, **kw: op.apply(self, *others, **kw)

    @staticmethod
    def _wrap(arr: np.ndarray) -> "Tensor":
        """Fast constructor for op results: no conversion, no checks."""
        t = object.__new__(Tensor)
        t._data = arr
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        t._retain = False
        t._hooks = None
        t.name = None
        t._view = t._history = None
        if _TRACE is not None:  # tg.compile
            _TRACE.on_made(t, "wrap")
        return t

    # ------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def size(self, dim: int | None = None):
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return self._data.size

    def named(self, name: str) -> "Tensor":
        """Set `.name` (the tensor's role in its formula, e.g. "f_t", "alpha"; draw_graph labels the node
        with it) and return the tensor itself, so code reads `f = a_f.sigmoid().named("f_t")`."""
        self.name = name
        return self

    def numpy(self) -> np.ndarray:
        """The ndarray itself (shares memory, as torch's `.numpy()`)."""
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, ".numpy()")
        return self._data

    @property
    def data(self) -> "Tensor":
        """The same storage as a Tensor outside the graph (as torch's `.data`: writes to it are not
        recorded, so `p.data.add_(...)` updates a parameter without autograd noticing)."""
        t = Tensor._wrap(self._data)
        t.__class__ = _Untracked  # same slots: only in-place writes behave differently
        return t

    @data.setter
    def data(self, value) -> None:
        if _TRACE is not None:  # tg.compile
            _TRACE.brk("the function assigns .data")
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """np.asarray(t) gives the data (NumPy ufuncs on a Tensor still raise: use the Tensor's ops)."""
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, "np.asarray()")
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, ".item()")
        if self._data.size != 1:
            raise ShapeError(f"item(): only one-element tensors can be converted to a Python scalar, got shape {self.shape}")
        return self._data.item()

    def tolist(self):
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, ".tolist()")
        return self._data.tolist()

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, "bool()")
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with shape {self.shape} is ambiguous")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if _TRACE is not None:  # tg.compile
            _TRACE.on_read(self, "int()")
        return int(self._data)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return tensor_repr(self._data, None if self._ctx is None else type(self._ctx).__name__, self.requires_grad)

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" of a 0-d tensor formats its value (as torch); other tensors take only an empty spec."""
        if self._data.ndim == 0 and type(self) is Tensor:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # ------------------------------------------------------------ autograd API
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"only floating-point tensors can require gradients, got dtype {self._data.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._wrap(self._data)

    def retain_grad(self) -> "Tensor":
        """Keep `.grad` on this non-leaf tensor after backward."""
        self._retain = True
        return self

    def register_hook(self, fn: Callable[["Tensor"], "Tensor | None"]):
        """Call `fn(grad)` when this tensor's gradient is complete; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)

        class _Handle:
            def remove(_self):
                if fn in self._hooks:
                    self._hooks.remove(fn)
        return _Handle()

    def backward(self, gradient: "Tensor | np.ndarray | None" = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: "Sequence[Tensor] | Tensor | None" = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (vector-Jacobian product with `gradient`);
        with `inputs`, only into those tensors' `.grad` (leaves or not)."""
        if create_graph:
            raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported by this engine")
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            if not inputs:
                raise RuntimeError("backward: 'inputs' argument to backward() cannot be empty")
            for i, x in enumerate(inputs):
                if not isinstance(x, Tensor) or not x.requires_grad:
                    raise RuntimeError(f"backward: inputs[{i}] does not require grad")
        run_backward(self, autograd.root_grad(self, gradient, "backward"), bool(retain_graph), inputs=inputs)

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's storage has had (as torch's `_version`)."""
        return autograd.version(self._data)

    # ------------------------------------------------------------ conversion
    def _const(self, v) -> "Tensor":
        """`v` (a number, array or Tensor) as the operand of a binary op with this tensor, in the
        promoted dtype (see _pair)."""
        return _pair(self, v)[1]

    # ------------------------------------------------------------ dtype and device conversion
    def to(self, *args, **kwargs) -> "Tensor":
        """to(dtype), to(device), to(device, dtype), to(other), to(dtype=, device=, copy=): float->float
        casts keep the graph (ops.Cast); casts to an int or bool dtype cut it (as torch)."""
        dt, copy = _parse_to(args, kwargs)
        out = self if dt is None else self._cast(dt)
        return out.clone() if copy and out is self else out

    def _cast(self, dt: np.dtype) -> "Tensor":
        if dt == self._data.dtype:
            return self
        if dt.kind == "f":
            return ops.Cast.apply(self, dtype=dt)  # records a node only if self requires grad
        with np.errstate(invalid="ignore"):  # nan/inf -> int: no NumPy warning (torch gives a value)
            return Tensor._wrap(self._data.astype(dt))

    def float(self) -> "Tensor": return self._cast(dtypes.float32)
    def double(self) -> "Tensor": return self._cast(dtypes.float64)
    def half(self) -> "Tensor": return self._cast(dtypes.float16)
    def long(self) -> "Tensor": return self._cast(dtypes.int64)
    def int(self) -> "Tensor": return self._cast(dtypes.int32)
    def short(self) -> "Tensor": return self._cast(dtypes.int16)
    def char(self) -> "Tensor": return self._cast(dtypes.int8)
    def byte(self) -> "Tensor": return self._cast(dtypes.uint8)
    def bool(self) -> "Tensor": return self._cast(dtypes.bool_)

    def type(self, dtype=None, non_blocking: bool = False):
        """type() -> PyTorch's type name ("torch.FloatTensor"); type(dtype or "torch.LongTensor") -> cast."""
        if dtype is None:
            return f"torch.{dtypes.torch_name(self._data.dtype)}Tensor"
        return self._cast(dtypes.to_dtype(dtype))

    def type_as(self, other: "Tensor") -> "Tensor":
        return self._cast(other._data.dtype)

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    @property
    def device(self):
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> "Tensor":
        _check_device("cuda" if device is None else device)
        return self

    def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return tensor(data, dtype=self._data.dtype if dtype is None else dtype, device=device,
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return zeros(*size, dtype=self._data.dtype if dtype is None else dtype, device=device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return ones(*size, dtype=self._data.dtype if dtype is None else dtype, device=device,
                    requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return full(size, fill_value, dtype=self._data.dtype if dtype is None else dtype, device=device,
                    requires_grad=requires_grad)

    def contiguous(self, memory_format=None) -> "Tensor":
        """self if its storage is C-contiguous, else a C-contiguous copy (dx = g), as torch"""
        return self if self._data.flags.c_contiguous else ops.Clone.apply(self)

    def is_contiguous(self, memory_format=None) -> bool:
        return self._data.flags.c_contiguous

    def clone(self, memory_format=None) -> "Tensor":
        return ops.Clone.apply(self)

    # ------------------------------------------------------------ arithmetic
    # PyTorch's type promotion goes through _pair (dtypes.result_type). The fast path first: two
    # Tensors of one dtype (`is`: NumPy's builtin dtypes are singletons; anything else takes _pair).
    def __add__(self, o):
        if isinstance(o, Tensor) and o._data.dtype is self._data.dtype:  # parameters too
            # x_t + h @ W.T and h @ W.T + b on a product nobody else holds: one Linear node with that bias
            if type(o._ctx) is _LINEAR and _refs(o) <= _TEMP_RIGHT_REFS and _bias_taker(o, self):
                return o._ctx.take_bias(o, self)
            if type(self._ctx) is _LINEAR and _refs(self) <= _TEMP_LEFT_REFS and _bias_taker(self, o):
                return self._ctx.take_bias(self, o)
            return ops.Add.apply(self, o)
        return ops.Add.apply(*_pair(self, o))

    def __radd__(self, o):
        a, b = _pair(self, o)
        return ops.Add.apply(b, a)

    def __sub__(self, o):
        if type(o) is Tensor and o._data.dtype is self._data.dtype is not _BOOL:
            return ops.Sub.apply(self, o)
        _no_bool_sub(self, o)
        return ops.Sub.apply(*_pair(self, o))

    def __rsub__(self, o):
        if (type(o) is float or type(o) is int) and self._data.dtype.kind == "f":  # `1 - p`
            return ops.Sub.apply(_scalar(o, self._data.dtype), self)
        _no_bool_sub(self, o)
        a, b = _pair(self, o)
        return ops.Sub.apply(b, a)

    def __mul__(self, o):
        if type(o) is Tensor and o._data.dtype is self._data.dtype:
            return ops.Mul.apply(self, o)
        return ops.Mul.apply(*_pair(self, o))

    def __rmul__(self, o):
        a, b = _pair(self, o)
        return ops.Mul.apply(b, a)

    def __truediv__(self, o):  # true division: int / int gives the default float dtype
        if type(o) is Tensor and o._data.dtype is self._data.dtype and self._data.dtype.kind == "f":
            return ops.Div.apply(self, o)
        return ops.Div.apply(*_pair(self, o, floating=True))

    def __rtruediv__(self, o):
        a, b = _pair(self, o, floating=True)
        return ops.Div.apply(b, a)

    def __neg__(self):
        if self._data.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are "
                               "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        return ops.Neg.apply(self)

    def __matmul__(self, o):
        if isinstance(o, Tensor) and o._data.dtype is self._data.dtype:  # parameters too
            v = o._view
            if (v is not None and o.ndim == 2 and self.ndim >= 1 and type(v[1]) is ops.Permute and v[1].inv == (1, 0)
                    and _refs(o) <= _TEMP_OPERAND_REFS):
                # x @ W.T is x Wᵀ: one Linear node on W itself (no transpose in the graph; a weight shared over
                # time steps then gets its gradient as one GEMM, and the GEMM reads W contiguously). Only for a
                # W.T nobody holds: one kept in a variable may get retain_grad() or be asked for in grad(), so
                # it stays in the graph (MatMul on the view, as torch)
                return ops.Linear.apply(self, v[0])
            return ops.MatMul.apply(self, o)
        return _matmul(self, o if isinstance(o, Tensor) else Tensor(o))

    def __rmatmul__(self, o):
        return _matmul(tensor(o), self)

    def __pow__(self, o):
        if (type(o) is int or type(o) is float) and self._data.dtype.kind == "f":  # `x ** 2`
            return ops.PowConst.apply(self, c=o)
        if isinstance(o, numbers.Number) or isinstance(o, np.generic):
            o = o.item() if isinstance(o, np.generic) else o
            x = _pair(self, o)[0]  # an int tensor with a float exponent becomes float, bool becomes int64
            if x._data.dtype.kind in "iu" and isinstance(o, numbers.Integral) and o < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            return ops.PowConst.apply(x, c=o)
        return ops.Pow.apply(*_pair(self, o))

    def __rpow__(self, o):
        a, b = _pair(self, o)
        return ops.Pow.apply(b, a)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    matmul = __matmul__
    pow = __pow__

    def neg(self): return -self
    def exp(self): return ops.Exp.apply(self if self._data.dtype.kind == "f" else self._floating())
    def log(self): return ops.Log.apply(self if self._data.dtype.kind == "f" else self._floating())
    def sqrt(self): return ops.Sqrt.apply(self if self._data.dtype.kind == "f" else self._floating())
    def abs(self): return ops.Abs.apply(self)
    __abs__ = abs
    def tanh(self): return ops.Tanh.apply(self if self._data.dtype.kind == "f" else self._floating())
    def sigmoid(self): return ops.Sigmoid.apply(self if self._data.dtype.kind == "f" else self._floating())
    def relu(self): return ops.Relu.apply(self)
    def gelu(self, approximate: str = "none"): return ops.Gelu.apply(self, approximate=approximate)
    def square(self): return ops.PowConst.apply(self, c=2)
    def rsqrt(self): return 1 / self.sqrt()
    def reciprocal(self): return 1 / self

    def clamp(self, min=None, max=None):
        """min(max(x, min), max); tensor bounds go through maximum/minimum (and get gradients)"""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        if isinstance(min, Tensor) or isinstance(max, Tensor):  # ties give x the gradient, as PyTorch
            bounds = [self._const(b) for b in (min, max) if b is not None]
            return ops.ClampT.apply(self, *bounds, has_lo=min is not None, has_hi=max is not None)
        return ops.Clamp.apply(self, lo=min, hi=max)

    clip = clamp

    def lerp(self, end: "Tensor", weight) -> "Tensor":
        """self + weight * (end - self), torch.lerp: end a tensor of self's float dtype, weight a number or a
        tensor of that dtype (a 0-d one of any dtype, as a number), all three broadcast together."""
        dt = self._data.dtype
        if not isinstance(end, Tensor):
            raise TypeError(f"lerp(): argument 'end' must be Tensor, not {type(end).__name__}")
        if dt.kind != "f":
            raise NotImplementedError(f"lerp: not implemented for {dt} input (a float tensor is needed)")
        if end._data.dtype != dt:
            raise RuntimeError(f"lerp: expected dtype {dt} for `end` but got dtype {end._data.dtype}")
        if isinstance(weight, Tensor):
            if weight.ndim and weight._data.dtype != dt:
                raise RuntimeError(f"lerp: expected dtype {dt} for `weight` but got dtype {weight._data.dtype}")
        elif not isinstance(weight, (numbers.Real, np.bool_)):
            raise TypeError(f"lerp(): argument 'weight' must be a number or Tensor, not {type(weight).__name__}")
        _, weight = _pair(self, weight)  # a number or 0-d tensor as a 0-d operand of self's dtype
        try:
            np.broadcast_shapes(self.shape, end.shape, weight.shape)
        except ValueError:
            raise RuntimeError(f"lerp: shapes {self.shape} (input), {end.shape} (end) and {weight.shape} (weight) "
                               "do not broadcast") from None
        return ops.Lerp.apply(self, end, weight)

    def maximum(self, o): return ops.Maximum.apply(*_pair(self, o))
    def minimum(self, o): return ops.Minimum.apply(*_pair(self, o))

    def masked_fill(self, mask, value) -> "Tensor":
        """mask ? value : self (mask and self broadcast together, as torch); a 0-d tensor value gets its gradient."""
        mask = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask))  # an op input: compile replays it
        m = mask._data
        if m.dtype != bool:
            raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {m.dtype}")
        if m.shape != self.shape:
            try:
                np.broadcast_shapes(m.shape, self.shape)
            except ValueError:
                raise ShapeError(f"masked_fill: mask of shape {m.shape} does not broadcast with the tensor's "
                                 f"shape {self.shape}") from None
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, but got tensor with "
                                   f"{value.ndim} dimension(s) (shape {value.shape})")
            return ops.MaskedFill.apply(self, mask, value)
        return ops.MaskedFill.apply(self, mask, value=value)

    # comparisons give bool tensors with no gradient
    @_reads_values
    def _cmp(self, o, f) -> "Tensor":
        if type(o) is Tensor and o._data.dtype is self._data.dtype:
            return Tensor._wrap(f(self._data, o._data))
        if (type(o) is float or type(o) is int) and self._data.dtype.kind == "f":
            return Tensor._wrap(f(self._data, o))  # NumPy takes a Python number in the array's dtype, as torch
        try:  # compare in the promoted dtype, as torch (float32 tensor == float64 0-d: in float32)
            a, b = _pair(self, o, graph=False)
        except TypeError:  # e.g. t == None: NumPy's answer
            return Tensor._wrap(f(self._data, o))
        return Tensor._wrap(f(a._data, b._data))

    def __lt__(self, o): return self._cmp(o, np.less)
    def __le__(self, o): return self._cmp(o, np.less_equal)
    def __gt__(self, o): return self._cmp(o, np.greater)
    def __ge__(self, o): return self._cmp(o, np.greater_equal)
    def __eq__(self, o): return self._cmp(o, np.equal)  # type: ignore[override]
    def __ne__(self, o): return self._cmp(o, np.not_equal)  # type: ignore[override]
    @_reads_values
    def __invert__(self): return Tensor._wrap(~self._data)
    def __and__(self, o): return self._cmp(o, np.logical_and)
    def __or__(self, o): return self._cmp(o, np.logical_or)

    def eq(self, o): return self == o
    def ne(self, o): return self != o
    def lt(self, o): return self < o
    def gt(self, o): return self > o
    @_reads_values
    def isnan(self): return Tensor._wrap(np.isnan(self._data))
    @_reads_values
    def isfinite(self): return Tensor._wrap(np.isfinite(self._data))
    def argmax(self, dim=None, keepdim=False): return _arg_extreme(self, dim, keepdim, np.argmax)
    def argmin(self, dim=None, keepdim=False): return _arg_extreme(self, dim, keepdim, np.argmin)
    @_reads_values
    def all(self): return Tensor._wrap(np.all(self._data))
    @_reads_values
    def any(self): return Tensor._wrap(np.any(self._data))

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim: bool = False, dtype=None):
        x = self if dtype is None else self._cast(dtypes.to_dtype(dtype))
        return ops.Sum.apply(x, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        x = self if dtype is None else self._cast(dtypes.to_dtype(dtype))
        if x._data.dtype.kind != "f":
            raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating "
                               f"point or complex dtype. Got: {dtypes.torch_name(x._data.dtype)}")
        return ops.Mean.apply(x, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim: bool = False):
        """`max()` -> tensor; `max(dim)` -> (values, indices) as torch.max; `max(other)` -> maximum."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return ops.Max.apply(self, op=np.max, nan_hit=True)
        return _minmax_dim(self, dim, keepdim, np.argmax)

    def min(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            return ops.Max.apply(self, op=np.min, nan_hit=True)
        return _minmax_dim(self, dim, keepdim, np.argmin)

    def amax(self, dim=None, keepdim: bool = False): return ops.Max.apply(self, dim=dim, keepdim=keepdim, op=np.max)
    def amin(self, dim=None, keepdim: bool = False): return ops.Max.apply(self, dim=dim, keepdim=keepdim, op=np.min)

    def var(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased: bool | None = None):
        """var = Σ (x - mean)² / (n - correction)"""
        if unbiased is not None:
            correction = int(unbiased)
        if self._data.dtype.kind != "f":
            raise RuntimeError(f"std and var only support floating point and complex dtypes, got {self._data.dtype}")
        return ops.Var.apply(self, dim=dim, keepdim=keepdim, correction=correction)

    def std(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased: bool | None = None):
        """std = sqrt(var)"""
        return self.var(dim, keepdim=keepdim, correction=correction, unbiased=unbiased).sqrt()

    def logsumexp(self, dim=None, keepdim: bool = False):
        return ops.LogSumExp.apply(self, dim=dim, keepdim=keepdim)

    def softmax(self, dim: int = -1): return ops.Softmax.apply(self, dim=dim)
    def log_softmax(self, dim: int = -1): return ops.LogSoftmax.apply(self, dim=dim)

    # ------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        try:
            return ops.Reshape.apply(self, shape=shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {self.shape} into {shape}") from None

    # torch's view refuses strides it cannot keep; here it is reshape (a copy where NumPy needs one): NumPy
    # lays out some results (softmax or a sum over a transposed tensor, a stack) otherwise than torch, so a
    # strict view would refuse code torch runs
    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        nd = self.ndim
        if nd == 0:
            return self.reshape(1)
        s, e = (ops._dim(d, nd, "flatten", self.shape) for d in (start_dim, end_dim))
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])

    def permute(self, *order):
        order = _shape_arg(order)
        norm = tuple(ops._dim(o, self.ndim, "permute", self.shape) for o in order)
        if sorted(norm) != list(range(self.ndim)):
            raise ShapeError(f"permute: {order} is not a permutation of the {self.ndim} dims of shape {self.shape}")
        return ops.Permute.apply(self, order=norm)

    def transpose(self, dim0: int = -2, dim1: int = -1):
        if self.ndim < 2:
            return self
        order = list(range(self.ndim))
        dim0, dim1 = (ops._dim(d, self.ndim, "transpose", self.shape) for d in (dim0, dim1))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return ops.Permute.apply(self, order=tuple(order))

    @property
    def T(self):
        nd = self._data.ndim
        if nd == 2:
            return ops.Permute.apply(self, order=(1, 0))
        return ops.Permute.apply(self, order=tuple(range(nd))[::-1]) if nd > 2 else self

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dims = [ops._dim(int(d), self.ndim, "squeeze", self.shape) for d in np.atleast_1d(dim)] if self.ndim else []
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def unsqueeze(self, dim: int):
        d = ops._dim(dim, self.ndim + 1, "unsqueeze", self.shape)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        # -1 keeps an existing dim; new leading dims need explicit sizes; a dim of size 1 may grow
        full = tuple(self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
        if lead < 0 or any(s < 0 for s in full) or any(d != 1 and d != f for d, f in zip(self.shape, full[lead:])):
            raise ShapeError(f"expand: shape {self.shape} cannot be expanded to {shape}")
        return ops.Expand.apply(self, shape=full)

    def broadcast_to(self, *shape):
        return self.expand(*shape)

    def expand_as(self, other: "Tensor"):
        return self.expand(other.shape)

    def repeat(self, *reps):
        """Tile: dim d repeated reps[d] times (as torch.Tensor.repeat; extra leading reps add dims)."""
        reps = _shape_arg(reps)
        if len(reps) < self.ndim:
            raise RuntimeError(f"repeat: Number of dimensions of repeat dims ({len(reps)}) can not be smaller than "
                               f"number of dimensions of tensor ({self.ndim}, shape {self.shape})")
        if any(r < 0 for r in reps):
            raise RuntimeError(f"repeat: repeats must be non-negative, got {reps}")
        x = self.reshape((1,) * (len(reps) - self.ndim) + self.shape) if len(reps) > self.ndim else self
        out = x
        for d, r in enumerate(reps):
            if r == 0:
                out = out[(slice(None),) * d + (slice(0, 0),)]
            elif r != 1:
                out = cat([out] * r, dim=d)
        return out

    def __getitem__(self, index):
        idx = _index_arg(index)
        if idx is not index and type(idx) is tuple:  # converted entries: maybe ints mixed with index arrays
            two = _ints_first(idx)
            if two is not None:
                return ops.GetItem.apply(ops.GetItem.apply(self, index=two[0]), index=two[1])
        return ops.GetItem.apply(self, index=idx)

    def split(self, split_size_or_sections, dim: int = 0):
        shape = self._data.shape
        key = (shape, dim, split_size_or_sections) if type(split_size_or_sections) is int else None
        index = _SPLITS.get(key) if key else None
        if index is None:
            index = _split_index(self.shape, split_size_or_sections, dim)
            if key and len(_SPLITS) < 256:  # a recurrent step splits the same shapes every step
                _SPLITS[key] = index
        # one slice node per piece (the backward pass adds each into one buffer)
        return tuple(ops.GetItem.pieces(self, index))

    def chunk(self, chunks: int, dim: int = 0):
        if type(chunks) is not int and (not isinstance(chunks, numbers.Integral) or isinstance(chunks, bool)):
            raise TypeError(f"chunk(): argument 'chunks' must be int, not {type(chunks).__name__}")
        if chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        n, chunks = self.shape[dim], int(chunks)  # (a NumPy integer too, as torch)
        return self.split(-(-n // chunks) if n else [0] * chunks, dim)

    def unbind(self, dim: int = 0):
        dim = ops._dim(dim, self.ndim, "unbind", self.shape)
        pre = (slice(None),) * dim
        return tuple(ops.GetItem.apply(self, index=pre + (i,)) for i in range(self.shape[dim]))

    # ---- indexing (PyTorch surface): gather, scatter, flip, roll, ... are indexfns' functions, registered as
    # methods there (that module builds on this one)
    def swapaxes(self, axis0: int, axis1: int) -> "Tensor": return self.transpose(axis0, axis1)
    def swapdims(self, dim0: int, dim1: int) -> "Tensor": return self.transpose(dim0, dim1)
    def view_as(self, other: "Tensor") -> "Tensor": return self.reshape(other.shape)
    def reshape_as(self, other: "Tensor") -> "Tensor": return self.reshape(other.shape)

    def where(self, cond, other):
        return where(cond, self, other)

    # ------------------------------------------------------------ in-place ops (torch's semantics)
    def _inplace(self, op: str, fn: Callable[["Tensor"], "Tensor"], keep_old: bool = True, cast: bool = False,
                 bump: bool = True, via: "Tensor | None" = None) -> "Tensor":
        """Make `fn(old value)` this tensor's value in place.

        The storage (and so every view of it) takes the new values and its version moves on. With autograd
        on, this tensor's graph node becomes fn's node, fed by a stand-in for the old value; nodes made
        earlier keep consuming the old value (autograd._resolve), and a view's base is rewritten to take
        the new values from the view (torch's CopySlices). `keep_old`: fn's backward reads the old values,
        so fn gets a private copy of them. `cast`: any dtype may be written (copy_), not only same-kind.
        """
        if _TRACE is not None:  # tg.compile
            _TRACE.brk(f"the function writes in place ({op})")
        grad = STATE.grad_enabled
        if grad:
            _check_inplace_leaf(self, op)
        if not self._data.flags.writeable:
            raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to tensor refers "
                               "to a single memory location (an expand()ed or constant tensor). Please clone() the "
                               "tensor before performing the operation.")
        if grad:
            old = Tensor._wrap(self._data)
            old._ctx, old.requires_grad, old.name = self._ctx, self.requires_grad, self.name
            src = old
            if keep_old:
                src = ops.Clone.apply(old) if old.requires_grad else Tensor._wrap(old._data.copy())
            new = fn(src)
        else:
            new = fn(self)
        if new.shape != self.shape:
            raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the broadcast shape "
                               f"{list(new.shape)}")
        if not cast and not _castable(new._data.dtype, self._data.dtype):
            raise RuntimeError(f"{op}: result type {new._data.dtype} can't be cast to the desired output type "
                               f"{self._data.dtype}")
        if new._data is not self._data:
            np.copyto(self._data, new._data, casting="unsafe")
        if bump and type(self) is not _Untracked:
            autograd.bump_version(self._data, op)
        if new._ctx is not None and -1 in new._ctx.saves:
            # the op's output is now this tensor (x.exp_() saves its result): a later write into it must raise
            # at backward, as torch, but this write itself is the op's own
            new._ctx.out_clock = STATE.clock
        if grad and (new.requires_grad or self.requires_grad):
            if self._history is None:
                self._history = []
            self._history.append((STATE.clock, old, via))  # via: the view written through, if any
            self._ctx, self.requires_grad = new._ctx, new.requires_grad
            if self._view is not None:
                base, vop = self._view
                base._inplace(op, lambda b: _view_back(b, self, vop), keep_old=False, cast=True, bump=False, via=self)
        return self

    def __setitem__(self, index, value) -> None:
        """x[index] = value, in place; recorded in the graph (value gets dx[index], x keeps the rest)."""
        v = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=self._data.dtype))
        idx = _index_arg(index)
        if idx is not index and type(idx) is tuple:
            two = _ints_first(idx)  # torch applies the ints first: write through that view
            if two is not None:
                ops.GetItem.apply(self, index=two[0])[two[1]] = v
                return
        self._inplace("setitem", lambda x: ops.SetItem.apply(x, v, index=idx), keep_old=False, cast=True)

    def add_(self, other, alpha=1) -> "Tensor":
        if isinstance(other, numbers.Number) and isinstance(alpha, Tensor):  # the old add_(alpha, other) overload
            other, alpha = alpha, other
        return self._inplace("add_", lambda x: x + (other if alpha == 1 else other * alpha), keep_old=False)

    def sub_(self, other, alpha=1) -> "Tensor":
        if isinstance(other, numbers.Number) and isinstance(alpha, Tensor):
            other, alpha = alpha, other
        return self._inplace("sub_", lambda x: x - (other if alpha == 1 else other * alpha), keep_old=False)

    def mul_(self, other) -> "Tensor": return self._inplace("mul_", lambda x: x * other)
    def div_(self, other, rounding_mode=None) -> "Tensor":
        if rounding_mode is None:
            return self._inplace("div_", lambda x: x / other)
        return self._inplace("div_", lambda x: x.div(other, rounding_mode=rounding_mode))
    def pow_(self, e) -> "Tensor": return self._inplace("pow_", lambda x: x ** e)
    def clamp_(self, min=None, max=None) -> "Tensor": return self._inplace("clamp_", lambda x: x.clamp(min, max))
    clip_ = clamp_
    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __ipow__ = pow_

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    def fill_(self, value) -> "Tensor":
        """Every element = value (a number or a 0-d tensor, which then gets the gradient)."""
        if isinstance(value, Tensor) and value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions")
        return self._inplace("fill_", lambda x: where(_ALL, value, x), keep_old=False, cast=True)

    def copy_(self, src, non_blocking: bool = False) -> "Tensor":
        """self = src broadcast to self's shape and cast to its dtype; src gets the gradient, the old value none."""
        s = src if isinstance(src, Tensor) else Tensor(src)
        return self._inplace("copy_", lambda x: where(_ALL, s, x), keep_old=False, cast=True)

    def masked_fill_(self, mask, value) -> "Tensor":
        return self._inplace("masked_fill_", lambda x: x.masked_fill(mask, value), keep_old=False)

    def index_fill_(self, dim: int, index, value) -> "Tensor":
        d = ops._dim(dim, self.ndim, "index_fill_", self.shape)
        idx = np.asarray(index._data if isinstance(index, Tensor) else index)
        if idx.ndim > 1 or idx.dtype.kind not in "iu":
            raise IndexError(f"index_fill_(): index must be a 1-D integer tensor, got {idx.dtype} of shape {idx.shape}")
        n = self.shape[d] if self.ndim else 1
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index_fill_(): index out of range for dimension {dim} with size {n}")
        mask = np.zeros(self.shape, bool)
        mask[(slice(None),) * d + (idx.reshape(-1),)] = True
        return self._inplace("index_fill_", lambda x: x.masked_fill(mask, value), keep_old=False)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        return self.copy_(STATE.rng.uniform(a, b, self.shape))

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        return self.copy_(STATE.rng.normal(mean, std, self.shape))

    def detach_(self) -> "Tensor":
        """Cut this tensor from the graph in place."""
        self._ctx, self.requires_grad = None, False
        return self

    def _reshape_(self, op: str, fn) -> "Tensor":
        """In-place view ops (unsqueeze_, squeeze_, t_, transpose_): a new shape on the same storage."""
        if _TRACE is not None:  # tg.compile
            _TRACE.brk(f"the function writes in place ({op})")
        if not STATE.grad_enabled:
            self._data = fn(self)._data
            return self
        _check_inplace_leaf(self, op)
        old = Tensor._wrap(self._data)
        old._ctx, old.requires_grad, old.name = self._ctx, self.requires_grad, self.name
        new = fn(old)
        self._data = new._data
        if new.requires_grad:
            STATE.clock += 1  # no value changed, but earlier consumers must keep the old shape (autograd._resolve)
            if self._history is None:
                self._history = []
            self._history.append((STATE.clock, old, None))
            self._ctx = new._ctx
        return self

    def unsqueeze_(self, dim: int) -> "Tensor": return self._reshape_("unsqueeze_", lambda x: x.unsqueeze(dim))
    def squeeze_(self, dim=None) -> "Tensor": return self._reshape_("squeeze_", lambda x: x.squeeze(dim))
    def t_(self) -> "Tensor": return self._reshape_("t_", lambda x: x.T)
    def transpose_(self, dim0: int, dim1: int) -> "Tensor":
        return self._reshape_("transpose_", lambda x: x.transpose(dim0, dim1))


    # ------------------------------------------------------------ math (PyTorch surface)
    def _floating(self) -> "Tensor":
        """Integer and bool inputs of transcendental functions compute in the default float dtype (as PyTorch)."""
        return self if self._data.dtype.kind in "fc" else ops.Cast.apply(self, dtype=dtypes.get_default_dtype())

    def sin(self) -> "Tensor": return ops.Sin.apply(self._floating())
    def cos(self) -> "Tensor": return ops.Cos.apply(self._floating())
    def tan(self) -> "Tensor": return ops.Tan.apply(self._floating())
    def sinh(self) -> "Tensor": return ops.Sinh.apply(self._floating())
    def cosh(self) -> "Tensor": return ops.Cosh.apply(self._floating())
    def asin(self) -> "Tensor": return ops.Asin.apply(self._floating())
    def acos(self) -> "Tensor": return ops.Acos.apply(self._floating())
    def atan(self) -> "Tensor": return ops.Atan.apply(self._floating())
    arcsin, arccos, arctan = asin, acos, atan

    def atan2(self, other) -> "Tensor":
        return ops.Atan2.apply(self._floating(), other._floating() if isinstance(other, Tensor) else self._const(other))

    arctan2 = atan2

    def log2(self) -> "Tensor": return ops.Log2.apply(self._floating())
    def log10(self) -> "Tensor": return ops.Log10.apply(self._floating())
    def log1p(self) -> "Tensor": return ops.Log1p.apply(self._floating())
    def expm1(self) -> "Tensor": return ops.Expm1.apply(self._floating())
    def exp2(self) -> "Tensor": return ops.Exp2.apply(self._floating())
    def sign(self) -> "Tensor": return ops.Sign.apply(self)

    def floor(self) -> "Tensor":
        return ops.Floor.apply(self) if self._data.dtype.kind == "f" else self.clone()

    def ceil(self) -> "Tensor":
        return ops.Ceil.apply(self) if self._data.dtype.kind == "f" else self.clone()

    def round(self, decimals: int = 0) -> "Tensor":
        """Round half to even (as PyTorch), to `decimals` places."""
        if self._data.dtype.kind != "f" and decimals >= 0:
            return self.clone()
        return ops.Round.apply(self, decimals=int(decimals))

    def clamp_min(self, min) -> "Tensor": return self.clamp(min=min)
    def clamp_max(self, max) -> "Tensor": return self.clamp(max=max)
    @_reads_values
    def isinf(self) -> "Tensor": return Tensor._wrap(np.isinf(self._data))

    def _reduce_dim(self, dim, fn: str) -> int:
        return ops._dim(dim, self.ndim, fn, self.shape)

    def cumsum(self, dim: int) -> "Tensor":
        """z_k = Σ_{j<=k} x_j along dim (integers and bools give int64, as PyTorch)"""
        d = self._reduce_dim(dim, "cumsum")
        if self.ndim == 0:
            return ops.Cumsum.apply(self.reshape(1), dim=0).reshape(())
        return ops.Cumsum.apply(self, dim=d)

    def cumprod(self, dim: int) -> "Tensor":
        """z_k = Π_{j<=k} x_j along dim; the gradient is exact at zeros (as PyTorch)"""
        d = self._reduce_dim(dim, "cumprod")
        if self.ndim == 0:
            return ops.Cumprod.apply(self.reshape(1), dim=0).reshape(())
        return ops.Cumprod.apply(self, dim=d)

    def prod(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """Π x over `dim` (one int) or over everything; the gradient is exact at zeros (as PyTorch)"""
        if dim is not None and not isinstance(dim, (int, np.integer)):
            raise TypeError(f"prod: dim must be an int or None, got {dim!r}")
        axis = None if dim is None else ops._axes(dim, self.ndim)
        return ops.Prod.apply(self, dim=axis, keepdim=keepdim)

    def norm(self, p="fro", dim=None, keepdim: bool = False) -> "Tensor":
        """Vector p-norm over `dim` (None: all elements): 'fro' and 2 = √Σx², 1, inf, -inf, 0, any p;
        the gradient at 0 is 0 (as PyTorch)"""
        if p == "fro" or p is None:
            p = 2.0
        elif isinstance(p, str):
            raise NotImplementedError(f"norm: p={p!r} is not supported (only vector norms: 'fro' or a number)")
        if self._data.dtype.kind != "f":
            raise RuntimeError(f"norm: expected a floating point tensor, got {self.dtype}")
        axis = ops._axes(dim, self.ndim)
        return ops.Norm.apply(self, p=float(p), dim=axis, keepdim=keepdim)

    def dist(self, other: "Tensor", p: float = 2) -> "Tensor":
        """‖self - other‖_p over all elements"""
        return (self - other).norm(p)

    def allclose(self, other: "Tensor", rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return bool(np.allclose(self._data, _data_of(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def equal(self, other: "Tensor") -> bool:
        """True if both have the same shape and elements"""
        o = _data_of(other)
        return self.shape == o.shape and bool(np.array_equal(self._data, o))

    def triu(self, diagonal: int = 0) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"triu: input must have at least 2 dims, got shape {self.shape}")
        return ops.Triu.apply(self, diagonal=int(diagonal))

    def tril(self, diagonal: int = 0) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"tril: input must have at least 2 dims, got shape {self.shape}")
        return ops.Tril.apply(self, diagonal=int(diagonal))

    def mm(self, mat2: "Tensor") -> "Tensor":
        """Matrix product of two 2-D tensors (no broadcasting)"""
        if self.ndim != 2 or mat2.ndim != 2:
            raise RuntimeError(f"mm: both arguments must be 2-D, got shapes {self.shape} and {mat2.shape}")
        if self.shape[1] != mat2.shape[0]:
            raise RuntimeError(f"mm: shapes {self.shape} and {mat2.shape} cannot be multiplied "
                               f"({self.shape[1]} != {mat2.shape[0]})")
        return ops.MatMul.apply(self, mat2)

    def bmm(self, mat2: "Tensor") -> "Tensor":
        """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting)"""
        if self.ndim != 3 or mat2.ndim != 3:
            raise RuntimeError(f"bmm: both arguments must be 3-D, got shapes {self.shape} and {mat2.shape}")
        if self.shape[0] != mat2.shape[0] or self.shape[2] != mat2.shape[1]:
            raise RuntimeError(f"bmm: shapes {self.shape} and {mat2.shape} do not match (batch sizes must be "
                               "equal and the inner sizes too)")
        return ops.MatMul.apply(self, mat2)

    def dot(self, tensor: "Tensor") -> "Tensor":
        """Inner product of two 1-D tensors of the same size"""
        if self.ndim != 1 or tensor.ndim != 1 or self.shape != tensor.shape:
            raise RuntimeError(f"dot: expected two 1-D tensors of the same size, got shapes {self.shape} and "
                               f"{tensor.shape}")
        return ops.MatMul.apply(self, tensor)

    def outer(self, vec2: "Tensor") -> "Tensor":
        """z[i, j] = self[i] vec2[j] (two 1-D tensors)"""
        if self.ndim != 1 or vec2.ndim != 1:
            raise RuntimeError(f"outer: expected two 1-D tensors, got shapes {self.shape} and {vec2.shape}")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along dim; always stable here (NaN sorts as the largest, as PyTorch)"""
        d = self._reduce_dim(dim, "sort")
        x = self if self.ndim else self.reshape(1)
        idx = _sort_index(x._data, d if self.ndim else 0, descending)
        vals = ops.TakeAlong.apply(x, idx=idx, dim=d if self.ndim else 0, keepdim=True)
        if not self.ndim:
            return _MinMax(vals.reshape(()), Tensor._wrap(idx.reshape(())))
        return _MinMax(vals, Tensor._wrap(idx))

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor":
        return self.sort(dim, descending=descending, stable=stable).indices

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """(values, indices) of the k largest (smallest) entries along dim, in order; the gradient goes
        to the chosen entries"""
        d = self._reduce_dim(dim, "topk")
        n = self.shape[d] if self.ndim else 1
        if not 0 <= k <= n:
            raise RuntimeError(f"topk: k={k} is out of range for dim {dim} of size {n} (input shape {self.shape})")
        x = self if self.ndim else self.reshape(1)
        d = d if self.ndim else 0
        idx = _sort_index(x._data, d, largest)
        idx = np.ascontiguousarray(idx[(slice(None),) * d + (slice(0, k),)])
        vals = ops.TakeAlong.apply(x, idx=idx, dim=d, keepdim=True)
        if not self.ndim:
            return _MinMax(vals.reshape(()), Tensor._wrap(idx.reshape(())))
        return _MinMax(vals, Tensor._wrap(idx))




# Unary in-place ops `x.f_()` = `x = x.f()` (torch's names); looked up at call time, so any method works.
_UNARY_INPLACE = ("neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu", "reciprocal", "square",
                  "sign", "floor", "ceil", "round", "trunc", "frac", "sin", "cos", "tan", "log1p", "expm1", "log2",
                  "log10", "exp2", "sinh", "cosh", "asin", "acos", "atan", "clamp_min", "clamp_max", "fmod",
                  "remainder", "scatter", "scatter_add", "index_add", "index_copy", "masked_scatter", "tril", "triu",
                  "cumsum", "cumprod", "lerp", "addcmul", "addcdiv", "maximum", "minimum", "atan2", "logit")


def _unary_inplace(name: str):
    def method(self, *args, **kwargs):
        return self._inplace(name + "_", lambda x: getattr(x, name)(*args, **kwargs))
    method.__name__ = name + "_"
    method.__doc__ = f"In place: x = x.{name}(...)"
    return method


for _n in _UNARY_INPLACE:
    setattr(Tensor, _n + "_", _unary_inplace(_n))


# Function.apply builds its result as `_new(inputs[0]._result_type)`: ops.py needs no import of this module,
# and an op on a Parameter gives a plain Tensor.
Tensor._result_type = Tensor

class _Untracked(Tensor):
    """What `t.data` gives: t's storage as a tensor whose in-place writes autograd does not track (as torch)."""
    __slots__ = ()


_ALL = np.ones((), dtype=bool)  # a condition that selects every element (fill_, copy_)


def _castable(src: np.dtype, dst: np.dtype) -> bool:
    """torch's rule for writing a result into a tensor: never up a category (bool < int < float)."""
    order = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
    return order.get(src.kind, 3) <= order.get(dst.kind, 3)


def _check_inplace_leaf(t: Tensor, op: str) -> None:
    if t.requires_grad and t._ctx is None:
        raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place operation.")
    v = t._view
    while v is not None:
        base = v[0]
        if base.requires_grad and base._ctx is None:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        v = base._view


def _view_back(base_old: Tensor, view: Tensor, vop) -> Tensor:
    """base's new value from a view written in place (values are already in base's storage)."""
    if isinstance(vop, ops.GetItem):
        return ops.SetItem.apply(base_old, view, index=vop.index)
    if isinstance(vop, ops.Reshape):
        return view.reshape(vop.shape)
    if isinstance(vop, ops.Permute):
        return view.permute(vop.inv)
    raise RuntimeError(f"in-place write into a view made by {type(vop).__name__}: not supported; clone() it first")


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


_PLAIN_INDEX = (int, type(None), type(Ellipsis))


def _index_item(i):
    """One index entry as NumPy takes it, with PyTorch's meaning: a 0-d integer tensor is an int, a 0-d
    bool tensor a bool, a list an index array; negative slice steps raise (as torch)."""
    t = type(i)
    if t is slice:
        if i.step is not None and i.step < 0:
            raise ValueError("step must be greater than zero")
        return i
    if t in _PLAIN_INDEX:
        return i
    if isinstance(i, Tensor):
        i = i._data
    elif isinstance(i, list):
        i = np.asarray(i) if i else np.zeros(0, np.intp)  # torch: x[[]] is an empty integer index
    elif isinstance(i, np.bool_):
        return bool(i)
    if isinstance(i, np.ndarray):
        if i.dtype.kind not in "biu":
            raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got {i.dtype}")
        if i.ndim == 0:
            return bool(i) if i.dtype == np.bool_ else int(i)
    return i


def _seq_as_tuple(index: list) -> bool:
    # PyTorch's (and old NumPy's) rule: a short list holding a sequence, tensor, slice, None or ... is a tuple
    if len(index) >= 32:
        return False
    return any(isinstance(i, (Tensor, list, tuple, slice, np.ndarray)) or i is None or i is Ellipsis for i in index)


_SPLITS: dict = {}  # (shape, dim, split size) -> the pieces' indices (split and chunk)


def _split_index(shape: tuple, split_size_or_sections, dim: int) -> list:
    """The basic index of every piece of split(split_size_or_sections, dim) on a tensor of `shape`."""
    dim = ops._dim(dim, len(shape), "split", shape)
    n = shape[dim]
    if isinstance(split_size_or_sections, int):  # (torch takes no NumPy integer here either)
        size = split_size_or_sections
        if size < 0 or (size == 0 and n):
            raise RuntimeError(f"split: split_size must be positive (0 only for a dim of size 0), got {size} "
                               f"for dim {dim} of size {n} (shape {shape})")
        bounds = list(range(0, n, size)) + [n] if n else [0, 0]  # an empty dim: one empty piece, as torch
    else:
        sizes = list(split_size_or_sections)
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split: sections must be non-negative, got {sizes} (shape {shape})")
        if sum(sizes) != n:
            raise ShapeError(f"split: sections {sizes} do not add up to size {n} of dim {dim} (shape {shape})")
        bounds = [0, *itertools.accumulate(sizes)]
    pre = (slice(None),) * dim
    return [pre + (slice(a, b),) for a, b in zip(bounds, bounds[1:])]


def _index_arg(index):
    """The index as NumPy takes it, with PyTorch's meaning (see _index_item)."""
    if type(index) is tuple:
        for i in index:  # the common x[:, t]: plain entries and forward slices come back as they are
            if type(i) not in _PLAIN_INDEX and not (type(i) is slice and (i.step is None or i.step > 0)):
                return tuple(_index_item(j) for j in index)
        return index
    if type(index) is list and _seq_as_tuple(index):
        return tuple(_index_item(j) for j in index)
    return _index_item(index)


def _ints_first(index):
    """PyTorch applies integer indices before advanced ones (NumPy treats them as advanced too, which moves
    the result's dims when they are not adjacent): (ints-only index, the rest), or None when NumPy agrees."""
    if type(index) is not tuple:
        return None
    has_int = has_array = False
    for i in index:
        if type(i) is int or isinstance(i, np.integer):
            has_int = True
        elif type(i) is np.ndarray:
            has_array = True
    if not (has_int and has_array):
        return None
    first, rest = [], []
    for i in index:
        if type(i) is int or isinstance(i, np.integer):
            first.append(i)
        elif type(i) is np.ndarray:
            first.extend([slice(None)] * (i.ndim if i.dtype == np.bool_ else 1))
            rest.append(i)
        elif i is None or type(i) is bool:  # consume no dim of the input
            rest.append(i)
        else:  # a slice or ...
            first.append(slice(None) if i is not Ellipsis else i)
            rest.append(i)
    return tuple(first), tuple(rest)


def _minmax_dim(x: Tensor, dim: int, keepdim: bool, argop):
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"max/min: dim must be an int, got {dim!r} (use amax/amin for several dims)")
    dim = ops._dim(dim, x.ndim, "max/min", x.shape)
    if x.ndim == 0:  # the one element, index 0 (as PyTorch)
        vals, idx = _minmax_dim(x.reshape(1), 0, False, argop)
        return _MinMax(vals.reshape(()), idx.reshape(()))
    idx = np.expand_dims(argop(x._data, axis=dim), dim)
    vals = ops.MaxDim.apply(x, idx=idx, dim=dim, keepdim=keepdim)
    return _MinMax(vals, Tensor._wrap(idx if keepdim else np.squeeze(idx, dim)))


class _MinMax(tuple):
    """(values, indices), as torch.return_types.max"""
    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self): return self[0]

    @property
    def indices(self): return self[1]


@_reads_values
def _arg_extreme(x: Tensor, dim, keepdim: bool, argop) -> Tensor:
    """argmax/argmin as PyTorch: dim=None looks at the flattened tensor (keepdim then keeps every dim
    as size 1); a 0-d tensor gives index 0; always an int64 ndarray"""
    if dim is None:
        r = np.asarray(argop(x._data), dtype=np.int64)
        return Tensor._wrap(r.reshape((1,) * x.ndim) if keepdim else r)
    d = ops._dim(dim, x.ndim, argop.__name__, x.shape)
    if x.ndim == 0:
        return Tensor._wrap(np.zeros((), np.int64))
    return Tensor._wrap(np.asarray(argop(x._data, axis=d, keepdims=keepdim), dtype=np.int64))


def _sort_index(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable sort order along axis; descending keeps equal entries in their original order and puts
    NaN first (as PyTorch): sort the reversed array ascending, reverse that, map positions back"""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    r = np.flip(np.argsort(np.flip(a, axis), axis=axis, kind="stable"), axis)
    return np.ascontiguousarray(a.shape[axis] - 1 - r)


def _data_of(t) -> np.ndarray:
    return t._data if isinstance(t, Tensor) else np.asarray(t)


# ------------------------------------------------------------ type promotion (PyTorch's rules, dtypes.py)

_BOOL = np.dtype(np.bool_)


def _scalar(v, dt: np.dtype) -> Tensor:
    """A Python number as a constant of dtype `dt`. Nonzero ints and floats are cached read-only: a
    step's `x * 0.5` reuses one instead of building an array each call (0.0 and -0.0 stay apart)."""
    if type(v) in _CACHED_TYPES and v:
        key = (v, dt)
        c = _CONSTS.get(key)
        if c is None:
            if len(_CONSTS) >= 4096:  # bounded: NaN keys never match, odd values come and go
                _CONSTS.clear()
            arr = np.asarray(v, dtype=dt)
            arr.flags.writeable = False
            c = _CONSTS[key] = Tensor._wrap(arr)
        if _TRACE is not None:  # tg.compile: a number, the same at every call
            _TRACE.on_made(c, "const")
        return c
    c = Tensor._wrap(np.asarray(v, dtype=dt))
    if _TRACE is not None:  # tg.compile
        _TRACE.on_made(c, "const")
    return c


def _pair(t: Tensor, o, floating: bool = False, graph: bool = True) -> tuple[Tensor, Tensor]:
    """(t, o) as two Tensors of PyTorch's result dtype for a binary op (`floating`: true division,
    where an int or bool result becomes the default float dtype). Float->float casts keep gradients
    (ops.Cast) unless `graph` is False; int and bool operands carry none."""
    dt = t._data.dtype
    if isinstance(o, Tensor) and o._data.dtype is dt and (dt.kind == "f" or not floating):  # x * parameter
        return t, o
    if type(o) is float or type(o) is int:  # the common `x * 0.5`: a Python number never promotes a float tensor
        if dt.kind == "f":
            return t, _scalar(o, dt)
    elif isinstance(o, np.generic):
        o = o.item()
    elif isinstance(o, (np.ndarray, list, tuple)):
        o = tensor(o)
    if isinstance(o, Tensor):
        rt = dt if o._data.dtype == dt else dtypes.result_type(t, o)
    elif isinstance(o, numbers.Real):
        rt = dtypes.result_type(t, o)
    else:
        raise TypeError(f"unsupported operand: a Tensor ({dt}) and {type(o).__name__} {o!r}")
    if floating and rt.kind != "f":
        rt = dtypes.get_default_dtype()
    if graph:
        a = t if dt == rt else t._cast(rt)
    else:
        a = t if dt == rt else Tensor._wrap(t._data.astype(rt))
    if not isinstance(o, Tensor):
        return a, _scalar(o, rt)
    if o._data.dtype == rt:
        return a, o
    return a, (o._cast(rt) if graph else Tensor._wrap(o._data.astype(rt)))


def _no_bool_sub(t: Tensor, o) -> None:
    """torch refuses `-` with any bool operand (a Python bool too): `mask - 1`, `1 - mask` raise."""
    bools = (t._data.dtype.kind == "b") + (o._data.dtype.kind == "b" if isinstance(o, Tensor)
                                           else isinstance(o, (bool, np.bool_)))
    if bools == 2:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if bools:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """matmul does not promote (as torch): both operands must have one dtype."""
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a._data.dtype} != "
                           f"{b._data.dtype} (matmul of shapes {a.shape} and {b.shape}); cast one with "
                           ".to(dtype)")
    return ops.MatMul.apply(a, b)


def result_type(tensor1, tensor2) -> np.dtype:
    """The dtype of an arithmetic op on the two operands (tensors or numbers), as torch.result_type."""
    return dtypes.result_type(tensor1, tensor2)


# ------------------------------------------------------------ functions on several tensors

def _float_like(v, ref: Tensor) -> Tensor:
    return ref._const(v) if not isinstance(v, Tensor) else v


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim; all other dims must match."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0]
    d = ops._dim(dim, ref.ndim, "cat", ref.shape)
    for t in tensors[1:]:
        if t.ndim != ref.ndim or t.shape[:d] + t.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
            raise ShapeError(f"cat: shapes {[tuple(x.shape) for x in tensors]} differ outside dim {dim}")
    return ops.Cat.apply(*tensors, dim=d)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack equal-shaped tensors on a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ShapeError(f"stack: all tensors must have the same shape, got {[tuple(t.shape) for t in tensors]}")
    return ops.Stack.apply(*tensors, dim=dim)


def where(cond, x, y) -> Tensor:
    """Elementwise `cond ? x : y` (x, y tensors or numbers; cond is not differentiated)."""
    cond = cond if isinstance(cond, Tensor) else Tensor(np.asarray(cond))  # an op input: compile replays it
    c = cond._data
    if c.dtype != bool:
        raise TypeError(f"where: condition must be bool, got {c.dtype}")
    x, y = (Tensor(v) if isinstance(v, (np.ndarray, list, tuple)) else v.item() if isinstance(v, np.generic)
            else v for v in (x, y))
    rt = dtypes.result_type(x, y)  # promoted as a binary op (a number does not promote a tensor)
    x, y = (v._cast(rt) if isinstance(v, Tensor) else _scalar(v, rt) for v in (x, y))
    try:
        np.broadcast_shapes(c.shape, x.shape, y.shape)
    except ValueError:
        raise ShapeError(f"where: condition {c.shape}, x {x.shape} and y {y.shape} do not broadcast") from None
    return ops.Where.apply(x, y, cond)


def pad(x: Tensor, pad: Sequence[int], value: float = 0.0) -> Tensor:
    """Constant padding in PyTorch's F.pad convention: `pad` = (left, right) for the last dim, then
    (left, right) for the one before, ...; negative amounts crop."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold (left, right) pairs for at most {x.ndim} dims (input shape {x.shape})")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for (lo, hi), n in zip(widths, x.shape):
        if n + lo + hi < 0:
            raise ValueError(f"pad: {pad} crops more than the input shape {x.shape} holds")
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        x = x[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, x.shape))]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    return ops.Pad.apply(x, widths=tuple(widths), value=value)


def maximum(x: Tensor, y) -> Tensor:
    return x.maximum(y) if isinstance(x, Tensor) else y.maximum(x)


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    """input + weight * (end - input), torch.lerp (see Tensor.lerp)"""
    return input.lerp(end, weight)


def minimum(x: Tensor, y) -> Tensor:
    return x.minimum(y) if isinstance(x, Tensor) else y.minimum(x)


# ------------------------------------------------------------ constructors
# Every factory takes PyTorch's `dtype=`, `device=` (the CPU only) and `requires_grad=`; float
# factories use the default dtype (tg.set_default_dtype).

def _dt(dtype) -> np.dtype:
    return dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()


def _new(arr: np.ndarray, device, requires_grad: bool) -> Tensor:
    _check_device(device)
    t = Tensor._wrap(arr)
    if _TRACE is not None:  # tg.compile: a factory's result (random if it drew from the generator)
        _TRACE.on_made(t, "factory")
    if requires_grad:
        t.requires_grad_(True)
    return t


def _size(shape: tuple, size) -> tuple:
    """zeros(2, 3), zeros((2, 3)), zeros([2, 3]) and zeros(size=(2, 3))"""
    if size is not None:
        if shape:
            raise TypeError("got both positional sizes and size=")
        shape = (size,)
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _float_dt(dtype, fn: str) -> np.dtype:
    dt = _dt(dtype)
    if dt.kind != "f":
        raise TypeError(f"{fn}: dtype must be a floating point dtype, got {dt} (random draws are floats; "
                        "use randint for integers)")
    return dt


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A new tensor holding a copy of `data`: Python ints give int64, floats the default dtype, bools
    bool; an array keeps its dtype."""
    src = data._data if isinstance(data, Tensor) else data
    if _TRACE is not None and isinstance(data, Tensor):  # tg.compile: a copy of a traced tensor's values
        _TRACE.on_read(data, "tg.tensor()")
    return _new(np.array(_as_array(src, dtype), copy=True), device, requires_grad)


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor on `a`'s memory with its dtype (torch.from_numpy): a write into either shows in both."""
    if not isinstance(a, np.ndarray):
        if _TRACE is not None and isinstance(a, Tensor):  # tg.compile passes a NumPy argument as a tensor
            _TRACE.on_read(a, "tg.from_numpy()")
        what = type(a).__name__ if type(a).__module__ == "builtins" else f"{type(a).__module__}.{type(a).__name__}"
        raise TypeError(f"expected np.ndarray (got {what})")
    try:
        dtypes.to_dtype(a.dtype)
    except TypeError as e:
        raise TypeError(f"can't convert np.ndarray of type {a.dtype}: {e}") from None
    t = Tensor._wrap(a)
    if _TRACE is not None:  # as Tensor(arr): data from outside the engine
        _TRACE.on_made(t, "init")
    return t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` as a tensor, without a copy where it can (torch.as_tensor): a tensor of that dtype is returned
    itself (another dtype: `.to(dtype)`, still in the graph), an ndarray of that dtype is shared
    (from_numpy); anything else is copied as by tg.tensor."""
    _check_device(device)
    want = None if dtype is None else dtypes.to_dtype(dtype)
    if isinstance(data, Tensor):
        return data if want is None or want == data._data.dtype else data.to(want)
    if isinstance(data, np.ndarray) and (want is None or want == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=want, device=device)


def zeros(*shape, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_size(shape, size), _dt(dtype)), device, requires_grad)


def ones(*shape, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_size(shape, size), _dt(dtype)), device, requires_grad)


def empty(*shape, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """As torch.empty, but zero-filled (uninitialised memory helps nobody in a teaching engine)."""
    return zeros(*shape, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with `fill_value`; without dtype, the value's: bool, int64 or the default float."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dt = dtypes.scalar_dtype(fill_value) if dtype is None else dtypes.to_dtype(dtype)
    return _new(np.full(_size((size,), None), fill_value, dt), device, requires_grad)


def randn(*shape, size=None, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    g = STATE.rng if generator is None else generator
    dt = _float_dt(dtype, "randn")
    return _new(g.standard_normal(_size(shape, size)).astype(dt), device, requires_grad)


def rand(*shape, size=None, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    g = STATE.rng if generator is None else generator
    dt = _float_dt(dtype, "rand")
    return _new(g.random(_size(shape, size)).astype(dt), device, requires_grad)


def randint(low=None, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high): randint(high, size) or randint(low, high, size), int64 by default."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if low is None:
        low = 0
    if high is None or size is None:
        raise TypeError("randint(): expected randint(high, size) or randint(low, high, size), with size a tuple")
    if int(high) <= int(low):
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    g = STATE.rng if generator is None else generator
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    dt = dtypes.int64 if dtype is None else dtypes.to_dtype(dtype)
    return _new(g.integers(int(low), int(high), size=size).astype(dt, copy=False), device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """[start, end) by step: int64 if every bound is an int, else the default float dtype."""
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    if end is None:
        start, end = 0, start
    arr = np.arange(start, end, step)
    if dtype is not None:
        arr = arr.astype(dtypes.to_dtype(dtype))
    elif arr.dtype.kind == "f":
        arr = arr.astype(dtypes.get_default_dtype())
    return _new(arr, device, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end (both included), in the default float dtype."""
    start, end = (v.item() if isinstance(v, Tensor) else v for v in (start, end))
    arr = np.linspace(start, end, int(steps))
    with np.errstate(invalid="ignore"):
        return _new(arr.astype(_dt(dtype)), device, requires_grad)  # an int dtype truncates, as torch


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=_dt(dtype)), device, requires_grad)


def _like(input: Tensor, dtype) -> np.dtype:
    return input._data.dtype if dtype is None else dtypes.to_dtype(dtype)


def zeros_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(input.shape, _like(input, dtype)), device, requires_grad)


def ones_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(input.shape, _like(input, dtype)), device, requires_grad)


def empty_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _new(np.full(input.shape, fill_value, _like(input, dtype)), device, requires_grad)


def randn_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(*input.shape, dtype=_like(input, dtype), device=device, requires_grad=requires_grad)


def rand_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(*input.shape, dtype=_like(input, dtype), device=device, requires_grad=requires_grad)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


# ------------------------------------------------------------ legacy typed constructors (tg.LongTensor, ...)

class _LegacyType(type):
    """torch.FloatTensor and friends: `LongTensor([1, 2])` holds data, `FloatTensor(2, 3)` is a shape
    (zero-filled here); `isinstance(t, tg.LongTensor)` checks the dtype."""
    def __call__(cls, *args, device=None):
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            return tensor(args[0], dtype=cls._tg_dtype, device=device)
        return zeros(*args, dtype=cls._tg_dtype, device=device)

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj._data.dtype == cls._tg_dtype

    def __repr__(cls) -> str:
        return f"<class 'tinygrad_seq.{cls.__name__}'>"


def _legacy(name: str, dt: np.dtype) -> type:
    return _LegacyType(name, (), {"_tg_dtype": dt, "__doc__": f"{name}(data) or {name}(*sizes): a {dt} tensor"})


FloatTensor = _legacy("FloatTensor", dtypes.float32)
DoubleTensor = _legacy("DoubleTensor", dtypes.float64)
HalfTensor = _legacy("HalfTensor", dtypes.float16)
LongTensor = _legacy("LongTensor", dtypes.int64)
IntTensor = _legacy("IntTensor", dtypes.int32)
ShortTensor = _legacy("ShortTensor", dtypes.int16)
CharTensor = _legacy("CharTensor", dtypes.int8)
ByteTensor = _legacy("ByteTensor", dtypes.uint8)
BoolTensor = _legacy("BoolTensor", dtypes.bool_)


