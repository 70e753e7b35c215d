"""Autograd state and the backward pass.

Holds the global switches (grad mode, anomaly detection, the name scope that graph nodes record) and
`run_backward`, the iterative reverse sweep: dependency counts give a topological order without
recursion; the first gradient reaching a tensor is stored as-is and later ones are added in place
only into arrays this pass owns (HIPS autograd's "mutable" idea), so an array that another node still
holds is never mutated.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


class _State:
    """Module-level switches; plain class attributes so the hot path reads them with one lookup."""
    grad_enabled: bool = True
    anomaly: bool = False
    # (module path, time step) of the code now running; every graph node records it (see name_scope).
    scope: tuple[str, Any] = ("", None)


STATE = _State


class _GradMode:
    """Context manager and decorator that sets grad mode (see `no_grad`, `enable_grad`)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._prev: list[bool] = []

    def __enter__(self):
        self._prev.append(STATE.grad_enabled)
        STATE.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled = self._prev.pop()
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn: Callable | None = None):
    """No graph is recorded inside: results have `requires_grad=False`.

    `with tg.no_grad():`, `@tg.no_grad()` and `@tg.no_grad` all work.
    """
    gm = _GradMode(False)
    return gm(fn) if callable(fn) else gm


def enable_grad(fn: Callable | None = None):
    """Re-enable graph recording, e.g. inside a `no_grad` block (context manager or decorator)."""
    gm = _GradMode(True)
    return gm(fn) if callable(fn) else gm


class set_grad_enabled:
    """`set_grad_enabled(mode)` sets grad mode at once; used in `with`, the previous mode comes back on exit."""

    def __init__(self, mode: bool):
        self._prev = STATE.grad_enabled
        STATE.grad_enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled = self._prev
        return False


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


class detect_anomaly:
    """Raise as soon as an op's forward or backward produces NaN/inf, naming the op and its scope.

    `with tg.detect_anomaly():`, `@tg.detect_anomaly()` and `@tg.detect_anomaly` all work.
    """

    def __new__(cls, enabled: bool = True):
        if callable(enabled):  # used as a bare decorator: `enabled` is the function
            return cls(True)(enabled)
        return super().__new__(cls)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self._prev = STATE.anomaly
        STATE.anomaly = self.enabled
        return self

    def __exit__(self, *exc):
        STATE.anomaly = self._prev
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


class name_scope:
    """Record `name` as (part of) the module path of every graph node created inside.

    `with name_scope("encoder"): ...` nests: paths join with "/". `step=t` marks the time step
    (the recurrent layers set it per step), so the visualizer can cluster and fold steps.
    Cheap: one tuple swapped on enter and exit.
    """
    __slots__ = ("name", "step", "_prev")

    def __init__(self, name: str | None = None, step: Any = None):
        self.name = name
        self.step = step

    def __enter__(self):
        prev = self._prev = STATE.scope
        path = prev[0]
        if self.name:
            path = f"{path}/{self.name}" if path else self.name
        STATE.scope = (path, self.step if self.step is not None else prev[1])
        return self

    def __exit__(self, *exc):
        STATE.scope = self._prev
        return False


def time_step(t: int) -> name_scope:
    """Mark graph nodes created inside as belonging to time step `t` of the current module."""
    return name_scope(None, t)


class _Released:
    """Stands in for a Function whose saved arrays a backward pass released."""
    __slots__ = ("op",)

    def __init__(self, op: str):
        self.op = op


class OuterSum:
    """A weight gradient Σ_k A_kᵀ B_k kept as its factors until it is needed.

    A weight shared by T steps (W_hh of an RNN) gets T gradients g_tᵀ h_{t-1}; adding T dense matrices
    costs T passes over the weight, while one matmul over the stacked factors is what a hand-written
    BPTT does. Linear/MatMul return this for the weight; the backward pass appends later ones and
    materialises the sum once (`value()`), when the weight's gradient is complete.
    """
    __slots__ = ("a", "b")

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = [a], [b]

    def extend(self, other: "OuterSum") -> None:
        self.a += other.a
        self.b += other.b

    def value(self) -> np.ndarray:
        if len(self.a) == 1:
            return self.a[0].T @ self.b[0]
        return np.concatenate(self.a).T @ np.concatenate(self.b)

    def __array__(self, dtype=None, copy=None):
        v = self.value()
        return v if dtype is None else v.astype(dtype)

    def __add__(self, other):
        return self.value() + other

    __radd__ = __add__


def _check_finite(arr: np.ndarray, what: str, fn) -> None:
    if type(arr) is OuterSum:
        arr = arr.value()
    if arr is not None and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        scope = getattr(fn, "scope", ("", None))
        where = f" (scope {scope[0] or '<root>'}, t={scope[1]})" if scope[0] or scope[1] is not None else ""
        raise RuntimeError(f"detect_anomaly: {what} of {type(fn).__name__}{where} produced NaN/inf")


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to `shape`, using the shapes alone."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def run_backward(root: "Tensor", grad: np.ndarray, retain_graph: bool, capture: dict | None = None) -> None:
    """Propagate `grad` from `root` to every leaf that requires grad (iterative, no recursion).

    With `capture` (a dict), every tensor's complete gradient is stored there under id(tensor) instead
    of in `.grad` (hooks still run): what `grad()` and the visualizer use.
    """
    # Pass 1: count, for every tensor in the graph, how many graph edges consume it.
    deps: dict[int, int] = {id(root): 0}
    stack = [root]
    while stack:
        ctx = stack.pop()._ctx
        if ctx is None:
            continue
        if type(ctx) is _Released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time: the saved arrays of {ctx.op} were "
                "released by the first backward(); call backward(retain_graph=True) the first time")
        for p in ctx.parents:
            if p.requires_grad:
                k = id(p)
                if k in deps:
                    deps[k] += 1
                else:
                    deps[k] = 1
                    stack.append(p)

    # Pass 2: process tensors whose consumers are all done; gradients accumulate in `grads`.
    # A tensor waiting here stays alive through the parents of a consumer not yet processed, so
    # its id cannot be reused before it is popped.
    grads: dict[int, np.ndarray] = {id(root): grad}
    owned: set[int] = set()  # gradient arrays created by this pass, safe to add into in place
    anomaly = STATE.anomaly
    ready = [root]
    pop_grad = grads.pop
    while ready:
        t = ready.pop()
        k = id(t)
        g = pop_grad(k)
        if type(g) is OuterSum:
            g = g.value()
            if g.dtype != t._data.dtype:  # factors of another dtype (mixed-precision inputs)
                g = g.astype(t._data.dtype)
            owned.add(k)
        if t._hooks:
            for hook in t._hooks:
                r = hook(_Tensor._wrap(g))
                if r is not None:
                    g = r._data if isinstance(r, _Tensor) else np.asarray(r)
                    owned.discard(k)  # the hook may keep the array it returned: never store it uncopied
        ctx = t._ctx
        if capture is not None:
            capture[k] = g
        elif ctx is None or t._retain:
            _store_grad(t, g, k in owned)
        if owned:
            owned.discard(k)
        if ctx is None:
            continue
        sl = ctx.slice_index
        pgrads = (g,) if sl is not None else ctx.backward(g)
        parents = ctx.parents
        if len(parents) == 1 and sl is None and not isinstance(pgrads, tuple):  # Cat/Stack of one tensor give (g,)
            pgrads = (pgrads,)
        if not retain_graph:
            t._ctx = ctx.released
        for p, pg in zip(parents, pgrads):
            if pg is None or not p.requires_grad:
                continue
            if anomaly:
                _check_finite(pg, "backward", ctx)
            pdata = p._data
            if type(pg) is OuterSum:  # a shared weight's gradient: keep the factors, one matmul at the end
                pk = id(p)
                prev = grads.get(pk)
                if prev is None:
                    grads[pk] = pg
                elif type(prev) is OuterSum:
                    prev.extend(pg)
                elif pk in owned:
                    prev += pg.value()
                else:
                    grads[pk] = prev + pg.value()
                    owned.add(pk)
                n = deps[pk] - 1
                deps[pk] = n
                if n == 0:
                    ready.append(p)
                continue
            if sl is not None:  # a basic-index slice: add it into one zero-initialised buffer this pass owns
                pk = id(p)
                if pk not in owned:
                    buf = np.zeros(pdata.shape, pdata.dtype)
                    if pk in grads:
                        buf += grads[pk]
                    grads[pk] = buf
                    owned.add(pk)
                buf = grads[pk]
                v = buf[sl]
                if type(v) is np.ndarray:
                    np.add(v, pg, out=v)  # into the view: `buf[sl] += pg` would also copy it back
                else:  # a single element
                    buf[sl] += pg
                n = deps[pk] - 1
                deps[pk] = n
                if n == 0:
                    ready.append(p)
                continue
            if pg.shape != pdata.shape:
                pg = _unbroadcast(pg, pdata.shape)
            if pg.dtype is not pdata.dtype and pg.dtype != pdata.dtype:
                pg = pg.astype(pdata.dtype)
            pk = id(p)
            if pk in grads:
                if pk in owned:
                    grads[pk] += pg
                else:
                    grads[pk] = grads[pk] + pg
                    owned.add(pk)
            else:
                grads[pk] = pg
            n = deps[pk] - 1
            deps[pk] = n
            if n == 0:
                ready.append(p)


_Tensor: Any = None  # set by tensor.py (it imports this module)


def _store_grad(t: "Tensor", g: np.ndarray, owned: bool) -> None:
    # `.grad` may be scaled in place later (clip_grad_norm_, optimizers), so it must not share its
    # array with another tensor's gradient: copy unless this pass created the array.
    # np.array (not .copy()) also turns a NumPy scalar (0-d results) into a writable 0-d array.
    if t.grad is None:
        t.grad = _Tensor._wrap(g if owned and type(g) is np.ndarray else np.array(g))
    else:
        t.grad = _Tensor._wrap(np.asarray(t.grad._data + g))


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, allow_unused: bool = False):
    """d outputs / d inputs as a tuple of Tensors, leaving every `.grad` untouched (as torch.autograd.grad).

    `outputs` is one tensor (scalar unless `grad_outputs` is given); the graph is kept when
    `retain_graph=True`.
    """
    single = not isinstance(inputs, (list, tuple))
    inputs = [inputs] if single else list(inputs)
    out = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if grad_outputs is None:
        if out._data.size != 1:
            raise RuntimeError(f"grad: outputs of shape {out.shape} need grad_outputs")
        g0 = np.ones(out._data.shape, dtype=out._data.dtype)
    else:
        go = grad_outputs[0] if isinstance(grad_outputs, (list, tuple)) else grad_outputs
        g0 = np.asarray(go._data if isinstance(go, _Tensor) else go, dtype=out._data.dtype)
    captured: dict[int, np.ndarray] = {}
    run_backward(out, g0, bool(retain_graph), capture=captured)
    res = []
    for i, x in enumerate(inputs):
        g = captured.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {x.shape}) is not used in the graph of the outputs; "
                               "pass allow_unused=True")
        res.append(None if g is None else _Tensor._wrap(np.array(g)))
    return res[0] if single else tuple(res)
